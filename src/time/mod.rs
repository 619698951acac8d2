//! Time: sleeping, timeouts and intervals.
//!
//! Every runtime has one timer thread; [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`]
//! and [`interval`] register with it. Deadlines have millisecond resolution and are rounded up,
//! so a timer never fires early. [`Duration::MAX`] and other unreachable deadlines never fire and
//! never overflow; deadlines in the past complete on the first poll.
//!
//! These functions must be called on a runtime thread (a worker, a blocking thread, or inside
//! `block_on`): the timer is picked when the future is created, as with
//! [`spawn`](crate::spawn). The futures themselves may then be polled anywhere.
//!
//! ```
//! use std::time::Duration;
//! use pitcrew::time::{interval, sleep, timeout};
//!
//! let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
//! rt.block_on(async {
//!     sleep(Duration::from_millis(1)).await;
//!
//!     let slow = pitcrew::spawn(sleep(Duration::from_secs(3600)));
//!     assert!(timeout(Duration::from_millis(5), slow).await.is_err());
//!
//!     let mut every_ms = interval(Duration::from_millis(1));
//!     let first = every_ms.tick().await;
//!     let second = every_ms.tick().await;
//!     assert_eq!(second - first, Duration::from_millis(1));
//! });
//! ```

// Design notes
// ============
//
// # Shape
//
// One timer thread per runtime ("{thread_name}-timer") owns a hierarchical timing wheel
// (`wheel.rs`: 6 levels x 64 slots, 1 ms ticks, O(1) insert, remove and next-deadline). Nothing
// but that thread ever touches the wheel, so the wheel needs no lock at all. Handles talk to the
// thread through one lock-free take-all stack (`queue.rs`) that carries registrations and
// cancellations; the thread takes the whole stack with one atomic swap per turn (`driver.rs`).
// A registration costs a handle one entry (recycled, `pool.rs`) and one compare-exchange.
//
// # The entry
//
// A `Sleep` takes one small entry (`entry.rs`) on its first pending poll, and shares it with
// the timer thread. Entries are recycled: the timer thread returns the ones it retires to a
// bounded pool, and each thread keeps a small cache of free ones (`pool.rs`), so neither a
// registration nor a cancellation calls the allocator on the hot path. The entry's state word holds the deadline tick and the flags that say who
// owns what: registered with the thread, linked in the wheel, fired, cancelled, and a lock bit
// for the waker slot. Firing, cancelling and moving the deadline later are compare-exchanges on
// that one word, so they are linearizable with each other: the waker is taken at most once, by
// the thread that fired, and an entry is freed exactly once, by whichever side lets go last.
// The numbered rules are at the top of `entry.rs`.
//
// Wakers run after their entries have been let go and outside any lock (there is none on this
// path); they are user code. A wake already taken when the `Sleep` is dropped may still be
// delivered after the drop returns, as in tokio: waiting for it would make `drop` wait on user
// code.
//
// # Cheap paths
//
// - A sleep that is never polled, whose deadline has passed (`sleep(Duration::ZERO)`, a past
//   `sleep_until`), or that never ends, allocates nothing and never talks to the thread.
// - `timeout` polls the inner future first; if it is ready, no timer is ever registered.
// - Cancelling takes the waker back (so the task it refers to is not touched on another core)
//   and marks the entry cancelled. The thread recycles an entry it had not linked yet when it
//   takes the registration; a linked one is pushed to the stack again, and the thread unlinks
//   and recycles it on its next turn.
// - Moving a deadline later (`Sleep::reset`, keep-alive timers) is one compare-exchange: the
//   thread relinks the entry when its old slot comes due. `Interval` reuses its entry from tick
//   to tick.
// - The thread is woken only when a registration is earlier than the deadline it sleeps until
//   (a wake-up costs ~15-22 us here), when thousands of messages are waiting for it, or by the
//   first message after it fell into a long sleep. While timers come and go it sleeps at most a
//   second, so that cancelled entries are reclaimed promptly without a wake-up each; an idle
//   timer sleeps until its next deadline, or for ever.
//
// # Lifetimes
//
// A `Sleep` holds an `Arc` of the shared state (`TimeShared`: the stack, the clock origin, the
// wake-up flag, the entry pool). The timer thread holds the wheel. Entries refer to neither, so
// there is no reference cycle; a pending entry's waker may refer to a task, whose runtime refers
// to the shared state, but the timer thread lets go of every entry (and so of every waker) when
// it stops, and recycled entries hold no waker.
//
// `sleep` resolves the runtime when it is called (as tokio does), so that a sleep made outside a
// runtime panics where it is made. `timeout` fixes its deadline when it is called but looks the
// timer up only when the inner future is first pending: a ready future never touches the timer
// (nor the runtime's reference count).
//
// # Shutdown
//
// The runtime stops the timer thread after the workers are joined and the blocking pool is
// shut down (so every task's sleeps have been dropped, each exactly once, while the timer still
// ran). The thread refuses registrations, lets go of every entry it holds (waking those still
// pending, whose next poll panics: the timer is gone) and frees the cancelled ones. The protocol
// that makes a cancellation racing with shutdown safe is in `driver.rs`.
//
// # loom
//
// Under `cfg(loom)` the runtime starts no timer thread and entries are not recycled (each is a
// tracked allocation, so loom reports a leak). The models in `loom-tests/tests/timer.rs` drive a
// `Driver` by hand through `loom_api`, with ticks in place of a clock: they race a handle's poll,
// reset and drop against the thread's turn, sleep and shutdown.

mod driver;
mod entry;
mod interval;
#[cfg(not(loom))]
mod pool;
mod queue;
mod sleep;
mod timeout;
mod wheel;

pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub(crate) use timeout::elapsed;
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

/// The monotonic clock's instants (the standard library's, re-exported).
pub use std::time::Instant;

/// Spans of time (the standard library's, re-exported).
pub use std::time::Duration;

pub(crate) use driver::{start_thread, ThreadConfig, TimeShared};

#[cfg(loom)]
pub(crate) use driver::Driver;
#[cfg(loom)]
pub(crate) use entry::{Registration, NEVER};
