//! The contracts between the shop's services: two RPC services and one event.

use serde::{Deserialize, Serialize};
use warren_rpc::RpcError;

/// Stock held for one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub order_id: String,
    pub sku: String,
    pub qty: u32,
    pub unit_price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum InventoryError {
    #[error("unknown product '{sku}'")]
    UnknownProduct { sku: String },
    #[error("only {available} of '{sku}' left")]
    OutOfStock { sku: String, available: u32 },
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// The inventory service. `reserve` is keyed by order id, so running it twice for one order
/// reserves once: it is safe to retry.
#[warren_rpc::service]
pub trait Inventory {
    #[idempotent]
    async fn reserve(
        &self,
        order_id: String,
        sku: String,
        qty: u32,
    ) -> Result<Reservation, InventoryError>;
    #[idempotent]
    async fn stock(&self, sku: String) -> Result<u32, InventoryError>;
}

/// The event every accepted order publishes (routing key `order.placed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub customer: String,
    pub sku: String,
    pub qty: u32,
    pub total_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    #[error("order refused: {0}")]
    Refused(String),
    #[error("inventory: {0}")]
    Inventory(String),
    #[error("cannot publish the order event: {0}")]
    Events(String),
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

/// The order service: what a shop front end calls.
#[warren_rpc::service]
pub trait Orders {
    async fn place(
        &self,
        customer: String,
        sku: String,
        qty: u32,
    ) -> Result<OrderPlaced, OrderError>;
}

/// Topic exchange the shop's events go to.
pub const EVENTS_EXCHANGE: &str = "shop.events";
/// Routing key of [`OrderPlaced`].
pub const ORDER_PLACED: &str = "order.placed";
/// The durable queues of the event consumers.
pub const POINTS_QUEUE: &str = "shop.points.order-placed";
pub const EMAIL_QUEUE: &str = "shop.email.order-placed";
