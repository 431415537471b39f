//! Warren's runtime: the TCP listener, one task per connection, one task per queue, and the
//! vhost registry that ties them together. A thin tokio shell around the sans-IO codec
//! (`warren-amqp`) and the broker model (`warren-core`).
//!
//! Architecture invariant: protocol and queue rules live in `warren-core`; this crate moves
//! bytes and commands between tasks and owns nothing that a plain `#[test]` could check
//! without a runtime.

mod admin;
pub mod broker;
pub mod config;
mod connection;
mod durability;
mod exchange_state;
mod names;
mod queue_task;
pub mod resources;
mod vhost;

pub use broker::{Broker, RunningBroker};
pub use config::Config;
