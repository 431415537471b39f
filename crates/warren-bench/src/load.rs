//! A steady load for a fixed time: producers publishing to queues (directly or through a
//! fanout exchange), consumers draining them; what `transient`, `persistent-confirm`,
//! `fanout`, `latency`, `many-queues` and a run from command-line flags are made of.
//!
//! Each run declares its own uniquely named queues and exchange and deletes them at the end,
//! so that runs never see each other's messages, even on a broker others use.

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::Client;
use super::consumer::{AckMode, Consumer};
use super::driver::{Driver, Phase};
use super::monitor::{Monitor, Progress};
use super::process::{self, Pid};
use super::publisher::{Publisher, PublisherSpec};
use super::report::{Latency, Report};
use super::stats::Stats;
use super::Context;

/// How long drivers get to close their connections once the measurement is over.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Load {
    pub name: String,
    pub queues: usize,
    pub durable: bool,
    /// Publish to a fanout exchange bound to every queue, instead of to one queue each.
    pub fanout: bool,
    pub producers: usize,
    pub consumers: usize,
    /// Spread producers and consumers as channels over this many connections; 0 gives each
    /// its own connection.
    pub connections: usize,
    pub body_bytes: usize,
    pub persistent: bool,
    pub confirm_window: Option<u64>,
    pub ack: AckMode,
    pub prefetch: u16,
    /// Total messages per second over all producers; `None` for as fast as possible.
    pub rate_per_s: Option<f64>,
    pub duration: Duration,
}

impl Load {
    /// The set-up in words, for the report.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} producer(s) -> {}{} {}queue(s) -> {} consumer(s), {} B, ack {}",
            self.producers,
            if self.fanout {
                "fanout exchange -> "
            } else {
                ""
            },
            self.queues,
            if self.durable { "durable " } else { "" },
            self.consumers,
            self.body_bytes,
            self.ack,
        );
        if self.ack != AckMode::Auto {
            s += &format!(", prefetch {}", self.prefetch);
        }
        if self.persistent {
            s += ", persistent";
        }
        if let Some(window) = self.confirm_window {
            s += &format!(", confirm window {window}");
        }
        if let Some(rate) = self.rate_per_s {
            s += &format!(", {rate:.0} msg/s");
        }
        if self.connections > 0 {
            s += &format!(", over {} connection(s)", self.connections);
        }
        s
    }
}

/// Queues and exchange of one run, named after the scenario, this process and the time.
pub struct Topology {
    pub queues: Vec<String>,
    pub exchange: Option<String>,
}

impl Topology {
    pub fn new(scenario: &str, queues: usize, fanout: bool) -> Topology {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let prefix = format!("warren-bench-{scenario}-{}-{:x}", std::process::id(), nanos);
        Topology {
            queues: (0..queues).map(|i| format!("{prefix}-q{i}")).collect(),
            exchange: fanout.then(|| format!("{prefix}-fanout")),
        }
    }

    pub async fn declare(&self, control: &mut Client, durable: bool) -> anyhow::Result<()> {
        if let Some(exchange) = &self.exchange {
            control
                .declare_exchange(1, exchange, "fanout", durable)
                .await?;
        }
        for queue in &self.queues {
            control.declare_queue(1, queue, durable).await?;
            if let Some(exchange) = &self.exchange {
                control.bind_queue(1, queue, exchange).await?;
            }
        }
        Ok(())
    }

    pub async fn delete(&self, control: &mut Client) -> anyhow::Result<()> {
        for queue in &self.queues {
            control.delete_queue(1, queue).await?;
        }
        if let Some(exchange) = &self.exchange {
            control.delete_exchange(1, exchange).await?;
        }
        Ok(())
    }
}

/// The channels one connection carries: publishers and consumers, by queue index.
#[derive(Default)]
struct Layout {
    producers: Vec<usize>,
    consumers: Vec<usize>,
}

fn layout(load: &Load) -> Vec<Layout> {
    let queues = load.queues.max(1);
    if load.connections == 0 {
        let producers = (0..load.producers).map(|i| Layout {
            producers: vec![i % queues],
            consumers: vec![],
        });
        let consumers = (0..load.consumers).map(|j| Layout {
            producers: vec![],
            consumers: vec![j % queues],
        });
        return producers.chain(consumers).collect();
    }
    let mut layout: Vec<Layout> = (0..load.connections).map(|_| Layout::default()).collect();
    for i in 0..load.producers {
        layout[i % load.connections].producers.push(i % queues);
    }
    // Shifted by one connection, so that a queue's consumer is not on its producer's
    // connection (when there is more than one).
    for j in 0..load.consumers {
        layout[(j + 1) % load.connections]
            .consumers
            .push(j % queues);
    }
    layout.retain(|l| !l.producers.is_empty() || !l.consumers.is_empty());
    layout
}

