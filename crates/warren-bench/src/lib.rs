//! `warren bench`: a load generator for any AMQP 0-9-1 broker, in the spirit of RabbitMQ's
//! PerfTest and `nats bench`.
//!
//! It is built on Warren's own codec rather than a general client library because a 2-core
//! machine must measure the broker, not the client: publishes are copied from a pre-encoded
//! template and written hundreds per syscall, per-message frames are read in place (`scan`), acks
//! and counters are batched per read (see `driver`). It speaks only standard 0-9-1 (PLAIN,
//! confirms, qos, consume, ack), so the same numbers can be taken from RabbitMQ.
//!
//! Code map: `scenario` (the named scenarios), `load`, `backlog` and `connections` (how each
//! kind runs), `driver` (the per-connection hot loop) with `publisher`, `consumer` and `scan`,
//! `client` (handshake and synchronous calls), `monitor` (progress line, broker memory),
//! `report` (JSON and table), `stats`, `histogram` (on `hdrhistogram`), `process` (`/proc`,
//! through `procfs`), `url` (on the `url` crate).
//!
//! The `warren` binary runs it as `warren bench` ([`BenchArgs`], [`run`]); its errors are
//! `anyhow`'s because they are reports to the person at the terminal, never matched on.

mod backlog;
mod client;
mod connections;
mod consumer;
mod driver;
mod histogram;
mod load;
mod monitor;
mod process;
mod publisher;
mod report;
mod scan;
mod scenario;
mod stats;
mod url;

use anyhow::Context as _;
use std::time::Duration;

use backlog::Phases;
use consumer::AckMode;
use load::Load;
use report::Report;
use scenario::{Scale, Scenario, Shape};
use url::AmqpUrl;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Broker to load: amqp://user:password@host:port/vhost
    #[arg(
        long,
        env = "WARREN_BENCH_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2F"
    )]
    url: String,
    /// Named scenario(s) to run, comma-separated, or `all`: transient, transient-autoack,
    /// persistent-confirm, fanout, latency, many-queues, backlog, connections. Without it, one
    /// load is made from the flags below.
    #[arg(long, value_name = "NAME[,NAME...]")]
    scenario: Option<String>,
    /// Seconds each load runs (and `connections` holds its connections)
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    duration: f64,
    /// Publishing channels
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consuming channels (consumer j reads queue j mod queues)
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Queues (producer i publishes to queue i mod queues, unless --fanout)
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Message body size in bytes [default: 64]; bodies of 8 bytes or more carry the send
    /// timestamp. With --scenario, replaces the named scenarios' size
    #[arg(long, value_name = "BYTES")]
    size: Option<usize>,
    /// Publisher confirms, with this many unconfirmed messages in flight per producer. With
    /// --scenario, replaces the named scenarios' confirm window (or adds one)
    #[arg(long, value_name = "WINDOW")]
    confirm: Option<u64>,
    /// Persistent messages (delivery-mode 2) to durable queues. With --scenario, makes the
    /// named scenarios' queues durable and messages persistent
    #[arg(long)]
    persistent: bool,
    /// auto (no-ack consume), manual (one ack per message) or multiple:N (one ack with
    /// `multiple` every N messages)
    #[arg(long, default_value = "manual", value_name = "MODE")]
    ack: AckMode,
    /// Unacknowledged messages per consumer (basic.qos); 0 for no limit
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Publish to a fanout exchange bound to every queue
    #[arg(long)]
    fanout: bool,
    /// Total publish rate in messages per second, shared by the producers [default: as fast as possible]
    #[arg(long, value_name = "MSGS_PER_S")]
    rate: Option<f64>,
    /// Carry producers and consumers as channels over this many connections [default: one
    /// connection each]
    #[arg(long, value_name = "N")]
    share_connections: Option<usize>,
    /// Messages the `backlog` scenario queues before draining
    #[arg(long, default_value_t = 10_000_000, value_name = "N")]
    backlog_messages: u64,
    /// The queue the `backlog` scenario fills and drains, declared if missing (durable with
    /// --persistent) and never deleted [default: a fresh queue, deleted at the end]
    #[arg(long, value_name = "NAME")]
    backlog_queue: Option<String>,
    /// Which phases of `backlog` run: `fill` leaves the messages in --backlog-queue (to
    /// restart the broker, say), `drain` consumes everything --backlog-queue holds
    #[arg(long, default_value = "both", value_name = "fill|drain|both")]
    backlog_phase: Phases,
    /// Idle connections the `connections` scenario opens
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    connections: usize,
    /// Print one JSON object per scenario on stdout (the table then goes to stderr)
    #[arg(long)]
    json: bool,
    /// The broker's process id, to report its CPU use and resident memory (Linux)
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
    /// No progress line
    #[arg(long)]
    quiet: bool,
    /// Threads for the bench's own runtime; 1 keeps the client on one core
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
}

