//! Query statistics in bounded memory: a fixed log-bucket histogram of durations, with exact
//! count, sum, min, max and slow count beside it, and the plain-language recommendations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::pool::PoolStats;

/// Bucket growth factor: bucket `i` holds `[LOW·γ^i, LOW·γ^(i+1))`. Reporting a bucket by
/// `2·lo·γ/(1+γ)` (the point equally far, relatively, from both ends) is off by at most
/// `(γ−1)/(γ+1)` ≈ 1.96 %.
const GAMMA: f64 = 1.04;
/// Durations below this (1 µs) share bucket 0; no database round trip is that fast.
const LOW_NANOS: f64 = 1_000.0;
/// 1 µs · 1.04^570 ≈ 5 h: longer queries share the last bucket (max stays exact).
const BUCKETS: usize = 570;

/// Durations histogram with a fixed number of atomic buckets: memory does not grow with the
/// number of samples, recording takes no lock.
pub(crate) struct DurationHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
    min_nanos: AtomicU64,
    max_nanos: AtomicU64,
    slow: AtomicU64,
    slow_nanos: u64,
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bucket_of(n: u64) -> usize {
    let n = n as f64;
    if n < LOW_NANOS * GAMMA {
        return 0;
    }
    // `as usize` saturates (and maps NaN to 0): no panic for any input.
    let i = ((n / LOW_NANOS).ln() / GAMMA.ln()) as usize;
    i.min(BUCKETS - 1)
}

/// The representative value of bucket `i`, in nanoseconds.
fn value_of(i: usize) -> f64 {
    let lo = LOW_NANOS * GAMMA.powi(i32::try_from(i).unwrap_or(i32::MAX));
    2.0 * lo * GAMMA / (1.0 + GAMMA)
}

impl DurationHistogram {
    pub(crate) fn new(slow_threshold: Duration) -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            min_nanos: AtomicU64::new(u64::MAX),
            max_nanos: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            slow_nanos: nanos(slow_threshold),
        }
    }

    /// Records one duration; `true` when it is slow (at or above the threshold).
    pub(crate) fn record(&self, d: Duration) -> bool {
        let n = nanos(d);
        // Relaxed: each counter is its own statistic; a reader racing a writer sees a sample
        // in one and not yet in another, which only blurs a snapshot that is approximate anyway.
        self.buckets[bucket_of(n)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(n, Ordering::Relaxed);
        self.min_nanos.fetch_min(n, Ordering::Relaxed);
        self.max_nanos.fetch_max(n, Ordering::Relaxed);
        let slow = n >= self.slow_nanos;
        if slow {
            self.slow.fetch_add(1, Ordering::Relaxed);
        }
        slow
    }

    /// Forgets every sample.
    pub(crate) fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum_nanos.store(0, Ordering::Relaxed);
        self.min_nanos.store(u64::MAX, Ordering::Relaxed);
        self.max_nanos.store(0, Ordering::Relaxed);
        self.slow.store(0, Ordering::Relaxed);
    }

    pub(crate) fn slow_threshold(&self) -> Duration {
        Duration::from_nanos(self.slow_nanos)
    }

    /// Bytes this histogram holds, heap included: the same after any number of samples.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of_val(&*self.buckets)
    }

    /// The figures so far; recommendations are added by the caller.
    pub(crate) fn snapshot(&self) -> QueryStats {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return QueryStats {
                slow_threshold: self.slow_threshold(),
                ..QueryStats::default()
            };
        }
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let min = self.min_nanos.load(Ordering::Relaxed);
        let max = self.max_nanos.load(Ordering::Relaxed);
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| -> Duration {
            // The sample of rank ceil(q·n), 1-based, as in the nearest-rank definition.
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    let v = value_of(i).clamp(min as f64, max as f64);
                    return Duration::from_nanos(v as u64);
                }
            }
            Duration::from_nanos(max)
        };
        QueryStats {
            count,
            avg: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed) / count),
            min: Duration::from_nanos(min),
            max: Duration::from_nanos(max),
            p95: quantile(0.95),
            p99: quantile(0.99),
            slow: self.slow.load(Ordering::Relaxed),
            slow_threshold: self.slow_threshold(),
            recommendations: Vec::new(),
        }
    }
}

/// Query figures of a [`MeasuredPool`](super::MeasuredPool) since it was built (or reset):
/// the seed's `total`, `avgDuration`, `minDuration`, `maxDuration`, `p95Duration`,
/// `p99Duration`, `slowCount`, and its recommendations.
///
/// Count, average, min, max and slow count are exact; p95 and p99 come from a log-bucket
/// histogram and are within 2 % of the true sample at that rank.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Queries measured.
    pub count: u64,
    /// Mean duration.
    pub avg: Duration,
    /// Shortest duration.
    pub min: Duration,
    /// Longest duration.
    pub max: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Queries at or above `slow_threshold`.
    pub slow: u64,
    /// The pool's slow-query threshold.
    pub slow_threshold: Duration,
    /// Advice in plain language (slow queries, high latency, a saturated pool); empty when all
    /// is well.
    pub recommendations: Vec<String>,
}

/// Share of slow queries above which they are called "high": 5 % (the seed calls 12 of 150 high).
const SLOW_SHARE: f64 = 0.05;
/// Fewest queries before shares and averages are judged (a handful proves nothing).
const MIN_QUERIES: u64 = 10;

