//! Redis as a health check: one `PING`.

use crate::redis::RedisClient;

use super::{CheckOutcome, HealthCheck};

/// Healthy when the server answers `PING`; unhealthy with the error otherwise (e.g. a client
/// created while Redis was down: "cannot connect", until the server answers; each check makes
/// a fresh attempt). The registry's latency thresholds grade a slow answer. Named `"redis"` unless renamed with
/// [`named`](Self::named).
#[derive(Debug, Clone)]
pub struct RedisCheck {
    name: String,
    client: RedisClient,
}

impl RedisCheck {
    /// Pings through `client` (a clone shares its connection).
    pub fn new(client: RedisClient) -> Self {
        Self {
            name: "redis".to_owned(),
            client,
        }
    }

    /// The same check under another name (for several Redis deployments).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl HealthCheck for RedisCheck {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> CheckOutcome {
        match self.client.ping().await {
            Ok(_) => CheckOutcome::healthy(),
            Err(e) => CheckOutcome::unhealthy(e.to_string()),
        }
    }
}
