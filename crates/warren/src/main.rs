//! `warren`: the one command users run. `warren serve` starts the broker.

mod policy;
mod rpc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing::info;
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
    Bench(warren_bench::BenchArgs),
    /// Call a warren-rpc service, or list the running services and their instances.
    Rpc(rpc::RpcArgs),
    /// Set, list or clear policies on a running broker (through its management API).
    Policy(policy::PolicyArgs),
}

/// `warren serve`'s command line: `--config FILE`, then every flag of [`Config`] (declared
/// on its fields). The matches are kept whole, so that [`Config::load`] can tell the flags
/// and variables that were given from clap's defaults.
struct ServeArgs {
    config_file: Option<PathBuf>,
    given: clap::ArgMatches,
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<ServeArgs, clap::Error> {
        Ok(ServeArgs {
            config_file: matches.get_one::<PathBuf>(CONFIG_FILE).cloned(),
            given: matches.clone(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = ServeArgs::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let config_file = clap::Arg::new(CONFIG_FILE)
            .long("config")
            .env("WARREN_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML configuration file; flags and WARREN_* variables override it");
        Config::augment_args(command.arg(config_file))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        ServeArgs::augment_args(command)
    }
}

const CONFIG_FILE: &str = "config";

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
        Command::Bench(args) => warren_bench::run(args),
        Command::Rpc(args) => rpc::run(args),
        Command::Policy(args) => policy::run(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config_file.as_deref(), &args.given)?;
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
        signals.wait(&broker).await;
        info!("shutting down");
        broker.shutdown().await;
        Ok(())
    })
}

/// SIGINT and SIGTERM (stop), SIGHUP (reload the TLS certificates), listened for from the
/// moment they are installed.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGINT or SIGTERM.
    async fn wait(mut self, broker: &warren_server::RunningBroker) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => broker.broker.reload_tls(),
            }
        }
    }
}
