//! A GCRA limiter per key, in a sharded table whose memory stays bounded.
//!
//! Each entry is the key and its `AtomicU64` theoretical arrival time (TAT). A lookup takes a
//! shard's read lock and does the same lock-free compare-and-swap as [`RateLimiter`]; only a new
//! key takes a write lock. A key whose bucket is full again (TAT ≤ now) is *idle*: forgetting it
//! changes no future decision, so it can be evicted at any time.
//!
//! Eviction without a manual call, in bounded work: each shard keeps its keys in a min-heap by
//! the TAT recorded when they were filed (a lower bound of the real one, which only grows).
//! Every insert pops at most [`EVICT_BUDGET`] due items from its shard's heap: an idle key is
//! evicted, a key used since it was filed is filed again under its current TAT (that work is
//! paid for by the checks that moved its TAT). Nothing ever scans a whole shard.
//!
//! When the table holds `max_keys` keys and none is idle, a *new* key is refused with
//! [`CheckError::TooManyKeys`] (and a `retry_after` saying when the first key may become idle)
//! rather than evicting an active key, which would hand that key a fresh burst. Known keys keep
//! working normally. A refusal costs O(1): a table-wide lower bound on the next idle time says
//! when nothing can be evicted; past it, the shards' own bounds lead to a due heap item, and the
//! budget caps the work.
//!
//! [`RateLimiter`]: super::RateLimiter

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hashbrown::HashTable;
use metrics::SharedString;

use super::clock::{Clock, QuantaClock};
use super::decision::{KeyedRateLimit, RateLimitDecision, RateLimitError, RateLimited};
use super::error::CheckError;
use super::gcra::{acquire, cost_of, decide, limiter_time};
use super::metrics::{ALLOWED, Decisions, REJECTED};
use super::quota::{Quota, QuotaSpec, quota_methods};
use crate::ConfigError;

/// The default bound on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Heap items one operation may pop (evict or re-file): the bound on eviction work per insert
/// or refusal. Two or more per insert keep the table shrinking whenever keys go idle.
const EVICT_BUDGET: usize = 8;

/// Below this capacity a table is never shrunk (re-allocating tiny tables is wasted work).
const MIN_SHRINK_CAPACITY: usize = 64;

/// "No time": an empty shard's next idle time.
const NEVER: u64 = u64::MAX;

struct Entry<K> {
    key: K,
    /// Theoretical arrival time, nanoseconds since the limiter's start.
    tat: AtomicU64,
    /// Tells the heap item of this entry from those of keys with the same hash.
    id: u64,
}

/// A key's place in its shard's eviction heap: `(filed TAT, hash, entry id)`, earliest first.
type Due = Reverse<(u64, u64, u64)>;

struct ShardTable<K> {
    table: HashTable<Entry<K>>,
    /// One item per entry, keyed by the entry's TAT when filed (≤ its TAT now).
    expiry: BinaryHeap<Due>,
    next_id: u64,
}

/// One lock and its table, on its own cache lines so shards do not false-share.
#[repr(align(128))]
struct Shard<K> {
    inner: RwLock<ShardTable<K>>,
    /// The earliest filed TAT in this shard's heap ([`NEVER`] when empty): before it, nothing in
    /// the shard can be evicted. Written under the write lock, read without it.
    next_idle: AtomicU64,
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
    /// A lower bound of every shard's `next_idle`: before it no key anywhere can be evicted, so
    /// a full table refuses a new key in O(1). Inserts lower it; only a refresh raises it.
    next_idle: AtomicU64,
    metrics: Decisions,
}

impl<K: Hash + Eq> KeyedRateLimiter<K> {
    /// A builder; set a rate with `per_second`, `per_minute`, `per_hour`, `per` or `rate`.
    pub fn builder() -> KeyedRateLimiterBuilder<K> {
        KeyedRateLimiterBuilder {
            quota: QuotaSpec::default(),
            max_keys: DEFAULT_MAX_KEYS,
            clock: None,
            name: None,
            _key: PhantomData,
        }
    }
}