/// What every scenario needs to know about the run.
pub struct Context {
    pub url: AmqpUrl,
    pub broker_pid: Option<u32>,
    pub progress: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let url: AmqpUrl = args.url.parse().context("--url")?;
    if !(args.duration > 0.0 && args.duration.is_finite()) {
        anyhow::bail!("--duration must be a positive number of seconds");
    }
    let duration = Duration::from_secs_f64(args.duration);
    if args.backlog_phase != Phases::Both && args.backlog_queue.is_none() {
        anyhow::bail!(
            "--backlog-phase {} needs --backlog-queue: the queue whose messages outlive the run",
            args.backlog_phase
        );
    }
    let scenarios: Vec<Scenario> = match &args.scenario {
        Some(list) => {
            let scale = Scale {
                duration,
                backlog_messages: args.backlog_messages,
                connections: args.connections,
                backlog_queue: args.backlog_queue.clone(),
                backlog_phases: args.backlog_phase,
            };
            let shape = Shape {
                body_bytes: args.size,
                persistent: args.persistent,
                confirm_window: args.confirm.filter(|w| *w > 0),
            };
            scenario::select(list)?
                .into_iter()
                .filter_map(|name| scenario::named(name, &scale, &shape))
                .collect()
        }
        None => vec![Scenario::Load(custom_load(&args, duration))],
    };
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let ctx = Context {
        url,
        broker_pid: args.broker_pid,
        progress: !args.quiet,
    };
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for scenario in scenarios {
        let name = scenario_name(&scenario).to_owned();
        let outcome = runtime.block_on(async {
            match &scenario {
                Scenario::Load(load) => load::run(load, &ctx).await,
                Scenario::Backlog(backlog) => backlog::run(backlog, &ctx).await,
                Scenario::Connections(idle) => connections::run(idle, &ctx).await,
            }
        });
        match outcome {
            Ok(report) => {
                if args.json {
                    println!("{}", report.to_json());
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("scenario {name} failed: {e:#}");
                failures.push(name);
            }
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    print_table(&reports, args.json);
    if !failures.is_empty() {
        anyhow::bail!(
            "{} scenario(s) failed: {}",
            failures.len(),
            failures.join(", ")
        );
    }
    Ok(())
}

fn custom_load(args: &BenchArgs, duration: Duration) -> Load {
    Load {
        name: "custom".to_owned(),
        queues: args.queues.max(1),
        durable: args.persistent,
        fanout: args.fanout,
        producers: args.producers,
        consumers: args.consumers,
        connections: args.share_connections.unwrap_or(0),
        body_bytes: args.size.unwrap_or(64),
        persistent: args.persistent,
        confirm_window: args.confirm.filter(|w| *w > 0),
        ack: args.ack,
        prefetch: args.prefetch,
        rate_per_s: args.rate.filter(|r| *r > 0.0),
        duration,
    }
}

fn scenario_name(scenario: &Scenario) -> &str {
    match scenario {
        Scenario::Load(load) => &load.name,
        Scenario::Backlog(backlog) => &backlog.name,
        Scenario::Connections(idle) => &idle.name,
    }
}

fn print_table(reports: &[Report], json: bool) {
    if reports.is_empty() {
        return;
    }
    let table = report::table(reports);
    if json {
        eprint!("\n{table}");
    } else {
        print!("\n{table}");
        for r in reports {
            println!("{:<18} {}", r.scenario, r.setup);
        }
    }
}
