//! `task::Builder`: spawning with options.

use std::future::Future;
use std::panic::Location;

use crate::loom::DataArc;
use crate::runtime::{context, Handle};
use crate::scheduler::Shared;
use crate::task::{JoinHandle, SpawnError};

/// Spawns a task with options (a name, eager start).
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let name = rt.block_on(async {
///     pitcrew::task::Builder::new()
///         .name("conn-17")
///         .spawn(async { pitcrew::task::name() })
///         .unwrap()
///         .await
///         .unwrap()
/// });
/// assert_eq!(name.as_deref(), Some("conn-17"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<DataArc<str>>,
    eager: bool,
}

impl Builder {
    /// A builder with no options set.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(async {
    ///     pitcrew::task::Builder::new().spawn(async { 1 + 1 }).unwrap().await
    /// });
    /// assert_eq!(out.unwrap(), 2);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task: [`task::name`](crate::task::name), tracing spans and task dumps show it.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let name = rt.block_on(async {
    ///     let task = pitcrew::task::Builder::new()
    ///         .name("reaper")
    ///         .spawn(async { pitcrew::task::name() })
    ///         .unwrap();
    ///     task.await.unwrap()
    /// });
    /// assert_eq!(name.as_deref(), Some("reaper"));
    /// ```
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Starts the task eagerly, as asyncio's eager task factory does: its first poll runs
    /// inline in the spawner, before `spawn` returns, and a task that finishes on that poll
    /// never touches a run queue. A task that returns `Pending` continues on the runtime like any
    /// other. During that poll `task::id()` and `task::name()` are the new task's, and a panic
    /// in it ends the task with a panic [`JoinError`](crate::task::JoinError), never the
    /// spawner.
    ///
    /// # Caveats
    ///
    /// - Polling inline needs a thread that polls this runtime's tasks: one of its workers, or
    ///   a thread inside its `block_on`. Anywhere else (a blocking-pool thread, another runtime,
    ///   a plain thread with `spawn_on`) the task is spawned normally.
    /// - Inside a non-root scope (a nursery body or one of its children) the task joins the
    ///   scope before its first poll, as a plain spawn there does: the scope's cancellation
    ///   reaches it, and the nursery waits for it.
    /// - The first poll runs on the spawner's stack and delays it: keep eager tasks short
    ///   before their first `.await`, and do not chain eager spawns deeply.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(async {
    ///     let ran = Arc::new(AtomicBool::new(false));
    ///     let flag = ran.clone();
    ///     let handle = pitcrew::task::Builder::new()
    ///         .eager()
    ///         .spawn(async move { flag.store(true, Ordering::SeqCst) })
    ///         .unwrap();
    ///     assert!(ran.load(Ordering::SeqCst), "ran before spawn returned");
    ///     assert!(handle.is_finished());
    /// });
    /// ```
    pub fn eager(mut self) -> Builder {
        self.eager = true;
        self
    }

    /// Spawns the task on the current runtime.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Shutdown`] when the runtime is shutting down; the future is dropped.
    ///
    /// # Panics
    ///
    /// Panics outside a pitcrew runtime, as [`spawn`](crate::spawn) does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     match pitcrew::task::Builder::new().name("job").spawn(async { 42 }) {
    ///         Ok(task) => assert_eq!(task.await.unwrap(), 42),
    ///         Err(e) => eprintln!("not spawned: {e}"), // the runtime is shutting down
    ///     }
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let location = Location::caller();
        context::with_scheduler(|shared| match shared {
            Some(shared) if self.eager => {
                Shared::try_spawn_eager(shared, future, self.name, location)
            }
            Some(shared) => Shared::try_spawn(shared, future, self.name, location),
            None => context::no_runtime_panic("task::Builder::spawn"),
        })
    }

    /// Spawns the task on the runtime of `handle`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// // From a plain thread: name the task and pick the runtime.
    /// let task = pitcrew::task::Builder::new()
    ///     .name("importer")
    ///     .spawn_on(async { pitcrew::task::name() }, rt.handle())
    ///     .unwrap();
    /// assert_eq!(rt.block_on(task).unwrap().as_deref(), Some("importer"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpawnError::Shutdown`] when that runtime is shutting down; the future is dropped.
    #[track_caller]
    pub fn spawn_on<F>(
        self,
        future: F,
        handle: &Handle,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let location = Location::caller();
        if self.eager {
            Shared::try_spawn_eager(&handle.shared, future, self.name, location)
        } else {
            Shared::try_spawn(&handle.shared, future, self.name, location)
        }
    }
}
