//! The in-memory backend. (Placeholder: being written.)

use std::sync::{Arc, OnceLock};

use super::backend::QueueBackend;

/// Holds in-memory queues by name; a [`Queue`](super::Queue) and the
/// [`Worker`](super::Worker)s built from it share the broker's queue of that name.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {}

impl MemoryBroker {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide broker.
    pub fn global() -> &'static MemoryBroker {
        static GLOBAL: OnceLock<MemoryBroker> = OnceLock::new();
        GLOBAL.get_or_init(MemoryBroker::new)
    }

    pub(crate) fn backend(&self, _name: &str) -> Arc<dyn QueueBackend> {
        unimplemented!("in-memory backend being written")
    }
}
