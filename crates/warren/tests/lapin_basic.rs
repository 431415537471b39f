//! Broker behaviour as seen through lapin, the Rust AMQP 0-9-1 client.
//!
//! Written against RabbitMQ first (run with `WARREN_TEST_URL` pointing at it), so every
//! assertion here is what RabbitMQ really does; the same tests then hold Warren to it. See
//! `common/mod.rs` for how a test gets its broker.

mod common;

#[path = "lapin_basic/consume.rs"]
mod consume;
#[path = "lapin_basic/declare.rs"]
mod declare;
#[path = "lapin_basic/errors.rs"]
mod errors;
#[path = "lapin_basic/properties.rs"]
mod properties;
#[path = "lapin_basic/publish.rs"]
mod publish;
#[path = "lapin_basic/routing.rs"]
mod routing;
