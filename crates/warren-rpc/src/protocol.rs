//! The wire conventions of warren-rpc: where requests go, which properties and headers carry
//! what. Everything a client in another language needs to call (or serve) a warren-rpc
//! service is named here.
//!
//! - A request is published to the default exchange with routing key `rpc.<service>` (the
//!   service queue every instance of the service consumes from), `mandatory` (so a service
//!   nobody declared fails fast with 312 NO_ROUTE), and the properties `type` = method name,
//!   `content_type` = the serialization, `correlation_id`, `reply_to` =
//!   `amq.rabbitmq.reply-to` (direct reply-to; absent for fire-and-forget), `expiration` = the
//!   milliseconds the caller still waits, and the header `x-rpc-deadline-ms` = that deadline as
//!   Unix milliseconds. The body is an object of the arguments, keyed by parameter name.
//! - A reply goes to the default exchange with routing key = the request's `reply_to`, with
//!   the request's `correlation_id` and `content_type`. Its body is one of `{"ok": value}`,
//!   `{"err": typed error}` or `{"fault": {"kind": …, "message": …}}` (see [`crate::Fault`]).
//! - Discovery: a request published to the fanout exchange `warren.rpc.discovery` is answered
//!   by every live instance with a JSON [`crate::InstanceInfo`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RabbitMQ's direct reply-to pseudo-queue (Warren implements it too).
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Fanout exchange every server instance binds its discovery queue to.
pub const DISCOVERY_EXCHANGE: &str = "warren.rpc.discovery";
/// Header carrying the caller's deadline as Unix milliseconds.
pub const DEADLINE_HEADER: &str = "x-rpc-deadline-ms";
/// Prefix of service queue names.
pub const SERVICE_QUEUE_PREFIX: &str = "rpc.";

/// The queue the instances of `service` consume requests from.
pub fn service_queue(service: &str) -> String {
    format!("{SERVICE_QUEUE_PREFIX}{service}")
}

/// Unix milliseconds `after` from now, for the deadline header.
pub(crate) fn unix_ms_after(after: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + after).as_millis() as i64
}

/// Whether a Unix-milliseconds deadline has passed.
pub(crate) fn unix_ms_passed(deadline_ms: i64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    now > deadline_ms
}
