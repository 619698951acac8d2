//! # pitcrew
//!
//! A multi-threaded, work-stealing async runtime for servers that mix CPU work and I/O.
//!
//! ```
//! use pitcrew::Runtime;
//!
//! let rt = Runtime::builder().workers(2).build().unwrap();
//! let total = rt.block_on(async {
//!     let tasks: Vec<_> = (1..=4u64)
//!         .map(|n| pitcrew::spawn(async move { (1..=n).product::<u64>() }))
//!         .collect();
//!     let mut total = 0;
//!     for task in tasks {
//!         total += task.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 1 + 2 + 6 + 24);
//! ```
//!
//! ## Shape
//!
//! - [`runtime`]: [`Runtime`], its [`Builder`], and [`Handle`] to reach it from any thread.
//! - [`task`]: [`JoinHandle`], aborting, task ids and names,
//!   [`task::Builder`].
//! - [`time`]: [`sleep`](time::sleep), [`timeout`](time::timeout) and
//!   [`interval`](time::interval), driven by one timer thread per runtime.
//! - [`io`] and [`net`]: [`Async`](io::Async) for any file descriptor; TCP, UDP and Unix sockets
//!   implementing `futures_io` (and tokio's I/O traits with the `tokio-io` feature).
//! - `hyper` (feature `hyper`): an executor, a timer and an I/O adapter for hyper 1.x.
//! - Free functions [`spawn`], [`spawn_blocking`] and [`yield_now`] work on the runtime of the
//!   current thread.
//!
//! A panic inside a task never kills a worker: the task ends with a
//! [`JoinError`](task::JoinError) for which `is_panic()` is true.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub(crate) mod loom;

#[cfg(loom)]
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod loom_api;

mod blocking;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
mod compat;
pub mod io;
pub mod net;
#[cfg(feature = "hyper")]
pub use compat::hyper;
pub mod runtime;
mod scheduler;
pub mod scope;
pub mod task;
pub mod time;

use std::future::Future;
use std::panic::Location;

pub use runtime::{
    BuildError, Builder, Handle, Metrics, NoRuntime, Runtime, ShutdownReport, WorkerMetrics,
};
pub use task::{yield_now, JoinHandle};

/// Spawns a task on the current runtime.
///
/// # Panics
///
/// Outside a pitcrew runtime (a worker, a blocking thread, or inside `block_on`), with a message
/// that names [`Handle::try_current`].
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(async { pitcrew::spawn(async { "done" }).await.unwrap() });
/// assert_eq!(out, "done");
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let location = Location::caller();
    runtime::context::with_scheduler(|shared| match shared {
        Some(shared) => scheduler::Shared::spawn(shared, future, None, location),
        None => runtime::context::no_runtime_panic("pitcrew::spawn"),
    })
}

/// Runs a blocking closure on the current runtime's blocking pool.
///
/// # Panics
///
/// Outside a pitcrew runtime, as [`spawn`] does.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let len = rt.block_on(async {
///     pitcrew::spawn_blocking(|| std::env::current_dir().map(|d| d.as_os_str().len()))
///         .await
///         .unwrap()
/// });
/// assert!(len.unwrap() > 0);
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let location = Location::caller();
    runtime::context::with_scheduler(|shared| match shared {
        Some(shared) => shared.blocking.spawn(f, shared, location),
        None => runtime::context::no_runtime_panic("pitcrew::spawn_blocking"),
    })
}
