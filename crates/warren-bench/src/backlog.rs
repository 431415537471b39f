//! The `backlog` scenario: fill one queue with many messages while nothing consumes, then
//! drain it. It reports both rates and, given `--broker-pid`, the broker's resident memory
//! (peak, and once the queue is full): what a deep queue costs, the reason to have a broker
//! in front of slow consumers.
//!
//! By default it fills and drains a fresh, uniquely named queue and deletes it. Given a queue
//! name it can also run one phase only, which is how a recovery measurement is taken: `fill`
//! leaves the messages in that queue (persistent and confirmed, if asked), the broker is
//! restarted, and `drain` consumes whatever the queue holds, reporting how many that was.
//! A queue named by the user is never deleted.

use anyhow::{bail, Context as _};
use std::fmt;
use std::str::FromStr;
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
use super::report::{Latency, Report};
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
    /// Messages the fill phase publishes.
    pub messages: u64,
    pub body_bytes: usize,
    /// A durable queue and persistent messages (delivery-mode 2).
    pub persistent: bool,
    /// Publisher confirms with this many messages in flight; the fill phase then ends when
    /// every message is confirmed.
    pub confirm_window: Option<u64>,
    pub ack: AckMode,
    pub prefetch: u16,
    /// The queue to use, declared if missing and never deleted; `None` for a fresh, uniquely
    /// named queue deleted at the end.
    pub queue: Option<String>,
    pub phases: Phases,
}

/// Which phases of the scenario run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    /// Publish the messages and leave them in the queue.
    Fill,
    /// Consume everything the queue holds.
    Drain,
    Both,
}

impl Phases {
    fn fills(self) -> bool {
        self != Phases::Drain
    }

    fn drains(self) -> bool {
        self != Phases::Fill
    }
}

impl FromStr for Phases {
    type Err = String;

    fn from_str(s: &str) -> Result<Phases, String> {
        match s {
            "fill" => Ok(Phases::Fill),
            "drain" => Ok(Phases::Drain),
            "both" => Ok(Phases::Both),
            _ => Err(format!("`{s}`: expected fill, drain or both")),
        }
    }
}

impl fmt::Display for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phases::Fill => "fill",
            Phases::Drain => "drain",
            Phases::Both => "both",
        })
    }
}

impl Backlog {
    /// The set-up in words, for the report.
    pub fn describe(&self) -> String {
        let durable = if self.persistent { "durable " } else { "" };
        let queue = match &self.queue {
            Some(name) => format!("{durable}queue '{name}'"),
            None => format!("1 {durable}queue"),
        };
        let consumer = format!("(ack {}, prefetch {})", self.ack, self.prefetch);
        if self.phases == Phases::Drain {
            return format!("1 consumer drains everything {queue} holds {consumer}");
        }
        let mut fill = format!(
            "{} messages of {} B into {queue} with no consumer",
            self.messages, self.body_bytes
        );
        if self.persistent {
            fill += ", persistent";
        }
        if let Some(window) = self.confirm_window {
            fill += &format!(", confirm window {window}");
        }
        match self.phases {
            Phases::Fill => fill + ", left there",
            _ => format!("{fill}, then 1 consumer drains it {consumer}"),
        }
    }
}

pub async fn run(backlog: &Backlog, ctx: &Context) -> anyhow::Result<Report> {
    let (queue, owned) = match &backlog.queue {
        Some(name) => (name.clone(), false),
        None => (
            Topology::new(&backlog.name, 1, false).queues.remove(0),
            true,
        ),
    };
    if owned && backlog.phases != Phases::Both {
        bail!("the backlog scenario runs one phase only on a named queue (--backlog-queue)");
    }
    let mut control = Client::connect(&ctx.url).await?;
    control.open_channel(1).await?;
    let outcome = fill_and_drain(backlog, ctx, &queue, &mut control).await;
    let cleanup = if owned {
        control
            .delete_queue(1, &queue)
            .await
            .context("deleting the scenario's queue")
    } else {
        Ok(())
    };
    control.close().await;
    let report = outcome?;
    cleanup?;
    Ok(report)
}

