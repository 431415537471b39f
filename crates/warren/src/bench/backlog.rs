//! The `backlog` scenario: fill one queue with many small messages while nothing consumes,
//! then drain it. It reports both rates and, given `--broker-pid`, the broker's peak resident
//! memory: what a deep queue costs, the reason to have a broker in front of slow consumers.

use anyhow::{bail, Context as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::Client;
use super::consumer::AckMode;
use super::driver::{Driver, Phase};
use super::load::{elapsed_seconds, open_consumers, open_publishers, stop_all, Topology};
use super::monitor::{Monitor, Progress};
use super::process::{self, Pid};
use super::publisher::PublisherSpec;
use super::report::Report;
use super::stats::Stats;
use super::Context;

/// How often the queue depth and the consumed count are checked.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// A phase that makes no progress for this long has failed (a broker dropping messages,
/// say), rather than being slow.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Backlog {
    pub name: String,
    pub messages: u64,
    pub body_bytes: usize,
    pub ack: AckMode,
    pub prefetch: u16,
}

pub async fn run(backlog: &Backlog, ctx: &Context) -> anyhow::Result<Report> {
    let topology = Topology::new(&backlog.name, 1, false);
    let mut control = Client::connect(&ctx.url).await?;
    control.open_channel(1).await?;
    topology
        .declare(&mut control, false)
        .await
        .context("declaring the scenario's queue")?;
    let outcome = fill_and_drain(backlog, ctx, &topology, &mut control).await;
    let cleanup = topology
        .delete(&mut control)
        .await
        .context("deleting the scenario's queue");
    control.close().await;
    let report = outcome?;
    cleanup?;
    Ok(report)
}

async fn fill_and_drain(
    backlog: &Backlog,
    ctx: &Context,
    topology: &Topology,
    control: &mut Client,
) -> anyhow::Result<Report> {
    let queue = &topology.queues[0];
    let stats = Arc::new(Stats::default());
    let (phase, phase_rx) = watch::channel(Phase::Ready);
    let mut running = JoinSet::new();
    let spec = PublisherSpec {
        exchange: String::new(),
        routing_key: queue.clone(),
        body_bytes: backlog.body_bytes,
        persistent: false,
        confirm_window: None,
        rate_per_s: None,
        limit: Some(backlog.messages),
    };
    let mut producer = Client::connect(&ctx.url).await?;
    let publishers = open_publishers(&mut producer, &[spec], 1).await?;
    running.spawn(Driver::new(producer, publishers, vec![], stats.clone()).run(phase_rx.clone()));

    let monitor = Monitor::start(
        &backlog.name,
        stats.clone(),
        Progress::Flow {
            deliveries_per_publish: 1,
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
    let outcome = async {
        // Filled once the broker holds every message: publishing without confirms, that is
        // the moment the publish rate is measured to.
        let mut depth = 0u64;
        let mut progressed = Instant::now();
        while depth < backlog.messages {
            watch_for_failure(&mut running, POLL_EVERY).await?;
            let now = u64::from(control.queue_depth(1, queue).await?);
            if now != depth {
                progressed = Instant::now();
            }
            depth = now;
            if progressed.elapsed() > STALL_TIMEOUT {
                bail!(
                    "the queue holds {depth} of {} messages and has stopped growing",
                    backlog.messages
                );
            }
        }
        let filled = started.elapsed();
        let mut consumer = Client::connect(&ctx.url).await?;
        let consumers = open_consumers(
            &mut consumer,
            std::slice::from_ref(queue),
            1,
            "bench-drain",
            backlog.ack,
            backlog.prefetch,
        )
        .await?;
        let draining = Instant::now();
        running
            .spawn(Driver::new(consumer, vec![], consumers, stats.clone()).run(phase_rx.clone()));
        let mut consumed = 0;
        let mut progressed = Instant::now();
        while consumed < backlog.messages {
            watch_for_failure(&mut running, POLL_EVERY).await?;
            let now = stats.counts().consumed;
            if now != consumed {
                progressed = Instant::now();
            }
            consumed = now;
            if progressed.elapsed() > STALL_TIMEOUT {
                bail!(
                    "{consumed} of {} messages drained, and no more arrive",
                    backlog.messages
                );
            }
        }
        anyhow::Ok((filled, draining.elapsed()))
    }
    .await;
    let cpu_after = process::cpu_time(Pid::Me);
    let broker_cpu_after = ctx
        .broker_pid
        .and_then(|p| process::cpu_time(Pid::Other(p)));
    let broker_memory = monitor.stop().await;
    let _ = phase.send(Phase::Stop);
    let teardown = stop_all(running).await;
    let (filled, drained) = outcome?;
    teardown?;
    let counts = stats.counts();
    let (fill_s, drain_s) = (filled.as_secs_f64(), drained.as_secs_f64());
    Ok(Report {
        scenario: backlog.name.clone(),
        broker_url: ctx.url.to_string(),
        setup: format!(
            "{} messages of {} B into 1 queue with no consumer, then 1 consumer drains it (ack {}, prefetch {})",
            backlog.messages, backlog.body_bytes, backlog.ack, backlog.prefetch
        ),
        seconds: fill_s + drain_s,
        published: counts.published,
        consumed: counts.consumed,
        published_per_s: Some(backlog.messages as f64 / fill_s.max(1e-9)),
        consumed_per_s: Some(backlog.messages as f64 / drain_s.max(1e-9)),
        bench_cpu_seconds: elapsed_seconds(cpu_before, cpu_after),
        broker_cpu_seconds: elapsed_seconds(broker_cpu_before, broker_cpu_after),
        broker_memory,
        extra: vec![("messages", backlog.messages as f64), ("fill_seconds", fill_s), ("drain_seconds", drain_s)],
        ..Report::default()
    })
}

/// Sleeps for `period`, or returns early with the error of a connection that ended.
async fn watch_for_failure(
    running: &mut JoinSet<anyhow::Result<()>>,
    period: Duration,
) -> anyhow::Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(period) => Ok(()),
        Some(ended) = running.join_next() => match ended {
            Ok(Ok(())) => bail!("a connection ended before the scenario did"),
            Ok(Err(e)) => Err(e),
            Err(e) => bail!("a connection task panicked: {e}"),
        },
    }
}
