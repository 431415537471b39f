//! Warren's runtime: the TCP listener, one task per connection, one task per queue, and the
//! vhost registry that ties them together. A thin tokio shell around the sans-IO codec
//! (`warren-amqp`) and the broker model (`warren-core`).
//!
//! Architecture invariant: queue, publishing and subscription rules live in `warren-core`
//! (state machines driven by commands); this crate moves bytes and commands between tasks
//! and carries out the machines' effects.

mod admin;
pub mod broker;
mod clock;
pub mod config;
mod connection;
mod delay_store;
mod durability;
mod exchange_state;
mod listener;
mod names;
mod queue_task;
pub mod resources;
pub mod stats;
mod target;
mod tls;
mod vhost;

pub use broker::{Broker, RunningBroker};
pub use config::Config;
