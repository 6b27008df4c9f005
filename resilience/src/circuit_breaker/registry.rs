//! Named breakers: the registry, the global functions over it, and [`Protected`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use super::breaker::CircuitBreaker;
use super::config::CircuitBreakerConfig;
use super::error::{CallError, CircuitOpenError, RegistryError};
use super::state::CircuitSnapshot;

/// Breakers by name. Each name gets one breaker, created on first use with the configuration set
/// by [`configure`](Self::configure) or, failing that, the service's
/// ([`CircuitBreakerConfig::for_service`]: known services get theirs, others the default).
///
/// The process-wide one is [`BreakerRegistry::global`], used by [`get_circuit_breaker`] and the
/// `#[circuit_breaker]` attribute; separate instances are handy in tests.
#[derive(Default)]
pub struct BreakerRegistry {
    breakers: RwLock<HashMap<Arc<str>, Arc<CircuitBreaker>>>,
}

static GLOBAL: LazyLock<BreakerRegistry> = LazyLock::new(BreakerRegistry::new);

impl BreakerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static BreakerRegistry {
        &GLOBAL
    }

    /// The breaker called `name`, created on first use (see the type's docs for its config).
    pub fn get(&self, name: &str) -> Arc<CircuitBreaker> {
        if let Some(b) = self.find(name) {
            return b;
        }
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(Arc::from(name)).or_insert_with_key(|key| {
            Arc::new(CircuitBreaker::new(
                Arc::clone(key),
                CircuitBreakerConfig::for_service(key),
            ))
        }))
    }

    /// The breaker called `name`, if it exists; creates nothing.
    pub fn find(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        map.get(name).cloned()
    }

    /// Creates the breaker called `name` with `config`. Call it before the breaker's first use:
    /// if the name exists already, the existing breaker is returned when its configuration is
    /// equal, and [`RegistryError::ConfigConflict`] otherwise.
    pub fn configure(
        &self,
        name: &str,
        config: CircuitBreakerConfig,
    ) -> Result<Arc<CircuitBreaker>, RegistryError> {
        let mut map = self
            .breakers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = map.get(name) {
            return if *existing.config() == config {
                Ok(Arc::clone(existing))
            } else {
                Err(RegistryError::ConfigConflict {
                    name: Arc::clone(existing.name_arc()),
                })
            };
        }
        let name: Arc<str> = Arc::from(name);
        let breaker = Arc::new(CircuitBreaker::new(Arc::clone(&name), config));
        map.insert(name, Arc::clone(&breaker));
        Ok(breaker)
    }

    /// The names of the breakers created so far, sorted.
    pub fn names(&self) -> Vec<Arc<str>> {
        let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<_> = map.keys().cloned().collect();
        names.sort();
        names
    }

    /// A snapshot of every breaker, sorted by name (for health and admin endpoints).
    pub fn snapshots(&self) -> Vec<CircuitSnapshot> {
        let breakers: Vec<_> = {
            let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        let mut snapshots: Vec<_> = breakers.iter().map(|b| b.snapshot()).collect();
        snapshots.sort_by(|a, b| a.name.cmp(&b.name));
        snapshots
    }

    /// Resets every breaker to Closed.
    pub fn reset_all(&self) {
        let breakers: Vec<_> = {
            let map = self.breakers.read().unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        breakers.iter().for_each(|b| b.reset());
    }
}

impl fmt::Debug for BreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("names", &self.names())
            .finish()
    }
}

/// The global breaker called `name`, created on first use: pre-configured services (see
/// [`SERVICE_NAMES`](super::SERVICE_NAMES)) get their configuration, other names the default
/// (moderate: 5 failures, 30 s), unless [`configure_circuit_breaker`] came first.
///
/// Look it up once and keep the `Arc` on hot paths; the lookup takes a read lock.
///
/// ```
/// use resilience::{get_circuit_breaker, CircuitState};
///
/// let openai = get_circuit_breaker("openai"); // tolerant: 10 failures, 60 s
/// assert_eq!(openai.config().failure_threshold(), Some(10));
/// assert_eq!(openai.state(), CircuitState::Closed);
/// assert!(std::sync::Arc::ptr_eq(&openai, &get_circuit_breaker("openai")));
///
/// let result = openai.call_blocking(|| Ok::<_, std::io::Error>("done"));
/// assert_eq!(result.ok(), Some("done"));
/// ```
pub fn get_circuit_breaker(name: &str) -> Arc<CircuitBreaker> {
    BreakerRegistry::global().get(name)
}

