//! Why a task did not produce its output.

use std::any::Any;
use std::fmt;
use std::io;

use crate::loom::Mutex;
use crate::task::Id;

/// A task ended without producing its output: it was cancelled, or it panicked.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let err = rt.block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
/// ```
pub struct JoinError {
    id: Id,
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// A scope child failed; its error (when not taken by the scope) is kept here.
    Failed(Option<Mutex<Box<dyn Any + Send + 'static>>>),
    // The payload sits behind a mutex so that `JoinError` is `Sync` while the payload is only
    // `Send`; it is touched once, when the error is consumed.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            id,
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(id: Id, payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    pub(crate) fn failed(id: Id, error: Option<Box<dyn Any + Send + 'static>>) -> JoinError {
        JoinError {
            id,
            repr: Repr::Failed(error.map(Mutex::new)),
        }
    }

    /// True when a scope child returned an error. The error itself went to the nursery's
    /// [`ScopeError`](crate::scope::ScopeError), unless the child was `isolated()`, in which case
    /// [`JoinError::into_failure`] gives it back.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     let child = n.child().isolated().spawn(async { Err::<(), _>("no such user") });
    ///     let err = child.await.unwrap_err();
    ///     assert!(err.is_failed());
    ///     let reason = err.into_failure().unwrap();
    ///     assert_eq!(reason.downcast_ref::<&str>(), Some(&"no such user"));
    ///     Ok::<_, &str>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self.repr, Repr::Failed(_))
    }

    /// The error of an isolated scope child, to downcast to its type.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     let child = n.child().isolated().spawn(async { Err::<(), _>(404u16) });
    ///     let failure = child.await.unwrap_err().into_failure().unwrap();
    ///     assert_eq!(*failure.downcast::<u16>().unwrap(), 404);
    ///     Ok::<_, u16>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn into_failure(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self.repr {
            Repr::Failed(Some(e)) => Some(e.into_inner()),
            _ => None,
        }
    }

    /// True when the task was cancelled (aborted, or dropped at shutdown or by its scope).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// task.abort();
    /// let err = rt.block_on(task).unwrap_err();
    /// assert!(err.is_cancelled() && !err.is_panic());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True when the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let err = rt.block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
    /// assert!(err.is_panic());
    /// assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to hand to [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics when the task was cancelled rather than panicked; see [`JoinError::try_into_panic`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let err = rt.block_on(rt.spawn(async { panic!("bad state") })).unwrap_err();
    /// let payload = err.into_panic();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"bad state"));
    /// // or: std::panic::resume_unwind(payload)
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic called on a cancelled task's error")
    }

    /// The panic payload, or the error itself when the task was cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// task.abort();
    /// let err = rt.block_on(task).unwrap_err();
    /// assert!(err.try_into_panic().unwrap_err().is_cancelled());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner()),
            Repr::Cancelled | Repr::Failed(_) => Err(self),
        }
    }

    /// The id of the task that failed.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let task = rt.spawn(std::future::pending::<()>());
    /// let id = task.id();
    /// task.abort();
    /// assert_eq!(rt.block_on(task).unwrap_err().id(), id);
    /// ```
    pub fn id(&self) -> Id {
        self.id
    }
}

/// The panic message, when the payload is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Failed(_) => write!(f, "task {} failed (its error went to its scope)", self.id),
            Repr::Panic(p) => match panic_message(&**p.lock()) {
                Some(msg) => write!(f, "task {} panicked with message {msg:?}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({:?})", self.id),
            Repr::Failed(_) => write!(f, "JoinError::Failed({:?})", self.id),
            Repr::Panic(p) => match panic_message(&**p.lock()) {
                Some(msg) => write!(f, "JoinError::Panic({:?}, {msg:?})", self.id),
                None => write!(f, "JoinError::Panic({:?}, ...)", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for io::Error {
    fn from(err: JoinError) -> io::Error {
        let kind = if err.is_cancelled() {
            io::ErrorKind::Interrupted
        } else {
            io::ErrorKind::Other
        };
        io::Error::new(kind, err.to_string())
    }
}

/// A task could not be spawned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::task::{Builder, SpawnError};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let handle = rt.handle().clone();
/// rt.shutdown(Duration::ZERO);
/// let refused = Builder::new().spawn_on(async {}, &handle).unwrap_err();
/// assert_eq!(refused, SpawnError::Shutdown);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// The runtime is shutting down or has shut down.
    Shutdown,
    /// The scope the task was spawned into has already finished.
    Closed,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Shutdown => {
                f.write_str("cannot spawn: the pitcrew runtime is shutting down")
            }
            SpawnError::Closed => f.write_str("cannot spawn: the scope has already finished"),
        }
    }
}

impl std::error::Error for SpawnError {}
