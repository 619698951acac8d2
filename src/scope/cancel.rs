//! Observing cancellation: `is_cancelled`, `cancelled().await`, `checkpoint()`, and the types
//! that say why.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::loom::{DataArc, Mutex};
use crate::runtime::context;
use crate::scope::tree::Scope;
use crate::task;

/// Why a scope is cancelled.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{nursery, CancelReason, ScopeError};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     n.cancel();
///     let why = pitcrew::scope::cancelled().await;
///     assert_eq!(why.reason, CancelReason::Explicit);
///     pitcrew::time::sleep(std::time::Duration::from_secs(3600)).await; // dropped at once
///     Ok::<_, std::io::Error>(())
/// }));
/// assert!(matches!(out, Err(ScopeError::Cancelled(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// `cancel()` was called on the scope.
    Explicit,
    /// The scope's deadline passed.
    Deadline,
    /// A sibling (or the body, reported with the owning task's id) failed.
    SiblingFailed(task::Id),
    /// An enclosing scope was cancelled, for a reason not otherwise known.
    Parent,
    /// The runtime is shutting down.
    Shutdown,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Explicit => f.write_str("cancelled explicitly"),
            CancelReason::Deadline => f.write_str("its deadline passed"),
            CancelReason::SiblingFailed(id) => write!(f, "task {id} in the scope failed"),
            CancelReason::Parent => f.write_str("an enclosing scope was cancelled"),
            CancelReason::Shutdown => f.write_str("the runtime is shutting down"),
        }
    }
}

/// The current scope is cancelled.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{self, nursery_with, CancelReason, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new().timeout(Duration::from_millis(1)).grace(Duration::from_secs(5));
/// let seen = rt.block_on(nursery_with(opts, |_| async {
///     let cancelled = scope::cancelled().await;
///     Ok::<_, std::io::Error>(cancelled)
/// }));
/// assert_eq!(seen.unwrap().reason, CancelReason::Deadline);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// Why.
    pub reason: CancelReason,
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cancelled: {}", self.reason)
    }
}

impl std::error::Error for Cancelled {}

/// Identifies a scope.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(nursery(|n| async move {
///     let here = pitcrew::scope::current().unwrap();
///     assert_eq!(here.id(), n.id());
///     println!("in scope {}", here.id());
///     Ok::<_, std::io::Error>(())
/// }))
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(pub(crate) u64);

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A reference to a scope, from [`current`]: its id, name, parent, deadline, requests.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{nursery_with, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(nursery_with(ScopeOptions::new().name("outer"), |_n| async move {
///     let scope = pitcrew::scope::current().unwrap();
///     assert_eq!(scope.name().as_deref(), Some("outer"));
///     assert!(scope.parent().is_some());
///     assert!(!scope.is_cancelled());
///     Ok::<_, std::io::Error>(())
/// }))
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct ScopeRef {
    pub(crate) scope: DataArc<Scope>,
}

impl ScopeRef {
    /// The scope's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     assert_eq!(pitcrew::scope::current().unwrap().id(), n.id());
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn id(&self) -> ScopeId {
        self.scope.id
    }

    /// The scope's name, if it was given one.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let name = rt.block_on(nursery_with(ScopeOptions::new().name("fetch"), |_n| async move {
    ///     Ok::<_, std::io::Error>(pitcrew::scope::current().unwrap().name())
    /// }));
    /// assert_eq!(name.unwrap().as_deref(), Some("fetch"));
    /// ```
    pub fn name(&self) -> Option<DataArc<str>> {
        self.scope.name.clone()
    }

    /// The enclosing scope (`None` for the runtime's root scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|outer| async move {
    ///     let outer_id = outer.id();
    ///     nursery(|_inner| async move {
    ///         let parent = pitcrew::scope::current().unwrap().parent().unwrap();
    ///         assert_eq!(parent.id(), outer_id);
    ///         Ok::<_, std::io::Error>(())
    ///     })
    ///     .await
    ///     .map_err(|e| e.into_first())
    /// }))
    /// .unwrap();
    /// ```
    pub fn parent(&self) -> Option<ScopeRef> {
        self.scope.parent.clone().map(|scope| ScopeRef { scope })
    }

    /// The scope's deadline, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = ScopeOptions::new().timeout(Duration::from_secs(30));
    /// rt.block_on(nursery_with(opts, |_n| async move {
    ///     assert!(pitcrew::scope::current().unwrap().deadline().is_some());
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        *self.scope.deadline.lock()
    }

    /// Pending cancel requests on the scope itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
    /// rt.block_on(nursery_with(opts, |n| async move {
    ///     let scope = pitcrew::scope::current().unwrap();
    ///     assert_eq!(scope.cancelling(), 0);
    ///     n.cancel();
    ///     assert_eq!(scope.cancelling(), 1);
    ///     n.uncancel();
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn cancelling(&self) -> usize {
        self.scope.cancelling()
    }

    /// Whether the scope is cancelled (its own requests, or an enclosing scope's).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
    /// rt.block_on(nursery_with(opts, |n| async move {
    ///     let scope = pitcrew::scope::current().unwrap();
    ///     assert!(!scope.is_cancelled());
    ///     n.cancel();
    ///     assert!(scope.is_cancelled());
    ///     n.uncancel();
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.scope.is_cancelled()
    }
}

impl fmt::Debug for ScopeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeRef")
            .field("id", &self.scope.id)
            .field("name", &self.scope.name)
            .field("cancelled", &self.scope.is_cancelled())
            .finish()
    }
}