pub async fn run(load: &Load, ctx: &Context) -> anyhow::Result<Report> {
    let topology = Topology::new(&load.name, load.queues.max(1), load.fanout);
    let mut control = Client::connect(&ctx.url).await?;
    control.open_channel(1).await?;
    topology
        .declare(&mut control, load.durable)
        .await
        .context("declaring the scenario's queues")?;
    let outcome = measure(load, ctx, &topology).await;
    let cleanup = topology
        .delete(&mut control)
        .await
        .context("deleting the scenario's queues");
    control.close().await;
    let report = outcome?;
    cleanup?;
    Ok(report)
}

async fn measure(load: &Load, ctx: &Context, topology: &Topology) -> anyhow::Result<Report> {
    let stats = Arc::new(Stats::default());
    let rate_each = load.rate_per_s.map(|r| r / load.producers.max(1) as f64);
    let mut setups = JoinSet::new();
    for (index, plan) in layout(load).into_iter().enumerate() {
        let specs: Vec<PublisherSpec> = plan
            .producers
            .iter()
            .map(|&q| PublisherSpec {
                exchange: topology.exchange.clone().unwrap_or_default(),
                routing_key: if topology.exchange.is_some() {
                    String::new()
                } else {
                    topology.queues[q].clone()
                },
                body_bytes: load.body_bytes,
                persistent: load.persistent,
                confirm_window: load.confirm_window,
                rate_per_s: rate_each,
                limit: None,
            })
            .collect();
        let queues: Vec<String> = plan
            .consumers
            .iter()
            .map(|&q| topology.queues[q].clone())
            .collect();
        let (url, stats, ack, prefetch) = (ctx.url.clone(), stats.clone(), load.ack, load.prefetch);
        setups.spawn(async move {
            let mut client = Client::connect(&url).await?;
            let publishers = open_publishers(&mut client, &specs, 1).await?;
            let first = publishers.len() as u16 + 1;
            let tag = format!("bench-{index}");
            let consumers =
                open_consumers(&mut client, &queues, first, &tag, ack, prefetch).await?;
            anyhow::Ok(Driver::new(client, publishers, consumers, stats))
        });
    }
    let mut drivers = Vec::new();
    while let Some(setup) = setups.join_next().await {
        drivers.push(
            setup
                .context("a set-up task panicked")?
                .context("setting up a connection")?,
        );
    }

    let (phase, phase_rx) = watch::channel(Phase::Ready);
    let mut running = JoinSet::new();
    for driver in drivers {
        running.spawn(driver.run(phase_rx.clone()));
    }
    let deliveries_per_publish = if load.fanout {
        load.queues.max(1) as u64
    } else {
        1
    };
    stats.reset();
    let monitor = Monitor::start(
        &load.name,
        stats.clone(),
        Progress::Flow {
            deliveries_per_publish,
        },
        ctx.broker_pid,
        ctx.progress,
    );
    let cpu_before = process::cpu_time(Pid::Me);
    let broker_cpu_before = ctx
        .broker_pid
        .and_then(|p| process::cpu_time(Pid::Other(p)));
    let started = Instant::now();
    let _ = phase.send(Phase::Publish);
    let failure = tokio::select! {
        _ = tokio::time::sleep(load.duration) => None,
        Some(ended) = running.join_next() => Some(match ended {
            Ok(Ok(())) => anyhow::anyhow!("a connection ended before the measurement did"),
            Ok(Err(e)) => e,
            Err(e) => anyhow::anyhow!("a connection task panicked: {e}"),
        }),
    };
    let seconds = started.elapsed().as_secs_f64();
    let counts = stats.counts();
    let cpu_after = process::cpu_time(Pid::Me);
    let broker_cpu_after = ctx
        .broker_pid
        .and_then(|p| process::cpu_time(Pid::Other(p)));
    let broker_memory = monitor.stop().await;
    let _ = phase.send(Phase::Stop);
    let teardown = stop_all(running).await;
    if let Some(failure) = failure {
        return Err(failure);
    }
    teardown?;
    let wake_lag = stats.wake_lag();
    let mut extra = Vec::new();
    if let (Some(p50), Some(p99)) = (wake_lag.quantile(0.5), wake_lag.quantile(0.99)) {
        // Includes up to a millisecond of timer granularity; far above that, the machine was
        // too busy to run the bench on time, and latency tails say more about it than about
        // the broker.
        extra.push(("bench_wake_lag_p50_us", p50 as f64 / 1e3));
        extra.push(("bench_wake_lag_p99_us", p99 as f64 / 1e3));
    }
    Ok(Report {
        scenario: load.name.clone(),
        broker_url: ctx.url.to_string(),
        setup: load.describe(),
        seconds,
        published: counts.published,
        consumed: counts.consumed,
        confirmed: counts.confirmed,
        nacked: counts.nacked,
        latency: Latency::of(&stats.total_latency()),
        confirm_latency: Latency::of(&stats.total_confirm_latency()),
        bench_cpu_seconds: elapsed_seconds(cpu_before, cpu_after),
        broker_cpu_seconds: elapsed_seconds(broker_cpu_before, broker_cpu_after),
        broker_memory,
        extra,
        ..Report::default()
    })
}

