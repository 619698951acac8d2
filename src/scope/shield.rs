//! Cancel scopes around one future: `shield`, `shield_for`, `move_on_after`, `fail_after`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::loom::DataArc;
use crate::runtime::context;
use crate::scope::tree::Scope;
use crate::scope::CancelReason;
use crate::time::{Elapsed, Sleep};

/// A future run in a scope of its own, dropped when the scope's deadline passes.
struct InScope<F> {
    scope: Option<DataArc<Scope>>,
    future: Pin<Box<F>>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<F: Future> InScope<F> {
    fn new(shield: bool, deadline: Option<Instant>, future: F) -> Self {
        let parent = context::with_current_scope(|s| s.cloned());
        // A scope under a finished one cannot be created; the future then runs in the caller's
        // scope, which is what it would observe anyway.
        let scope = Scope::new(parent, None, shield).ok();
        let timer = deadline.map(|d| Box::pin(crate::time::sleep_until(d)));
        InScope {
            scope,
            future: Box::pin(future),
            timer,
        }
    }

    /// `Ready(Some(out))` when the future finished, `Ready(None)` when the deadline passed
    /// first (the future is then dropped by the caller).
    fn poll_in_scope(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if let Some(timer) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                if let Some(scope) = &self.scope {
                    scope.cancel(CancelReason::Deadline);
                }
                return Poll::Ready(None);
            }
        }
        let _enter = self.scope.as_ref().map(context::enter_scope);
        self.future.as_mut().poll(cx).map(Some)
    }
}

impl<F> Drop for InScope<F> {
    fn drop(&mut self) {
        if let Some(scope) = &self.scope {
            // Tasks spawned inside belong to this scope: they go with it.
            scope.reap_now();
        }
    }
}

/// Runs `future` with the cancellation of enclosing scopes deferred until it ends (Trio's
/// shield): inside, [`is_cancelled`](crate::scope::is_cancelled) stays false; after it, the
/// caller sees the enclosing cancellation again.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     let flushed = pitcrew::scope::shield(async { "flushed" }).await;
///     assert_eq!(flushed, "flushed");
/// });
/// ```
pub async fn shield<F: Future>(future: F) -> F::Output {
    let mut s = InScope::new(true, None, future);
    std::future::poll_fn(|cx| s.poll_in_scope(cx))
        .await
        .expect("a shield without a deadline always finishes")
}

/// [`shield`], bounded: when `limit` passes first the future is dropped and `None` returned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let flushed = pitcrew::scope::shield_for(Duration::from_secs(5), async { "flushed" }).await;
///     assert_eq!(flushed, Some("flushed"));
///     let stuck = pitcrew::scope::shield_for(Duration::from_millis(5), std::future::pending::<()>());
///     assert_eq!(stuck.await, None);
/// });
/// ```
pub async fn shield_for<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let deadline = Instant::now().checked_add(limit);
    let mut s = InScope::new(true, deadline, future);
    std::future::poll_fn(|cx| s.poll_in_scope(cx)).await
}

/// Runs `future` in a cancel scope with a deadline `after` from now: when it passes, the future
/// is dropped and `None` returned. An enclosing cancellation is not absorbed: it still reaches
/// the future, and the caller still sees it afterwards.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     let gave_up = pitcrew::scope::move_on_after(
///         Duration::from_millis(5),
///         std::future::pending::<()>(),
///     )
///     .await;
///     assert!(gave_up.is_none());
/// });
/// ```
pub async fn move_on_after<F: Future>(after: Duration, future: F) -> Option<F::Output> {
    let deadline = Instant::now().checked_add(after);
    let mut s = InScope::new(false, deadline, future);
    std::future::poll_fn(|cx| s.poll_in_scope(cx)).await
}

/// As [`move_on_after`], with an error when the deadline passed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let slow = pitcrew::time::sleep(Duration::from_secs(3600));
///     assert!(pitcrew::scope::fail_after(Duration::from_millis(5), slow).await.is_err());
///     assert_eq!(pitcrew::scope::fail_after(Duration::from_secs(5), async { 1 }).await, Ok(1));
/// });
/// ```
///
/// # Errors
///
/// [`Elapsed`] when `after` passed before the future finished.
pub async fn fail_after<F: Future>(after: Duration, future: F) -> Result<F::Output, Elapsed> {
    match move_on_after(after, future).await {
        Some(out) => Ok(out),
        None => Err(crate::time::elapsed()),
    }
}
