//! Handlers declared with `#[job]`, collected at link time (as `#[shutdown_hook]` does).

use super::handler::Handler;

/// One `#[job]` declaration. Generated code submits these; read them with
/// [`WorkerBuilder::registered`](super::WorkerBuilder::registered).
#[doc(hidden)]
pub struct JobRegistration {
    /// The queue the job belongs to.
    pub queue: &'static str,
    /// The job name.
    pub name: &'static str,
    /// Builds the handler (with the attribute's retry policy).
    pub handler: fn() -> Handler,
}

inventory::collect!(JobRegistration);

/// Every `#[job]` handler declared for `queue`.
pub(crate) fn registered_handlers(queue: &str) -> Vec<Handler> {
    inventory::iter::<JobRegistration>
        .into_iter()
        .filter(|r| r.queue == queue)
        .map(|r| (r.handler)())
        .collect()
}

/// The `(queue, name)` of every `#[job]` declared in the program.
pub fn registered_jobs() -> Vec<(&'static str, &'static str)> {
    inventory::iter::<JobRegistration>
        .into_iter()
        .map(|r| (r.queue, r.name))
        .collect()
}