impl<K: Hash + Eq, C: Clock> KeyedRateLimiter<K, C> {
    fn new(quota: Quota, max_keys: usize, clock: C, name: Option<SharedString>) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Like dashmap: a few shards per core keeps write-lock collisions rare.
        let count = parallelism
            .saturating_mul(4)
            .clamp(4, 256)
            .next_power_of_two();
        let shards = (0..count)
            .map(|_| Shard {
                inner: RwLock::new(ShardTable {
                    table: HashTable::new(),
                    expiry: BinaryHeap::new(),
                    next_id: 0,
                }),
                next_idle: AtomicU64::new(NEVER),
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
            next_idle: AtomicU64::new(NEVER),
            metrics: Decisions::new(name),
        }
    }

    /// The limiter's name: the `name` label of its `rate_limit_decisions_total` (`unnamed`
    /// unless the builder was given one).
    pub fn name(&self) -> &str {
        self.metrics.name()
    }

    #[inline]
    fn now(&self) -> u64 {
        limiter_time(self.clock.now_nanos(), self.start)
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
        let result = self.acquire_key(key, self.quota.interval);
        self.metrics.record(&result);
        result
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
        let result = self.acquire_key(key, cost);
        self.metrics.record(&result);
        result
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
        let result = self.with_entry(key, move |tat, now| decide(tat, now, cost, &quota));
        if cost > 0 {
            let allowed = matches!(&result, Ok(decision) if decision.allowed);
            self.metrics.count(if allowed { ALLOWED } else { REJECTED });
        }
        result
    }

