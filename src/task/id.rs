//! Task identifiers and the "which task is this?" queries.

use std::fmt;
use std::num::NonZeroU64;

use crate::loom::{Counter, DataArc};
use crate::runtime::context;

/// An opaque identifier of a task, unique for the life of the process.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let handle = rt.spawn(async { pitcrew::task::id() });
/// let id = handle.id();
/// assert_eq!(rt.block_on(handle).unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

static NEXT_ID: Counter = Counter::new(1);

impl Id {
    pub(crate) fn next() -> Id {
        let raw = NEXT_ID.add(1);
        // A u64 counter incremented once per task does not wrap within the life of a process.
        Id(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MIN))
    }

    /// The identifier as a number, for logs and metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let a = rt.spawn(async {});
    /// let b = rt.spawn(async {});
    /// assert_ne!(a.id().as_u64(), b.id().as_u64());
    /// ```
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// The id of the task that is running on this thread.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let task = rt.spawn(async { pitcrew::task::id() });
/// let expected = task.id();
/// assert_eq!(rt.block_on(task).unwrap(), expected);
/// ```
///
/// # Panics
///
/// Panics when called outside a pitcrew task; [`try_id`] returns `None` instead.
#[track_caller]
pub fn id() -> Id {
    try_id().expect("pitcrew::task::id() called outside a task; use pitcrew::task::try_id()")
}

/// The id of the task that is running on this thread, or `None` outside a task.
///
/// # Examples
///
/// ```
/// assert_eq!(pitcrew::task::try_id(), None);
/// let rt = pitcrew::Runtime::new().unwrap();
/// assert!(rt.block_on(rt.spawn(async { pitcrew::task::try_id() })).unwrap().is_some());
/// ```
pub fn try_id() -> Option<Id> {
    context::with_current_task(|header| header.map(|h| h.id))
}

/// The name given to the running task with [`Builder::name`](crate::task::Builder::name), if
/// any. `None` outside a task.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::new().unwrap();
/// let task = pitcrew::task::Builder::new()
///     .name("indexer")
///     .spawn_on(async { pitcrew::task::name() }, rt.handle())
///     .unwrap();
/// assert_eq!(rt.block_on(task).unwrap().as_deref(), Some("indexer"));
/// ```
pub fn name() -> Option<DataArc<str>> {
    context::with_current_task(|header| header.and_then(|h| h.name().cloned()))
}
