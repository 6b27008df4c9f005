//! Metric handles resolved on first use: a label combination is registered with the recorder
//! the first time it is recorded, so a scrape shows only what happened (no zero-valued series
//! for outcomes never seen), and the steady-state cost is one atomic load before the
//! recorder's own increment.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, SharedString};

/// One metric handle, resolved by the first call that records into it.
pub(crate) struct LazyHandle<T>(OnceLock<T>);

impl<T> LazyHandle<T> {
    /// An unresolved handle.
    pub(crate) const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// The handle, resolving it with `make` on first use.
    #[inline]
    pub(crate) fn get(&self, make: impl FnOnce() -> T) -> &T {
        match self.0.get() {
            Some(handle) => handle,
            None => self.resolve(make),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }
}

impl<T> Default for LazyHandle<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The name of an instrument built without one.
pub(crate) const UNNAMED: &str = "unnamed";

/// A counter family with labels `name` and `outcome`, one lazily resolved handle per outcome
/// (indexed like `outcomes`).
pub(crate) struct OutcomeCounters<const N: usize> {
    metric: &'static str,
    name: SharedString,
    outcomes: &'static [&'static str; N],
    cells: [LazyHandle<Counter>; N],
}

impl<const N: usize> OutcomeCounters<N> {
    /// Counters of `metric` for the instrument `name`.
    pub(crate) fn new(
        metric: &'static str,
        name: SharedString,
        outcomes: &'static [&'static str; N],
    ) -> Self {
        Self {
            metric,
            name,
            outcomes,
            cells: [const { LazyHandle::new() }; N],
        }
    }

    /// For a `static`: the counters of an instrument named by a string literal.
    pub(crate) const fn new_static(
        metric: &'static str,
        name: &'static str,
        outcomes: &'static [&'static str; N],
    ) -> Self {
        Self {
            metric,
            name: SharedString::const_str(name),
            outcomes,
            cells: [const { LazyHandle::new() }; N],
        }
    }

    /// Adds one to the counter of outcome `i` (an index into `outcomes`).
    #[inline]
    pub(crate) fn increment(&self, i: usize) {
        if let Some(cell) = self.cells.get(i) {
            cell.get(|| self.make(i)).increment(1);
        }
    }

    #[cold]
    fn make(&self, i: usize) -> Counter {
        let outcome = self.outcomes.get(i).copied().unwrap_or("unknown");
        metrics::counter!(self.metric, "name" => self.name.clone(), "outcome" => outcome)
    }

    /// The instrument's name, as its label carries it.
    pub(crate) fn name(&self) -> &SharedString {
        &self.name
    }
}

impl<const N: usize> std::fmt::Debug for OutcomeCounters<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeCounters")
            .field("metric", &self.metric)
            .field("name", &&*self.name)
            .finish_non_exhaustive()
    }
}

/// A gauge with label `name`, resolved on first use.
pub(crate) struct NamedGauge {
    metric: &'static str,
    name: SharedString,
    cell: LazyHandle<Gauge>,
}

impl NamedGauge {
    /// The gauge `metric{name}`.
    pub(crate) fn new(metric: &'static str, name: SharedString) -> Self {
        Self {
            metric,
            name,
            cell: LazyHandle::new(),
        }
    }

    /// The handle (registering the series on first use).
    #[inline]
    pub(crate) fn get(&self) -> &Gauge {
        self.cell
            .get(|| metrics::gauge!(self.metric, "name" => self.name.clone()))
    }
}

/// A histogram with label `name`, resolved on first use.
pub(crate) struct NamedHistogram {
    metric: &'static str,
    name: SharedString,
    cell: LazyHandle<Histogram>,
}

impl NamedHistogram {
    /// The histogram `metric{name}`.
    pub(crate) fn new(metric: &'static str, name: SharedString) -> Self {
        Self {
            metric,
            name,
            cell: LazyHandle::new(),
        }
    }

    /// For a `static`: the histogram of an instrument named by a string literal.
    pub(crate) const fn new_static(metric: &'static str, name: &'static str) -> Self {
        Self {
            metric,
            name: SharedString::const_str(name),
            cell: LazyHandle::new(),
        }
    }

    /// The handle (registering the series on first use).
    #[inline]
    pub(crate) fn get(&self) -> &Histogram {
        self.cell
            .get(|| metrics::histogram!(self.metric, "name" => self.name.clone()))
    }
}