/// Configures the global breaker called `name`; see [`BreakerRegistry::configure`].
pub fn configure_circuit_breaker(
    name: &str,
    config: CircuitBreakerConfig,
) -> Result<Arc<CircuitBreaker>, RegistryError> {
    BreakerRegistry::global().configure(name, config)
}

/// Runs `f` through the global breaker called `name`, with the rejection converted into the
/// function's own error type.
///
/// ```
/// use resilience::{with_circuit_breaker, CircuitOpenError};
///
/// #[derive(Debug)]
/// enum ApiError { Unavailable(CircuitOpenError), Status(u16) }
/// impl From<CircuitOpenError> for ApiError {
///     fn from(e: CircuitOpenError) -> Self { ApiError::Unavailable(e) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let quote = with_circuit_breaker("finnhub", || async { Ok::<_, ApiError>(101.5) }).await;
/// assert_eq!(quote.unwrap(), 101.5);
///
/// let failed = with_circuit_breaker("finnhub", || async { Err::<f64, _>(ApiError::Status(503)) }).await;
/// assert!(matches!(failed, Err(ApiError::Status(503))));
/// # });
/// ```
pub async fn with_circuit_breaker<F, Fut, T, E>(name: &str, f: F) -> Result<T, E>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<CircuitOpenError> + 'static,
{
    get_circuit_breaker(name)
        .call(f)
        .await
        .map_err(CallError::flatten)
}

/// A client whose every call goes through one breaker.
///
/// ```
/// use resilience::Protected;
///
/// struct Quotes;
/// impl Quotes {
///     async fn get(&self, symbol: &str) -> Result<f64, std::io::Error> { Ok(1.0) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let quotes = Protected::new("coingecko", Quotes);
/// let price = quotes.call(|client| async move { client.get("BTC").await }).await;
/// assert_eq!(price.ok(), Some(1.0));
/// # });
/// ```
#[derive(Clone)]
pub struct Protected<T> {
    inner: T,
    breaker: Arc<CircuitBreaker>,
}

impl<T> Protected<T> {
    /// Guards `inner` with the global breaker called `name`.
    pub fn new(name: &str, inner: T) -> Self {
        Self::with_breaker(get_circuit_breaker(name), inner)
    }

    /// Guards `inner` with `breaker`.
    pub fn with_breaker(breaker: Arc<CircuitBreaker>, inner: T) -> Self {
        Self { inner, breaker }
    }

    /// The breaker guarding the client.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The client itself, bypassing the breaker.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Runs `f` on the client through the breaker; see [`CircuitBreaker::call`].
    pub async fn call<'a, F, Fut, R, E>(&'a self, f: F) -> Result<R, CallError<E>>
    where
        F: FnOnce(&'a T) -> Fut,
        Fut: Future<Output = Result<R, E>>,
        E: 'static,
    {
        self.breaker.call(|| f(&self.inner)).await
    }

    /// Runs a blocking `f` on the client through the breaker; see
    /// [`CircuitBreaker::call_blocking`].
    pub fn call_blocking<'a, F, R, E>(&'a self, f: F) -> Result<R, CallError<E>>
    where
        F: FnOnce(&'a T) -> Result<R, E>,
        E: 'static,
    {
        self.breaker.call_blocking(|| f(&self.inner))
    }
}

impl<T: fmt::Debug> fmt::Debug for Protected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protected")
            .field("inner", &self.inner)
            .field("breaker", &self.breaker.name())
            .finish()
    }
}
