//! Counters shared by every connection of one scenario, and the clock that latency stamps use.
//!
//! Connections add to the counters once per batch (one read, one fill of the write buffer),
//! never per message, and merge their latency histograms a few times per second, so that
//! sharing costs nothing measurable on the hot path.

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
    latency: Mutex<Latency>,
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

    /// Moves a connection's latency samples into the shared histograms and empties `local`.
    pub fn merge_latency(&self, local: &mut Histogram) {
        if local.count() == 0 {
            return;
        }
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        latency.interval.merge(local);
        latency.total.merge(local);
        drop(latency);
        local.clear();
    }

    /// Moves a connection's wake-up lag samples into the shared histogram and empties `local`.
    pub fn merge_wake_lag(&self, local: &mut Histogram) {
        if local.count() > 0 {
            self.wake_lag
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .merge(local);
            local.clear();
        }
    }

    pub fn wake_lag(&self) -> Histogram {
        self.wake_lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The samples gathered since the last call (for the progress line), then starts anew.
    pub fn take_interval_latency(&self) -> Histogram {
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let interval = latency.interval.clone();
        latency.interval.clear();
        interval
    }

    /// Every sample since the start of the measurement.
    pub fn total_latency(&self) -> Histogram {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .total
            .clone()
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
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        latency.interval.clear();
        latency.total.clear();
        drop(latency);
        self.wake_lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
