//! What a nursery returns when it did not succeed.

use std::any::Any;
use std::fmt;

use crate::loom::DataArc;
use crate::scope::Cancelled;
use crate::task;

/// How a child (or the body) failed.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{nursery, FailureKind};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     n.spawn(async { Err::<(), _>("timeout") });
///     pitcrew::scope::cancelled().await;
///     Ok(())
/// }));
/// let err = out.unwrap_err();
/// match &err.failures()[0].kind {
///     FailureKind::Error(e) => assert_eq!(*e, "timeout"),
///     FailureKind::Panic(_) => unreachable!(),
/// }
/// ```
pub enum FailureKind<E> {
    /// It returned `Err`.
    Error(E),
    /// It panicked; the payload, for [`std::panic::resume_unwind`].
    Panic(Box<dyn Any + Send + 'static>),
}

/// One failure in a nursery.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     let child = n.child().name("uploader").spawn(async { Err::<(), _>("quota") });
///     let id = child.id();
///     pitcrew::scope::cancelled().await;
///     Ok(id)
/// }));
/// let err = out.unwrap_err();
/// let failure = &err.failures()[0];
/// assert_eq!(failure.name.as_deref(), Some("uploader"));
/// assert!(failure.task.is_some());
/// ```
pub struct Failure<E> {
    /// The failed child's task id; `None` for the nursery body.
    pub task: Option<task::Id>,
    /// The child's name, if it had one.
    pub name: Option<DataArc<str>>,
    /// The error or the panic.
    pub kind: FailureKind<E>,
}

/// A nursery did not produce its body's value.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{nursery, FailureKind, ScopeError};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     n.child().name("parser").spawn(async { Err::<(), _>("bad input") });
///     pitcrew::scope::cancelled().await;
///     Ok(())
/// }));
/// let Err(ScopeError::Failed(failures)) = out else { panic!("{out:?}") };
/// assert_eq!(failures[0].name.as_deref(), Some("parser"));
/// assert!(matches!(failures[0].kind, FailureKind::Error("bad input")));
/// ```
pub enum ScopeError<E> {
    /// Children or the body failed. Never empty; `[0]` is the failure that cancelled the rest.
    Failed(Vec<Failure<E>>),
    /// The scope itself was cancelled (explicitly, by its deadline, or by an enclosing scope)
    /// before the body produced its value.
    Cancelled(Cancelled),
}

impl<E> ScopeError<E> {
    /// The first failure's error; resumes its panic when it was one.
    ///
    /// # Panics
    ///
    /// Resumes the trigger's panic; panics when the scope was cancelled rather than failed
    /// (use [`ScopeError::failures`] or match on the error to handle that case).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>(std::io::Error::other("refused")) });
    ///     pitcrew::scope::cancelled().await;
    ///     Ok(())
    /// }));
    /// let io_err: std::io::Error = out.unwrap_err().into_first();
    /// assert_eq!(io_err.to_string(), "refused");
    /// ```
    #[track_caller]
    pub fn into_first(self) -> E {
        match self {
            ScopeError::Failed(failures) => {
                let first = failures
                    .into_iter()
                    .next()
                    .expect("ScopeError::Failed is never empty");
                match first.kind {
                    FailureKind::Error(e) => e,
                    FailureKind::Panic(p) => std::panic::resume_unwind(p),
                }
            }
            ScopeError::Cancelled(c) => panic!("ScopeError::into_first on a cancelled scope ({c})"),
        }
    }

    /// The failures (empty when the scope was cancelled).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>("first") });
    ///     pitcrew::scope::cancelled().await;
    ///     Ok(())
    /// }));
    /// let err = out.unwrap_err();
    /// assert!(!err.failures().is_empty());
    /// ```
    pub fn failures(&self) -> &[Failure<E>] {
        match self {
            ScopeError::Failed(f) => f,
            ScopeError::Cancelled(_) => &[],
        }
    }

    /// True when the scope was cancelled rather than failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery_with(ScopeOptions::new().timeout(Duration::from_millis(1)), |_n| async {
    ///     std::future::pending::<()>().await;
    ///     Ok::<(), std::io::Error>(())
    /// }));
    /// let err = out.unwrap_err();
    /// assert!(err.is_cancelled());
    /// assert!(err.failures().is_empty());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ScopeError::Cancelled(_))
    }
}

impl<E: fmt::Debug> fmt::Debug for FailureKind<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Error(e) => f.debug_tuple("Error").field(e).finish(),
            FailureKind::Panic(p) => f
                .debug_tuple("Panic")
                .field(&task::panic_message(&**p).unwrap_or("<non-string payload>"))
                .finish(),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure")
            .field("task", &self.task)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<E: fmt::Debug> fmt::Debug for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Failed(v) => f.debug_tuple("Failed").field(v).finish(),
            ScopeError::Cancelled(c) => f.debug_tuple("Cancelled").field(c).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.task, &self.name) {
            (None, _) => f.write_str("the nursery body")?,
            (Some(id), Some(name)) => write!(f, "child {name} (task {id})")?,
            (Some(id), None) => write!(f, "child task {id}")?,
        }
        match &self.kind {
            FailureKind::Error(e) => write!(f, " failed: {e}"),
            FailureKind::Panic(p) => match task::panic_message(&**p) {
                Some(m) => write!(f, " panicked: {m}"),
                None => f.write_str(" panicked"),
            },
        }
    }
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Failed(v) => {
                write!(f, "{} failure(s) in the scope; first: ", v.len())?;
                match v.first() {
                    Some(first) => first.fmt(f),
                    None => f.write_str("none"),
                }
            }
            ScopeError::Cancelled(c) => write!(f, "the scope was {c}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ScopeError<E> {}
