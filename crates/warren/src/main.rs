//! `warren`: the one command users run. `warren serve` starts the broker.

mod bench;
mod policy;
mod rpc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tracing::info;
use warren_server::resources::Limit;
use warren_server::{Broker, Config};

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "Warren: a message broker that speaks AMQP 0-9-1 (RabbitMQ's dialect)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Load an AMQP 0-9-1 broker (Warren or any other) and report rates, latency and CPU.
    Bench(bench::BenchArgs),
    /// Call a warren-rpc service, or list the running services and their instances.
    Rpc(rpc::RpcArgs),
    /// Set, list or clear policies on a running broker (through its management API).
    Policy(policy::PolicyArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port for AMQP clients [default: [::]:5672, IPv4 and IPv6; port 0 picks a free port]
    #[arg(long, env = "WARREN_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Address and port of the HTTP management API, or `off` [default: 0.0.0.0:15672; port 0
    /// picks a free port]
    #[arg(long, env = "WARREN_MANAGEMENT_LISTEN", value_name = "ADDR:PORT|off", value_parser = listener_or_off)]
    management_listen: Option<ListenerOrOff>,
    /// Directory for durable state [default: ./warren-data]
    #[arg(long, env = "WARREN_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file; flags and WARREN_* variables override it
    #[arg(long, env = "WARREN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Block publishers past this resident memory: a fraction of RAM or a size [default: 0.4]
    #[arg(
        long,
        env = "WARREN_MEMORY_HIGH_WATERMARK",
        value_name = "FRACTION|SIZE"
    )]
    memory_high_watermark: Option<Limit>,
    /// Block publishers when the data directory's disk has less free space [default: 1GiB]
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", value_name = "SIZE")]
    disk_free_limit: Option<Limit>,
    /// Memory one queue's ready messages may hold before more are paged to disk [default: 32MiB]
    #[arg(long, env = "WARREN_QUEUE_MEMORY_BUDGET", value_name = "FRACTION|SIZE")]
    queue_memory_budget: Option<Limit>,
    /// Page queues out under memory pressure from this fraction of the high watermark [default: 0.5]
    #[arg(long, env = "WARREN_MEMORY_PAGING_RATIO", value_name = "RATIO")]
    memory_paging_ratio: Option<f64>,
}

/// A listener address, or `off`.
#[derive(Clone)]
struct ListenerOrOff(Option<SocketAddr>);

fn listener_or_off(s: &str) -> Result<ListenerOrOff, String> {
    warren_server::config::parse_listen_or_off(s).map(ListenerOrOff)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Bench(args) => bench::run(args),
        Command::Rpc(args) => rpc::run(args),
        Command::Policy(args) => policy::run(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ListenerOrOff(management)) = args.management_listen {
        config.management_listen = management;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(limit) = args.memory_high_watermark {
        config.memory_high_watermark = limit;
    }
    if let Some(limit) = args.disk_free_limit {
        config.disk_free_limit = limit;
    }
    if let Some(limit) = args.queue_memory_budget {
        config.queue_memory_budget = limit;
    }
    if let Some(ratio) = args.memory_paging_ratio {
        config.memory_paging_ratio = ratio;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        // Handlers first: a SIGTERM that arrives while the broker starts (recovery can take
        // seconds) still stops it cleanly once it is up.
        let signals = Signals::install()?;
        let broker = Broker::start(config)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        signals.wait().await;
        info!("shutting down");
        broker.shutdown().await;
        Ok(())
    })
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
