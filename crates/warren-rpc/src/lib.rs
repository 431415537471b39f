//! RPC over AMQP 0-9-1, for Warren or any RabbitMQ-compatible broker, built on lapin.
//!
//! A service is a Rust trait; [`service`] generates its client stub and server skeleton:
//!
//! ```ignore
//! #[derive(Serialize, Deserialize)]
//! pub enum InventoryError { OutOfStock { available: u32 }, Rpc(warren_rpc::RpcError) }
//! impl From<warren_rpc::RpcError> for InventoryError { fn from(e: RpcError) -> Self { Self::Rpc(e) } }
//!
//! #[warren_rpc::service]
//! pub trait Inventory {
//!     #[idempotent]
//!     async fn reserve(&self, sku: String, qty: u32) -> Result<Reservation, InventoryError>;
//! }
//!
//! // serve: every instance competes for requests on the queue `rpc.Inventory`
//! let server = Server::start(url, InventoryServer::new(MyInventory), ServerConfig::default()).await?;
//! // call: the stub implements the trait
//! let inventory = InventoryClient::new(&Client::connect(url).await?);
//! let reservation = inventory.reserve("A-1".into(), 2).await?;
//! ```
//!
//! What a call does (see [`protocol`] for the wire format):
//! - the request goes to the service's queue with `reply_to = amq.rabbitmq.reply-to` (direct
//!   reply-to: no reply queue) and a `correlation_id`; many calls share one channel;
//! - it carries its deadline as `expiration`, so it expires in the queue rather than being
//!   worked on after the caller gave up; the server skips requests past their deadline;
//! - methods marked `#[idempotent]` are retried with exponential back-off and jitter after
//!   timeouts or a missing service; others never are;
//! - a circuit breaker per service fails calls fast while the service is failing, and a
//!   token bucket per service limits the client's rate;
//! - the method's typed error comes back as itself; the RPC layer's failures (unknown
//!   method, undecodable arguments, a panic in the handler, a deadline) come back as
//!   `E::from(RpcError)` — never as a hang.
//!
//! Serialization is JSON by default, MessagePack with [`Format::MessagePack`]; servers
//! answer in the format of each request.

mod breaker;
mod client;
mod codec;
pub mod discovery;
mod error;
mod limiter;
pub mod protocol;
mod replies;
mod retry;
mod server;

pub use breaker::{BreakerConfig, BreakerState};
pub use client::{CallOptions, Client, ClientConfig, Pending, RawReply};
pub use codec::{Envelope, Fault, FaultKind, Format, HandlerFuture};
pub use discovery::{InstanceInfo, MethodDesc, ServiceInfo};
pub use error::RpcError;
pub use limiter::{LimitMode, RateLimit};
pub use retry::RetryPolicy;
pub use server::{MethodInfo, Methods, Server, ServerConfig, Service};
pub use warren_rpc_macros::service;

/// What generated code uses; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::{CallOptions, Client, Pending};
    pub use crate::codec::{decode_args, encode_result, Fault, Format, HandlerFuture};
    pub use crate::server::{MethodInfo, Methods, Service};
    pub use serde;
}
