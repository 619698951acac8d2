//! asyncio-style combinators over join handles: `join_all`, `try_join_all`, `wait`,
//! `as_completed`, and `spawn_after`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::task::{Id, JoinError, JoinHandle};

/// Awaits every handle and returns every result, in the handles' order (asyncio's
/// `gather(return_exceptions=True)`).
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// let results = rt.block_on(async {
///     let handles = (0..3).map(|i| pitcrew::spawn(async move { i * 10 }));
///     pitcrew::task::join_all(handles).await
/// });
/// let values: Vec<i32> = results.into_iter().map(Result::unwrap).collect();
/// assert_eq!(values, [0, 10, 20]);
/// ```
pub async fn join_all<T, I>(handles: I) -> Vec<Result<T, JoinError>>
where
    I: IntoIterator<Item = JoinHandle<T>>,
{
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}

/// Awaits every handle; the first error aborts the others and is returned.
///
/// # Errors
///
/// The first [`JoinError`] to arrive (in completion order).
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let ok = (1..=3).map(|i| pitcrew::spawn(async move { i }));
///     assert_eq!(pitcrew::task::try_join_all(ok).await.unwrap(), [1, 2, 3]);
///
///     let stuck = pitcrew::spawn(std::future::pending::<i32>());
///     let doomed = pitcrew::spawn(std::future::pending::<i32>());
///     doomed.abort();
///     // The aborted task's error comes back, and `stuck` is aborted with it.
///     let err = pitcrew::task::try_join_all([stuck, doomed]).await.unwrap_err();
///     assert!(err.is_cancelled());
/// });
/// ```
pub async fn try_join_all<T, I>(handles: I) -> Result<Vec<T>, JoinError>
where
    I: IntoIterator<Item = JoinHandle<T>>,
{
    let mut slots: Vec<Option<JoinHandle<T>>> = handles.into_iter().map(Some).collect();
    let mut values: Vec<Option<T>> = slots.iter().map(|_| None).collect();
    let mut left = slots.len();
    poll_fn(|cx| {
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(h) = slot else { continue };
            if let Poll::Ready(r) = Pin::new(h).poll(cx) {
                *slot = None;
                left -= 1;
                match r {
                    Ok(v) => values[i] = Some(v),
                    Err(e) => {
                        for other in slots.iter().flatten() {
                            other.abort();
                        }
                        return Poll::Ready(Err(e));
                    }
                }
            }
        }
        if left == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(values
        .into_iter()
        .map(|v| v.expect("every task finished"))
        .collect())
}

/// When [`wait`] returns.
///
/// # Examples
///
/// ```
/// use pitcrew::task::{wait, ReturnWhen};
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let handles = (0..3).map(|i| pitcrew::spawn(async move { i }));
///     let (done, pending) = wait(handles, ReturnWhen::AllCompleted, None).await;
///     assert_eq!(done.len(), 3);
///     assert!(pending.is_empty());
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as one task has finished.
    FirstCompleted,
    /// As soon as one task has failed (panicked or was cancelled), or when all have finished.
    FirstError,
    /// When all have finished.
    AllCompleted,
}

/// Waits for tasks as asyncio's `wait` does: returns the finished ones (with their ids and
/// results) and the ones still pending, which keep running. With a timeout, returns what has
/// finished when it passes.
///
/// # Examples
///
/// ```
/// use pitcrew::task::{wait, ReturnWhen};
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let quick = pitcrew::spawn(async { 1 });
///     let slow = pitcrew::spawn(std::future::pending::<i32>());
///     let (done, pending) = wait(vec![quick, slow], ReturnWhen::FirstCompleted, None).await;
///     assert_eq!(done.len(), 1);
///     assert_eq!(pending.len(), 1);
/// });
/// ```
pub async fn wait<T, I>(
    handles: I,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<(Id, Result<T, JoinError>)>, Vec<JoinHandle<T>>)
