//! Children of a scope: the future wrapper that reports to the nursery, `ChildBuilder` and
//! `ChildHandle`.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::loom::DataArc;
use crate::scheduler::Shared;
use crate::scope::nursery::{Nursery, NurseryShared};
use crate::scope::tree::{Membership, Scope};
use crate::scope::{Failure, FailureKind};
use crate::task::{self, JoinError, JoinHandle, SpawnError};

/// What a child does when it ends.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ChildOpts {
    pub(crate) isolated: bool,
    pub(crate) master: bool,
    pub(crate) background: bool,
    pub(crate) grace: Option<Duration>,
}

/// A nursery child's future: runs the user's future, reports its failure to the nursery, and
/// leaves the scope when dropped (the membership is the last field, so it is released after
/// the user's future has been dropped). The user's future is dropped as soon as it has
/// returned, inside the child's poll, so that a panic in its `Drop` is the child's failure.
struct ChildFuture<F, E> {
    future: Option<F>,
    nursery: NurseryRef<E>,
    /// Only what the child needs when it ends (its name is in its task header): every byte
    /// here is a byte of every child's task cell.
    isolated: bool,
    master: bool,
    _membership: Membership,
}

impl<F, T, E> Future for ChildFuture<F, E>
where
    F: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, and
        // `ChildFuture` has no `Drop` impl and is `!Unpin` whenever `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; the future is dropped in place (`Pin::set`), never moved.
        let mut slot = unsafe { Pin::new_unchecked(&mut this.future) };
        let Some(future) = slot.as_mut().as_pin_mut() else {
            panic!("a nursery child polled after it ended");
        };
        let mut outcome = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(value))) => Ok(value),
            Ok(Poll::Ready(Err(e))) => Err(FailureKind::Error(e)),
            Err(payload) => Err(FailureKind::Panic(payload)),
        };
        #[cfg(all(loom, loom_mutants))]
        this._membership.mutant_leave_early();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| slot.set(None))) {
            // A panic in the finished future's `Drop` fails a child that had succeeded; after
            // an error or a panic, the first failure is the one reported.
            if let Ok(value) = outcome {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
                outcome = Err(FailureKind::Panic(payload));
            }
        }
        let id = task::id();
        if this.master {
            this.nursery.get().master_ended();
        }
        Poll::Ready(match outcome {
            Ok(value) => Ok(value),
            Err(FailureKind::Panic(payload)) if this.isolated => Err(JoinError::panic(id, payload)),
            Err(FailureKind::Error(e)) if this.isolated => {
                Err(JoinError::failed(id, Some(Box::new(e))))
            }
            Err(kind) => {
                this.nursery.get().fail(Failure {
                    task: Some(id),
                    name: task::name(),
                    kind,
                });
                Err(JoinError::failed(id, None))
            }
        })
    }
}

/// A child's pointer to its nursery's shared state, without a reference count: spawning a
/// child would otherwise bump (and its end drop) a count that the nursery's owner and every
/// sibling on other workers also touch.
///
/// It stays valid while the child's future exists: the child is a member of the nursery's
/// scope until its `Membership` (the last field of `ChildFuture`) is dropped, and the nursery
/// future, which holds a counted reference to the shared state, neither returns nor finishes
/// dropping while its scope has a member (`NurseryFuture::poll` waits for `live_all == 0`,
/// its `Drop` runs `Scope::reap_now`). A leaked nursery future leaks its reference too.
struct NurseryRef<E>(std::ptr::NonNull<NurseryShared<E>>);

impl<E> NurseryRef<E> {
    fn get(&self) -> &NurseryShared<E> {
        // SAFETY: valid while the child's future exists (see the type's docs), and `get` is
        // only reached from the child's `poll`.
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: the pointer is only used for `&NurseryShared<E>`, which may be shared across threads
// when `NurseryShared<E>` is `Sync` (its fields are locks, atomics and counted pointers; the
// failures are `E: Send` behind a mutex).
unsafe impl<E> Send for NurseryRef<E> where NurseryShared<E>: Sync {}

/// A plain task spawned inside a scope: a background member of it.
struct MemberFuture<F> {
    future: F,
    _membership: Membership,
}

impl<F: Future> Future for MemberFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned, as in `ChildFuture::poll`.
        unsafe { self.map_unchecked_mut(|m| &mut m.future) }.poll(cx)
    }
}

