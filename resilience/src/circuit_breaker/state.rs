//! The breaker's states, state changes and snapshots.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CircuitState {
    /// Calls go through; failures are counted.
    Closed = 0,
    /// Calls are rejected until the reset timeout has passed.
    Open = 1,
    /// A limited number of trial calls go through; their outcome closes or re-opens the breaker.
    HalfOpen = 2,
    /// Opened by hand ([`force_open`](super::CircuitBreaker::force_open)): every call is rejected
    /// until [`reset`](super::CircuitBreaker::reset).
    ForcedOpen = 3,
    /// Switched off by hand ([`disable`](super::CircuitBreaker::disable)): every call goes through
    /// and nothing is counted until [`reset`](super::CircuitBreaker::reset).
    Disabled = 4,
}

impl CircuitState {
    pub(crate) const fn from_bits(bits: u64) -> Self {
        match bits {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            _ => Self::Disabled,
        }
    }

    /// The state's name in snake case (`closed`, `open`, `half_open`, `forced_open`, `disabled`),
    /// as used in metric labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }

    /// The value reported by the `circuit_breaker_state` gauge: 0 closed (and disabled),
    /// 1 half-open, 2 open (and forced open).
    pub const fn gauge_value(self) -> f64 {
        match self {
            Self::Closed | Self::Disabled => crate::metrics::STATE_CLOSED,
            Self::HalfOpen => crate::metrics::STATE_HALF_OPEN,
            Self::Open | Self::ForcedOpen => crate::metrics::STATE_OPEN,
        }
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state transition, as passed to [`on_state_change`](super::CircuitBreaker::on_state_change)
/// callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state left.
    pub from: CircuitState,
    /// The state entered.
    pub to: CircuitState,
}

/// A point-in-time view of a breaker, from [`snapshot`](super::CircuitBreaker::snapshot).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CircuitSnapshot {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The current state.
    pub state: CircuitState,
    /// Failures counting towards opening: consecutive failures, or failures in the window in
    /// failure-rate mode. Outside Closed: the failures that opened the breaker (plus a failed
    /// trial, if one re-opened it).
    pub failure_count: u64,
    /// Calls in the failure-rate window while it counts, i.e. in Closed (`None` in
    /// consecutive-failure mode and in every other state).
    pub window_calls: Option<u64>,
    /// When the last counted failure happened, if any since the breaker was created.
    pub last_failure: Option<Instant>,
    /// When the breaker last opened, if it is open.
    pub opened_at: Option<Instant>,
    /// Time left until a trial call is let through, if open.
    pub retry_after: Option<Duration>,
    /// Trial calls running (half-open only).
    pub half_open_in_flight: u32,
    /// Successful trial calls so far (half-open only).
    pub half_open_successes: u32,
}
