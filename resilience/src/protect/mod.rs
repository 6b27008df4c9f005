//! Adapter protection (seed 002): declare each dependency once — its client, a named circuit
//! breaker, a retry policy and a health check — and call it through all of them.
//!
//! ```
//! use std::sync::Arc;
//! use resilience::health::{HealthRegistry, HealthStatus};
//! use resilience::protect;
//!
//! struct Db;
//! impl Db {
//!     async fn fetch_user(&self, id: u64) -> Result<String, std::io::Error> { Ok(format!("user {id}")) }
//!     async fn ping(&self) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Arc::new(HealthRegistry::new()); // or leave it out: HealthRegistry::global()
//! let db = protect("database", Db)          // breaker `database`: 5 failures, 60 s
//!     .health(|db| async move { db.ping().await }) // retry: the `database` service preset
//!     .health_registry(health.clone())
//!     .build()?;
//!
//! let user = db.call(|db| async move { db.fetch_user(7).await }).await?;
//! assert_eq!(user, "user 7");
//! assert_eq!(db.retry_policy().max_attempts(), 3);
//! assert_eq!(health.check().await.check("database").unwrap().status, HealthStatus::Healthy);
//! # Ok(()) }
//! ```
//!
//! # Defaults
//! - Breaker: the global registry's breaker of the dependency's name, so the pre-configured
//!   services apply (`database` 5 failures / 60 s, `kafka` 10 / 30 s, `network` 3 / 45 s, `vault`
//!   3 / 90 s, `redis`, `openai`, ...; others the default 5 / 30 s). Change it with
//!   [`breaker_config`](ProtectBuilder::breaker_config) or [`breaker`](ProtectBuilder::breaker).
//! - Retry: the [`RetryService`](crate::retry::RetryService) of the name when it is one, else the
//!   `standard` preset; [`retry`](ProtectBuilder::retry) sets another.
//! - Health: a [`DependencyCheck`] under the dependency's name in
//!   [`HealthRegistry::global`](crate::health::HealthRegistry::global), required; its table says
//!   how the breaker's state and the probe combine.
//!
//! # Order
//! The breaker is outside, the retries inside: one [`Dependency::call`] counts once in the
//! breaker however many attempts it made, and an open breaker rejects without an attempt. This
//! matches the attributes' documented order (`#[circuit_breaker]` above `#[retry]`).
//!
//! # The same name twice
//! Declaring a name again replaces its health check (the registry's rule) and shares its breaker
//! (the breaker registry's): a name is one dependency. A reloaded client can be declared again;
//! two different clients need two names.

mod builder;
mod check;
mod dependency;

pub use builder::{ProtectBuilder, ProtectError};
pub use check::DependencyCheck;
pub use dependency::Dependency;

/// Starts declaring the dependency `name` served by `client`; finish with
/// [`build`](ProtectBuilder::build). See the [module docs](self).
pub fn protect<T>(name: &str, client: T) -> ProtectBuilder<T> {
    ProtectBuilder::new(name, client)
}
