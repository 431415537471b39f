//! The order service: for each order, a synchronous RPC to the inventory (the order cannot
//! be accepted without stock), then an asynchronous `order.placed` event that the points and
//! e-mail services consume in their own time. A stopped consumer does not fail orders: its
//! durable queue keeps the events until it comes back.

use crate::api::{Inventory, EMAIL_QUEUE, POINTS_QUEUE};
use crate::api::{
    InventoryClient, InventoryError, OrderError, OrderPlaced, Orders, EVENTS_EXCHANGE, ORDER_PLACED,
};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct OrderDesk {
    inventory: InventoryClient,
    events: Channel,
    next_order: AtomicU64,
    prefix: String,
}

impl OrderDesk {
    /// `events` is put in confirm mode: an order is accepted once its event is safe.
    pub async fn new(
        inventory: InventoryClient,
        events: Channel,
    ) -> Result<OrderDesk, lapin::Error> {
        declare_topology(&events).await?;
        events
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let prefix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        Ok(OrderDesk {
            inventory,
            events,
            next_order: AtomicU64::new(1),
            prefix,
        })
    }
}

/// The events exchange and the consumers' durable queues, declared by the producer too so
/// that events published before a consumer's first start are kept for it.
pub async fn declare_topology(channel: &Channel) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            EVENTS_EXCHANGE.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    for queue in [POINTS_QUEUE, EMAIL_QUEUE] {
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.into(), durable, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.into(),
                EVENTS_EXCHANGE.into(),
                ORDER_PLACED.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

impl Orders for OrderDesk {
    async fn place(
        &self,
        customer: String,
        sku: String,
        qty: u32,
    ) -> Result<OrderPlaced, OrderError> {
        if qty == 0 {
            return Err(OrderError::Refused("quantity must be at least 1".into()));
        }
        let order_id = format!(
            "{}-{}",
            self.prefix,
            self.next_order.fetch_add(1, Ordering::Relaxed)
        );
        let reservation = self
            .inventory
            .reserve(order_id.clone(), sku, qty)
            .await
            .map_err(|e| match e {
                InventoryError::Rpc(e) => OrderError::Rpc(e),
                other => OrderError::Inventory(other.to_string()),
            })?;
        let event = OrderPlaced {
            order_id,
            customer,
            sku: reservation.sku,
            qty,
            total_cents: reservation.unit_price_cents * u64::from(qty),
        };
        let body = serde_json::to_vec(&event).map_err(|e| OrderError::Events(e.to_string()))?;
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let confirm = self
            .events
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                ORDER_PLACED.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await
            .map_err(|e| OrderError::Events(e.to_string()))?
            .await
            .map_err(|e| OrderError::Events(e.to_string()))?;
        if !confirm.is_ack() {
            return Err(OrderError::Events(
                "the broker did not take the event".into(),
            ));
        }
        tracing::info!(order = %event.order_id, customer = %event.customer, total_cents = event.total_cents, "order placed");
        Ok(event)
    }
}
