//! Warren's e-commerce example, as a library so its test can run every service in one
//! process; `src/main.rs` runs each as its own program.
//!
//! - `inventory`: an RPC service (`Inventory.reserve`, `Inventory.stock`).
//! - `orders`: an RPC service (`Orders.place`) that calls the inventory by RPC (it needs the
//!   answer before accepting the order), then publishes `order.placed` to the topic exchange
//!   `shop.events`.
//! - `points` and `email`: consume `order.placed` from their own durable queues.

pub mod api;
pub mod consumers;
pub mod inventory;
pub mod orders;
