//! `JoinHandle` and `AbortHandle`: the user's side of a spawned task.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::task::raw::RawTask;
use crate::task::{coop, Id, JoinError};

/// An owned permission to await a task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] when the task panicked or was cancelled.
/// Dropping it detaches the task: it keeps running and its output is dropped when it ends.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let a = pitcrew::spawn(async { 1 + 1 });
///     let b = pitcrew::spawn(async { 2 + 2 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(sum, 6);
/// ```
///
/// # Cancel safety
///
/// Dropping the future returned by `.await`ing a `&mut JoinHandle` loses nothing: poll the handle
/// again later to get the output.
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves the output (`T: Send`) out of the task, through the state
// protocol; it shares nothing else.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only allows `abort`, `is_finished` and `id`, which touch atomics.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// # Safety
    ///
    /// `raw` carries the join-handle reference of a task whose output type is `T`.
    pub(crate) unsafe fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Cancels the task: its future is dropped before its next poll (never during one) and this
    /// handle then resolves to a cancelled [`JoinError`]. A task that already finished keeps its
    /// result.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// task.abort();
    /// assert!(rt.block_on(task).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// True once the task has ended (its output, or its error, is ready).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let pending = rt.spawn(std::future::pending::<()>());
    /// assert!(!pending.is_finished());
    /// let done = rt.spawn(async {});
    /// while !done.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(async { pitcrew::task::id() });
    /// let id = task.id();
    /// assert_eq!(rt.block_on(task).unwrap(), id);
    /// ```
    pub fn id(&self) -> Id {
        self.raw.id()
    }

    /// A handle that can abort the task but not await it.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// let aborter = task.abort_handle();
    /// std::thread::spawn(move || aborter.abort()).join().unwrap();
    /// assert!(rt.block_on(task).unwrap_err().is_cancelled());
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        self.raw.header().state.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        let mut out = Poll::Pending;
        self.raw.try_read_output(&mut out, cx.waker());
        if out.is_pending() {
            coop::refund();
        }
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.raw.drop_join_handle();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A handle that can abort a task, without the right to await it.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let task = rt.spawn(std::future::pending::<()>());
/// let aborter = task.abort_handle();
/// assert_eq!(aborter.id(), task.id());
/// aborter.abort();
/// assert!(rt.block_on(task).unwrap_err().is_cancelled());
/// assert!(aborter.is_finished());
/// ```
pub struct AbortHandle {
    raw: RawTask,
}

impl AbortHandle {
    /// Cancels the task, as [`JoinHandle::abort`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// let aborter = task.abort_handle();
    /// std::thread::spawn(move || aborter.abort()).join().unwrap();
    /// assert!(rt.block_on(task).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// True once the task has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(async { 1 });
    /// let watcher = task.abort_handle();
    /// assert_eq!(rt.block_on(task).unwrap(), 1);
    /// assert!(watcher.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// let aborter = task.abort_handle();
    /// assert_eq!(aborter.id(), task.id());
    /// aborter.abort();
    /// ```
    pub fn id(&self) -> Id {
        self.raw.id()
    }

    /// Drops the task's future on this thread now, unless a worker is polling it (then right
    /// after that poll, on the worker).
    pub(crate) fn cancel_now(&self) {
        self.raw.cancel_now();
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> Self {
        self.raw.header().state.ref_inc();
        AbortHandle { raw: self.raw }
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
