//! The six RabbitMQ tutorials, as their authors wrote them for Rust and lapin
//! (rabbitmq-tutorials, `rust-lapin/src/bin/*.rs`), run as tests.
//!
//! Each tutorial program keeps its lapin calls, names, arguments and flags; only its `main()`
//! became an async fn that takes the broker URL (and, for the producers, what used to be the
//! command line), and a consumer's endless loop stops once it has seen what the test expects.
//! Every other adaptation is called out where it is made. The point is that code people copy
//! from the tutorials works against Warren unchanged.
//!
//! The tutorials use fixed names (`hello`, `task_queue`, `logs`, …), so against a shared broker
//! each test first deletes the fixed-name queues its tutorial declares; run these against a
//! vhost of their own when `WARREN_TEST_URL` points at a broker others use.

mod common;

#[path = "tutorials/hello_world.rs"]
mod hello_world;
#[path = "tutorials/publish_subscribe.rs"]
mod publish_subscribe;
#[path = "tutorials/routing.rs"]
mod routing;
#[path = "tutorials/rpc.rs"]
mod rpc;
#[path = "tutorials/support.rs"]
mod support;
#[path = "tutorials/topics.rs"]
mod topics;
#[path = "tutorials/work_queues.rs"]
mod work_queues;
