//! `shop`: runs one service of the e-commerce example, or places orders. See README.md.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ecommerce_example::api::InventoryServer;
use ecommerce_example::api::{
    InventoryClient, Orders, OrdersClient, OrdersServer, EMAIL_QUEUE, POINTS_QUEUE,
};
use ecommerce_example::consumers::{consume, Mailer, PointsLedger};
use ecommerce_example::inventory::Stock;
use ecommerce_example::orders::{declare_topology, OrderDesk};
use lapin::{Connection, ConnectionProperties};
use std::sync::Arc;
use warren_rpc::{Client, ClientConfig, Server, ServerConfig};

#[derive(Parser)]
#[command(name = "shop", about = "Warren's e-commerce example")]
struct Cli {
    /// The broker's AMQP URL
    #[arg(
        long,
        env = "WARREN_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2F",
        global = true
    )]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the inventory RPC service.
    Inventory,
    /// Run the order RPC service (calls the inventory, publishes order.placed).
    Orders,
    /// Run the points service (consumes order.placed).
    Points,
    /// Run the e-mail service (consumes order.placed).
    Email,
    /// Place orders through the order service.
    Place {
        #[arg(long, default_value = "alice")]
        customer: String,
        #[arg(long, default_value = "apple")]
        sku: String,
        #[arg(long, default_value_t = 1)]
        qty: u32,
        /// Place this many such orders
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SHOP_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let url = cli.url.as_str();
    match cli.command {
        Command::Inventory => {
            let server = Server::start(
                url,
                InventoryServer::new(Stock::demo()),
                ServerConfig::default(),
            )
            .await?;
            tracing::info!(
                instance = server.instance(),
                "inventory service running; Ctrl-C stops it"
            );
            tokio::signal::ctrl_c().await?;
            server.shutdown().await;
        }
        Command::Orders => {
            let connection =
                Arc::new(Connection::connect(url, ConnectionProperties::default()).await?);
            let client = Client::on_connection(connection.clone(), ClientConfig::new()).await?;
            let desk = OrderDesk::new(
                InventoryClient::new(&client),
                connection.create_channel().await?,
            )
            .await?;
            let server = Server::start_on(
                connection.clone(),
                OrdersServer::new(desk),
                ServerConfig::default(),
            )
            .await?;
            tracing::info!(
                instance = server.instance(),
                "order service running; Ctrl-C stops it"
            );
            tokio::signal::ctrl_c().await?;
            server.shutdown().await;
        }
        Command::Points => run_consumer(url, POINTS_QUEUE, PointsLedger::default()).await?,
        Command::Email => run_consumer(url, EMAIL_QUEUE, Mailer::default()).await?,
        Command::Place {
            customer,
            sku,
            qty,
            count,
        } => {
            let orders = OrdersClient::new(&Client::connect(url).await?);
            for _ in 0..count {
                match orders.place(customer.clone(), sku.clone(), qty).await {
                    Ok(placed) => println!(
                        "order {} placed: {} × {} for {}, {:.2} EUR",
                        placed.order_id,
                        placed.qty,
                        placed.sku,
                        placed.customer,
                        placed.total_cents as f64 / 100.0
                    ),
                    Err(e) => println!("order refused: {e}"),
                }
            }
        }
    }
    Ok(())
}

async fn run_consumer<H: ecommerce_example::consumers::OnOrderPlaced>(
    url: &str,
    queue: &str,
    handler: H,
) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare_topology(&channel)
        .await
        .context("declaring the events exchange and queues")?;
    tracing::info!(queue, "consuming order.placed; Ctrl-C stops");
    tokio::select! {
        r = consume(channel, queue, handler) => { r?; }
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