/// What the fill phase saw.
struct Filled {
    seconds: f64,
    broker_rss_bytes: Option<u64>,
}

/// What the drain phase saw.
struct Drained {
    seconds: f64,
    /// The queue's depth (passive declare) when the consumer started: what it drained.
    messages: u64,
}

async fn fill_and_drain(
    backlog: &Backlog,
    ctx: &Context,
    queue: &str,
    control: &mut Client,
) -> anyhow::Result<Report> {
    let depth_before = if backlog.phases.fills() {
        control
            .declare_queue(1, queue, backlog.persistent)
            .await
            .with_context(|| format!("declaring queue '{queue}'"))?
    } else {
        control.queue_depth(1, queue).await.with_context(|| {
            format!("the queue to drain, '{queue}' (a passive declare failed: does it exist?)")
        })?
    };
    let stats = Arc::new(Stats::default());
    let (phase, phase_rx) = watch::channel(Phase::Ready);
    let mut running = JoinSet::new();
    if backlog.phases.fills() {
        let spec = PublisherSpec {
            exchange: String::new(),
            routing_key: queue.to_owned(),
            body_bytes: backlog.body_bytes,
            persistent: backlog.persistent,
            confirm_window: backlog.confirm_window,
            rate_per_s: None,
            limit: Some(backlog.messages),
        };
        let mut producer = Client::connect(&ctx.url).await?;
        let publishers = open_publishers(&mut producer, &[spec], 1).await?;
        running
            .spawn(Driver::new(producer, publishers, vec![], stats.clone()).run(phase_rx.clone()));
    }

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
        let filled = if backlog.phases.fills() {
            let target = u64::from(depth_before) + backlog.messages;
            Some(
                fill(
                    backlog,
                    ctx,
                    queue,
                    control,
                    &stats,
                    &mut running,
                    target,
                    started,
                )
                .await?,
            )
        } else {
            None
        };
        let drained = if backlog.phases.drains() {
            let messages = u64::from(control.queue_depth(1, queue).await?);
            let mut consumer = Client::connect(&ctx.url).await?;
            let consumers = open_consumers(
                &mut consumer,
                &[queue.to_owned()],
                1,
                "bench-drain",
                backlog.ack,
                backlog.prefetch,
            )
            .await?;
            let draining = Instant::now();
            running.spawn(
                Driver::new(consumer, vec![], consumers, stats.clone()).run(phase_rx.clone()),
            );
            let mut consumed = 0;
            let mut progressed = Instant::now();
            while consumed < messages {
                watch_for_failure(&mut running, POLL_EVERY).await?;
                let now = stats.counts().consumed;
                if now != consumed {
                    progressed = Instant::now();
                }
                consumed = now;
                if progressed.elapsed() > STALL_TIMEOUT {
                    bail!("{consumed} of {messages} messages drained, and no more arrive");
                }
            }
            Some(Drained {
                seconds: draining.elapsed().as_secs_f64(),
                messages,
            })
        } else {
            None
        };
        anyhow::Ok((filled, drained))
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
    let fill_s = filled.as_ref().map(|f| f.seconds);
    let drain_s = drained.as_ref().map(|d| d.seconds);
    let mut extra = vec![("queue_depth_before", f64::from(depth_before))];
    if let Some(filled) = &filled {
        extra.push(("messages", backlog.messages as f64));
        extra.push(("fill_seconds", filled.seconds));
        if let Some(rss) = filled.broker_rss_bytes {
            extra.push(("broker_rss_filled_bytes", rss as f64));
        }
    }
    if let Some(drained) = &drained {
        extra.push(("drained", drained.messages as f64));
        extra.push(("drain_seconds", drained.seconds));
    }
    Ok(Report {
        scenario: backlog.name.clone(),
        broker_url: ctx.url.to_string(),
        setup: backlog.describe(),
        seconds: fill_s.unwrap_or(0.0) + drain_s.unwrap_or(0.0),
        published: counts.published,
        consumed: counts.consumed,
        confirmed: counts.confirmed,
        nacked: counts.nacked,
        published_per_s: Some(fill_s.map_or(0.0, |s| backlog.messages as f64 / s.max(1e-9))),
        consumed_per_s: Some(
            drained
                .as_ref()
                .map_or(0.0, |d| d.messages as f64 / d.seconds.max(1e-9)),
        ),
        confirm_latency: Latency::of(&stats.total_confirm_latency()),
        bench_cpu_seconds: elapsed_seconds(cpu_before, cpu_after),
        broker_cpu_seconds: elapsed_seconds(broker_cpu_before, broker_cpu_after),
        broker_memory,
        extra,
        ..Report::default()
    })
}

