//! `protect(name, client)`: the builder that declares a dependency once.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::check::{DependencyCheck, Probe};
use super::dependency::Dependency;
use crate::circuit_breaker::{
    BreakerRegistry, CircuitBreaker, CircuitBreakerConfig, RegistryError,
};
use crate::health::{HealthRegistry, IntoCheckOutcome, Requirement};
use crate::retry::{RetryPolicy, RetryService};

/// Why [`ProtectBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectError {
    /// [`breaker_config`](ProtectBuilder::breaker_config) asked for a configuration other than
    /// the one the breaker of that name already has.
    #[error(transparent)]
    Breaker(#[from] RegistryError),
    /// The dependency's name is empty: it names the breaker and the health check.
    #[error("a protected dependency needs a non-empty name")]
    EmptyName,
}

enum BreakerSource {
    /// The global registry's breaker of the dependency's name.
    Named,
    /// The global breaker of the name, configured with this (before its first use).
    Config(CircuitBreakerConfig),
    /// This breaker.
    Given(Arc<CircuitBreaker>),
}

enum HealthTarget {
    Global,
    Registry(Arc<HealthRegistry>),
    Nowhere,
}

/// Declares one dependency: see [`protect`](super::protect). Every setting is optional.
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProtectBuilder<T> {
    name: Arc<str>,
    client: Arc<T>,
    breaker: BreakerSource,
    retry: Option<RetryPolicy>,
    probe: Option<Probe>,
    requirement: Requirement,
    health_timeout: Option<Duration>,
    health: HealthTarget,
}

impl<T> fmt::Debug for ProtectBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectBuilder")
            .field("name", &self.name)
            .field("retry", &self.retry)
            .field("probe", &self.probe.is_some())
            .field("requirement", &self.requirement)
            .field("health_timeout", &self.health_timeout)
            .finish_non_exhaustive()
    }
}

impl<T> ProtectBuilder<T> {
    pub(crate) fn new(name: &str, client: T) -> Self {
        Self {
            name: Arc::from(name),
            client: Arc::new(client),
            breaker: BreakerSource::Named,
            retry: None,
            probe: None,
            requirement: Requirement::Required,
            health_timeout: None,
            health: HealthTarget::Global,
        }
    }

    /// The retry policy of [`Dependency::call`] (default: the [`RetryService`] of the
    /// dependency's name when it is one — `database`, `network`, `kafka`, `vault` — else
    /// `RetryPolicy::default()`, the `standard` preset).
    pub fn retry(mut self, policy: impl Into<RetryPolicy>) -> Self {
        self.retry = Some(policy.into());
        self
    }

    /// Configures the global breaker of the dependency's name (default: the registry's breaker
    /// of that name, with a pre-configured service's settings such as `database`'s 5 failures /
    /// 60 s). [`build`](Self::build) fails if that breaker exists with another configuration.
    pub fn breaker_config(mut self, config: CircuitBreakerConfig) -> Self {
        self.breaker = BreakerSource::Config(config);
        self
    }

    /// Guards the client with `breaker` instead of the global one of the dependency's name.
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = BreakerSource::Given(breaker);
        self
    }

    /// A probe for the health check: called with the client on each health run, returning
    /// anything [`IntoCheckOutcome`] (`Result<_, impl Display>`, `bool`, a status, ...). Without
    /// one, the check reports the breaker's state only.
    pub fn health<F, Fut, R>(mut self, probe: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoCheckOutcome,
    {
        let client = Arc::clone(&self.client);
        self.probe = Some(Arc::new(move || {
            let run = probe(Arc::clone(&client));
            Box::pin(async move { run.await.into_check_outcome() })
        }));
        self
    }

    /// A failing check makes the service unhealthy (the default).
    pub fn required(mut self) -> Self {
        self.requirement = Requirement::Required;
        self
    }

    /// A failing check only degrades the service.
    pub fn optional(mut self) -> Self {
        self.requirement = Requirement::Optional;
        self
    }

    /// Cuts the health probe after `timeout` (default: the registry's check timeout).
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = Some(timeout);
        self
    }

    /// Registers the check in `registry` instead of [`HealthRegistry::global`].
    pub fn health_registry(mut self, registry: Arc<HealthRegistry>) -> Self {
        self.health = HealthTarget::Registry(registry);
        self
    }

    /// Registers no health check.
    pub fn without_health(mut self) -> Self {
        self.health = HealthTarget::Nowhere;
        self
    }

    /// The protected client. Registers its check under the dependency's name, replacing a check
    /// of that name (a dependency declared again — after a reload, say — takes its place; both
    /// share the name's breaker).
    pub fn build(self) -> Result<Dependency<T>, ProtectError> {
        if self.name.is_empty() {
            return Err(ProtectError::EmptyName);
        }
        let breaker = match self.breaker {
            BreakerSource::Named => BreakerRegistry::global().get(&self.name),
            BreakerSource::Config(config) => {
                BreakerRegistry::global().configure(&self.name, config)?
            }
            BreakerSource::Given(breaker) => breaker,
        };
        let retry = self.retry.unwrap_or_else(|| {
            RetryService::from_name(&self.name)
                .map_or_else(RetryPolicy::default, RetryPolicy::for_service)
        });
        let registry = match self.health {
            HealthTarget::Global => Some(Arc::clone(HealthRegistry::global())),
            HealthTarget::Registry(registry) => Some(registry),
            HealthTarget::Nowhere => None,
        };
        if let Some(registry) = registry {
            let check = DependencyCheck::new(
                Arc::clone(&self.name),
                Arc::clone(&breaker),
                self.probe,
                self.requirement,
            );
            registry.register(check, self.requirement, self.health_timeout);
        }
        Ok(Dependency {
            name: self.name,
            client: self.client,
            breaker,
            retry,
        })
    }
}
