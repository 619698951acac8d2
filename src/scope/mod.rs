//! Structured concurrency: scopes, nurseries, cancel scopes.
//!
//! Scopes form a tree. Every task belongs to the scope it was spawned in (a plain
//! [`spawn`](crate::spawn) outside any nursery puts it in the runtime's root scope), and
//! cancelling a scope cancels everything below it.
//!
//! - [`nursery`] runs a body inline in the calling task with a [`Nursery`] to spawn children
//!   into; it returns only once every child has ended. The first failure (an `Err` or a panic)
//!   cancels the body and every sibling, and comes back first in [`ScopeError::Failed`].
//! - Cancellation is cooperative first: tasks see [`is_cancelled`], [`cancelled`] resolves and
//!   [`checkpoint`] returns `Err(Cancelled)`. After the scope's grace period (zero unless set)
//!   whatever still runs is hard-cancelled: its future is dropped before its next poll.
//! - Requests are counted ([`Nursery::cancel`], [`Nursery::uncancel`],
//!   [`Nursery::cancelling`], as asyncio's); withdrawing every request within the grace period
//!   lets the scope carry on.
//! - [`shield`] defers enclosing cancellation; [`move_on_after`] and [`fail_after`] bound a
//!   future with a deadline.
//!
//! ```
//! use std::time::Duration;
//! use pitcrew::scope::{self, nursery, ScopeError};
//!
//! let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
//! let result = rt.block_on(nursery(|n| async move {
//!     // A worker that runs until its scope is cancelled.
//!     n.spawn(async {
//!         scope::cancelled().await;
//!         Ok(())
//!     });
//!     // A child that fails: it cancels the worker and the body.
//!     n.spawn(async { Err::<(), _>("disk full") });
//!     scope::cancelled().await;
//!     Ok(())
//! }));
//! match result {
//!     Err(ScopeError::Failed(failures)) => {
//!         assert_eq!(failures.len(), 1);
//!         assert_eq!(failures[0].to_string().contains("disk full"), true);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # let _ = Duration::ZERO;
//! ```

// Design notes
// ============
//
// `tree.rs` holds the scope records and the rules of propagation (numbered there). A task's
// scope lives in its header; the scope of code running inline (a nursery body, a shield) is
// entered through the thread-local context for the duration of a poll, so "which scope am I
// in?" costs two thread-local reads and "am I cancelled?" one more atomic load.
//
// The nursery future (`nursery.rs`) is the scope's owner: it is woken when members end or the
// scope's state changes, and it performs every timed step (deadline, hard cancellation after
// the grace period) itself, so no other thread ever drops a body or a child's future: children
// are hard-cancelled through their abort handles, which drop the future on a worker before
// its next poll.

mod cancel;
mod child;
mod error;
mod nursery;
mod shield;
mod spec;
mod supervised;
mod supervisor;
pub(crate) mod tree;

use std::time::{Duration, Instant};

use crate::loom::DataArc;

pub use cancel::{
    cancelled, checkpoint, current, is_cancelled, CancelReason, Cancelled, CancelledFuture,
    ScopeId, ScopeRef,
};
pub use child::{ChildBuilder, ChildHandle};
pub use error::{Failure, FailureKind, ScopeError};
pub use nursery::{nursery, nursery_with, Nursery};
pub use shield::{fail_after, move_on_after, shield, shield_for};
pub use spec::{
    ChildId, ChildInfo, ChildSpec, ChildState, FailureRecord, Restart, Strategy, SupervisorError,
    SupervisorOptions,
};
pub use supervised::Supervisor;
pub use supervisor::supervisor;

pub(crate) use child::{spawn_member, try_spawn_member, try_spawn_member_eager};

/// Options of a nursery's scope.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{nursery_with, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new()
///     .name("fetchers")
///     .timeout(Duration::from_secs(5))
///     .grace(Duration::from_millis(100));
/// let out = rt.block_on(nursery_with(opts, |n| async move {
///     assert!(n.deadline().is_some());
///     Ok::<_, std::io::Error>(pitcrew::scope::current().and_then(|s| s.name()))
/// }));
/// assert_eq!(out.unwrap().as_deref(), Some("fetchers"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ScopeOptions {
    pub(crate) name: Option<DataArc<str>>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Duration,
}

impl ScopeOptions {
    /// No name, no deadline, zero grace.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery_with(ScopeOptions::new(), |_n| async { Ok::<_, std::io::Error>(1) }));
    /// assert_eq!(out.unwrap(), 1);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the scope (dumps, tracing, [`ScopeRef::name`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let name = rt.block_on(nursery_with(ScopeOptions::new().name("batch"), |_n| async {
    ///     Ok::<_, std::io::Error>(pitcrew::scope::current().unwrap().name())
    /// }));
    /// assert_eq!(name.unwrap().as_deref(), Some("batch"));
    /// ```
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The scope cancels itself at `deadline` (reason [`CancelReason::Deadline`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use pitcrew::scope::{nursery_with, ScopeError, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = ScopeOptions::new().deadline(Instant::now() + Duration::from_millis(5));
    /// let out = rt.block_on(nursery_with(opts, |_n| async {
    ///     pitcrew::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok::<_, std::io::Error>(())
    /// }));
    /// assert!(matches!(out, Err(ScopeError::Cancelled(_))));
    /// ```
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// A deadline `timeout` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = ScopeOptions::new().timeout(Duration::from_millis(5));
    /// let out = rt.block_on(nursery_with(opts, |_n| async {
    ///     pitcrew::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok::<_, std::io::Error>(())
    /// }));
    /// assert!(out.unwrap_err().is_cancelled());
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    /// Time between the scope's cancellation and the hard cancellation of what still runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{self, nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// // Once cancelled, the body gets up to 5 s to wind down before it is dropped.
    /// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
    /// let out = rt.block_on(nursery_with(opts, |n| async move {
    ///     n.cancel();
    ///     scope::cancelled().await;
    ///     Ok::<_, std::io::Error>("cleaned up")
    /// }));
    /// // It returned within the grace period: its value is kept.
    /// assert_eq!(out.unwrap(), "cleaned up");
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}
