//! `task::Builder`: spawning with options.

use std::future::Future;
use std::panic::Location;

use crate::loom::DataArc;
use crate::runtime::{context, Handle};
use crate::scheduler::Shared;
use crate::task::{JoinHandle, SpawnError};

/// Spawns a task with options (a name).
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
}

impl Builder {
    /// A builder with no options set.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task: [`task::name`](crate::task::name), tracing spans and task dumps show it.
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Builder {
        self.name = Some(name.into());
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
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let location = Location::caller();
        context::with_scheduler(|shared| match shared {
            Some(shared) => Shared::try_spawn(shared, future, self.name, location),
            None => context::no_runtime_panic("task::Builder::spawn"),
        })
    }

    /// Spawns the task on the runtime of `handle`.
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
        Shared::try_spawn(&handle.shared, future, self.name, Location::caller())
    }
}
