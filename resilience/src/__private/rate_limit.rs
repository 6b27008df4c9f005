//! `#[rate_limit]`: limiter cells, keys and checks.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{Outcome, rejected_at_runtime};
use crate::rate_limit::{KeyedRateLimiter, RateLimited, RateLimiter};

/// Turns a rate-limit rejection into the wrapped function's error type.
#[diagnostic::on_unimplemented(
    message = "`#[rate_limit]` needs the function's error type `{Self}` to implement `From<RateLimited>`",
    label = "`{Self}` cannot hold the limiter's rejection",
    note = "add `impl From<resilience::RateLimited> for {Self}`, or return `anyhow::Error` / `Box<dyn Error + Send + Sync>`"
)]
pub trait FromRateLimited {
    fn from_rate_limited(error: RateLimited) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<RateLimited>> FromRateLimited for E {
    #[inline]
    fn from_rate_limited(error: RateLimited) -> Self {
        E::from(error)
    }
}

/// `#[rate_limit]`'s numbers: `count` calls per `period_secs`, bucket of `burst` (default
/// `count`).
pub struct RateSpec {
    pub count: u32,
    pub period_secs: u64,
    pub burst: Option<u32>,
}

/// Builds a limiter (in-memory or keyed: their builders share these methods) from the numbers
/// the macro checked.
macro_rules! build_limiter {
    ($builder:expr, $spec:expr) => {{
        let spec: &RateSpec = $spec;
        let built = $builder
            .rate(spec.count, Duration::from_secs(spec.period_secs))
            .burst(spec.burst.unwrap_or(spec.count))
            .build();
        match built {
            Ok(limiter) => limiter,
            Err(error) => rejected_at_runtime("#[rate_limit]", &error),
        }
    }};
}
#[cfg(feature = "redis")]
pub(super) use build_limiter;

/// The limiter of one `#[rate_limit]` function (a `static` in the generated body).
pub struct LimiterCell {
    spec: RateSpec,
    /// The function's path: the limiter's name.
    name: &'static str,
    limiter: OnceLock<RateLimiter>,
}

impl LimiterCell {
    pub const fn new(spec: RateSpec, name: &'static str) -> Self {
        Self {
            spec,
            name,
            limiter: OnceLock::new(),
        }
    }

    #[inline]
    pub fn get(&self) -> &RateLimiter {
        self.limiter
            .get_or_init(|| build_limiter!(RateLimiter::builder().name(self.name), &self.spec))
    }
}

/// The keyed limiter of one `#[rate_limit(key = ...)]` function.
pub struct KeyedLimiterCell {
    spec: RateSpec,
    /// The function's path: the limiter's name.
    name: &'static str,
    limiter: OnceLock<KeyedRateLimiter<String>>,
}

impl KeyedLimiterCell {
    pub const fn new(spec: RateSpec, name: &'static str) -> Self {
        Self {
            spec,
            name,
            limiter: OnceLock::new(),
        }
    }

    #[inline]
    pub fn get(&self) -> &KeyedRateLimiter<String> {
        self.limiter
            .get_or_init(|| build_limiter!(KeyedRateLimiter::builder().name(self.name), &self.spec))
    }
}

/// `Some(Err(..))` to return at once when the call is not admitted.
#[inline]
pub fn rate_limit_check<R>(limiter: &RateLimiter) -> Option<R>
where
    R: Outcome,
    R::Err: FromRateLimited,
{
    match limiter.check() {
        Ok(()) => None,
        Err(limited) => Some(R::from_result(Err(R::Err::from_rate_limited(limited)))),
    }
}

/// A `#[rate_limit(key = ...)]` key: strings without allocating, numbers and other `Display`
/// values through a string.
#[diagnostic::on_unimplemented(
    message = "`#[rate_limit(key = ...)]` needs a string or a number as the key, not `{Self}`",
    label = "this key is not a string or a number",
    note = "pass a `&str` / `String`, an integer, or format the key yourself: `key = id.to_string()`"
)]
pub trait LimitKey {
    fn with_key<T>(&self, f: impl FnOnce(&str) -> T) -> T;

    /// The key as a string to keep across an `.await` (the Redis backend): borrowed when it is
    /// one already.
    fn key_str(&self) -> Cow<'_, str>;
}

impl LimitKey for str {
    #[inline]
    fn with_key<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        f(self)
    }

    fn key_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl LimitKey for String {
    #[inline]
    fn with_key<T>(&self, f: impl FnOnce(&str) -> T) -> T {
        f(self)
    }

    fn key_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

/// References and smart pointers to a key are keys.
macro_rules! forward_keys {
    ($($t:ty)*) => {$(
        impl<K: LimitKey + ?Sized> LimitKey for $t {
            #[inline]
            fn with_key<T>(&self, f: impl FnOnce(&str) -> T) -> T {
                (**self).with_key(f)
            }

            fn key_str(&self) -> Cow<'_, str> {
                (**self).key_str()
            }
        }
    )*};
}
forward_keys!(&K Box<K> Arc<K>);

macro_rules! number_keys {
    ($($t:ty)*) => {$(
        impl LimitKey for $t {
            #[inline]
            fn with_key<T>(&self, f: impl FnOnce(&str) -> T) -> T {
                f(&self.to_string())
            }

            fn key_str(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
        }
    )*};
}
number_keys!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize char);

/// [`rate_limit_check`] for a keyed limiter.
#[inline]
pub fn rate_limit_check_key<R, K>(limiter: &KeyedRateLimiter<String>, key: &K) -> Option<R>
where
    R: Outcome,
    R::Err: FromRateLimited,
    K: LimitKey + ?Sized,
{
    match key.with_key(|key| limiter.check_key(key)) {
        Ok(()) => None,
        Err(error) => {
            // One token never exceeds the capacity (burst ≥ 1), so every refusal is "later".
            let retry_after = error.retry_after().unwrap_or(Duration::ZERO);
            let limited = RateLimited { retry_after };
            Some(R::from_result(Err(R::Err::from_rate_limited(limited))))
        }
    }
}