/// Opens one channel per publisher, from channel `first` on, in confirm mode if asked.
pub async fn open_publishers(
    client: &mut Client,
    specs: &[PublisherSpec],
    first: u16,
) -> anyhow::Result<Vec<Publisher>> {
    let mut publishers = Vec::with_capacity(specs.len());
    for (channel, spec) in (first..).zip(specs) {
        client.open_channel(channel).await?;
        if spec.confirm_window.is_some() {
            client.confirm_select(channel).await?;
        }
        publishers.push(Publisher::new(channel, spec, client.frame_max));
    }
    Ok(publishers)
}

/// Opens one channel per queue, from channel `first` on, and starts a consumer on it.
pub async fn open_consumers(
    client: &mut Client,
    queues: &[String],
    first: u16,
    tag: &str,
    ack: AckMode,
    prefetch: u16,
) -> anyhow::Result<Vec<Consumer>> {
    let mut consumers = Vec::with_capacity(queues.len());
    for (channel, queue) in (first..).zip(queues) {
        client.open_channel(channel).await?;
        if ack != AckMode::Auto {
            client.qos(channel, prefetch).await?;
        }
        client
            .consume(
                channel,
                queue,
                &format!("{tag}-{channel}"),
                ack == AckMode::Auto,
            )
            .await?;
        consumers.push(Consumer::new(channel, ack, prefetch));
    }
    Ok(consumers)
}

/// Waits for every driver to close its connection, up to [`TEARDOWN_TIMEOUT`]; the first
/// error wins.
pub async fn stop_all(mut running: JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    let joined = tokio::time::timeout(TEARDOWN_TIMEOUT, async {
        let mut first_error = None;
        while let Some(ended) = running.join_next().await {
            let error = match ended {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("a connection task panicked: {e}"),
            };
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    })
    .await;
    match joined {
        Ok(result) => result,
        Err(_) => {
            running.abort_all();
            anyhow::bail!("connections did not close within {TEARDOWN_TIMEOUT:?}")
        }
    }
}

pub fn elapsed_seconds(before: Option<Duration>, after: Option<Duration>) -> Option<f64> {
    Some(after?.saturating_sub(before?).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(producers: usize, consumers: usize, queues: usize, connections: usize) -> Load {
        Load {
            name: "t".into(),
            queues,
            durable: false,
            fanout: false,
            producers,
            consumers,
            connections,
            body_bytes: 64,
            persistent: false,
            confirm_window: None,
            ack: AckMode::Each,
            prefetch: 100,
            rate_per_s: None,
            duration: Duration::from_secs(1),
        }
    }

    #[test]
    fn without_sharing_every_client_has_its_own_connection() {
        let layout = layout(&load(2, 3, 2, 0));
        assert_eq!(layout.len(), 5);
        assert_eq!(layout[1].producers, vec![1]);
        assert_eq!(layout[4].consumers, vec![0]);
    }

    #[test]
    fn shared_connections_carry_every_queue_once_each_way() {
        let layout = layout(&load(100, 100, 100, 10));
        assert_eq!(layout.len(), 10);
        let mut produced: Vec<usize> = layout.iter().flat_map(|l| l.producers.clone()).collect();
        let mut consumed: Vec<usize> = layout.iter().flat_map(|l| l.consumers.clone()).collect();
        produced.sort();
        consumed.sort();
        assert_eq!(produced, (0..100).collect::<Vec<_>>());
        assert_eq!(consumed, produced);
        assert!(layout
            .iter()
            .all(|l| l.producers.len() == 10 && l.consumers.len() == 10));
        assert!(
            !layout[0].consumers.contains(&layout[0].producers[0]),
            "a queue's ends share a connection"
        );
    }
}
