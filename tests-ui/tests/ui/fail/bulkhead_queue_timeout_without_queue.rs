//! A queue timeout without a queue would be refused by the runtime: caught at compile time.
use resilience::{BulkheadFull, bulkhead};

pub struct Full;

impl From<BulkheadFull> for Full {
    fn from(_: BulkheadFull) -> Self {
        Self
    }
}

#[bulkhead(max_concurrent = 2, queue_timeout_ms = 10)]
pub async fn no_queue() -> Result<(), Full> {
    Ok(())
}

#[bulkhead(max_concurrent = 2, max_queued = 0, queue_timeout_ms = 10)]
pub async fn empty_queue() -> Result<(), Full> {
    Ok(())
}

fn main() {}