/// The recommendations for these figures and pool state.
pub(crate) fn recommendations(q: &QueryStats, pool: &PoolStats, single: bool) -> Vec<String> {
    let mut out = Vec::new();
    if q.count >= MIN_QUERIES && q.slow as f64 > q.count as f64 * SLOW_SHARE {
        out.push(format!(
            "High number of slow queries detected ({}/{}). Consider query optimization or indexing.",
            q.slow, q.count
        ));
    }
    if q.count >= MIN_QUERIES && q.avg >= q.slow_threshold / 2 && !q.slow_threshold.is_zero() {
        out.push(format!(
            "Average query latency is high ({:.1} ms, slow-query threshold {:.1} ms). Check indexes, query plans and database load.",
            ms(q.avg),
            ms(q.slow_threshold)
        ));
    }
    if q.count >= MIN_QUERIES && q.p99 >= q.slow_threshold.saturating_mul(5) {
        out.push(format!(
            "Query latency has a long tail (p99 {:.1} ms). Look for lock waits or occasional full scans.",
            ms(q.p99)
        ));
    }
    if pool.waiting > 0 {
        out.push(format!(
            "Connection pool saturated: {} caller(s) waiting for a connection ({}/{} in use). Consider raising max_connections or shortening transactions.",
            pool.waiting, pool.active, pool.max
        ));
    } else if !single && pool.max > 0 && pool.active >= pool.max {
        out.push(format!(
            "All {} connections of the pool are in use. Consider raising max_connections if callers start waiting.",
            pool.max
        ));
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn exact_figures_and_quantiles_within_two_percent() {
        let h = DurationHistogram::new(Duration::from_millis(9));
        for i in 1..=10_000 {
            h.record(us(i));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min, us(1));
        assert_eq!(s.max, us(10_000));
        assert_eq!(s.avg, Duration::from_nanos(5_000_500));
        // 9 000 µs .. 10 000 µs inclusive.
        assert_eq!(s.slow, 1_001);
        let close = |got: Duration, want: f64| {
            let err = (got.as_secs_f64() * 1e6 - want).abs() / want;
            assert!(err <= 0.02, "{got:?} vs {want} µs: {err}");
        };
        close(s.p95, 9_500.0);
        close(s.p99, 9_900.0);
    }

    #[test]
    fn every_bucket_reports_within_two_percent() {
        // Sweep a wide range, one sample at a time (quantiles then hit that sample's bucket).
        let mut n: u64 = 1_000;
        while n < 3_600_000_000_000 {
            let h = DurationHistogram::new(Duration::MAX);
            h.record(Duration::from_nanos(n));
            h.record(Duration::from_nanos(1));
            h.record(Duration::from_nanos(u64::MAX / 2));
            // The middle sample is the 2nd of 3: p50 isn't exposed, use the bucket directly.
            let v = value_of(bucket_of(n));
            let err = (v - n as f64).abs() / n as f64;
            assert!(err <= 0.0197, "{n} ns -> {v}: {err}");
            n = n * 17 / 13 + 1;
        }
    }

    #[test]
    fn memory_stays_flat_over_a_million_samples() {
        let h = DurationHistogram::new(Duration::from_millis(100));
        let before = h.memory_bytes();
        for i in 0..1_000_000u64 {
            // Spread over 1 µs .. ~17 min so that many buckets are touched.
            h.record(Duration::from_nanos(1_000 + i * i));
        }
        assert_eq!(h.memory_bytes(), before);
        assert!(before < 8 * 1024, "{before} bytes");
        assert_eq!(h.snapshot().count, 1_000_000);
    }

    #[test]
    fn empty_and_extreme_values() {
        let h = DurationHistogram::new(Duration::ZERO);
        let s = h.snapshot();
        assert_eq!(s.count, 0);
        assert_eq!(s.p99, Duration::ZERO);
        h.record(Duration::ZERO);
        h.record(Duration::MAX);
        let s = h.snapshot();
        assert_eq!(s.count, 2);
        assert_eq!(s.slow, 2);
        assert_eq!(s.max, Duration::from_nanos(u64::MAX));
        h.reset();
        assert_eq!(h.snapshot().count, 0);
    }

    #[test]
    fn recommendations_follow_the_seed() {
        let q = QueryStats {
            count: 150,
            slow: 12,
            avg: Duration::from_millis(45),
            p99: Duration::from_millis(180),
            slow_threshold: Duration::from_millis(100),
            ..QueryStats::default()
        };
        let idle = PoolStats {
            total: 10,
            idle: 8,
            active: 2,
            waiting: 0,
            max: 10,
        };
        let r = recommendations(&q, &idle, false);
        assert_eq!(
            r,
            vec![
                "High number of slow queries detected (12/150). Consider query optimization or indexing."
                    .to_owned()
            ]
        );
        let busy = PoolStats {
            waiting: 3,
            active: 10,
            idle: 0,
            ..idle
        };
        let r = recommendations(&QueryStats::default(), &busy, false);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].starts_with("Connection pool saturated: 3 caller(s)"),
            "{r:?}"
        );
        let full = PoolStats { waiting: 0, ..busy };
        assert_eq!(
            recommendations(&QueryStats::default(), &full, false).len(),
            1
        );
        // SQLite's single connection is always "in use" (the seed's figures): no advice.
        let single = PoolStats {
            total: 1,
            idle: 0,
            active: 1,
            waiting: 0,
            max: 1,
        };
        assert!(recommendations(&QueryStats::default(), &single, true).is_empty());
    }
}
