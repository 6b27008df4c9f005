//! What a hook is: a named, prioritised, run-once future factory.

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::Priority;

/// A boxed error, the failure type of every hook.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// The future a hook runs.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

/// What a hook's future may return: `()` or `Result<(), E>` for any error convertible to
/// [`BoxError`] (`std::io::Error`, `anyhow::Error`, `String`, ...).
pub trait IntoHookResult {
    /// The hook's result in the one shape the coordinator reports.
    fn into_hook_result(self) -> Result<(), BoxError>;
}

impl IntoHookResult for () {
    fn into_hook_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHookResult for Result<(), E> {
    fn into_hook_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// A hook submitted at compile time by `#[shutdown_hook]` (through `inventory`); the global
/// coordinator runs these along with the registered ones.
#[doc(hidden)]
pub struct StaticShutdownHook {
    /// The hook's name, for reports and logs.
    pub name: &'static str,
    /// Its priority value (see [`Priority`]).
    pub priority: i32,
    /// Creates the hook's future.
    pub run: fn() -> HookFuture,
}

inventory::collect!(StaticShutdownHook);

/// A registered hook, waiting for shutdown.
pub(crate) struct Hook {
    pub(crate) name: String,
    pub(crate) priority: Priority,
    /// Overrides the coordinator's per-hook timeout.
    pub(crate) timeout: Option<Duration>,
    pub(crate) run: Box<dyn FnOnce() -> HookFuture + Send>,
}

impl Hook {
    pub(crate) fn new<F, Fut, R>(
        name: String,
        priority: Priority,
        timeout: Option<Duration>,
        f: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoHookResult,
    {
        Self {
            name,
            priority,
            timeout,
            run: Box::new(move || Box::pin(async move { f().await.into_hook_result() })),
        }
    }

    pub(crate) fn from_static(hook: &StaticShutdownHook) -> Self {
        let run = hook.run;
        Self {
            name: hook.name.to_owned(),
            priority: Priority(hook.priority),
            timeout: None,
            run: Box::new(run),
        }
    }
}
