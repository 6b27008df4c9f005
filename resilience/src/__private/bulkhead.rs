//! `#[bulkhead]`: the bulkhead cell and acquisition.

use std::sync::OnceLock;
use std::time::Duration;

use super::{Outcome, rejected_at_runtime};
use crate::bulkhead::{Bulkhead, BulkheadFull, BulkheadPermit};

/// Turns a full bulkhead into the wrapped function's error type.
#[diagnostic::on_unimplemented(
    message = "`#[bulkhead]` needs the function's error type `{Self}` to implement `From<BulkheadFull>`",
    label = "`{Self}` cannot hold the bulkhead's rejection",
    note = "add `impl From<resilience::bulkhead::BulkheadFull> for {Self}`, or return `anyhow::Error` / `Box<dyn Error + Send + Sync>`"
)]
pub trait FromBulkheadFull {
    fn from_bulkhead_full(error: BulkheadFull) -> Self;
}

#[diagnostic::do_not_recommend]
impl<E: From<BulkheadFull>> FromBulkheadFull for E {
    #[inline]
    fn from_bulkhead_full(error: BulkheadFull) -> Self {
        E::from(error)
    }
}

/// `#[bulkhead]`'s numbers.
pub struct BulkheadSpec {
    pub max_concurrent: u32,
    pub max_queued: Option<u64>,
    pub queue_timeout_ms: Option<u64>,
}

/// The bulkhead of one `#[bulkhead]` function (a `static` in the generated body).
pub struct BulkheadCell {
    spec: BulkheadSpec,
    /// The function's path: the bulkhead's name.
    name: &'static str,
    bulkhead: OnceLock<Bulkhead>,
}

impl BulkheadCell {
    pub const fn new(spec: BulkheadSpec, name: &'static str) -> Self {
        Self {
            spec,
            name,
            bulkhead: OnceLock::new(),
        }
    }

    #[inline]
    pub fn get(&self) -> &Bulkhead {
        self.bulkhead.get_or_init(|| {
            let spec = &self.spec;
            let mut builder = Bulkhead::builder()
                .name(self.name)
                .max_concurrent(spec.max_concurrent as usize);
            if let Some(n) = spec.max_queued {
                builder = builder.max_queued(usize::try_from(n).unwrap_or(usize::MAX));
            }
            if let Some(ms) = spec.queue_timeout_ms {
                builder = builder.queue_timeout(Duration::from_millis(ms));
            }
            match builder.build() {
                Ok(bulkhead) => bulkhead,
                Err(error) => rejected_at_runtime("#[bulkhead]", &error),
            }
        })
    }
}

/// A permit to hold while the body runs, or the rejection to return.
#[inline]
pub async fn bulkhead_acquire<R>(bulkhead: &Bulkhead) -> Result<BulkheadPermit, R>
where
    R: Outcome,
    R::Err: FromBulkheadFull,
{
    bulkhead
        .acquire()
        .await
        .map_err(|full| R::from_result(Err(R::Err::from_bulkhead_full(full))))
}
