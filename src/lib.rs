//! # pitcrew
//!
//! A multi-threaded, work-stealing async runtime for servers that mix CPU work and I/O, with
//! structured concurrency (nurseries and cancel scopes) and supervision built in.
//!
//! ```
//! use std::time::Duration;
//!
//! use pitcrew::scope::nursery;
//! use pitcrew::{time, Runtime};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = Runtime::builder().workers(2).build()?;
//!     let answer = rt.block_on(nursery(|n| async move {
//!         // Children run on any worker. The nursery returns only once every child has
//!         // ended, and the first failure cancels the others.
//!         let slow = n.spawn(async {
//!             time::sleep(Duration::from_millis(50)).await;
//!             Ok(40)
//!         });
//!         let quick = n.spawn(async { Ok::<_, std::io::Error>(2) });
//!         let slow = time::timeout(Duration::from_secs(1), slow).await??;
//!         Ok(slow + quick.await?)
//!     }))?;
//!     assert_eq!(answer, 42);
//!     Ok(())
//! }
//! ```
//!
//! # A tour
//!
//! ## The runtime
//!
//! A [`Runtime`] owns the worker threads, a timer thread and a blocking pool. [`Runtime::block_on`]
//! runs a future on the calling thread until it completes; a [`Handle`] reaches the runtime from
//! any thread. [`Runtime::metrics`] counts what the workers did, and
//! [`Runtime::shutdown`] cancels what is left, with a grace period.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = pitcrew::Runtime::builder()
//!     .workers(2)
//!     .thread_name("app")
//!     .build()
//!     .unwrap();
//! let handle = rt.handle().clone();
//! let from_a_thread = std::thread::spawn(move || handle.block_on(async { 6 * 7 }));
//! assert_eq!(from_a_thread.join().unwrap(), 42);
//!
//! rt.block_on(async { pitcrew::spawn(async {}).await.unwrap() });
//! assert!(rt.metrics().spawned >= 1);
//! let report = rt.shutdown(Duration::from_millis(100));
//! assert_eq!(report.dropped, 0);
//! ```
//!
//! ## Spawning tasks
//!
//! [`spawn`] starts a task on the current runtime and returns a [`JoinHandle`], which resolves
//! to the task's output, or to a [`JoinError`](task::JoinError) when it panicked or was
//! aborted. Dropping the handle detaches the task. [`spawn_blocking`] runs blocking code on the
//! blocking pool, off the workers. [`task::Builder`] names a task (names show in
//! [`task::dump`] and in tracing).
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let squares: Vec<_> = (0..10u64).map(|i| pitcrew::spawn(async move { i * i })).collect();
//!     let mut sum = 0;
//!     for task in squares {
//!         sum += task.await.unwrap();
//!     }
//!     assert_eq!(sum, 285);
//!
//!     let file_len = pitcrew::spawn_blocking(|| std::fs::read("Cargo.toml").map(|b| b.len()));
//!     assert!(file_len.await.unwrap().unwrap() > 0);
//!
//!     let forever = pitcrew::task::Builder::new()
//!         .name("forever")
//!         .spawn(pitcrew::time::sleep(Duration::MAX))
//!         .unwrap();
//!     forever.abort();
//!     assert!(forever.await.unwrap_err().is_cancelled());
//!
//!     let panicked = pitcrew::spawn(async { panic!("boom") }).await;
//!     assert!(panicked.unwrap_err().is_panic()); // and the worker lives on
//! });
//! ```
//!
//! ## Sleeping and timeouts
//!
//! [`time::sleep`], [`time::timeout`] and [`time::interval`] are driven by the runtime's timer
//! thread, with millisecond resolution; a timer never fires early.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use pitcrew::time;
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let start = Instant::now();
//!     time::sleep(Duration::from_millis(5)).await;
//!     assert!(start.elapsed() >= Duration::from_millis(5));
//!
//!     let never = std::future::pending::<()>();
//!     assert!(time::timeout(Duration::from_millis(5), never).await.is_err());
//!
//!     let mut tick = time::interval(Duration::from_millis(2));
//!     let first = tick.tick().await; // the first tick is immediate
//!     let second = tick.tick().await;
//!     assert!(second - first >= Duration::from_millis(2));
//! });
//! ```
//!
//! ## TCP
//!
//! [`net::TcpListener`] and [`net::TcpStream`] implement the `futures-io` traits, so
//! extension traits such as `futures_lite::{AsyncReadExt, AsyncWriteExt}` work on them (and
//! tokio's traits with the `tokio-io` feature). An idle worker waits in the poller itself, so a
//! ready socket costs no thread hop.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use pitcrew::net::{TcpListener, TcpStream};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     // An echo server that answers one connection.
//!     pitcrew::spawn(async move {
//!         let (mut stream, _) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         stream.read_exact(&mut buf).await?;
//!         stream.write_all(&buf).await
//!     });
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut echo = [0; 5];
//!     client.read_exact(&mut echo).await?;
//!     assert_eq!(&echo, b"hello");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! hyper 1.x runs on pitcrew through `pitcrew::hyper` (the `hyper` feature, on by default):
//! see its module documentation and `examples/demo.rs`.
//!
//! ## Nurseries
//!
//! A [`scope::nursery`] runs its body inline with a [`Nursery`](scope::Nursery) to spawn
//! children into. It returns only once every child has ended; the first failure (an `Err` or a
//! panic) cancels the body and the other children, and the nursery returns every failure, the
//! first one first. No task outlives the nursery that started it.
//!
//! ```
//! use std::time::Duration;
//! use pitcrew::scope::{self, nursery, ScopeError};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! let result = rt.block_on(nursery(|n| async move {
//!     n.spawn(async {
//!         // A long job: it notices the cancellation and stops.
//!         scope::cancelled().await;
//!         Ok(())
//!     });
//!     n.spawn(async {
//!         pitcrew::time::sleep(Duration::from_millis(1)).await;
//!         Err::<(), _>("the upstream went away")
//!     });
//!     Ok("unreachable: the failure cancels the body too")
//! }));
//! let Err(ScopeError::Failed(failures)) = result else { panic!("{result:?}") };
//! assert!(failures[0].to_string().contains("the upstream went away"));
//! ```
//!
//! ## Supervisors
//!
//! A [`scope::supervisor`] keeps restartable children running, restarting them by Erlang/OTP
//! strategies ([`OneForOne`](scope::Strategy::OneForOne),
//! [`OneForAll`](scope::Strategy::OneForAll), [`RestForOne`](scope::Strategy::RestForOne)),
//! with a back-off between restarts, and gives up when restarts exceed its intensity.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pitcrew::scope::{supervisor, ChildSpec, Restart, SupervisorOptions};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! let starts = Arc::new(AtomicUsize::new(0));
//! let opts = SupervisorOptions::new()
//!     .name("pool")
//!     .intensity(5, Duration::from_secs(1))
//!     .backoff(Duration::from_millis(1), Duration::from_millis(10));
//! let counted = starts.clone();
//! let children = rt.block_on(supervisor(opts, |sup| async move {
//!     // A worker that fails twice, then does its job.
//!     let spec = ChildSpec::new("flaky", move || {
//!         let start = counted.fetch_add(1, Ordering::SeqCst);
//!         async move { if start < 2 { Err("crashed") } else { Ok(()) } }
//!     });
//!     sup.add(spec.restart(Restart::Transient));
//!     sup
//! }))
//! .unwrap()
//! .children();
//! assert_eq!(starts.load(Ordering::SeqCst), 3);
//! assert_eq!(children[0].restarts, 2);
//! ```
//!
//! ## Cancel scopes
//!
//! [`scope::move_on_after`] and [`scope::fail_after`] bound a piece of work with a deadline,
//! cancelling everything it spawned when it passes; [`scope::shield`] protects a clean-up from
//! an enclosing cancellation. Cancellation is cooperative first: code sees
//! [`scope::is_cancelled`], awaits [`scope::cancelled`], or calls [`scope::checkpoint`] in a CPU
//! loop; what is still running after the scope's grace period is dropped.
//!
//! ```
//! use std::time::Duration;
//! use pitcrew::scope::{self, nursery_with, ScopeOptions};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let gave_up = scope::move_on_after(Duration::from_millis(5), async {
//!         pitcrew::time::sleep(Duration::from_secs(3600)).await;
//!     })
//!     .await;
//!     assert_eq!(gave_up, None);
//!
//!     let in_time = scope::fail_after(Duration::from_secs(5), async { 7 }).await;
//!     assert_eq!(in_time, Ok(7));
//!
//!     // Cooperative cancellation: with a grace period, a CPU loop that calls `checkpoint`
//!     // stops by itself and returns what it did; `shield` lets a clean-up run to its end.
//!     let opts = ScopeOptions::new().grace(Duration::from_secs(5));
//!     let rounds = nursery_with(opts, |n| async move {
//!         let cruncher = n.spawn(async {
//!             let mut rounds = 0u64;
//!             while scope::checkpoint().is_ok() {
//!                 rounds += 1;
//!                 pitcrew::yield_now().await;
//!             }
//!             Ok::<_, std::io::Error>(rounds)
//!         });
//!         pitcrew::time::sleep(Duration::from_millis(1)).await;
//!         n.cancel();
//!         assert!(scope::is_cancelled());
//!         let shielded = scope::shield(async { scope::is_cancelled() }).await;
//!         assert!(!shielded);
//!         Ok(cruncher.await?)
//!     })
//!     .await;
//!     assert!(rounds.is_ok());
//! });
//! ```
//!
//! ## What is running
//!
//! [`task::dump`] lists every live task with its name, state and the path of named scopes it
//! runs in; [`task::dump_tree`] prints them as a tree.
//!
//! ```
//! use pitcrew::scope::{nursery_with, ScopeOptions};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! let handle = rt.handle().clone();
//! rt.block_on(nursery_with(ScopeOptions::new().name("server"), |n| async move {
//!     // A background child: cancelled when the body returns.
//!     let idle = n.child().name("idle").background().spawn(async {
//!         pitcrew::scope::cancelled().await;
//!         Ok::<_, std::io::Error>(())
//!     });
//!     let tasks = pitcrew::task::dump(&handle);
//!     let idle = tasks.iter().find(|t| t.id == idle.id()).unwrap();
//!     assert_eq!(idle.name.as_deref(), Some("idle"));
//!     assert_eq!(&*idle.scope_path[0], "server");
//!     Ok(())
//! }))
//! .unwrap();
//! ```
//!
//! # Map of the crate
//!
//! - [`runtime`]: [`Runtime`], its [`Builder`], [`Handle`], [`Metrics`].
//! - [`task`]: [`JoinHandle`], aborting, task ids and names, [`task::Builder`], combinators
//!   ([`task::join_all`], [`task::wait`], [`task::as_completed`]) and [`task::dump`].
//! - [`time`]: [`sleep`](time::sleep), [`timeout`](time::timeout) and
//!   [`interval`](time::interval), driven by one timer thread per runtime.
//! - [`io`] and [`net`]: [`Async`](io::Async) for any file descriptor; TCP, UDP and Unix sockets
//!   implementing `futures_io` (and tokio's I/O traits with the `tokio-io` feature).
//! - [`scope`]: nurseries, cancel scopes, supervisors.
//! - `hyper` (feature `hyper`, on by default): an executor, a timer and an I/O adapter for
//!   hyper 1.x.
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
