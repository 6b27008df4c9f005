//! A GCRA limiter per key, in a sharded table whose memory stays bounded.
//!
//! Each entry is just the key and its `AtomicU64` theoretical arrival time. A lookup takes a
//! shard's read lock and does the same lock-free compare-and-swap as [`RateLimiter`]; only a new
//! key takes a write lock. A key whose bucket is full again is *idle*: forgetting it changes no
//! future decision, so it can be evicted at any time. Eviction happens without a manual call:
//! inserting a new key into a shard sweeps that shard's idle keys once the shard has doubled
//! since its last sweep (amortised O(1) per insert), and the total is capped by `max_keys`.
//!
//! When the table holds `max_keys` keys and none is idle, a *new* key is refused with
//! [`CheckError::TooManyKeys`] (and a `retry_after` saying when the first key becomes idle)
//! rather than evicting an active key, which would hand that key a fresh burst. Known keys keep
//! working normally.
//!
//! [`RateLimiter`]: super::RateLimiter

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hashbrown::HashTable;

use super::clock::{Clock, QuantaClock};
use super::decision::{KeyedRateLimit, RateLimitDecision, RateLimitError, RateLimited};
use super::error::CheckError;
use super::gcra::{acquire, cost_of, decide};
use super::quota::{Quota, QuotaSpec, quota_methods};
use crate::ConfigError;

/// The default bound on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A shard is not swept before it holds this many keys (sweeping tiny shards is wasted work).
const MIN_SWEEP_LEN: usize = 32;

struct Entry<K> {
    key: K,
    /// Theoretical arrival time, nanoseconds since the limiter's start.
    tat: AtomicU64,
}

struct ShardTable<K> {
    table: HashTable<Entry<K>>,
    /// Sweep on the next insert once the table holds this many keys.
    sweep_at: usize,
}

/// One lock and its table, on its own cache lines so shards do not false-share.
#[repr(align(128))]
struct Shard<K> {
    inner: RwLock<ShardTable<K>>,
}

impl<K> Shard<K> {
    // The tables hold only atomics and keys, always consistent, so a poisoned lock is usable.
    fn read(&self) -> RwLockReadGuard<'_, ShardTable<K>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, ShardTable<K>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A rate limiter per key (user, IP, tenant, ...) with bounded memory.
///
/// Every key gets its own GCRA bucket with the same quota. Idle keys are evicted automatically
/// as new keys arrive, and at most `max_keys` keys are tracked (see the module docs for what
/// happens at the bound).
///
/// ```
/// use resilience::rate_limit::KeyedRateLimiter;
///
/// let per_user = KeyedRateLimiter::builder().per_second(5).burst(2).max_keys(10_000).build()?;
/// assert!(per_user.check_key("alice").is_ok());
/// assert!(per_user.check_key("alice").is_ok());
/// assert!(per_user.check_key("alice").is_err()); // alice's burst is spent
/// assert!(per_user.check_key("bob").is_ok()); // bob has his own bucket
/// # Ok::<(), resilience::ConfigError>(())
/// ```
pub struct KeyedRateLimiter<K = String, C: Clock = QuantaClock> {
    shards: Box<[Shard<K>]>,
    /// `shards.len() - 1` (a power of two minus one).
    shard_mask: usize,
    hasher: RandomState,
    quota: Quota,
    start: u64,
    clock: C,
    max_keys: usize,
    /// Keys in all shards; a slot is reserved here before a key is inserted.
    len: AtomicUsize,
    /// Limiter time before which a full sweep cannot free anything (the table was full and the
    /// earliest key becomes idle then).
    next_full_sweep: AtomicU64,
}

impl<K: Hash + Eq> KeyedRateLimiter<K> {
    /// A builder; set a rate with `per_second`, `per_minute`, `per_hour`, `per` or `rate`.
    pub fn builder() -> KeyedRateLimiterBuilder<K> {
        KeyedRateLimiterBuilder {
            quota: QuotaSpec::default(),
            max_keys: DEFAULT_MAX_KEYS,
            clock: None,
            _key: PhantomData,
        }
    }
}

impl<K: Hash + Eq, C: Clock> KeyedRateLimiter<K, C> {
    fn new(quota: Quota, max_keys: usize, clock: C) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Like dashmap: a few shards per core keeps write-lock collisions rare.
        let count = (parallelism * 4).next_power_of_two().clamp(4, 256);
        let shards = (0..count)
            .map(|_| Shard {
                inner: RwLock::new(ShardTable {
                    table: HashTable::new(),
                    sweep_at: MIN_SWEEP_LEN,
                }),
            })
            .collect();
        let start = clock.now_nanos();
        Self {
            shards,
            shard_mask: count - 1,
            hasher: RandomState::new(),
            quota,
            start,
            clock,
            max_keys,
            len: AtomicUsize::new(0),
            next_full_sweep: AtomicU64::new(0),
        }
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_nanos().saturating_sub(self.start)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K> {
        // Bits 40.. pick the shard: hashbrown uses the low bits for the bucket and the top 7
        // for its tag, so these stay independent of both.
        &self.shards[(hash >> 40) as usize & self.shard_mask]
    }

