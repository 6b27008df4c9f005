//! Retry policies: the builder and the validated, cloneable [`RetryPolicy`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, apply_jitter};
use super::engine::RetryMetrics;
use super::error::{AttemptFailure, RetryEvent};
use super::preset::RetryPreset;
use crate::error::ConfigError;

/// When the total deadline (`total_timeout`) starts counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeadlineStart {
    /// When the first attempt starts (the default): the deadline covers every attempt and
    /// wait, so a first attempt that hangs ends at the deadline. An async attempt's clock starts
    /// at its first `Pending` (one ready on its first poll reads no clock and arms no timer, and
    /// time its first poll spends blocking the thread is not counted); a blocking loop reads the
    /// clock before the first attempt.
    #[default]
    FirstAttempt,
    /// At the first failure (opt-in; the behaviour before the default changed): the first
    /// attempt is bounded only by `attempt_timeout`, and the deadline then bounds the retries.
    FirstFailure,
}

/// Timeouts this long or longer mean "none" (about 30 years: tokio's own cap on a timer, far
/// beyond any process's life), so no deadline arithmetic can overflow or reach the end of a
/// clock's range.
pub(crate) const NO_TIMEOUT_FROM: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

type Predicate = dyn Fn(&dyn Any) -> Option<bool> + Send + Sync;

/// Warns, once, that a hook typed for one error type was handed another (it then does not
/// apply): the typed-predicate pitfall of a type-erased policy.
struct MismatchWarning {
    hook: &'static str,
    expected: &'static str,
    warned: std::sync::atomic::AtomicBool,
}

impl MismatchWarning {
    fn new<E>(hook: &'static str) -> Self {
        Self {
            hook,
            expected: std::any::type_name::<E>(),
            warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn warn(&self) {
        if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                hook = self.hook,
                expected = self.expected,
                "a retry policy's `{}` hook is typed for `{}` but the retried operation fails with \
                 another error type: the hook does not apply (type it for the operation's error type)",
                self.hook,
                self.expected,
            );
        }
    }
}
type Observer = dyn Fn(&RetryEvent<'_, dyn Any>) + Send + Sync;

/// The type-erased predicate and observers, behind one `Arc` so a policy clones cheaply.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) retry_if: Option<Arc<Predicate>>,
    pub(crate) on_retry: Vec<Arc<Observer>>,
    /// The metric handles of a named policy (unnamed ones share `name="unnamed"`).
    pub(crate) metrics: Option<Arc<RetryMetrics>>,
}

/// A validated retry policy: how many attempts, how long to wait between them, for how long in
/// total, which errors to retry and who to tell. Cheap to clone (one optional `Arc`), `Send` and
/// `Sync`; share one instance between tasks with [`RetryPolicy::retry`] (takes `&self`).
///
/// `RetryPolicy::default()` is the `standard` preset: 3 attempts, 1 s initial delay, exponential
/// backoff with jitter (multiplier 2, max delay 10 s), 30 s total.
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) multiplier: f64,
    pub(crate) jitter: f64,
    pub(crate) total_timeout: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline_start: DeadlineStart,
    pub(crate) seed: Option<u64>,
    pub(crate) hooks: Option<Arc<Hooks>>,
    pub(crate) cancel: Option<CancellationToken>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPreset::Standard.policy()
    }
}

impl From<RetryPreset> for RetryPolicy {
    fn from(p: RetryPreset) -> Self {
        p.policy()
    }
}

impl From<&RetryPolicy> for RetryPolicy {
    fn from(p: &RetryPolicy) -> Self {
        p.clone()
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = self.hooks.as_deref();
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("multiplier", &self.multiplier)
            .field("jitter", &self.jitter)
            .field("total_timeout", &self.total_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline_start", &self.deadline_start)
            .field("seed", &self.seed)
            .field("name", &self.name())
            .field("retry_if", &hooks.is_some_and(|h| h.retry_if.is_some()))
            .field("on_retry", &hooks.map_or(0, |h| h.on_retry.len()))
            .field("cancellable", &self.cancel.is_some())
            .finish()
    }
}

impl RetryPolicy {
    /// A builder with the default (`standard`) numbers.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::from_policy(Self::default())
    }

