//! The `connections` scenario: many idle connections, each with one channel and one consumer
//! on a shared empty queue, held for the scenario's duration. It reports how fast they open
//! and, given `--broker-pid`, what each costs the broker in resident memory.

use anyhow::Context as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

use super::client::Client;
use super::load::{elapsed_seconds, Topology};
use super::monitor::{Monitor, Progress};
use super::process::{self, Pid};
use super::report::Report;
use super::stats::Stats;
use super::url::AmqpUrl;
use super::Context;

/// Connections being opened (or closed) at once: enough to keep the broker busy, few enough
/// not to overflow its accept backlog.
const IN_FLIGHT: usize = 64;
/// Pause after the last connection opened, before memory is read, so that the broker's
/// allocations for them have settled.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct IdleConnections {
    pub name: String,
    pub count: usize,
    pub hold: Duration,
}

pub async fn run(scenario: &IdleConnections, ctx: &Context) -> anyhow::Result<Report> {
    let topology = Topology::new(&scenario.name, 1, false);
    let mut control = Client::connect(&ctx.url).await?;
    control.open_channel(1).await?;
    topology
        .declare(&mut control, false)
        .await
        .context("declaring the scenario's queue")?;
    let outcome = hold_connections(scenario, ctx, &topology.queues[0]).await;
    let cleanup = topology
        .delete(&mut control)
        .await
        .context("deleting the scenario's queue");
    control.close().await;
    let report = outcome?;
    cleanup?;
    Ok(report)
}

async fn hold_connections(
    scenario: &IdleConnections,
    ctx: &Context,
    queue: &str,
) -> anyhow::Result<Report> {
    let opened = Arc::new(AtomicU64::new(0));
    let monitor = Monitor::start(
        &scenario.name,
        Arc::new(Stats::default()),
        Progress::Connections(opened.clone()),
        ctx.broker_pid,
        ctx.progress,
    );
    let cpu_before = process::cpu_time(Pid::Me);
    let started = Instant::now();
    let clients = open_all(&ctx.url, queue, scenario.count, &opened).await;
    let open_seconds = started.elapsed().as_secs_f64();
    let held = match &clients {
        Ok(_) => {
            tokio::time::sleep(SETTLE + scenario.hold).await;
            ctx.broker_pid.and_then(|p| process::memory(Pid::Other(p)))
        }
        Err(_) => None,
    };
    let broker_memory = monitor.stop().await;
    let cpu_after = process::cpu_time(Pid::Me);
    let clients = clients?;
    let seconds = started.elapsed().as_secs_f64();
    close_all(clients).await;
    let mut extra = vec![
        ("connections", scenario.count as f64),
        ("open_seconds", open_seconds),
        (
            "connections_per_s",
            scenario.count as f64 / open_seconds.max(1e-9),
        ),
    ];
    if let (Some(memory), Some(held)) = (broker_memory, held) {
        extra.push(("broker_rss_held_bytes", held.rss_bytes as f64));
        let grown = held.rss_bytes.saturating_sub(memory.start);
        extra.push((
            "broker_rss_per_connection_bytes",
            grown as f64 / scenario.count.max(1) as f64,
        ));
    }
    Ok(Report {
        scenario: scenario.name.clone(),
        broker_url: ctx.url.to_string(),
        setup: format!(
            "{} idle connections, each with 1 channel and 1 consumer on a shared empty queue, held {:.0} s",
            scenario.count,
            scenario.hold.as_secs_f64()
        ),
        seconds,
        bench_cpu_seconds: elapsed_seconds(cpu_before, cpu_after),
        broker_memory,
        extra,
        ..Report::default()
    })
}

/// Opens `count` connections, [`IN_FLIGHT`] at a time; on any failure closes those already
/// open and returns the error.
async fn open_all(
    url: &AmqpUrl,
    queue: &str,
    count: usize,
    opened: &Arc<AtomicU64>,
) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(count);
    let mut pending = JoinSet::new();
    let mut started = 0;
    let mut failure = None;
    while clients.len() < count && failure.is_none() {
        while started < count && pending.len() < IN_FLIGHT {
            let (url, queue, tag) = (url.clone(), queue.to_owned(), format!("idle-{started}"));
            pending.spawn(async move {
                let mut client = Client::connect(&url).await?;
                client.open_channel(1).await?;
                client.consume(1, &queue, &tag, false).await?;
                anyhow::Ok(client)
            });
            started += 1;
        }
        match pending.join_next().await {
            Some(Ok(Ok(client))) => {
                clients.push(client);
                opened.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(Err(e))) => {
                failure = Some(e.context(format!(
                    "opening connection {} of {count}",
                    clients.len() + 1
                )))
            }
            Some(Err(e)) => failure = Some(anyhow::anyhow!("a connection task panicked: {e}")),
            None => break,
        }
    }
    while let Some(ended) = pending.join_next().await {
        if let Ok(Ok(client)) = ended {
            clients.push(client);
        }
    }
    match failure {
        None => Ok(clients),
        Some(e) => {
            close_all(clients).await;
            Err(e)
        }
    }
}

async fn close_all(clients: Vec<Client>) {
    let mut closing = JoinSet::new();
    for client in clients {
        if closing.len() >= IN_FLIGHT {
            closing.join_next().await;
        }
        closing.spawn(client.close());
    }
    while closing.join_next().await.is_some() {}
}