    /// Takes one token from `key`'s bucket, or says how long until there is one.
    ///
    /// Fails with [`CheckError::Limited`], or for a key not yet tracked while the table is full
    /// of active keys, [`CheckError::TooManyKeys`].
    #[inline]
    pub fn check_key<Q>(&self, key: &Q) -> Result<(), CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.acquire_key(key, self.quota.interval)
    }

    /// Takes `n` tokens from `key`'s bucket at once, or none; `n` above the burst fails with
    /// [`CheckError::CostExceedsCapacity`]; `n = 0` always succeeds.
    pub fn check_key_n<Q>(&self, key: &Q, n: u32) -> Result<(), CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let cost = cost_of(&self.quota, n)?;
        if cost == 0 {
            return Ok(());
        }
        self.acquire_key(key, cost)
    }

    /// The whole decision for `n` tokens of `key` (remaining, retry and reset times); a refusal
    /// is a decision with `allowed == false`. `n = 0` only looks (and tracks nothing new).
    ///
    /// Errors: [`CheckError::CostExceedsCapacity`], [`CheckError::TooManyKeys`].
    pub fn decide_key<Q>(&self, key: &Q, n: u32) -> Result<RateLimitDecision, CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let cost = cost_of(&self.quota, n)?;
        let quota = self.quota;
        self.with_entry(key, move |tat, now| decide(tat, now, cost, &quota))
    }

    /// Waits until `key` has a token and takes it. Cancel by dropping the future.
    ///
    /// Waits through [`CheckError::TooManyKeys`] too; fails only with
    /// [`CheckError::CostExceedsCapacity`] (never for one token).
    pub async fn until_key_ready<Q>(&self, key: &Q) -> Result<(), CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        loop {
            match self.check_key(key) {
                Ok(()) => return Ok(()),
                Err(err) => match err.retry_after() {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => return Err(err),
                },
            }
        }
    }

    #[inline]
    fn acquire_key<Q>(&self, key: &Q, cost: u64) -> Result<(), CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let limit = self.quota.limit;
        self.with_entry(key, move |tat, now| acquire(tat, now, cost, limit))?
            .map_err(|wait| {
                CheckError::Limited(RateLimited {
                    retry_after: Duration::from_nanos(wait),
                })
            })
    }

    /// Runs `op` on `key`'s state, inserting the key when `op` leaves it non-idle.
    #[inline]
    fn with_entry<Q, R>(&self, key: &Q, op: impl Fn(&AtomicU64, u64) -> R) -> Result<R, CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let now = self.now();
        {
            let guard = shard.read();
            if let Some(entry) = guard.table.find(hash, |e| e.key.borrow() == key) {
                return Ok(op(&entry.tat, now));
            }
        }
        self.insert_slow(shard, hash, key, now, op)
    }

    #[cold]
    fn insert_slow<Q, R>(
        &self,
        shard: &Shard<K>,
        hash: u64,
        key: &Q,
        now: u64,
        op: impl Fn(&AtomicU64, u64) -> R,
    ) -> Result<R, CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut guard = shard.write();
        // Another thread may have inserted it between our read and write locks.
        if let Some(entry) = guard.table.find(hash, |e| e.key.borrow() == key) {
            return Ok(op(&entry.tat, now));
        }
        // A fresh key's bucket is full: decide on a fresh state first, and track the key only
        // if the decision took something (a look with cost 0 tracks nothing).
        let tat = AtomicU64::new(0);
        let result = op(&tat, now);
        if tat.load(Ordering::Relaxed) <= now {
            return Ok(result);
        }
        if guard.table.len() >= guard.sweep_at {
            self.sweep_shard(&mut guard, now);
        }
        if !self.reserve_slot() {
            self.sweep_shard(&mut guard, now);
            if !self.reserve_slot() {
                // Sweep the other shards one lock at a time (never two locks at once).
                drop(guard);
                let wait = self.sweep_all(now);
                guard = shard.write();
                if let Some(entry) = guard.table.find(hash, |e| e.key.borrow() == key) {
                    return Ok(op(&entry.tat, now));
                }
                if !self.reserve_slot() {
                    return Err(CheckError::TooManyKeys {
                        max_keys: self.max_keys,
                        retry_after: Duration::from_nanos(wait),
                    });
                }
            }
        }
        let entry = Entry {
            key: key.to_owned(),
            tat,
        };
        let hasher = &self.hasher;
        guard
            .table
            .insert_unique(hash, entry, |e| hasher.hash_one(&e.key));
        Ok(result)
    }

    /// Reserves room for one more key; false when `max_keys` are tracked.
    fn reserve_slot(&self) -> bool {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_keys).then_some(n + 1)
            })
            .is_ok()
    }

    /// Drops the shard's idle keys; returns how long until its first remaining key is idle.
    fn sweep_shard(&self, shard: &mut ShardTable<K>, now: u64) -> u64 {
        let before = shard.table.len();
        let mut soonest = u64::MAX;
        shard.table.retain(|e| {
            let tat = e.tat.load(Ordering::Relaxed);
            if tat <= now {
                return false;
            }
            soonest = soonest.min(tat - now);
            true
        });
        let after = shard.table.len();
        self.len.fetch_sub(before - after, Ordering::Relaxed);
        shard.sweep_at = (after * 2).max(MIN_SWEEP_LEN);
        if after < before / 2 {
            let hasher = &self.hasher;
            shard.table.shrink_to_fit(|e| hasher.hash_one(&e.key));
        }
        soonest
    }

    /// Sweeps every shard, at most once per "earliest idle time": returns the nanoseconds until
    /// the first tracked key becomes idle.
    fn sweep_all(&self, now: u64) -> u64 {
        let next = self.next_full_sweep.load(Ordering::Relaxed);
        if now < next {
            return next - now;
        }
        let mut soonest = u64::MAX;
        for shard in &self.shards {
            soonest = soonest.min(self.sweep_shard(&mut shard.write(), now));
        }
        let soonest = if soonest == u64::MAX { 0 } else { soonest };
        self.next_full_sweep
            .store(now.saturating_add(soonest), Ordering::Relaxed);
        soonest
    }

    /// Evicts every idle key now (normally unnecessary: inserts sweep on their own); returns
    /// how many were evicted.
    pub fn sweep(&self) -> usize {
        let before = self.len();
        let now = self.now();
        for shard in &self.shards {
            self.sweep_shard(&mut shard.write(), now);
        }
        before.saturating_sub(self.len())
    }

    /// How many keys are tracked (idle ones included until they are swept).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on tracked keys.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// The quota every key gets.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The clock the limiter reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<C: Clock> KeyedRateLimit for KeyedRateLimiter<String, C> {
    /// Decides in memory, without waiting. A new key refused because the table is full comes
    /// back as a refused decision whose `retry_after` is when a slot frees.
    fn check_key(
        &self,
        key: &str,
        cost: u32,
    ) -> impl Future<Output = Result<RateLimitDecision, RateLimitError>> + Send {
        let result = match self.decide_key(key, cost) {
            Ok(decision) => Ok(decision),
            Err(CheckError::CostExceedsCapacity { cost, capacity }) => {
                Err(RateLimitError::CostExceedsCapacity {
                    cost: u64::from(cost),
                    capacity: u64::from(capacity),
                })
            }
            Err(CheckError::TooManyKeys { retry_after, .. })
            | Err(CheckError::Limited(RateLimited { retry_after })) => Ok(RateLimitDecision {
                allowed: false,
                remaining: 0,
                retry_after,
                reset_after: Duration::ZERO,
            }),
        };
        std::future::ready(result)
    }
}