/// Waits until the queue holds `target` messages and, with confirms, every publish is
/// settled: the moment the publish rate is measured to.
#[allow(clippy::too_many_arguments)]
async fn fill(
    backlog: &Backlog,
    ctx: &Context,
    queue: &str,
    control: &mut Client,
    stats: &Stats,
    running: &mut JoinSet<anyhow::Result<()>>,
    target: u64,
    started: Instant,
) -> anyhow::Result<Filled> {
    let confirms = backlog.confirm_window.is_some();
    let mut seen = (0, 0);
    let mut progressed = Instant::now();
    loop {
        watch_for_failure(running, POLL_EVERY).await?;
        let depth = u64::from(control.queue_depth(1, queue).await?);
        let counts = stats.counts();
        let settled = counts.confirmed + counts.nacked;
        if depth >= target && (!confirms || settled >= backlog.messages) {
            break;
        }
        if (depth, settled) != seen {
            progressed = Instant::now();
            seen = (depth, settled);
        }
        if progressed.elapsed() > STALL_TIMEOUT {
            bail!(
                "the queue holds {depth} of {target} messages ({settled} of {} publishes \
                 confirmed) and has stopped growing",
                backlog.messages
            );
        }
    }
    Ok(Filled {
        seconds: started.elapsed().as_secs_f64(),
        broker_rss_bytes: ctx
            .broker_pid
            .and_then(|p| process::memory(Pid::Other(p)))
            .map(|m| m.rss_bytes),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(phases: Phases, queue: Option<&str>) -> Backlog {
        Backlog {
            name: "backlog".into(),
            messages: 1000,
            body_bytes: 64,
            persistent: true,
            confirm_window: Some(500),
            ack: AckMode::Each,
            prefetch: 100,
            queue: queue.map(str::to_owned),
            phases,
        }
    }

    #[test]
    fn phases_parse_from_the_command_line() {
        assert_eq!("fill".parse(), Ok(Phases::Fill));
        assert_eq!("drain".parse(), Ok(Phases::Drain));
        assert_eq!("both".parse(), Ok(Phases::Both));
        assert!("half".parse::<Phases>().is_err());
        assert!(Phases::Both.fills() && Phases::Both.drains());
        assert!(!Phases::Fill.drains() && !Phases::Drain.fills());
    }

    #[test]
    fn the_description_names_what_each_phase_does() {
        assert_eq!(
            backlog(Phases::Both, None).describe(),
            "1000 messages of 64 B into 1 durable queue with no consumer, persistent, \
             confirm window 500, then 1 consumer drains it (ack manual, prefetch 100)"
        );
        assert_eq!(
            backlog(Phases::Fill, Some("r")).describe(),
            "1000 messages of 64 B into durable queue 'r' with no consumer, persistent, \
             confirm window 500, left there"
        );
        assert_eq!(
            backlog(Phases::Drain, Some("r")).describe(),
            "1 consumer drains everything durable queue 'r' holds (ack manual, prefetch 100)"
        );
    }
}
