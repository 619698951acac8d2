//! Tasks: spawning with options, joining, aborting, ids and names, yielding.
//!
//! A task is a future handed to the runtime with [`spawn`](crate::spawn). It runs on the
//! worker threads until it completes; its [`JoinHandle`] yields its output, or a [`JoinError`]
//! when it panicked or was aborted.
//!
//! ```
//! let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
//! rt.block_on(async {
//!     let slow = pitcrew::spawn(std::future::pending::<()>());
//!     slow.abort();
//!     assert!(slow.await.unwrap_err().is_cancelled());
//! });
//! ```

// Design notes
// ============
//
// Tasks: spawning, joining, aborting, and the task cell underneath.
//
// # The task cell
//
// A spawned future lives in one heap allocation, a `Cell` (`raw.rs`): a header (state word,
// vtable, id, name, tracing span), the scheduler it belongs to, the *stage* (the future, then
// its output) and the join waker. Everything outside the cell refers to it through a pointer to
// the header and a reference count packed into the state word (see `state.rs`).
//
// ## Kinds of reference
//
// - the `JoinHandle` (one reference, dropped with the handle),
// - the owned-task list of the runtime (one reference, dropped when the task completes or when
//   shutdown takes it out of the list),
// - a `Notified` in a run queue, or the worker running the task (one reference, tied to the
//   NOTIFIED bit: at most one queue entry exists per task),
// - every `Waker` and `AbortHandle` (one reference each).
//
// The allocation is freed when the count reaches zero, by whoever dropped the last reference.
//
// ## Who may touch what
//
// 1. The stage belongs to the thread that set RUNNING, until it sets COMPLETE. Only that
//    thread polls or drops the future, so a future is never polled twice at once and is
//    dropped exactly once.
// 2. After COMPLETE the stage (the output) belongs to the `JoinHandle`; if the handle is gone
//    when the task completes, the completing thread drops the output at once.
// 3. The join-waker slot is written by the `JoinHandle` only while JOIN_WAKER is clear; while
//    it is set, the runtime may read it (to wake it once, after COMPLETE) and nobody writes.
//    After waking it the runtime clears JOIN_WAKER, handing the slot back; if the handle was
//    dropped meanwhile, the runtime drops the waker.
// 4. `owned_index` is touched only under the owned list's shard lock.
// 5. Aborting sets CANCELLED. A task that is idle is queued so that a worker drops its future
//    (futures are dropped on runtime threads); a queued task is dropped when dequeued; a
//    running task is dropped right after its current poll, never during it.
// 6. Every transition is a compare-exchange that writes, even when the bits do not change, so
//    that a wake always publishes the waker's earlier writes (a release RMW).
//
// ## Why it is sound
//
// RUNNING is taken only by `transition_to_running` (needs NOTIFIED, which only one queue entry
// carries) or by shutdown (needs the task idle), so one thread at a time owns the stage. A wake
// that arrives while the task runs sets NOTIFIED without queueing; the poller sees it in
// `transition_to_idle` and requeues the task with its own reference, so a wake is never lost
// and never queues the task twice.

pub(crate) mod coop;
pub(crate) mod harness;
pub(crate) mod list;
pub(crate) mod poll_time;
pub(crate) mod raw;
pub(crate) mod state;
pub(crate) mod waker;

mod builder;
mod combinators;
mod dump;
mod error;
mod id;
mod join;
mod yield_now;

pub use builder::Builder;
pub use combinators::{
    as_completed, join_all, spawn_after, try_join_all, wait, AsCompleted, ReturnWhen,
};
pub use dump::{dump, dump_tree, TaskDump, TaskInfo, TaskState};
pub use error::{JoinError, SpawnError};
pub use id::{id, name, try_id, Id};
pub use join::{AbortHandle, JoinHandle};
pub use yield_now::{yield_now, YieldNow};

pub(crate) use error::panic_message;
pub(crate) use waker::wake_contained;
