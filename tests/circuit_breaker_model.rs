//! Property: the breaker agrees with a small reference model on random event sequences
//! (successes, failures, cancelled calls, time passing, manual overrides), on tokio's paused clock.

use std::time::Duration;

use proptest::prelude::*;
use resilience::circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitState, SlidingWindow,
};

#[derive(Debug, Clone)]
enum Event {
    Call {
        fail: bool,
    },
    /// Acquire a permit and drop it without an outcome.
    Cancel,
    Advance(u64),
    Reset,
    ForceOpen,
    Disable,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => any::<bool>().prop_map(|fail| Event::Call { fail }),
        1 => Just(Event::Cancel),
        3 => (0u64..15_000).prop_map(Event::Advance),
        1 => Just(Event::Reset),
        1 => Just(Event::ForceOpen),
        1 => Just(Event::Disable),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Trip {
    Consecutive(u32),
    /// percent, window size, minimum calls
    Rate(f64, usize, usize),
}

/// The reference: a plain sequential state machine, times in milliseconds.
#[derive(Debug)]
struct Model {
    trip: Trip,
    reset_ms: u64,
    success_threshold: u32,
    now: u64,
    state: CircuitState,
    /// Consecutive failures (consecutive mode), or the count carried while not closed.
    failures: u64,
    /// Outcomes since the breaker last closed (rate mode), `true` = failure.
    window: Vec<bool>,
    open_until: u64,
    trial_successes: u32,
}

/// What a call attempt led to.
#[derive(Debug, PartialEq)]
enum Admission {
    Allowed,
    Rejected(Option<Duration>),
}

impl Model {
    fn admit(&mut self) -> Admission {
        match self.state {
            CircuitState::Open if self.now < self.open_until => {
                Admission::Rejected(Some(Duration::from_millis(self.open_until - self.now)))
            }
            CircuitState::Open => {
                self.state = CircuitState::HalfOpen;
                self.trial_successes = 0;
                Admission::Allowed
            }
            CircuitState::ForcedOpen => Admission::Rejected(None),
            _ => Admission::Allowed,
        }
    }

    fn open(&mut self, failures: u64) {
        self.state = CircuitState::Open;
        self.failures = failures;
        self.open_until = self.now + self.reset_ms;
    }

    fn close(&mut self) {
        self.state = CircuitState::Closed;
        self.failures = 0;
        self.window.clear();
    }

    fn outcome(&mut self, fail: bool) {
        match self.state {
            CircuitState::Closed => match self.trip {
                Trip::Consecutive(threshold) => {
                    if !fail {
                        self.failures = 0;
                    } else if self.failures + 1 >= u64::from(threshold) {
                        self.open(u64::from(threshold));
                    } else {
                        self.failures += 1;
                    }
                }
                Trip::Rate(percent, size, minimum) => {
                    self.window.push(fail);
                    let start = self.window.len().saturating_sub(size);
                    let recent = &self.window[start..];
                    let fails = recent.iter().filter(|f| **f).count();
                    if fail
                        && recent.len() >= minimum
                        && fails as f64 * 100.0 >= percent * recent.len() as f64
                    {
                        self.open(fails as u64);
                    }
                }
            },
            CircuitState::HalfOpen => {
                if fail {
                    self.open(self.failures + 1);
                } else {
                    self.trial_successes += 1;
                    if self.trial_successes >= self.success_threshold {
                        self.close();
                    }
                }
            }
            _ => {}
        }
    }

    fn failure_count(&self) -> u64 {
        match (self.trip, self.state) {
            (Trip::Rate(_, size, _), CircuitState::Closed) => {
                let start = self.window.len().saturating_sub(size);
                self.window[start..].iter().filter(|f| **f).count() as u64
            }
            _ => self.failures,
        }
    }
}

fn run(
    trip: Trip,
    reset_ms: u64,
    success_threshold: u32,
    events: Vec<Event>,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(async move {
        let builder = CircuitBreakerConfig::builder()
            .reset_timeout(Duration::from_millis(reset_ms))
            .success_threshold(success_threshold);
        let builder = match trip {
            Trip::Consecutive(n) => builder.failure_threshold(n),
            Trip::Rate(percent, size, minimum) => builder
                .failure_rate(percent)
                .sliding_window(SlidingWindow::Count(size as u32))
                .minimum_calls(minimum as u32),
        };
        let breaker = CircuitBreaker::new("model", builder.build().unwrap());
        let mut model = Model {
            trip,
            reset_ms,
            success_threshold,
            now: 0,
            state: CircuitState::Closed,
            failures: 0,
            window: Vec::new(),
            open_until: 0,
            trial_successes: 0,
        };
        for (i, ev) in events.into_iter().enumerate() {
            match ev {
                Event::Call { .. } | Event::Cancel => {
                    let expected = model.admit();
                    let actual = match breaker.try_acquire() {
                        Ok(permit) => {
                            match ev {
                                Event::Call { fail: true } => permit.failure(),
                                Event::Call { fail: false } => permit.success(),
                                _ => drop(permit),
                            }
                            Admission::Allowed
                        }
                        Err(e) => Admission::Rejected(e.retry_after),
                    };
                    prop_assert_eq!(&actual, &expected, "event {}: {:?}", i, ev);
                    if let (Admission::Allowed, Event::Call { fail }) = (&actual, &ev) {
                        model.outcome(*fail);
                    }
                }
                Event::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    model.now += ms;
                }
                Event::Reset => {
                    breaker.reset();
                    model.close();
                }
                Event::ForceOpen => {
                    breaker.force_open();
                    if model.state != CircuitState::ForcedOpen {
                        model.state = CircuitState::ForcedOpen;
                        model.failures = 0;
                    }
                }
                Event::Disable => {
                    breaker.disable();
                    if model.state != CircuitState::Disabled {
                        model.state = CircuitState::Disabled;
                        model.failures = 0;
                    }
                }
            }
            let snap = breaker.snapshot();
            prop_assert_eq!(snap.state, model.state, "event {}: {:?}", i, model);
            prop_assert_eq!(
                snap.failure_count,
                model.failure_count(),
                "event {}: {:?}",
                i,
                model
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn consecutive_mode_agrees_with_the_model(
        threshold in 1u32..5,
        reset_ms in 1u64..20_000,
        success_threshold in 1u32..4,
        events in prop::collection::vec(event(), 1..80),
    ) {
        run(Trip::Consecutive(threshold), reset_ms, success_threshold, events)?;
    }

    #[test]
    fn count_window_mode_agrees_with_the_model(
        percent in 1.0f64..=100.0,
        size in 1usize..12,
        minimum_frac in 0.0f64..=1.0,
        reset_ms in 1u64..20_000,
        success_threshold in 1u32..4,
        events in prop::collection::vec(event(), 1..80),
    ) {
        let minimum = ((size as f64 * minimum_frac).ceil() as usize).clamp(1, size);
        run(Trip::Rate(percent, size, minimum), reset_ms, success_threshold, events)?;
    }
}
