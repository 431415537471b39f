//! The client-side circuit breaker, one per service: after enough consecutive failures it
//! opens and calls fail at once instead of piling onto a sick service; after a while it lets
//! a few probe calls through (half-open) and closes again if they succeed.
//!
//! A plain state machine: time is an argument, so every transition is tested without a clock.

use std::time::{Duration, Instant};

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Probe calls allowed at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

/// The breaker's state, as reported to callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// How a call was let through: probes decide the half-open breaker's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    Probe,
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes_in_flight: u32 },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    state: State,
}

impl CircuitBreaker {
    pub(crate) fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config,
            state: State::Closed { failures: 0 },
        }
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Lets a call through, or `None` if the breaker is open (or half-open with all its
    /// probes in flight).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<Admission> {
        if let State::Open { until } = self.state {
            if now < until {
                return None;
            }
            self.state = State::HalfOpen {
                probes_in_flight: 0,
            };
        }
        match &mut self.state {
            State::Closed { .. } => Some(Admission::Normal),
            State::HalfOpen { probes_in_flight }
                if *probes_in_flight < self.config.half_open_probes =>
            {
                *probes_in_flight += 1;
                Some(Admission::Probe)
            }
            _ => None,
        }
    }

    /// A call let through has an outcome: `failed` if the service looked unhealthy.
    pub(crate) fn record(&mut self, admission: Admission, failed: bool, now: Instant) {
        match (&mut self.state, admission) {
            (State::Closed { failures }, _) => {
                if !failed {
                    *failures = 0;
                } else {
                    *failures += 1;
                    if *failures >= self.config.failure_threshold {
                        self.state = State::Open {
                            until: now + self.config.open_for,
                        };
                    }
                }
            }
            (State::HalfOpen { .. }, Admission::Probe) => {
                self.state = if failed {
                    State::Open {
                        until: now + self.config.open_for,
                    }
                } else {
                    State::Closed { failures: 0 }
                };
            }
            // Calls admitted before the breaker opened say nothing about it now.
            _ => {}
        }
    }

    /// A probe ended without an outcome (its caller gave up waiting): free its slot.
    pub(crate) fn abandon(&mut self, admission: Admission) {
        if let (State::HalfOpen { probes_in_flight }, Admission::Probe) =
            (&mut self.state, admission)
        {
            *probes_in_flight = probes_in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (CircuitBreaker, Instant) {
        let config = BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        };
        (CircuitBreaker::new(config), Instant::now())
    }

    fn fail(b: &mut CircuitBreaker, now: Instant) {
        let a = b.admit(now).expect("admitted");
        b.record(a, true, now);
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let (mut b, t) = breaker();
        fail(&mut b, t);
        fail(&mut b, t);
        assert_eq!(b.state(t), BreakerState::Closed);
        fail(&mut b, t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert_eq!(b.admit(t + Duration::from_secs(4)), None);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let (mut b, t) = breaker();
        fail(&mut b, t);
        fail(&mut b, t);
        let a = b.admit(t).unwrap();
        b.record(a, false, t);
        fail(&mut b, t);
        fail(&mut b, t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }

    #[test]
    fn half_opens_after_open_for_and_admits_one_probe() {
        let (mut b, t) = breaker();
        (0..3).for_each(|_| fail(&mut b, t));
        let later = t + Duration::from_secs(5);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.admit(later), Some(Admission::Probe));
        assert_eq!(b.admit(later), None, "one probe at a time");
    }

    #[test]
    fn failed_probe_reopens_and_successful_probe_closes() {
        let (mut b, t) = breaker();
        (0..3).for_each(|_| fail(&mut b, t));
        let t1 = t + Duration::from_secs(5);
        let probe = b.admit(t1).unwrap();
        b.record(probe, true, t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert_eq!(b.admit(t1 + Duration::from_secs(4)), None);
        let t2 = t1 + Duration::from_secs(5);
        let probe = b.admit(t2).unwrap();
        b.record(probe, false, t2);
        assert_eq!(b.state(t2), BreakerState::Closed);
        assert_eq!(b.admit(t2), Some(Admission::Normal));
    }

    #[test]
    fn abandoned_probe_frees_its_slot() {
        let (mut b, t) = breaker();
        (0..3).for_each(|_| fail(&mut b, t));
        let t1 = t + Duration::from_secs(5);
        let probe = b.admit(t1).unwrap();
        b.abandon(probe);
        assert_eq!(b.admit(t1), Some(Admission::Probe));
    }

    #[test]
    fn late_outcomes_of_calls_admitted_while_closed_do_not_move_an_open_breaker() {
        let (mut b, t) = breaker();
        let early = b.admit(t).unwrap();
        (0..3).for_each(|_| fail(&mut b, t));
        b.record(early, false, t);
        assert_eq!(b.state(t), BreakerState::Open);
    }
}
