//! Watches a scenario while it runs: samples the broker's memory ten times per second (its
//! peak is what the `backlog` and `connections` scenarios report) and prints the live
//! progress line on stderr once per second.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::process::{self, Pid};
use super::stats::{Counts, Stats};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const SAMPLES_PER_LINE: u32 = 10;

/// What the progress line shows besides rates.
pub enum Progress {
    /// Published and consumed rates, backlog, latency. A publish becomes this many
    /// deliveries (the number of queues of a fanout, else 1).
    Flow { deliveries_per_publish: u64 },
    /// Connections opened so far.
    Connections(Arc<AtomicU64>),
}

/// The broker's resident memory over the scenario, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerMemory {
    pub start: u64,
    pub peak: u64,
    pub end: u64,
    /// The kernel's own high-water mark (`VmHWM`) at the end: covers the broker's whole life,
    /// including earlier scenarios and moments between samples.
    pub lifetime_peak: u64,
}

pub struct Monitor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<BrokerMemory>>,
}

impl Monitor {
    pub fn start(
        label: &str,
        stats: Arc<Stats>,
        progress: Progress,
        broker: Option<u32>,
        print: bool,
    ) -> Monitor {
        let (stop, mut stopped) = oneshot::channel();
        let label = label.to_owned();
        let task = tokio::spawn(async move {
            let broker = broker.map(Pid::Other);
            let mut memory = broker.and_then(process::memory).map(|m| BrokerMemory {
                start: m.rss_bytes,
                peak: m.rss_bytes,
                end: m.rss_bytes,
                lifetime_peak: m.peak_rss_bytes,
            });
            let mut line = Line::new(label, stats, progress, broker, print);
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u32;
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                if let (Some(memory), Some(now)) =
                    (memory.as_mut(), broker.and_then(process::memory))
                {
                    memory.peak = memory.peak.max(now.rss_bytes);
                    memory.end = now.rss_bytes;
                    memory.lifetime_peak = now.peak_rss_bytes;
                }
                ticks += 1;
                if ticks == SAMPLES_PER_LINE {
                    ticks = 0;
                    line.print(memory.map(|m| m.end));
                }
            }
            line.finish();
            memory
        });
        Monitor { stop, task }
    }

    /// Stops the monitor and returns what it saw of the broker's memory.
    pub async fn stop(self) -> Option<BrokerMemory> {
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

/// The progress line: rates over the last second.
struct Line {
    label: String,
    stats: Arc<Stats>,
    progress: Progress,
    broker: Option<Pid>,
    print: bool,
    terminal: bool,
    started: Instant,
    last_at: Instant,
    last: Counts,
    last_connections: u64,
    last_cpu: Option<Duration>,
    last_broker_cpu: Option<Duration>,
}

impl Line {
    fn new(
        label: String,
        stats: Arc<Stats>,
        progress: Progress,
        broker: Option<Pid>,
        print: bool,
    ) -> Line {
        let now = Instant::now();
        Line {
            label,
            last: stats.counts(),
            stats,
            progress,
            broker,
            print,
            terminal: std::io::stderr().is_terminal(),
            started: now,
            last_at: now,
            last_connections: 0,
            last_cpu: process::cpu_time(Pid::Me),
            last_broker_cpu: broker.and_then(process::cpu_time),
        }
    }

    fn print(&mut self, broker_rss: Option<u64>) {
        let now = Instant::now();
        let seconds = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let counts = self.stats.counts();
        let latency = self.stats.take_interval_latency();
        let cpu = process::cpu_time(Pid::Me);
        let broker_cpu = self.broker.and_then(process::cpu_time);
        let mut text = format!(
            "{:<18} {:>4.0}s",
            self.label,
            now.duration_since(self.started).as_secs_f64()
        );
        match &self.progress {
            Progress::Flow {
                deliveries_per_publish,
            } => {
                let published = (counts.published - self.last.published) as f64 / seconds;
                let consumed = (counts.consumed - self.last.consumed) as f64 / seconds;
                let backlog =
                    (counts.published * deliveries_per_publish).saturating_sub(counts.consumed);
                text += &format!(
                    "  pub {:>9}/s  cons {:>9}/s  backlog {:>9}",
                    group(published),
                    group(consumed),
                    group(backlog as f64)
                );
                if let (Some(p50), Some(p99)) = (latency.quantile(0.5), latency.quantile(0.99)) {
                    text += &format!("  p50 {} p99 {}", millis(p50), millis(p99));
                }
                let confirms = self.stats.take_interval_confirm_latency();
                if let (Some(p50), Some(p99)) = (confirms.quantile(0.5), confirms.quantile(0.99)) {
                    text += &format!("  confirm p50 {} p99 {}", millis(p50), millis(p99));
                }
            }
            Progress::Connections(opened) => {
                let opened = opened.load(Ordering::Relaxed);
                let rate = (opened - self.last_connections.min(opened)) as f64 / seconds;
                text += &format!(
                    "  connections {:>7}  ({}/s)",
                    group(opened as f64),
                    group(rate)
                );
                self.last_connections = opened;
            }
        }
        if let (Some(now), Some(before)) = (cpu, self.last_cpu) {
            text += &format!("  bench cpu {:.2}", (now - before).as_secs_f64() / seconds);
        }
        if let (Some(now), Some(before)) = (broker_cpu, self.last_broker_cpu) {
            text += &format!("  broker cpu {:.2}", (now - before).as_secs_f64() / seconds);
        }
        if let Some(rss) = broker_rss {
            text += &format!("  rss {} MiB", rss >> 20);
        }
        if self.stats.blocked.load(Ordering::Relaxed) {
            text += "  BLOCKED";
        }
        if self.print {
            let mut err = std::io::stderr().lock();
            let _ = if self.terminal {
                write!(err, "\r\x1b[K{text}")
            } else {
                writeln!(err, "{text}")
            };
            let _ = err.flush();
        }
        self.last_at = now;
        self.last = counts;
        self.last_cpu = cpu;
        self.last_broker_cpu = broker_cpu;
    }

    fn finish(&self) {
        if self.print && self.terminal {
            eprintln!();
        }
    }
}

/// `1234567.8` as `1,234,568`.
pub fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds as milliseconds with enough digits for sub-millisecond latencies.
pub fn millis(nanos: u64) -> String {
    let ms = nanos as f64 / 1e6;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.4), "999");
        assert_eq!(group(1000.0), "1,000");
        assert_eq!(group(1_234_567.8), "1,234,568");
    }

    #[test]
    fn latencies_keep_sub_millisecond_digits() {
        assert_eq!(millis(290_000), "0.29 ms");
        assert_eq!(millis(12_400_000), "12 ms");
    }
}