/// Holds a scope's deadline (a `Mutex` so a nursery can move it while running).
pub(crate) type Deadline = Mutex<Option<Instant>>;

/// The scope the current code runs in: a scope entered inline (a nursery body, a shield, a
/// `move_on_after`), else the running task's scope, else the runtime's root scope. `None`
/// outside any runtime.
pub(crate) fn with_current_scope<R>(f: impl FnOnce(Option<&DataArc<Scope>>) -> R) -> R {
    context::with_current_scope(f)
}

/// True when the current task's scope (or an enclosing one, unless shielded) is cancelled.
/// False outside a runtime.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     assert!(!pitcrew::scope::is_cancelled());
/// });
/// ```
pub fn is_cancelled() -> bool {
    with_current_scope(|s| s.is_some_and(|s| s.is_cancelled()))
}

/// `Err(Cancelled)` when the current scope is cancelled: a cheap check for CPU loops.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{self, nursery_with, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
/// let out = rt.block_on(nursery_with(opts, |n| async move {
///     scope::checkpoint()?; // not cancelled: Ok
///     n.cancel();
///     assert!(scope::checkpoint().is_err());
///     Ok::<_, scope::Cancelled>(())
/// }));
/// assert!(out.is_ok()); // the body returned on its own within the grace period
/// ```
///
/// # Errors
///
/// [`Cancelled`] with the reason, while the scope is cancelled.
pub fn checkpoint() -> Result<(), Cancelled> {
    with_current_scope(|s| match s {
        Some(s) if s.is_cancelled() => Err(Cancelled {
            reason: s.reason().unwrap_or(CancelReason::Parent),
        }),
        _ => Ok(()),
    })
}

/// Resolves when the current scope becomes cancelled (at once if it is).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{self, nursery_with, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
/// let out = rt.block_on(nursery_with(opts, |n| async move {
///     let waiter = n.spawn(async {
///         scope::cancelled().await;
///         Ok::<_, std::io::Error>("saw the cancellation")
///     });
///     n.cancel();
///     Ok(waiter.await?)
/// }));
/// assert_eq!(out.unwrap(), "saw the cancellation");
/// ```
///
/// # Cancel safety
///
/// Cancel safe.
pub fn cancelled() -> CancelledFuture {
    CancelledFuture {
        scope: with_current_scope(|s| s.cloned()),
    }
}

/// The future returned by [`cancelled`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{self, nursery_with, CancelReason, CancelledFuture, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new().grace(Duration::from_secs(5));
/// let out = rt.block_on(nursery_with(opts, |n| async move {
///     let waiter = n.spawn(async {
///         let cancelled: CancelledFuture = scope::cancelled();
///         Ok::<_, std::io::Error>(cancelled.await.reason)
///     });
///     n.cancel();
///     Ok(waiter.await?)
/// }));
/// assert_eq!(out.unwrap(), CancelReason::Explicit);
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct CancelledFuture {
    scope: Option<DataArc<Scope>>,
}

impl Future for CancelledFuture {
    type Output = Cancelled;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cancelled> {
        let Some(scope) = &self.scope else {
            return Poll::Pending;
        };
        if scope.wait_cancelled(cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(Cancelled {
                reason: scope.reason().unwrap_or(CancelReason::Parent),
            })
        }
    }
}

impl fmt::Debug for CancelledFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelledFuture")
            .field("scope", &self.scope)
            .finish()
    }
}

/// The scope the current code runs in (`None` outside a runtime).
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{self, nursery_with, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(nursery_with(ScopeOptions::new().name("api"), |_| async {
///     let here = scope::current().unwrap();
///     assert_eq!(here.name().as_deref(), Some("api"));
///     assert!(here.parent().is_some());
///     Ok::<_, std::io::Error>(())
/// }))
/// .unwrap();
/// ```
pub fn current() -> Option<ScopeRef> {
    with_current_scope(|s| {
        s.map(|scope| ScopeRef {
            scope: scope.clone(),
        })
    })
}