    /// A builder starting from this policy (its hooks and token included).
    pub fn to_builder(&self) -> RetryPolicyBuilder {
        RetryPolicyBuilder::from_policy(self.clone())
    }

    /// Maximum number of attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// The backoff strategy.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }
    /// The first retry's delay (before jitter).
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }
    /// The longest computed delay (a Retry-After hint may ask for more).
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }
    /// The growth factor of the exponential strategies.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }
    /// The jitter factor in `[0, 1]`: a delay is shortened by up to this fraction of itself.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    /// The deadline of the whole sequence, if any.
    pub fn total_timeout(&self) -> Option<Duration> {
        self.total_timeout
    }
    /// The limit on each attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }
    /// When the total deadline starts counting.
    pub fn deadline_start(&self) -> DeadlineStart {
        self.deadline_start
    }

    /// The delay before retry `retry` (1-based: the wait after the first failure is retry 1),
    /// with `random` in `[0, 1]` as the jitter draw (ignored without jitter). Always at most
    /// [`max_delay`](Self::max_delay).
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let base =
            self.backoff
                .base_delay(retry, self.initial_delay, self.multiplier, self.max_delay);
        apply_jitter(base, self.jitter, random)
    }

    /// The policy's predicate for `E`, falling back to [`Retryable`](super::Retryable).
    pub(crate) fn is_retryable<E: super::Retryable + 'static>(&self, e: &E) -> bool {
        self.hooks
            .as_deref()
            .and_then(|h| h.retry_if.as_ref())
            .and_then(|p| p(e))
            .unwrap_or_else(|| e.is_retryable())
    }

    pub(crate) fn notify<E: 'static>(
        &self,
        attempt: u32,
        delay: Duration,
        error: AttemptFailure<'_, E>,
    ) {
        let Some(hooks) = self.hooks.as_deref() else {
            return;
        };
        if hooks.on_retry.is_empty() {
            return;
        }
        let error: AttemptFailure<'_, dyn Any> = match error {
            AttemptFailure::Error(e) => AttemptFailure::Error(e),
            AttemptFailure::Timeout(t) => AttemptFailure::Timeout(t),
        };
        let event = RetryEvent {
            attempt,
            max_attempts: self.max_attempts,
            delay,
            error,
        };
        for observer in &hooks.on_retry {
            observer(&event);
        }
    }
}

/// Builds a [`RetryPolicy`]; every setter is optional and [`build`](Self::build) validates.
///
/// ```
/// use std::time::Duration;
/// use resilience::retry::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(5)
///     .backoff(Backoff::Exponential)
///     .initial_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(2))
///     .total_timeout(Duration::from_secs(10))
///     .retry_if(|e: &std::io::Error| e.kind() != std::io::ErrorKind::PermissionDenied)
///     .on_retry(|ev: &resilience::retry::RetryEvent<'_, std::io::Error>| {
///         eprintln!("attempt {}/{} failed, retrying in {:?}", ev.attempt, ev.max_attempts, ev.delay)
///     })
///     .build()?;
/// assert_eq!(policy.delay(3, 0.0), Duration::from_millis(400));
///
/// let bad = RetryPolicy::builder().max_attempts(0).build();
/// assert_eq!(bad.unwrap_err().field, "max_attempts");
/// # Ok::<(), resilience::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
    jitter: Option<f64>,
    hooks: Hooks,
}