/// `pitcrew::spawn` inside a scope: the task belongs to the scope (its cancellation reaches
/// it, and the nursery cancels it and waits for it once the body and the other children end).
pub(crate) fn spawn_member<F>(
    runtime: &crate::loom::Arc<Shared>,
    scope: DataArc<Scope>,
    future: F,
    name: Option<DataArc<str>>,
    location: &'static Location<'static>,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match scope.reserve(true, None) {
        Ok(membership) => {
            let slot = membership.slot();
            let member = MemberFuture {
                future,
                _membership: membership,
            };
            let join = Shared::spawn_in(runtime, member, name, Some(scope.clone()), location);
            scope.attach(slot, join.abort_handle());
            join
        }
        // The scope has finished (a task outliving it spawns): the new task has no scope to
        // belong to but the root.
        Err(()) => Shared::spawn_in(runtime, future, name, None, location),
    }
}

/// As [`spawn_member`], refusing after runtime shutdown.
pub(crate) fn try_spawn_member<F>(
    runtime: &crate::loom::Arc<Shared>,
    scope: DataArc<Scope>,
    future: F,
    name: Option<DataArc<str>>,
    location: &'static Location<'static>,
) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if runtime.owned.is_closed() {
        return Err(SpawnError::Shutdown);
    }
    Ok(spawn_member(runtime, scope, future, name, location))
}

/// `task::Builder::eager` inside a scope: the task joins `scope` as in [`spawn_member`]
/// (membership reserved and abort handle attached before it can run, so cancellation reaches
/// it), then its first poll runs inline in the spawner. Refuses after runtime shutdown.
pub(crate) fn try_spawn_member_eager<F>(
    runtime: &crate::loom::Arc<Shared>,
    scope: DataArc<Scope>,
    future: F,
    name: Option<DataArc<str>>,
    location: &'static Location<'static>,
) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Ok(membership) = scope.reserve(true, None) else {
        // The scope has finished: as in `spawn_member`, the task belongs to the root scope.
        return match Shared::bind_new(runtime, future, name, None, location) {
            (join, Some(task)) => {
                Shared::run_spawned_eager(runtime, task);
                Ok(join)
            }
            (_join, None) => Err(SpawnError::Shutdown),
        };
    };
    let slot = membership.slot();
    let member = MemberFuture {
        future,
        _membership: membership,
    };
    let (join, task) = Shared::bind_new(runtime, member, name, Some(scope.clone()), location);
    scope.attach(slot, join.abort_handle());
    match task {
        Some(task) => {
            Shared::run_spawned_eager(runtime, task);
            Ok(join)
        }
        None => Err(SpawnError::Shutdown),
    }
}

