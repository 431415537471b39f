//! Latency histograms: `hdrhistogram` with two significant digits (values below 256 ns are
//! exact, any other within 1/128, 0.8 %), plus the exact largest value, which hdrhistogram
//! itself rounds up to its bucket.
//!
//! Recording is an index computation and an increment, cheap enough to do for every message
//! on the consumer's hot path; merging is a bucket-wise add, done a few times per second.

/// Recorded values (nanoseconds, by convention).
#[derive(Clone)]
pub struct Histogram {
    counts: hdrhistogram::Histogram<u64>,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            // Auto-resizing from 1 up: memory grows only as far as the largest value needs.
            counts: hdrhistogram::Histogram::new(2).expect("2 significant digits are supported"),
            max: 0,
        }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, value: u64) {
        // `record` grows the histogram to fit; only a value beyond any size is clamped.
        if self.counts.record(value).is_err() {
            self.counts.saturating_record(value);
        }
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.counts.len()
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Adds every count of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count() == 0 {
            return;
        }
        self.counts
            .add(&other.counts)
            .expect("an auto-resizing histogram takes any other's values");
        self.max = self.max.max(other.max);
    }

    pub fn clear(&mut self) {
        self.counts.reset();
        self.max = 0;
    }

    /// The value below which `quantile` (0.0 ..= 1.0) of the recorded values fall, reported as
    /// the top of its bucket (but never above the largest value recorded); `None` if empty.
    pub fn quantile(&self, quantile: f64) -> Option<u64> {
        (self.count() > 0).then(|| {
            self.counts
                .value_at_quantile(quantile.clamp(0.0, 1.0))
                .min(self.max)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_are_kept_as_the_largest_trackable() {
        let mut h = Histogram::default();
        h.record(u64::MAX);
        assert_eq!(h.count(), 1);
        assert_eq!(h.max(), u64::MAX);
        assert!(h.quantile(0.5).unwrap() > u64::MAX / 4);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::default();
        for v in [0u64, 1, 40, 127, 255] {
            h.record(v);
        }
        assert_eq!(h.quantile(0.0), Some(0));
        assert_eq!(h.quantile(0.5), Some(40));
        assert_eq!(h.quantile(0.8), Some(127));
        assert_eq!(h.quantile(1.0), Some(255));
    }

    #[test]
    fn reported_value_is_within_one_percent_of_the_recorded_one() {
        for value in [1u64, 100, 1_000, 12_345, 999_999, 3_000_000_000, 1 << 50] {
            let mut h = Histogram::default();
            h.record(value);
            h.record(value + value / 1000);
            let p = h.quantile(0.5).unwrap();
            let error = (p as f64 - value as f64).abs() / value as f64;
            assert!(error < 0.01, "{value} reported as {p}");
        }
    }

    #[test]
    fn quantiles_follow_the_distribution() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.01, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.01, "p99 {p99}");
        assert_eq!(h.quantile(1.0), Some(10_000_000), "the exact maximum");
        assert_eq!(h.max(), 10_000_000);
    }

    #[test]
    fn merge_adds_and_clear_empties() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        b.record(1_000_000);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 1_000_000);
        assert!(a.quantile(0.9).unwrap() > 900_000);
        a.clear();
        assert_eq!(a.count(), 0);
        assert_eq!(a.quantile(0.5), None);
        a.record(5);
        assert_eq!(a.quantile(0.5), Some(5));
    }
}