impl fmt::Debug for RetryPolicyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("policy", &self.policy)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl RetryPolicyBuilder {
    pub(super) fn from_policy(mut policy: RetryPolicy) -> Self {
        let hooks = policy
            .hooks
            .take()
            .map(|h| Hooks::clone(&h))
            .unwrap_or_default();
        let jitter = (policy.jitter != policy.backoff.default_jitter()).then_some(policy.jitter);
        Self {
            policy,
            jitter,
            hooks,
        }
    }

    /// Starts from a preset's numbers (replaces attempts, delays, backoff and total timeout).
    pub fn preset(mut self, preset: RetryPreset) -> Self {
        let p = preset.policy();
        self.policy.max_attempts = p.max_attempts;
        self.policy.backoff = p.backoff;
        self.policy.initial_delay = p.initial_delay;
        self.policy.max_delay = p.max_delay;
        self.policy.multiplier = p.multiplier;
        self.policy.total_timeout = p.total_timeout;
        self.jitter = None;
        self
    }

    /// Maximum number of attempts, the first included (at least 1; 1 means no retry).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.policy.max_attempts = n;
        self
    }

    /// The backoff strategy (default exponential-jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.policy.backoff = backoff;
        self
    }

    /// The first retry's delay (default 1 s). Zero retries at once.
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.policy.initial_delay = d;
        self
    }

    /// The longest computed delay (default 10 s); at least `initial_delay`.
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.policy.max_delay = d;
        self
    }

    /// Growth factor of the exponential strategies (default 2; at least 1, finite). Fixed and
    /// linear backoff do not use it.
    pub fn multiplier(mut self, m: f64) -> Self {
        self.policy.multiplier = m;
        self
    }

    /// Jitter factor in `[0, 1]`: each delay is shortened by a random fraction of itself of at
    /// most this much. Default 0.5 for exponential-jitter, 0 (none) for the other strategies,
    /// which it also applies to when set.
    pub fn jitter(mut self, j: f64) -> Self {
        self.jitter = Some(j);
        self
    }

    /// Seeds the jitter's random generator, making each retried sequence's delays reproducible
    /// (tests, simulations). Unseeded policies use the thread-local generator.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.policy.seed = Some(seed);
        self
    }

    /// Deadline of the whole sequence, attempts and waits included (non-zero). See
    /// [`deadline_start`](Self::deadline_start) for when it starts counting. `Duration::MAX`
    /// (or anything from 30 years up) means no deadline, like
    /// [`no_total_timeout`](Self::no_total_timeout).
    pub fn total_timeout(mut self, d: Duration) -> Self {
        self.policy.total_timeout = Some(d);
        self
    }

    /// Removes the total deadline: only `max_attempts` ends the sequence.
    pub fn no_total_timeout(mut self) -> Self {
        self.policy.total_timeout = None;
        self
    }

    /// Limit on each attempt (non-zero); an attempt running longer is cut and counts as a
    /// retryable failure. `Duration::MAX` (or anything from 30 years up) means no limit.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.policy.attempt_timeout = Some(d);
        self
    }

    /// When the total deadline starts counting (default [`DeadlineStart::FirstAttempt`]).
    pub fn deadline_start(mut self, start: DeadlineStart) -> Self {
        self.policy.deadline_start = start;
        self
    }

    /// Decides which errors of type `E` are retried, instead of [`Retryable`](super::Retryable).
    /// Applies when the retried operation's error type is exactly `E`; for other error types the
    /// `Retryable` classification stays in force.
    ///
    /// A predicate handed an error of another type logs a warning (once per predicate): that
    /// is almost always a mistake — a wrapper type, `anyhow::Error`, or a `Box<dyn Error>`
    /// around `E` is not `E`. `#[retry(retry_if = ...)]` checks the type at compile time.
    pub fn retry_if<E: 'static>(mut self, f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        let mismatch = MismatchWarning::new::<E>("retry_if");
        self.hooks.retry_if = Some(Arc::new(move |e: &dyn Any| match e.downcast_ref::<E>() {
            Some(e) => Some(f(e)),
            None => {
                mismatch.warn();
                None
            }
        }));
        self
    }

    /// Calls `f` before each wait with the failed attempt, the delay and the error. Applies when
    /// the retried operation's error type is exactly `E`. Several observers may be added; keep
    /// them short, they run on the retrying task. An observer handed an error of another type
    /// logs a warning (once per observer), as [`retry_if`](Self::retry_if) does.
    pub fn on_retry<E: 'static>(
        mut self,
        f: impl Fn(&RetryEvent<'_, E>) + Send + Sync + 'static,
    ) -> Self {
        let mismatch = MismatchWarning::new::<E>("on_retry");
        self.hooks
            .on_retry
            .push(Arc::new(move |ev: &RetryEvent<'_, dyn Any>| {
                let error = match ev.error {
                    AttemptFailure::Error(e) => match e.downcast_ref::<E>() {
                        Some(e) => AttemptFailure::Error(e),
                        None => {
                            mismatch.warn();
                            return;
                        }
                    },
                    AttemptFailure::Timeout(t) => AttemptFailure::Timeout(t),
                };
                f(&RetryEvent {
                    attempt: ev.attempt,
                    max_attempts: ev.max_attempts,
                    delay: ev.delay,
                    error,
                });
            }));
        self
    }

    /// A token that stops the sequence: a wait in progress ends at once with
    /// [`RetryError::Cancelled`](super::RetryError::Cancelled), and no further attempt starts.
    /// A running attempt is not interrupted (drop the future to abort it).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.policy.cancel = Some(token);
        self
    }

    /// Validates and returns the policy.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let Self {
            mut policy,
            jitter,
            hooks,
        } = self;
        if policy.max_attempts == 0 {
            return Err(ConfigError::new("max_attempts", "must be at least 1"));
        }
        if policy.max_delay < policy.initial_delay {
            return Err(ConfigError::new(
                "max_delay",
                format!(
                    "must be at least initial_delay ({:?}), got {:?}",
                    policy.initial_delay, policy.max_delay
                ),
            ));
        }
        if !(policy.multiplier.is_finite() && policy.multiplier >= 1.0) {
            return Err(ConfigError::new(
                "multiplier",
                format!(
                    "must be a finite number of at least 1, got {}",
                    policy.multiplier
                ),
            ));
        }
        let jitter = jitter.unwrap_or(policy.backoff.default_jitter());
        if !(0.0..=1.0).contains(&jitter) {
            return Err(ConfigError::new(
                "jitter",
                format!("must be within [0, 1], got {jitter}"),
            ));
        }
        policy.jitter = jitter;
        if policy.total_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "total_timeout",
                "must be greater than zero (use no_total_timeout to remove it)",
            ));
        }
        if policy.attempt_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "attempt_timeout",
                "must be greater than zero",
            ));
        }
        // A timeout of decades is none: no timer is armed and no instant computed for it.
        policy.total_timeout = policy.total_timeout.filter(|d| *d < NO_TIMEOUT_FROM);
        policy.attempt_timeout = policy.attempt_timeout.filter(|d| *d < NO_TIMEOUT_FROM);
        policy.hooks =
            (hooks.retry_if.is_some() || !hooks.on_retry.is_empty() || hooks.metrics.is_some())
                .then(|| Arc::new(hooks));
        Ok(policy)
    }
}

impl RetryPolicy {
    /// The policy's name (the `name` label of its metrics), if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.metrics().map(RetryMetrics::name)
    }

    #[inline]
    pub(crate) fn metrics(&self) -> Option<&RetryMetrics> {
        self.hooks.as_deref().and_then(|h| h.metrics.as_deref())
    }
}

impl RetryPolicyBuilder {
    /// Names the policy: the `name` label of its `retry_attempts_*` metrics (a policy without
    /// one records under `name="unnamed"`; `#[retry]` names its policy after the function).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.hooks.metrics = Some(Arc::new(RetryMetrics::new(name.into().into())));
        self
    }
}
