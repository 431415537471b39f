//! Retry policy: exponential back-off with jitter, applied only to methods marked
//! `#[idempotent]` and only to errors after which trying again can help
//! ([`crate::RpcError::is_retryable`]).

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Back-off before the second attempt.
    pub initial_backoff: Duration,
    /// Back-off never grows past this.
    pub max_backoff: Duration,
    /// Growth of the back-off per attempt.
    pub multiplier: f64,
    /// Fraction of each back-off drawn at random (0 = none, 1 = "full jitter"), so callers
    /// that failed together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The back-off ceiling after `failed_attempts` attempts (1 after the first).
    fn ceiling(&self, failed_attempts: u32) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(failed_attempts.saturating_sub(1).min(64) as i32);
        let secs = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// How long to wait after `failed_attempts` attempts, `unit` being a random draw in [0, 1).
    pub(crate) fn backoff_with(&self, failed_attempts: u32, unit: f64) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        self.ceiling(failed_attempts)
            .mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
    }

    pub(crate) fn backoff(&self, failed_attempts: u32) -> Duration {
        self.backoff_with(failed_attempts, rand::thread_rng().gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy {
            jitter: 0.0,
            max_backoff: Duration::from_millis(300),
            ..RetryPolicy::default()
        };
        let ms: Vec<u128> = (1..=5)
            .map(|n| p.backoff_with(n, 0.9).as_millis())
            .collect();
        assert_eq!(ms, vec![50, 100, 200, 300, 300]);
    }

    #[test]
    fn jitter_shortens_the_backoff_by_at_most_its_fraction() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff_with(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff_with(2, 1.0), Duration::from_millis(50));
        for _ in 0..100 {
            let d = p.backoff(2);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
}
