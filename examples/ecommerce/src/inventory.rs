//! The inventory service: stock per product, reservations per order.

use crate::api::{Inventory, InventoryError, Reservation};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Stock {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// sku -> (units left, unit price in cents)
    products: HashMap<String, (u32, u64)>,
    /// order id -> its reservation, so a retried `reserve` reserves once.
    reservations: HashMap<String, Reservation>,
}

impl Stock {
    /// A shop with a few products.
    pub fn demo() -> Stock {
        let stock = Stock::default();
        {
            let mut s = stock.state.lock().unwrap();
            s.products.insert("apple".into(), (100, 50));
            s.products.insert("pear".into(), (50, 80));
            s.products.insert("truffle".into(), (3, 12_000));
        }
        stock
    }
}

impl Inventory for Stock {
    async fn reserve(
        &self,
        order_id: String,
        sku: String,
        qty: u32,
    ) -> Result<Reservation, InventoryError> {
        let mut s = self.state.lock().unwrap();
        if let Some(r) = s.reservations.get(&order_id) {
            return Ok(r.clone());
        }
        let Some((left, price)) = s.products.get_mut(&sku) else {
            return Err(InventoryError::UnknownProduct { sku });
        };
        if *left < qty {
            return Err(InventoryError::OutOfStock {
                sku,
                available: *left,
            });
        }
        *left -= qty;
        let reservation = Reservation {
            order_id: order_id.clone(),
            sku,
            qty,
            unit_price_cents: *price,
        };
        s.reservations.insert(order_id, reservation.clone());
        tracing::info!(order = %reservation.order_id, sku = %reservation.sku, qty, "reserved");
        Ok(reservation)
    }

    async fn stock(&self, sku: String) -> Result<u32, InventoryError> {
        let s = self.state.lock().unwrap();
        s.products
            .get(&sku)
            .map(|(left, _)| *left)
            .ok_or(InventoryError::UnknownProduct { sku })
    }
}
