//! The event consumers: the points service and the e-mail service. Each reads `order.placed`
//! from its own durable queue and acks an event once it has dealt with it, so events that
//! arrive while it is stopped wait in its queue, and it catches up when it restarts.

use crate::api::OrderPlaced;
use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Channel;

/// What a consumer does with each event (the points ledger, the mailer).
pub trait OnOrderPlaced: Send + 'static {
    fn handle(&mut self, event: &OrderPlaced);
}

/// Points: one point per euro spent.
#[derive(Default)]
pub struct PointsLedger {
    pub balances: std::collections::BTreeMap<String, u64>,
}

impl OnOrderPlaced for PointsLedger {
    fn handle(&mut self, event: &OrderPlaced) {
        let points = event.total_cents / 100;
        let balance = self.balances.entry(event.customer.clone()).or_default();
        *balance += points;
        tracing::info!(customer = %event.customer, points, balance = *balance, order = %event.order_id, "points awarded");
    }
}

/// E-mail: writes the confirmation it would send.
#[derive(Default)]
pub struct Mailer {
    pub sent: Vec<String>,
}

impl OnOrderPlaced for Mailer {
    fn handle(&mut self, event: &OrderPlaced) {
        let mail = format!(
            "To: {}@example.com — your order {} of {} × {} is confirmed",
            event.customer, event.order_id, event.qty, event.sku
        );
        tracing::info!("{mail}");
        self.sent.push(mail);
    }
}

/// Consumes `queue` until the channel closes, handing each event to `handler`.
pub async fn consume<H: OnOrderPlaced>(
    channel: Channel,
    queue: &str,
    mut handler: H,
) -> Result<H, lapin::Error> {
    channel.basic_qos(32, BasicQosOptions::default()).await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        match serde_json::from_slice::<OrderPlaced>(&delivery.data) {
            Ok(event) => handler.handle(&event),
            Err(e) => tracing::warn!("dropping an undecodable event: {e}"),
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    Ok(handler)
}
