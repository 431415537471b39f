//! Warren's broker model as plain state machines: exchanges, bindings and routing, queues,
//! consumers, deliveries and acknowledgements.
//!
//! Architecture invariant: nothing here touches a socket, a clock, a file or an async
//! runtime. Time, when a rule needs it, is an argument. That keeps every queue and routing rule
//! testable with plain `#[test]`s and seeded simulations, and lets the same transitions be
//! replayed from a replicated log later.

pub mod args;
pub mod dedup;
pub mod delayed;
pub mod entity;
pub mod error;
pub mod exchange_type;
pub mod message;
pub mod policy;
pub mod publish;
pub mod queue;
pub mod routing;
pub mod session;
pub mod vhost;

pub use error::{BrokerError, ErrorKind};
pub use message::Message;
