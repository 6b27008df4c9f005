//! What a call does (`Op`, the `operation` label) and the client's metric handles.

use metrics::{Counter, Gauge, Histogram};

use crate::metrics::lazy::LazyHandle;
use crate::metrics::{REDIS_CONNECTED, REDIS_ERRORS_TOTAL, REDIS_OPERATION_DURATION_SECONDS};

/// What a call does; the `operation` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Ping,
    Get,
    Set,
    Del,
    RateLimit,
    LockAcquire,
    LockRelease,
    LockExtend,
    Create,
    Update,
    GetVersioned,
    Command,
    BreakerAcquire,
    BreakerRecord,
}

const OPS: [Op; 14] = [
    Op::Ping,
    Op::Get,
    Op::Set,
    Op::Del,
    Op::RateLimit,
    Op::LockAcquire,
    Op::LockRelease,
    Op::LockExtend,
    Op::Create,
    Op::Update,
    Op::GetVersioned,
    Op::Command,
    Op::BreakerAcquire,
    Op::BreakerRecord,
];

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Get => "get",
            Op::Set => "set",
            Op::Del => "del",
            Op::RateLimit => "rate_limit",
            Op::LockAcquire => "lock_acquire",
            Op::LockRelease => "lock_release",
            Op::LockExtend => "lock_extend",
            Op::Create => "create_if_not_exists",
            Op::Update => "conditional_update",
            Op::GetVersioned => "get_versioned",
            Op::Command => "command",
            Op::BreakerAcquire => "breaker_acquire",
            Op::BreakerRecord => "breaker_record",
        }
    }

    /// Safe to send twice with the same answer: retried once at once when the connection
    /// turned out to be dead (e.g. the first call after a server restart). Not rate limits,
    /// conditional updates or breaker scripts (a reply lost after the server applied them would
    /// count twice), nor create / release / del (the second answer would differ from the
    /// first: "exists", "not ours", "not found").
    pub(crate) fn idempotent(self) -> bool {
        matches!(
            self,
            Op::Ping | Op::Get | Op::Set | Op::LockAcquire | Op::LockExtend | Op::GetVersioned
        )
    }
}

const KINDS: [&str; 11] = [
    "config",
    "tls",
    "auth",
    "permission",
    "connection",
    "timeout",
    "circuit_open",
    "server",
    "invalid_argument",
    "conflict",
    "protocol",
];

/// Metric handles, each registered the first time it records (a fresh client exports no
/// zero-valued combinations) and kept.
pub(crate) struct ClientMetrics {
    duration: [LazyHandle<Histogram>; OPS.len()],
    errors: [[LazyHandle<Counter>; KINDS.len()]; OPS.len()],
    pub(crate) connected: Gauge,
}

impl ClientMetrics {
    pub(crate) fn new() -> Self {
        Self {
            duration: std::array::from_fn(|_| LazyHandle::new()),
            errors: std::array::from_fn(|_| std::array::from_fn(|_| LazyHandle::new())),
            connected: metrics::gauge!(REDIS_CONNECTED),
        }
    }

    #[inline]
    pub(crate) fn duration(&self, op: Op) -> &Histogram {
        self.duration[op as usize]
            .get(|| metrics::histogram!(REDIS_OPERATION_DURATION_SECONDS, "operation" => op.name()))
    }

    pub(crate) fn error(&self, op: Op, kind: &str) {
        let k = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        let name = KINDS[k];
        self.errors[op as usize][k]
            .get(|| metrics::counter!(REDIS_ERRORS_TOTAL, "operation" => op.name(), "kind" => name))
            .increment(1);
    }
}
