//! A latency histogram with log-linear buckets: exact below 64 ns, then 64 buckets per power
//! of two, so any recorded value is known within 1/64 (1.6 %) over the whole `u64` range.
//!
//! Recording is an index computation and an increment, cheap enough to do for every message
//! on the consumer's hot path; merging is a bucket-wise add, done a few times per second.

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 6;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Values below `2 * SUB_COUNT` have a bucket each; each further power of two adds `SUB_COUNT`.
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB_COUNT + SUB_COUNT;

/// Counts of recorded values (nanoseconds, by convention) per bucket.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    /// Highest bucket in use, so that `clear` and `merge` touch only what was written.
    top: usize,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            top: 0,
        }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, value: u64) {
        let index = bucket_of(value);
        self.counts[index] += 1;
        self.total += 1;
        self.max = self.max.max(value);
        self.top = self.top.max(index);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Adds every count of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        for (mine, theirs) in self.counts[..=other.top]
            .iter_mut()
            .zip(&other.counts[..=other.top])
        {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.top = self.top.max(other.top);
    }

    pub fn clear(&mut self) {
        self.counts[..=self.top].fill(0);
        self.total = 0;
        self.max = 0;
        self.top = 0;
    }

    /// The value below which `quantile` (0.0 ..= 1.0) of the recorded values fall, reported as
    /// the middle of its bucket (but never above the largest value recorded); `None` if empty.
    pub fn quantile(&self, quantile: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts[..=self.top].iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(middle_of(index).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[inline]
fn bucket_of(value: u64) -> usize {
    if value < (2 * SUB_COUNT) as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // > SUB_BITS here
    let shift = magnitude - SUB_BITS;
    // (value >> shift) is in SUB_COUNT .. 2 * SUB_COUNT.
    ((shift as usize) << SUB_BITS) + (value >> shift) as usize
}

/// The middle of the range of values that `bucket_of` maps to `index`.
fn middle_of(index: usize) -> u64 {
    if index < 2 * SUB_COUNT {
        return index as u64;
    }
    let shift = (index >> SUB_BITS) as u32 - 1;
    let mantissa = (index - ((shift as usize) << SUB_BITS)) as u64;
    (mantissa << shift) + ((1u64 << shift) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        assert_eq!(bucket_of(127), 127);
        assert_eq!(bucket_of(128), 128);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut previous = 0;
        for value in (0..200_000u64).chain([u64::MAX / 3, u64::MAX - 1]) {
            let index = bucket_of(value);
            assert!(
                index == previous || index == previous + 1 || value > 200_000,
                "gap at {value}"
            );
            previous = index;
        }
    }

    #[test]
    fn reported_value_is_within_two_percent_of_the_recorded_one() {
        for value in [1u64, 100, 1_000, 12_345, 999_999, 3_000_000_000, 1 << 50] {
            let mut h = Histogram::default();
            h.record(value);
            h.record(value + value / 1000);
            let p = h.quantile(0.5).unwrap();
            let error = (p as f64 - value as f64).abs() / value as f64;
            assert!(error < 0.02, "{value} reported as {p}");
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
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.02, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.02, "p99 {p99}");
        assert_eq!(h.quantile(1.0), Some(10_000_000));
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
