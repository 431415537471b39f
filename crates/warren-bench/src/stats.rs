//! Counters shared by every connection of one scenario, and the clock that latency stamps use.
//!
//! Connections add to the counters once per batch (one read, one fill of the write buffer),
//! never per message, and merge their latency histograms (delivery and confirm) a few times
//! per second, so that sharing costs nothing measurable on the hot path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::histogram::Histogram;

/// Nanoseconds since a process-wide epoch, on the monotonic clock. Producers write it into
/// each body and consumers subtract it from their own reading: both live in this process,
/// so no clock synchronisation is involved.
pub fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Default)]
pub struct Stats {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub consumed: AtomicU64,
    /// The broker has sent `connection.blocked` and not yet `connection.unblocked`.
    pub blocked: AtomicBool,
    /// Publish (body timestamp) to delivery.
    latency: Mutex<Latency>,
    /// Publish to its `basic.ack` (publisher confirms).
    confirm_latency: Mutex<Latency>,
    /// How late rate-limited publishers woke up after the moment they asked for: the
    /// machine's scheduling noise as the bench itself suffers it, to tell latency tails the
    /// broker causes from those of a busy machine.
    wake_lag: Mutex<Histogram>,
}

#[derive(Default)]
struct Latency {
    /// Since the progress line last read it.
    interval: Histogram,
    /// Since the measurement started.
    total: Histogram,
}

/// A consistent reading of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub consumed: u64,
}

impl Stats {
    pub fn counts(&self) -> Counts {
        Counts {
            published: self.published.load(Ordering::Relaxed),
            confirmed: self.confirmed.load(Ordering::Relaxed),
            nacked: self.nacked.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Moves a connection's delivery latency samples into the shared histograms and empties
    /// `local`.
    pub fn merge_latency(&self, local: &mut Histogram) {
        Latency::merge(&self.latency, local);
    }

    /// Moves a connection's confirm latency samples into the shared histograms and empties
    /// `local`.
    pub fn merge_confirm_latency(&self, local: &mut Histogram) {
        Latency::merge(&self.confirm_latency, local);
    }

    /// Moves a connection's wake-up lag samples into the shared histogram and empties `local`.
    pub fn merge_wake_lag(&self, local: &mut Histogram) {
        if local.count() > 0 {
            lock(&self.wake_lag).merge(local);
            local.clear();
        }
    }

    pub fn wake_lag(&self) -> Histogram {
        lock(&self.wake_lag).clone()
    }

    /// The delivery latency samples gathered since the last call (for the progress line),
    /// then starts anew.
    pub fn take_interval_latency(&self) -> Histogram {
        Latency::take_interval(&self.latency)
    }

    /// The confirm latency samples gathered since the last call, then starts anew.
    pub fn take_interval_confirm_latency(&self) -> Histogram {
        Latency::take_interval(&self.confirm_latency)
    }

    /// Every delivery latency sample since the start of the measurement.
    pub fn total_latency(&self) -> Histogram {
        lock(&self.latency).total.clone()
    }

    /// Every confirm latency sample since the start of the measurement.
    pub fn total_confirm_latency(&self) -> Histogram {
        lock(&self.confirm_latency).total.clone()
    }

    /// Forgets everything counted so far: the measurement starts now (after set-up, or
    /// after a warm-up).
    pub fn reset(&self) {
        for counter in [
            &self.published,
            &self.confirmed,
            &self.nacked,
            &self.consumed,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        for latency in [&self.latency, &self.confirm_latency] {
            let mut latency = lock(latency);
            latency.interval.clear();
            latency.total.clear();
        }
        lock(&self.wake_lag).clear();
    }
}

impl Latency {
    fn merge(shared: &Mutex<Latency>, local: &mut Histogram) {
        if local.count() == 0 {
            return;
        }
        let mut latency = lock(shared);
        latency.interval.merge(local);
        latency.total.merge(local);
        drop(latency);
        local.clear();
    }

    fn take_interval(shared: &Mutex<Latency>) -> Histogram {
        let mut latency = lock(shared);
        let interval = latency.interval.clone();
        latency.interval.clear();
        interval
    }
}

/// A lock that a panicked holder did not poison: counters stay readable for the report.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
