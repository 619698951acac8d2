//! `yield_now`: let the other tasks run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler once: the task goes to the back of its worker's run queue, so every
/// task queued before it runs first.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     pitcrew::spawn(async {
///         for _ in 0..3 {
///             pitcrew::yield_now().await;
///         }
///     })
///     .await
///     .unwrap();
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     let other = pitcrew::spawn(async { "ran" });
///     // Let the other task have the (only) worker for a moment.
///     while !other.is_finished() {
///         pitcrew::yield_now().await;
///     }
///     assert_eq!(other.await.unwrap(), "ran");
/// });
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Woken while running, the task is re-queued at the back (never in the LIFO slot).
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