    /// Waits until `key` has a token and takes it. Cancel by dropping the future.
    ///
    /// Waits through [`CheckError::TooManyKeys`] too; fails only with
    /// [`CheckError::CostExceedsCapacity`] (never for one token). Counted once, as `allowed`,
    /// when the token is taken (a wait is not a rejection).
    pub async fn until_key_ready<Q>(&self, key: &Q) -> Result<(), CheckError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        loop {
            match self.acquire_key(key, self.quota.interval) {
                Ok(()) => {
                    self.metrics.count(ALLOWED);
                    return Ok(());
                }
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
        let filed = tat.load(Ordering::Relaxed);
        if filed <= now {
            return Ok(result);
        }
        // Every insert retires a few due keys of its shard: idle keys leave without a sweep.
        self.evict_due(shard, &mut guard, now, EVICT_BUDGET);
        if !self.reserve_slot() {
            // Full. Look for a due key in the other shards one lock at a time (never two).
            drop(guard);
            let wait = self.make_room(now);
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
        let t = &mut *guard;
        let id = t.next_id;
        t.next_id = id.wrapping_add(1);
        let hasher = &self.hasher;
        let entry = Entry {
            key: key.to_owned(),
            tat,
            id,
        };
        t.table
            .insert_unique(hash, entry, |e| hasher.hash_one(&e.key));
        t.expiry.push(Reverse((filed, hash, id)));
        if filed < shard.next_idle.load(Ordering::Relaxed) {
            shard.next_idle.store(filed, Ordering::SeqCst);
        }
        // Keep the table-wide bound below every shard's (usually a load: nothing to lower).
        // SeqCst pairs with `refresh_next_idle`, so a raise there cannot hide this time.
        if filed < self.next_idle.load(Ordering::SeqCst) {
            self.next_idle.fetch_min(filed, Ordering::SeqCst);
        }
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

    /// Pops up to `budget` due heap items (filed TAT ≤ `now`) of one shard: evicts the keys that
    /// are idle and files the others again under their current TAT. Returns (evicted, popped).
    fn evict_due(
        &self,
        shard: &Shard<K>,
        t: &mut ShardTable<K>,
        now: u64,
        budget: usize,
    ) -> (usize, usize) {
        let (mut evicted, mut popped) = (0, 0);
        while popped < budget {
            let Some(mut top) = t.expiry.peek_mut() else {
                break;
            };
            let Reverse((filed, hash, id)) = *top;
            if filed > now {
                break;
            }
            popped += 1;
            match t.table.find_entry(hash, |e| e.id == id) {
                Ok(entry) => {
                    let tat = entry.get().tat.load(Ordering::Relaxed);
                    if tat <= now {
                        entry.remove();
                        evicted += 1;
                        std::collections::binary_heap::PeekMut::pop(top);
                    } else {
                        // Used since it was filed: re-file in place (one sift-down).
                        *top = Reverse((tat, hash, id));
                    }
                }
                // Every item has its entry; drop a stray one rather than loop on it.
                Err(_) => {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            }
        }
        if popped == 0 {
            // Nothing was due: the shard's bound is unchanged (the common case on inserts).
            return (0, 0);
        }
        let next = t.expiry.peek().map_or(NEVER, |due| due.0.0);
        shard.next_idle.store(next, Ordering::SeqCst);
        if evicted > 0 {
            self.len.fetch_sub(evicted, Ordering::Relaxed);
            self.shrink(t);
        }
        (evicted, popped)
    }

    /// Gives memory back once a table is mostly empty; amortised O(1) per eviction, since the
    /// capacity left is at most about four times the length and the next shrink needs it eight.
    fn shrink(&self, t: &mut ShardTable<K>) {
        let len = t.table.len();
        if t.table.capacity() > MIN_SHRINK_CAPACITY && len.saturating_mul(8) < t.table.capacity() {
            let hasher = &self.hasher;
            t.table
                .shrink_to(len.saturating_mul(2), |e| hasher.hash_one(&e.key));
        }
        if t.expiry.capacity() > MIN_SHRINK_CAPACITY
            && t.expiry.len().saturating_mul(8) < t.expiry.capacity()
        {
            t.expiry.shrink_to(t.expiry.len().saturating_mul(2));
        }
    }

    /// With the table full: evicts an idle key somewhere, within [`EVICT_BUDGET`], and returns
    /// 0; or returns how long until the first key may be idle. O(1) while that time is ahead.
    #[cold]
    fn make_room(&self, now: u64) -> u64 {
        let bound = self.next_idle.load(Ordering::SeqCst);
        if now < bound {
            return bound - now;
        }
        let mut budget = EVICT_BUDGET;
        for shard in &self.shards {
            if shard.next_idle.load(Ordering::Relaxed) > now {
                continue;
            }
            let (evicted, popped) = self.evict_due(shard, &mut shard.write(), now, budget);
            budget -= popped;
            if evicted > 0 || budget == 0 {
                // A slot is free, or the budget is spent with due items left: "try again now".
                return 0;
            }
        }
        // Nothing was due after all (the bound was stale): make it exact again.
        self.refresh_next_idle();
        self.next_idle.load(Ordering::SeqCst).saturating_sub(now)
    }

    /// Sets the table-wide bound to the minimum of the shards' next idle times.
    fn refresh_next_idle(&self) {
        let soonest = self
            .shards
            .iter()
            .map(|s| s.next_idle.load(Ordering::SeqCst))
            .min();
        let soonest = soonest.unwrap_or(NEVER);
        self.next_idle.store(soonest, Ordering::SeqCst);
        // An insert that filed an earlier time after the pass above either sees the new bound
        // and lowers it itself, or wrote its shard before this second pass reads it.
        for shard in &self.shards {
            let next = shard.next_idle.load(Ordering::SeqCst);
            if next < soonest {
                self.next_idle.fetch_min(next, Ordering::SeqCst);
            }
        }
    }

    /// Evicts every idle key now (normally unnecessary: inserts evict on their own); returns
    /// how many were evicted.
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let evicted = self
            .shards
            .iter()
            .map(|shard| self.evict_due(shard, &mut shard.write(), now, usize::MAX).0)
            .sum();
        self.refresh_next_idle();
        evicted
    }

    /// How many keys are tracked (idle ones included until they are evicted).
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
            .field("name", &self.metrics.name())
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
    name: Option<SharedString>,
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

    /// Names the limiter: the `name` label of its `rate_limit_decisions_total` (default
    /// `unnamed`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(SharedString::from(name.into()));
        self
    }

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
            name: self.name,
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
            self.name,
        ))
    }
}