impl<K, C: Clock> fmt::Debug for KeyedRateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys may be user data (IPs, user ids): never printed.
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builder of a [`KeyedRateLimiter`]; see [`KeyedRateLimiter::builder`].
#[must_use]
pub struct KeyedRateLimiterBuilder<K = String, C = QuantaClock> {
    quota: QuotaSpec,
    max_keys: usize,
    clock: Option<C>,
    _key: PhantomData<fn() -> K>,
}

impl<K, C> fmt::Debug for KeyedRateLimiterBuilder<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiterBuilder")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl<K, C> KeyedRateLimiterBuilder<K, C> {
    quota_methods!();

    /// The most keys tracked at once (default 100 000, at least 1). When that many keys are
    /// all active, new keys get [`CheckError::TooManyKeys`].
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Reads time from `clock` instead of the default [`QuantaClock`].
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedRateLimiterBuilder<K, C2> {
        KeyedRateLimiterBuilder {
            quota: self.quota,
            max_keys: self.max_keys,
            clock: Some(clock),
            _key: PhantomData,
        }
    }
}

impl<K: Hash + Eq, C: Clock + Default> KeyedRateLimiterBuilder<K, C> {
    /// The limiter, or a [`ConfigError`] naming the rejected option.
    pub fn build(self) -> Result<KeyedRateLimiter<K, C>, ConfigError> {
        let quota = self.quota.build()?;
        if self.max_keys == 0 {
            return Err(ConfigError::new("max_keys", "must be at least 1"));
        }
        Ok(KeyedRateLimiter::new(
            quota,
            self.max_keys,
            self.clock.unwrap_or_default(),
        ))
    }
}
