//! `Handle`: a cloneable reference to a runtime, usable from any thread.

use std::fmt;
use std::future::Future;
use std::panic::Location;

use crate::loom::Arc;
use crate::runtime::{block_on, context, Metrics};
use crate::scheduler::Shared;
use crate::task::JoinHandle;

/// A reference to a runtime: spawn onto it and block on it from any thread.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// let answer = std::thread::spawn(move || handle.block_on(async { 6 * 7 }))
///     .join()
///     .unwrap();
/// assert_eq!(answer, 42);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// There is no pitcrew runtime on this thread.
///
/// # Examples
///
/// ```
/// assert!(pitcrew::Handle::try_current().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRuntime(());

impl fmt::Display for NoRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("there is no current pitcrew runtime on this thread")
    }
}

impl std::error::Error for NoRuntime {}

impl Handle {
    /// The runtime of the current thread: a worker, a blocking thread, or a thread inside
    /// `block_on`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let handle = rt.block_on(async { pitcrew::Handle::current() });
    /// assert_eq!(handle.metrics().workers, rt.metrics().workers);
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a runtime, with a message naming pitcrew; [`Handle::try_current`] returns an
    /// error instead.
    #[track_caller]
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => context::no_runtime_panic("pitcrew::Handle::current()"),
        }
    }

    /// The runtime of the current thread, or [`NoRuntime`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// assert!(pitcrew::Handle::try_current().is_err());
    /// assert!(rt.block_on(async { pitcrew::Handle::try_current() }).is_ok());
    /// ```
    pub fn try_current() -> Result<Handle, NoRuntime> {
        context::current_handle().ok_or(NoRuntime(()))
    }

    /// Spawns a task on this runtime. After shutdown the handle resolves to a cancelled error.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let task = handle.spawn(async { "spawned through a handle" });
    /// assert_eq!(rt.block_on(task).unwrap(), "spawned through a handle");
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Shared::spawn(&self.shared, future, None, Location::caller())
    }

    /// Runs `f` on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let job = rt.handle().spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(rt.block_on(job).unwrap().is_some()); // blocking threads are named too
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shared
            .blocking
            .spawn(f, &self.shared, Location::caller())
    }

    /// Runs `future` to completion on the current thread, with this runtime as the current one
    /// (so `spawn` inside it works). Tasks it spawns run on the workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let out = std::thread::spawn(move || handle.block_on(async { pitcrew::spawn(async { 5 }).await }))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(out.unwrap(), 5);
    /// ```
    ///
    /// # Panics
    ///
    /// On a worker thread or inside another `block_on`: "cannot block_on inside a pitcrew
    /// runtime thread; .await instead". Blocking-pool threads may call it.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _enter = context::enter_block_on(self.clone());
        block_on::run(future)
    }

    /// A snapshot of the runtime's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
    /// assert_eq!(rt.handle().metrics().workers, 2);
    /// ```
    pub fn metrics(&self) -> Metrics {
        Metrics::collect(&self.shared)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.config.workers)
            .finish_non_exhaustive()
    }
}
