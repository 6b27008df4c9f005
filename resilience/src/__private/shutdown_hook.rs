//! `#[shutdown_hook]`.

use std::future::Future;

#[cfg(doc)]
use crate::shutdown::StaticShutdownHook;
use crate::shutdown::{HookFuture, IntoHookResult};

/// The future of a `#[shutdown_hook]` function, boxed for [`StaticShutdownHook::run`].
pub fn hook_future<Fut>(future: Fut) -> HookFuture
where
    Fut: Future + Send + 'static,
    Fut::Output: IntoHookResult,
{
    Box::pin(async move { future.await.into_hook_result() })
}
