//! The whole shop in one process against a Warren it starts: orders reserve stock by RPC and
//! publish `order.placed`; points and e-mail consume it. A stopped points service does not
//! fail orders, and catches up when it restarts.

use ecommerce_example::api::{
    InventoryClient, InventoryServer, OrderError, Orders, OrdersClient, OrdersServer, EMAIL_QUEUE,
    POINTS_QUEUE,
};
use ecommerce_example::consumers::{consume, Mailer, PointsLedger};
use ecommerce_example::inventory::Stock;
use ecommerce_example::orders::OrderDesk;
use lapin::{Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::Duration;
use warren_rpc::{Client, ClientConfig, Server, ServerConfig};

async fn channel(url: &str) -> (Connection, lapin::Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// Runs a consumer until `events` events were handled or 10 s passed; returns its state.
async fn consume_n<H: ecommerce_example::consumers::OnOrderPlaced + Counted>(
    url: &str,
    queue: &str,
    handler: H,
    events: usize,
) -> H {
    let (connection, ch) = channel(url).await;
    let probe = handler.counter();
    let task = tokio::spawn({
        let queue = queue.to_string();
        async move { consume(ch, &queue, handler).await }
    });
    for _ in 0..200 {
        if probe.load(std::sync::atomic::Ordering::SeqCst) >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    connection.close(200, "done".into()).await.unwrap();
    task.await.unwrap().unwrap()
}

/// Lets the test see how many events a consumer has handled while it runs.
trait Counted {
    fn counter(&self) -> Arc<std::sync::atomic::AtomicUsize>;
}

struct CountingLedger(PointsLedger, Arc<std::sync::atomic::AtomicUsize>);
struct CountingMailer(Mailer, Arc<std::sync::atomic::AtomicUsize>);

impl ecommerce_example::consumers::OnOrderPlaced for CountingLedger {
    fn handle(&mut self, e: &ecommerce_example::api::OrderPlaced) {
        self.0.handle(e);
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
impl ecommerce_example::consumers::OnOrderPlaced for CountingMailer {
    fn handle(&mut self, e: &ecommerce_example::api::OrderPlaced) {
        self.0.handle(e);
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
impl Counted for CountingLedger {
    fn counter(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.1.clone()
    }
}
impl Counted for CountingMailer {
    fn counter(&self) -> Arc<std::sync::atomic::AtomicUsize> {
        self.1.clone()
    }
}

#[test]
fn orders_reserve_stock_publish_events_and_survive_a_stopped_points_service() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let data_dir =
            std::env::temp_dir().join(format!("warren-shop-test-{}", std::process::id()));
        let config = warren_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            management_listen: None,
            data_dir: data_dir.clone(),
            ..warren_server::Config::default()
        };
        let broker = warren_server::Broker::start(config).await.unwrap();
        let url = format!("amqp://guest:guest@{}/%2F", broker.local_addr);

        let inventory = Server::start(
            &url,
            InventoryServer::new(Stock::demo()),
            ServerConfig::default(),
        )
        .await
        .unwrap();
        let connection = Arc::new(
            Connection::connect(&url, ConnectionProperties::default())
                .await
                .unwrap(),
        );
        let client = Client::on_connection(connection.clone(), ClientConfig::new())
            .await
            .unwrap();
        let desk = OrderDesk::new(
            InventoryClient::new(&client),
            connection.create_channel().await.unwrap(),
        )
        .await
        .unwrap();
        let orders_service = Server::start_on(
            connection.clone(),
            OrdersServer::new(desk),
            ServerConfig::default(),
        )
        .await
        .unwrap();
        let orders = OrdersClient::new(&Client::connect(&url).await.unwrap());

        // The points service is not running: orders go through regardless.
        let first = orders
            .place("alice".into(), "apple".into(), 4)
            .await
            .unwrap();
        assert_eq!(first.total_cents, 200);
        orders
            .place("bob".into(), "truffle".into(), 1)
            .await
            .unwrap();
        let refused = orders
            .place("carol".into(), "truffle".into(), 5)
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            OrderError::Inventory("only 2 of 'truffle' left".into())
        );

        let mailer = consume_n(
            &url,
            EMAIL_QUEUE,
            CountingMailer(Mailer::default(), Default::default()),
            2,
        )
        .await;
        assert_eq!(mailer.0.sent.len(), 2);
        // The points service starts late and catches up on both events.
        let ledger = consume_n(
            &url,
            POINTS_QUEUE,
            CountingLedger(PointsLedger::default(), Default::default()),
            2,
        )
        .await;
        assert_eq!(ledger.0.balances.get("alice"), Some(&2));
        assert_eq!(ledger.0.balances.get("bob"), Some(&120));

        orders_service.shutdown().await;
        inventory.shutdown().await;
        broker.shutdown().await;
        let _ = std::fs::remove_dir_all(data_dir);
    });
}
