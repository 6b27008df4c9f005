//! A validated rate (interval between tokens) and burst, shared by the in-memory limiters.

use std::time::Duration;

use crate::ConfigError;

/// The longest refill time (`interval × burst`) a quota may have, and the latest limiter time:
/// 2^63 - 1 ns, about 292 years. Limiter time is clamped to it, so `now + backlog` (both at most
/// this) always fits in a `u64`: no quota a builder accepts and no clock reading can overflow.
pub(crate) const MAX_NANOS: u64 = u64::MAX / 2;

/// How fast tokens come back and how many the bucket holds: a GCRA (token bucket) quota.
///
/// Built by the limiters' builders; the interval between tokens is `period / count`, rounded up
/// to whole nanoseconds, so a limiter never admits more than the stated rate. The refill time
/// (`interval × burst`) must fit in 2^63 - 1 ns (about 292 years); builders refuse more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds between two tokens (≥ 1).
    pub(crate) interval: u64,
    /// Bucket capacity (≥ 1).
    pub(crate) burst: u32,
    /// `interval × burst`: how far ahead of now the theoretical arrival time may run.
    pub(crate) limit: u64,
}

impl Quota {
    /// The time between two tokens.
    pub fn replenish_interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// The bucket's capacity: how many requests an idle limiter admits at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The time an empty bucket takes to fill up again (`burst × interval`).
    pub fn refill_time(&self) -> Duration {
        Duration::from_nanos(self.limit)
    }
}

/// The rate options both limiter builders share.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct QuotaSpec {
    /// `(count, period, builder method that set it)`.
    rate: Option<(u32, Duration, &'static str)>,
    burst: Option<u32>,
    /// Set by a preset: the burst is this many times the rate's count unless `burst` is set.
    burst_factor: Option<u32>,
}

impl QuotaSpec {
    /// A preset's rate, its burst following later rate changes at the preset's ratio.
    pub(crate) fn set_preset(&mut self, preset: super::LimiterPreset) {
        self.rate = Some((preset.per_second(), Duration::from_secs(1), "preset"));
        self.burst = None;
        self.burst_factor = Some(super::LimiterPreset::BURST_FACTOR);
    }

    pub(crate) fn set_rate(&mut self, count: u32, period: Duration, field: &'static str) {
        self.rate = Some((count, period, field));
    }

    pub(crate) fn set_burst(&mut self, burst: u32) {
        self.burst = Some(burst);
    }

    pub(crate) fn build(&self) -> Result<Quota, ConfigError> {
        let Some((count, period, field)) = self.rate else {
            return Err(ConfigError::new(
                "rate",
                "is required: set it with per_second, per_minute, per_hour, per or rate",
            ));
        };
        if count == 0 {
            return Err(ConfigError::new(field, "must be at least 1"));
        }
        if period.is_zero() {
            return Err(ConfigError::new(field, "period must be greater than zero"));
        }
        let period_ns = period.as_nanos();
        if period_ns < u128::from(count) {
            return Err(ConfigError::new(
                field,
                "is too high: more than one token per nanosecond",
            ));
        }
        let interval = u64::try_from(period_ns.div_ceil(u128::from(count)))
            .ok()
            .filter(|&i| i <= MAX_NANOS)
            .ok_or_else(|| {
                ConfigError::new(field, "period is too long (over 292 years per token)")
            })?;
        let burst = match self.burst {
            Some(0) => return Err(ConfigError::new("burst", "must be at least 1")),
            Some(b) => b,
            None => match self.burst_factor {
                Some(factor) => count.checked_mul(factor).ok_or_else(|| {
                    ConfigError::new(
                        field,
                        "is too high for the preset's burst (the rate times its burst factor must fit in a u32); set `burst` explicitly",
                    )
                })?,
                None => count,
            },
        };
        let limit = interval
            .checked_mul(u64::from(burst))
            .filter(|&l| l <= MAX_NANOS)
            .ok_or_else(|| {
                ConfigError::new(
                    "burst",
                    "is too large for this rate: refilling it would take over 292 years",
                )
            })?;
        Ok(Quota {
            interval,
            burst,
            limit,
        })
    }
}

/// Generates the rate methods (`per_second`, ..., `burst`) on a builder with a `quota: QuotaSpec`.
macro_rules! quota_methods {
    () => {
        /// Refill `count` tokens per second; the burst defaults to `count`.
        pub fn per_second(mut self, count: u32) -> Self {
            self.quota
                .set_rate(count, ::std::time::Duration::from_secs(1), "per_second");
            self
        }

        /// Refill `count` tokens per minute; the burst defaults to `count`.
        pub fn per_minute(mut self, count: u32) -> Self {
            self.quota
                .set_rate(count, ::std::time::Duration::from_secs(60), "per_minute");
            self
        }

        /// Refill `count` tokens per hour; the burst defaults to `count`.
        pub fn per_hour(mut self, count: u32) -> Self {
            self.quota
                .set_rate(count, ::std::time::Duration::from_secs(3600), "per_hour");
            self
        }

        /// Refill one token every `period`; the burst defaults to 1.
        pub fn per(mut self, period: ::std::time::Duration) -> Self {
            self.quota.set_rate(1, period, "per");
            self
        }

        /// Refill `count` tokens every `period`; the burst defaults to `count`.
        pub fn rate(mut self, count: u32, period: ::std::time::Duration) -> Self {
            self.quota.set_rate(count, period, "rate");
            self
        }

        /// Starts from a preset's rate and burst ([`LimiterPreset`](crate::rate_limit::LimiterPreset)),
        /// replacing any set before.
        /// A rate set afterwards replaces the preset's and keeps its burst-to-rate ratio
        /// (`.preset(Api).per_second(30)`: burst 60); an explicit `burst` always wins.
        pub fn preset(mut self, preset: crate::rate_limit::LimiterPreset) -> Self {
            self.quota.set_preset(preset);
            self
        }

        /// The bucket's capacity: how many requests an idle limiter admits at once (≥ 1).
        pub fn burst(mut self, burst: u32) -> Self {
            self.quota.set_burst(burst);
            self
        }
    };
}
pub(crate) use quota_methods;
