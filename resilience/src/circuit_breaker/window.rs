//! Failure-rate windows.
//!
//! The rate can only cross the threshold when a failure is recorded, so both windows are cheap
//! for successes and do their sums on failures:
//! - count window: successes go to per-thread striped counters (one uncontended atomic add, no
//!   shared cache line between threads); failures, under the breaker's lock, remember their
//!   position in the call sequence, so "failures among the last `n` calls" is exact up to the
//!   order of calls that race each other;
//! - time window: ten buckets of a tenth of the window each, keyed by the bucket's index in time;
//!   a bucket that comes round again is cleared under a small lock (once per bucket width).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Per-thread stripes of a counter. A thread always adds to the same stripe, and consecutive
/// threads get different stripes, so two threads never share a cache line.
pub(crate) struct StripedCounter {
    stripes: Box<[Padded]>,
}

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

const STRIPES: usize = 16;

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let mut v = i.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            i.set(v);
        }
        v
    })
}

impl StripedCounter {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Padded::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn increment(&self) {
        // `stripe_index` is always below STRIPES; `get` keeps the path panic-free anyway.
        if let Some(s) = self.stripes.get(stripe_index()) {
            s.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.0.load(Ordering::Relaxed)))
    }
}

/// The failure side of a count window; lives under the breaker's lock.
pub(crate) struct CountWindow {
    size: u64,
    /// Positions (1-based, in the sequence of all calls) of the failures still in the window.
    failures: VecDeque<u64>,
    failures_total: u64,
    /// Position of the last call before the window was last cleared.
    base: u64,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            size: u64::from(size),
            failures: VecDeque::new(),
            failures_total: 0,
            base: 0,
        }
    }

    /// Records a failure after `successes` successes in total; returns (calls, failures) in the
    /// window, this failure included.
    pub(crate) fn record_failure(&mut self, successes: u64) -> (u64, u64) {
        self.failures_total += 1;
        let pos = successes.wrapping_add(self.failures_total);
        self.failures.push_back(pos);
        self.stats_at(pos)
    }

    /// (calls, failures) in the window after `successes` successes in total.
    pub(crate) fn stats(&mut self, successes: u64) -> (u64, u64) {
        self.stats_at(successes.wrapping_add(self.failures_total))
    }

    fn stats_at(&mut self, pos: u64) -> (u64, u64) {
        let start = pos.saturating_sub(self.size);
        while self.failures.front().is_some_and(|&p| p <= start) {
            self.failures.pop_front();
        }
        let calls = pos.saturating_sub(self.base).min(self.size);
        (calls, self.failures.len() as u64)
    }

    /// Empties the window (on entering Closed).
    pub(crate) fn clear(&mut self, successes: u64) {
        self.failures.clear();
        self.base = successes.wrapping_add(self.failures_total);
    }
}

const BUCKETS: u64 = 10;
const EMPTY: u64 = u64::MAX;

#[repr(align(64))]
struct Bucket {
    /// Index in time (`now / width`) of the bucket's calls, `EMPTY` if none.
    stamp: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

/// A time window of ten buckets.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    width_nanos: u64,
    rotate: Mutex<()>,
}

impl TimeWindow {
    pub(crate) fn new(window_nanos: u64) -> Self {
        Self {
            buckets: (0..BUCKETS)
                .map(|_| Bucket {
                    stamp: AtomicU64::new(EMPTY),
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                })
                .collect(),
            width_nanos: (window_nanos / BUCKETS).max(1),
            rotate: Mutex::new(()),
        }
    }

    fn bucket(&self, idx: u64) -> Option<&Bucket> {
        self.buckets.get((idx % BUCKETS) as usize)
    }

    /// Records a call at `now` (nanoseconds on the breaker's clock).
    pub(crate) fn record(&self, now: u64, failure: bool) {
        let idx = now / self.width_nanos;
        let Some(b) = self.bucket(idx) else { return };
        if b.stamp.load(Ordering::Acquire) != idx {
            let _guard = self.rotate.lock().unwrap_or_else(|p| p.into_inner());
            let stamp = b.stamp.load(Ordering::Acquire);
            // An older bucket comes round again: clear it. A newer stamp means this caller's clock
            // reading is a whole window old; its call then lands in the newer bucket.
            if stamp == EMPTY || stamp < idx {
                b.calls.store(0, Ordering::Relaxed);
                b.failures.store(0, Ordering::Relaxed);
                b.stamp.store(idx, Ordering::Release);
            }
        }
        b.calls.fetch_add(1, Ordering::Relaxed);
        if failure {
            b.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (calls, failures) in the window ending at `now`.
    pub(crate) fn stats(&self, now: u64) -> (u64, u64) {
        let idx = now / self.width_nanos;
        self.buckets.iter().fold((0, 0), |(calls, fails), b| {
            let stamp = b.stamp.load(Ordering::Acquire);
            if stamp != EMPTY && stamp <= idx && idx - stamp < BUCKETS {
                (
                    calls + b.calls.load(Ordering::Relaxed),
                    fails + b.failures.load(Ordering::Relaxed),
                )
            } else {
                (calls, fails)
            }
        })
    }

    /// Empties the window (on entering Closed).
    pub(crate) fn clear(&self) {
        let _guard = self.rotate.lock().unwrap_or_else(|p| p.into_inner());
        for b in self.buckets.iter() {
            b.stamp.store(EMPTY, Ordering::Release);
            b.calls.store(0, Ordering::Relaxed);
            b.failures.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_n_calls() {
        let mut w = CountWindow::new(4);
        // S F S S F: window of 4 = F S S F.
        assert_eq!(w.record_failure(1), (2, 1));
        assert_eq!(w.record_failure(3), (4, 2));
        // Three more successes push the first failure out: F S S S.
        assert_eq!(w.stats(6), (4, 1));
        w.clear(6);
        assert_eq!(w.stats(6), (0, 0));
        assert_eq!(w.record_failure(6), (1, 1));
    }

    #[test]
    fn time_window_drops_old_buckets() {
        let w = TimeWindow::new(1_000);
        w.record(0, true);
        w.record(50, false);
        w.record(150, false);
        assert_eq!(w.stats(150), (3, 1));
        // At 1_000 the bucket [0, 100) has left the window.
        assert_eq!(w.stats(1_000), (1, 0));
        w.record(1_010, true); // reuses bucket 0's slot
        assert_eq!(w.stats(1_010), (2, 1));
        w.clear();
        assert_eq!(w.stats(1_010), (0, 0));
    }

    #[test]
    fn striped_counter_sums_threads() {
        let c = StripedCounter::new();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| (0..1000).for_each(|_| c.increment()));
            }
        });
        assert_eq!(c.sum(), 3000);
    }
}
