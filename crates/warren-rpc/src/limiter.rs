//! Client-side rate limiting: a token bucket per service. A call takes a token; tokens come
//! back at `per_second` up to `burst`. Waiting calls reserve their token (the bucket goes
//! negative), so they are served in order and never all wake at once.
//!
//! A plain state machine: time is an argument.

use std::time::{Duration, Instant};

/// What to do with a call when no token is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitMode {
    /// Wait for a token, but fail with `RateLimited` if it would come after the deadline.
    #[default]
    Wait,
    /// Fail with `RateLimited` at once.
    Reject,
}

/// A rate limit applied to each service separately.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
    pub mode: LimitMode,
}

#[derive(Debug)]
pub(crate) struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> TokenBucket {
        let burst = limit.burst.max(1) as f64;
        TokenBucket {
            per_second: limit.per_second.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes a token now, or says it cannot.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Reserves the next token if it comes within `max_wait`, and says how long to wait for it.
    pub(crate) fn reserve(&mut self, now: Instant, max_wait: Duration) -> Option<Duration> {
        self.refill(now);
        let wait = if self.tokens >= 1.0 {
            0.0
        } else {
            (1.0 - self.tokens) / self.per_second
        };
        let wait = Duration::from_secs_f64(wait);
        if wait > max_wait {
            return None;
        }
        self.tokens -= 1.0;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: f64, burst: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst,
            mode: LimitMode::Reject,
        }
    }

    #[test]
    fn burst_passes_then_calls_are_refused_until_tokens_return() {
        let t = Instant::now();
        let mut b = TokenBucket::new(&limit(10.0, 3), t);
        assert!((0..3).all(|_| b.try_take(t)));
        assert!(!b.try_take(t));
        assert!(!b.try_take(t + Duration::from_millis(50)));
        assert!(b.try_take(t + Duration::from_millis(100)));
    }

    #[test]
    fn tokens_never_exceed_the_burst() {
        let t = Instant::now();
        let mut b = TokenBucket::new(&limit(10.0, 2), t);
        let later = t + Duration::from_secs(60);
        assert!(b.try_take(later) && b.try_take(later));
        assert!(!b.try_take(later));
    }

    #[test]
    fn waiting_callers_queue_one_interval_apart() {
        let t = Instant::now();
        let mut b = TokenBucket::new(&limit(10.0, 1), t);
        let max = Duration::from_secs(1);
        assert_eq!(b.reserve(t, max), Some(Duration::ZERO));
        let waits: Vec<u128> = (0..3)
            .map(|_| b.reserve(t, max).unwrap().as_millis())
            .collect();
        assert_eq!(waits, vec![100, 200, 300]);
    }

    #[test]
    fn a_token_beyond_the_deadline_is_not_reserved() {
        let t = Instant::now();
        let mut b = TokenBucket::new(&limit(1.0, 1), t);
        assert!(b.reserve(t, Duration::ZERO).is_some());
        assert_eq!(b.reserve(t, Duration::from_millis(500)), None);
        assert_eq!(
            b.reserve(t, Duration::from_millis(1000)),
            Some(Duration::from_secs(1))
        );
    }
}