/// Spawns a child with options. From [`Nursery::child`].
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     let optional = n.child().name("optional").isolated().spawn(async {
///         Err::<(), &str>("not fatal")
///     });
///     assert!(optional.await.unwrap_err().is_failed());
///     Ok::<_, &str>("the body still succeeds")
/// }));
/// assert_eq!(out.unwrap(), "the body still succeeds");
/// ```
#[must_use = "a ChildBuilder does nothing until `.spawn` is called"]
pub struct ChildBuilder<'a, E> {
    pub(crate) nursery: &'a Nursery<E>,
    pub(crate) name: Option<DataArc<str>>,
    pub(crate) opts: ChildOpts,
}

impl<E: Send + 'static> ChildBuilder<'_, E> {
    /// Names the child (task name, failure reports, dumps).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     let child = n.child().name("loader").spawn(async {
    ///         Ok::<_, std::io::Error>(pitcrew::task::name())
    ///     });
    ///     Ok(child.await?)
    /// }));
    /// assert_eq!(out.unwrap().as_deref(), Some("loader"));
    /// ```
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Its failure does not cancel the scope; it is only seen on its handle
    /// ([`JoinError::into_failure`] / [`JoinError::into_panic`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     let probe = n.child().isolated().spawn(async { Err::<(), _>("cache miss") });
    ///     assert!(probe.await.unwrap_err().is_failed()); // only this handle sees the failure
    ///     Ok::<_, &str>("nursery unharmed")
    /// }));
    /// assert_eq!(out.unwrap(), "nursery unharmed");
    /// ```
    pub fn isolated(mut self) -> Self {
        self.opts.isolated = true;
        self
    }

    /// When this child ends, however it ends, the scope is cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     // When the master ends, the scope is cancelled: the body, which would wait
    ///     // forever, is dropped.
    ///     n.child().master().spawn(async { Ok::<_, std::io::Error>(()) });
    ///     std::future::pending::<()>().await;
    ///     Ok(())
    /// }));
    /// assert!(out.unwrap_err().is_cancelled());
    /// ```
    pub fn master(mut self) -> Self {
        self.opts.master = true;
        self
    }

    /// The nursery does not wait for this child: it is cancelled once the body and the other
    /// children have ended (and then waited for, as every member is).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{self, nursery};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     // Would run forever; cancelled once the body has returned.
    ///     n.child().background().spawn(async {
    ///         scope::cancelled().await;
    ///         Ok::<_, std::io::Error>(())
    ///     });
    ///     Ok(1)
    /// }));
    /// assert_eq!(out.unwrap(), 1);
    /// ```
    pub fn background(mut self) -> Self {
        self.opts.background = true;
        self
    }

    /// The child's own grace period between its scope's cancellation and its hard cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{self, nursery};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     // Gets 10 ms to wind down once cancelled, whatever the nursery's grace.
    ///     n.child().background().grace(Duration::from_millis(10)).spawn(async {
    ///         scope::cancelled().await;
    ///         Ok::<_, std::io::Error>(())
    ///     });
    ///     Ok("done")
    /// }));
    /// assert_eq!(out.unwrap(), "done");
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.opts.grace = Some(grace);
        self
    }

    /// Spawns the child. Into a nursery that has finished, it never runs: the handle resolves
    /// to a cancelled [`JoinError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     let child = n.child().name("adder").spawn(async { Ok::<_, std::io::Error>(2 + 2) });
    ///     Ok(child.await?)
    /// }));
    /// assert_eq!(out.unwrap(), 4);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, future: F) -> ChildHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let nursery = self.nursery;
        match self.try_spawn(future) {
            Ok(handle) => handle,
            Err(_) => ChildHandle {
                inner: Shared::spawn_in(
                    &nursery.shared.runtime,
                    std::future::pending::<Result<T, JoinError>>(),
                    None,
                    None,
                    Location::caller(),
                ),
            }
            .aborted(),
        }
    }

    /// Spawns the child, or says why it cannot run.
    ///
    /// # Errors
    ///
    /// [`SpawnError::Closed`] when the nursery has finished, [`SpawnError::Shutdown`] when the
    /// runtime is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     match n.child().try_spawn(async { Ok::<_, std::io::Error>(3) }) {
    ///         Ok(child) => Ok(child.await?),
    ///         Err(e) => panic!("cannot spawn: {e}"),
    ///     }
    /// }));
    /// assert_eq!(out.unwrap(), 3);
    /// ```
    #[track_caller]
    pub fn try_spawn<F, T>(self, future: F) -> Result<ChildHandle<T>, SpawnError>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        let shared = &self.nursery.shared;
        if shared.runtime.owned.is_closed() {
            return Err(SpawnError::Shutdown);
        }
        let scope = &shared.scope;
        let membership = scope
            .reserve(self.opts.background, self.opts.grace)
            .map_err(|()| SpawnError::Closed)?;
        let slot = membership.slot();
        let child = ChildFuture {
            future: Some(future),
            nursery: NurseryRef(std::ptr::NonNull::from(&**shared)),
            isolated: self.opts.isolated,
            master: self.opts.master,
            _membership: membership,
        };
        let inner = Shared::spawn_in(
            &shared.runtime,
            child,
            self.name,
            Some(scope.clone()),
            Location::caller(),
        );
        scope.attach(slot, inner.abort_handle());
        Ok(ChildHandle { inner })
    }
}

impl<E> fmt::Debug for ChildBuilder<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildBuilder")
            .field("name", &self.name)
            .field("opts", &self.opts)
            .finish()
    }
}

/// A handle to a nursery child: await it for the child's value. Dropping it does not cancel
/// the child: the nursery owns it.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let out = rt.block_on(nursery(|n| async move {
///     let stuck = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
///     let quick = n.spawn(async { Ok(5) });
///     stuck.abort(); // hard-cancelled: not a failure of the nursery
///     assert!(stuck.await.unwrap_err().is_cancelled());
///     Ok(quick.await?)
/// }));
/// assert_eq!(out.unwrap(), 5);
/// ```
pub struct ChildHandle<T> {
    inner: JoinHandle<Result<T, JoinError>>,
}

impl<T> ChildHandle<T> {
    pub(crate) fn from_join(inner: JoinHandle<Result<T, JoinError>>) -> Self {
        ChildHandle { inner }
    }

    fn aborted(self) -> Self {
        self.inner.abort();
        self
    }

    /// The child's task id.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     let child = n.spawn(async { Ok::<_, std::io::Error>(pitcrew::task::id()) });
    ///     let id = child.id();
    ///     assert_eq!(child.await?, id);
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn id(&self) -> task::Id {
        self.inner.id()
    }

    /// Hard-cancels the child: its future is dropped before its next poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     let stuck = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     stuck.abort();
    ///     assert!(stuck.await.unwrap_err().is_cancelled());
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn abort(&self) {
        self.inner.abort();
    }

    /// True once the child has ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     let child = n.spawn(async { Ok::<_, std::io::Error>(()) });
    ///     while !child.is_finished() {
    ///         pitcrew::yield_now().await;
    ///     }
    ///     child.await?;
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<T> Future for ChildHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|r| r.and_then(|r| r))
    }
}

impl<T> fmt::Debug for ChildHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
