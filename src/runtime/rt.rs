//! `Runtime`: owns the worker threads; building, spawning, blocking on and shutting down.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::blocking::{BlockingPool, PoolConfig};
use crate::loom::thread;
use crate::runtime::{BuildError, Builder, Handle, Metrics};
use crate::scheduler::{self, run_worker, Shared};
use crate::task::JoinHandle;

/// A multi-threaded, work-stealing runtime.
///
/// Dropping it shuts it down with no grace period: every task still alive has its future
/// dropped (exactly once, on a runtime thread), blocking jobs that have not started are
/// cancelled, running ones are waited for, and every runtime thread is joined.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// let handles: Vec<_> = (0..10u64).map(|i| rt.spawn(async move { i * i })).collect();
/// let sum: u64 = rt.block_on(async {
///     let mut sum = 0;
///     for h in handles {
///         sum += h.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 285);
/// ```
pub struct Runtime {
    handle: Handle,
    workers: Vec<thread::JoinHandle<()>>,
    timer: Option<thread::JoinHandle<()>>,
    shut_down: bool,
}

/// What [`Runtime::shutdown`] did.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let _quick = rt.spawn(async {});
/// let _stuck = rt.spawn(std::future::pending::<()>());
/// let report = rt.shutdown(Duration::from_millis(10));
/// assert_eq!(report.dropped, 1); // the pending task
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that ended on their own within the grace period.
    pub completed_in_grace: usize,
    /// Tasks still alive when the grace period ended, whose futures were dropped.
    pub dropped: usize,
}

impl Runtime {
    /// A builder for a runtime with custom settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).thread_name("app").build().unwrap();
    /// assert_eq!(rt.metrics().workers, 2);
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A runtime with the default settings (one worker per CPU).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    /// ```
    ///
    /// # Errors
    ///
    /// When the OS refuses to start a thread.
    pub fn new() -> Result<Runtime, BuildError> {
        Builder::new().build()
    }

    pub(crate) fn from_builder(b: Builder) -> Result<Runtime, BuildError> {
        let workers = b.workers.unwrap_or_else(num_cpus::get).max(1);
        let blocking = BlockingPool::new(PoolConfig {
            max_threads: b.max_blocking_threads,
            keep_alive: b.blocking_keep_alive,
            thread_name: b.thread_name.clone(),
            stack_size: b.stack_size,
            on_start: b.on_thread_start.clone(),
            on_stop: b.on_thread_stop.clone(),
        });
        let timer_config = crate::time::ThreadConfig {
            name: format!("{}-timer", b.thread_name),
            stack_size: b.stack_size,
            on_start: b.on_thread_start.clone(),
            on_stop: b.on_thread_stop.clone(),
        };
        let config = scheduler::Config {
            workers,
            thread_name: b.thread_name,
            stack_size: b.stack_size,
            on_start: b.on_thread_start,
            on_stop: b.on_thread_stop,
            slow_poll_threshold: b.slow_poll_threshold,
            track_poll_time: b.track_poll_time,
        };
        let reactor = crate::io::reactor::Reactor::new().map_err(BuildError::Io)?;
        let (shared, locals) = Shared::new(config, blocking, reactor);
        let mut rt = Runtime {
            handle: Handle {
                shared: shared.clone(),
            },
            workers: Vec::with_capacity(workers),
            timer: None,
            shut_down: false,
        };
        for (index, (local, parker)) in locals.into_iter().enumerate() {
            let mut builder =
                thread::Builder::new().name(format!("{}-{index}", shared.config.thread_name));
            if let Some(size) = shared.config.stack_size {
                builder = builder.stack_size(size);
            }
            let worker_shared = shared.clone();
            match builder.spawn(move || run_worker(worker_shared, index, local, parker)) {
                Ok(handle) => rt.workers.push(handle),
                Err(err) => {
                    // Threads that did start are stopped and joined by the drop.
                    drop(rt);
                    return Err(BuildError::Spawn(err));
                }
            }
        }
        match crate::time::start_thread(&rt.handle, timer_config) {
            Ok(timer) => rt.timer = timer,
            Err(err) => {
                drop(rt);
                return Err(BuildError::Spawn(err));
            }
        }
        Ok(rt)
    }

    /// The runtime's handle, to clone and send to other threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let task = std::thread::spawn(move || handle.spawn(async { "from a plain thread" }))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(rt.block_on(task).unwrap(), "from a plain thread");
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task on the runtime.
    ///
    /// The task starts running on a worker at once; awaiting the returned [`JoinHandle`] gives
    /// its output. Dropping the handle detaches the task.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(async { 6 * 7 });
    /// assert_eq!(rt.block_on(task).unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Shared::spawn(&self.handle.shared, future, None, Location::caller())
    }

    /// Runs `f` on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let job = rt.spawn_blocking(|| std::fs::metadata("Cargo.toml").map(|m| m.len()));
    /// assert!(rt.block_on(job).unwrap().unwrap() > 0);
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Runs `future` to completion on the calling thread; see [`Handle::block_on`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(async {
    ///     pitcrew::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     "slept"
    /// });
    /// assert_eq!(out, "slept");
    /// ```
    ///
    /// # Panics
    ///
    /// When called on a runtime worker thread or inside another `block_on`.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// A snapshot of the runtime's counters.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(rt.spawn(async {})).unwrap();
    /// let m = rt.metrics();
    /// assert_eq!(m.workers, 2);
    /// assert!(m.spawned >= 1 && m.polls >= 1);
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.handle.metrics()
    }

    /// Shuts the runtime down: no task can be spawned from now on; tasks get `grace` to end on
    /// their own; the futures of those still alive are then dropped, and every runtime thread is
    /// joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// // A task that stops by itself when the runtime shuts down.
    /// rt.spawn(async { pitcrew::scope::cancelled().await });
    /// let report = rt.shutdown(Duration::from_secs(5));
    /// assert_eq!((report.completed_in_grace, report.dropped), (1, 0));
    /// ```
    pub fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shutdown_inner(grace)
    }

    fn shutdown_inner(&mut self, grace: Duration) -> ShutdownReport {
        if self.shut_down {
            return ShutdownReport::default();
        }
        self.shut_down = true;
        let shared = &self.handle.shared;
        shared.close();
        // Tasks see `scope::is_cancelled()` (reason `Shutdown`) during the grace period.
        shared.root.cancel(crate::scope::CancelReason::Shutdown);
        // Counted after the close, so that no spawn slips in between and skews the report.
        let alive_at_start = shared.owned.len();
        let alive = shared.wait_for_tasks(grace);
        shared.signal_shutdown();
        let me = thread::current().id();
        for worker in self.workers.drain(..) {
            // A runtime dropped by one of its own tasks cannot join the thread it runs on.
            if worker.thread().id() != me {
                let _ = worker.join();
            }
        }
        // Whatever no worker reached (a worker that could not start, or the current one).
        shared.shutdown_owned(0);
        shared.drain_injector();
        shared.blocking.shutdown();
        // Step 6, last: tasks and blocking jobs may sleep until they are gone.
        shared.time.stop();
        if let Some(timer) = self.timer.take() {
            if timer.thread().id() != me {
                let _ = timer.join();
            }
        }
        ShutdownReport {
            completed_in_grace: alive_at_start.saturating_sub(alive),
            dropped: alive,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_inner(Duration::ZERO);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers.len())
            .field("shut_down", &self.shut_down)
            .finish()
    }
}