where
    I: IntoIterator<Item = JoinHandle<T>>,
{
    let mut pending: Vec<JoinHandle<T>> = handles.into_iter().collect();
    let mut done: Vec<(Id, Result<T, JoinError>)> = Vec::new();
    let mut timer = timeout.map(|d| Box::pin(crate::time::sleep(d)));
    poll_fn(|cx| {
        let mut i = 0;
        let mut failed = false;
        while i < pending.len() {
            let id = pending[i].id();
            match Pin::new(&mut pending[i]).poll(cx) {
                Poll::Ready(r) => {
                    failed |= r.is_err();
                    done.push((id, r));
                    pending.swap_remove(i);
                }
                Poll::Pending => i += 1,
            }
        }
        let finished = match return_when {
            ReturnWhen::FirstCompleted => !done.is_empty() || pending.is_empty(),
            ReturnWhen::FirstError => failed || pending.is_empty(),
            ReturnWhen::AllCompleted => pending.is_empty(),
        };
        if finished
            || timer
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready())
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    (done, pending)
}

/// Yields the tasks' results in the order they finish. A `futures_core::Stream`; also usable
/// with [`AsCompleted::next`].
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let handles = vec![
///         pitcrew::spawn(std::future::ready(1)),
///         pitcrew::spawn(std::future::ready(2)),
///     ];
///     let mut results = pitcrew::task::as_completed(handles);
///     let mut sum = 0;
///     while let Some(r) = results.next().await {
///         sum += r.unwrap();
///     }
///     assert_eq!(sum, 3);
/// });
/// ```
pub fn as_completed<T, I>(handles: I) -> AsCompleted<T>
where
    I: IntoIterator<Item = JoinHandle<T>>,
{
    AsCompleted {
        pending: handles.into_iter().collect(),
    }
}

/// The stream returned by [`as_completed`].
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let handles = (1..=3).map(|i| pitcrew::spawn(async move { i }));
///     let mut results: pitcrew::task::AsCompleted<u32> = pitcrew::task::as_completed(handles);
///     let mut total = 0;
///     while let Some(r) = results.next().await {
///         total += r.unwrap();
///     }
///     assert_eq!(total, 6);
/// });
/// ```
pub struct AsCompleted<T> {
    pending: Vec<JoinHandle<T>>,
}

impl<T> AsCompleted<T> {
    /// The next result to finish; `None` once all have been yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(async {
    ///     let mut results = pitcrew::task::as_completed([pitcrew::spawn(async { "only" })]);
    ///     assert_eq!(results.next().await.unwrap().unwrap(), "only");
    ///     assert!(results.next().await.is_none());
    /// });
    /// ```
    pub async fn next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_next_result(cx)).await
    }

    /// Tasks not yielded yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(async {
    ///     let handles = (0..4).map(|i| pitcrew::spawn(async move { i }));
    ///     let mut results = pitcrew::task::as_completed(handles);
    ///     assert_eq!(results.len(), 4);
    ///     results.next().await;
    ///     assert_eq!(results.len(), 3);
    /// });
    /// ```
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True once every result has been yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(async {
    ///     let mut results = pitcrew::task::as_completed([pitcrew::spawn(async { 1 })]);
    ///     assert!(!results.is_empty());
    ///     results.next().await;
    ///     assert!(results.is_empty());
    /// });
    /// ```
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn poll_next_result(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        if self.pending.is_empty() {
            return Poll::Ready(None);
        }
        for i in 0..self.pending.len() {
            if let Poll::Ready(r) = Pin::new(&mut self.pending[i]).poll(cx) {
                drop(self.pending.swap_remove(i));
                return Poll::Ready(Some(r));
            }
        }
        Poll::Pending
    }
}

impl<T> Unpin for AsCompleted<T> {}

impl<T> futures_core::Stream for AsCompleted<T> {
    type Item = Result<T, JoinError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_next_result(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.pending.len(), Some(self.pending.len()))
    }
}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Spawns `future` to start after `delay` (giambio's `schedule`): the task exists (and can be
/// aborted) at once, and its future is first polled once the delay has passed.
///
/// # Panics
///
/// Outside a pitcrew runtime, as [`spawn`](crate::spawn) does.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     let later = pitcrew::task::spawn_after(Duration::from_millis(10), async move { start.elapsed() });
///     assert!(later.await.unwrap() >= Duration::from_millis(10));
///
///     // Aborted before its delay has passed: it never runs.
///     let never = pitcrew::task::spawn_after(Duration::from_secs(60), async { unreachable!() });
///     never.abort();
///     assert!(never.await.unwrap_err().is_cancelled());
/// });
/// ```
#[track_caller]
pub fn spawn_after<F>(delay: Duration, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    crate::spawn(async move {
        crate::time::sleep(delay).await;
        future.await
    })
}
