//! Nurseries: a scope whose body runs inline in the calling task and whose children are all
//! joined; the first failure cancels the rest.
//!
//! The nursery future drives everything from the owning task: it polls the body, watches the
//! scope's deadline, and once the scope is cancelled it hard-cancels the body and the children
//! whose grace has run out. It returns when the body has ended and every member of the scope has
//! ended and been dropped.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::loom::{AtomicBool, DataArc, Mutex, Ordering};
use crate::runtime::{context, Handle};
use crate::scheduler::Shared;
use crate::scope::child::{ChildBuilder, ChildHandle, ChildOpts};
use crate::scope::tree::Scope;
use crate::scope::{
    CancelReason, Cancelled, Failure, FailureKind, ScopeError, ScopeId, ScopeOptions,
};
use crate::task;
use crate::time::Sleep;

/// What the nursery's children and handles share.
pub(crate) struct NurseryShared<E> {
    pub(crate) scope: DataArc<Scope>,
    pub(crate) runtime: crate::loom::Arc<Shared>,
    failures: Mutex<Failures<E>>,
    /// The nursery is winding down on its own (a master child ended, or only background
    /// members are left): the cancellation this causes is not a reason to fail.
    finishing: AtomicBool,
    grace: Duration,
}

struct Failures<E> {
    list: Vec<Failure<E>>,
    /// The scope was already cancelled for another reason when the first failure came: the
    /// failures are taken as consequences of that cancellation.
    after_cancel: bool,
}

impl<E> NurseryShared<E> {
    /// Records a failure; the first one cancels the scope.
    pub(crate) fn fail(&self, failure: Failure<E>) {
        let mut f = self.failures.lock();
        let first = f.list.is_empty();
        if first && self.scope.is_cancelled() && !self.finishing.load(Ordering::Acquire) {
            f.after_cancel = true;
        }
        let id = failure
            .task
            .or_else(task::try_id)
            .unwrap_or_else(task::Id::next);
        f.list.push(failure);
        drop(f);
        if first {
            self.scope.cancel(CancelReason::SiblingFailed(id));
        }
    }

    /// A master child ended: the scope is cancelled, as the nursery finishing.
    pub(crate) fn master_ended(&self) {
        self.finishing.store(true, Ordering::Release);
        self.scope.cancel(CancelReason::Explicit);
    }
}

/// A handle to a nursery: spawn children into it, cancel it, move its deadline. Cloneable and
/// `'static`, so it can be passed down to children.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let sum = rt.block_on(nursery(|n| async move {
///     // The handle is cloneable and 'static: a child can spawn siblings.
///     let inner = n.clone();
///     let outer = n.spawn(async move {
///         let nested = inner.spawn(async { Ok::<_, std::io::Error>(2) });
///         Ok(40 + nested.await?)
///     });
///     Ok(outer.await?)
/// }));
/// assert_eq!(sum.unwrap(), 42);
/// ```
pub struct Nursery<E> {
    pub(crate) shared: DataArc<NurseryShared<E>>,
}

impl<E> Clone for Nursery<E> {
    fn clone(&self) -> Self {
        Nursery {
            shared: self.shared.clone(),
        }
    }
}

impl<E: Send + 'static> Nursery<E> {
    /// Spawns a child. Its `Err` or panic cancels the body and every sibling and is returned
    /// in the nursery's [`ScopeError::Failed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{nursery, ScopeError};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     n.spawn(async { Err::<(), _>("disk full") });
    ///     pitcrew::scope::cancelled().await; // the failure cancels the body too
    ///     Ok(())
    /// }));
    /// assert!(matches!(out, Err(ScopeError::Failed(_))));
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, future: F) -> ChildHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
    {
        self.child().spawn(future)
    }

    /// A builder for a child with options (name, isolated, master, background, grace).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     // A heartbeat that runs as long as the rest of the nursery does.
    ///     n.child().name("heartbeat").background().spawn(async {
    ///         let mut beat = pitcrew::time::interval(Duration::from_millis(1));
    ///         while !pitcrew::scope::is_cancelled() {
    ///             beat.tick().await;
    ///         }
    ///         Ok::<(), std::io::Error>(())
    ///     });
    ///     let job = n.child().name("job").spawn(async { Ok(7) });
    ///     Ok(job.await?)
    /// }));
    /// assert_eq!(out.unwrap(), 7);
    /// ```
    pub fn child(&self) -> ChildBuilder<'_, E> {
        ChildBuilder {
            nursery: self,
            name: None,
            opts: ChildOpts::default(),
        }
    }
}

impl<E> Nursery<E> {
    /// Adds a cancel request (asyncio's `cancel`): the body and children see
    /// [`is_cancelled`](crate::scope::is_cancelled) and, after the grace period, are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{self, nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery_with(ScopeOptions::new().grace(Duration::from_secs(5)), |n| async move {
    ///     n.cancel();
    ///     n.cancel();
    ///     assert_eq!(n.cancelling(), 2);
    ///     assert!(scope::is_cancelled());
    ///     // Withdrawing every request within the grace period lets the scope carry on.
    ///     assert_eq!(n.uncancel(), 1);
    ///     assert_eq!(n.uncancel(), 0);
    ///     assert!(!scope::is_cancelled());
    ///     Ok::<_, std::io::Error>("carried on")
    /// }));
    /// assert_eq!(out.unwrap(), "carried on");
    /// ```
    pub fn cancel(&self) {
        self.shared.scope.cancel(CancelReason::Explicit);
    }

    /// Withdraws a request (asyncio's `uncancel`); returns how many are left. When none are
    /// left before the grace period ends, the scope carries on as if never cancelled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery_with(ScopeOptions::new().grace(Duration::from_secs(5)), |n| async move {
    ///     n.cancel();
    ///     assert_eq!(n.uncancel(), 0); // withdrawn in time: carries on
    ///     Ok::<_, std::io::Error>("carried on")
    /// }));
    /// assert_eq!(out.unwrap(), "carried on");
    /// ```
    pub fn uncancel(&self) -> usize {
        self.shared.scope.uncancel()
    }

    /// Pending cancel requests (asyncio's `cancelling`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{nursery_with, ScopeOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery_with(ScopeOptions::new().grace(Duration::from_secs(5)), |n| async move {
    ///     assert_eq!(n.cancelling(), 0);
    ///     n.cancel();
    ///     assert_eq!(n.cancelling(), 1);
    ///     n.uncancel();
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn cancelling(&self) -> usize {
        self.shared.scope.cancelling()
    }

    /// Sets (or moves) the deadline at which the scope cancels itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use pitcrew::scope::{nursery, ScopeError};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(nursery(|n| async move {
    ///     assert_eq!(n.deadline(), None);
    ///     n.set_deadline(Instant::now() + Duration::from_millis(5));
    ///     pitcrew::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok::<_, std::io::Error>(())
    /// }));
    /// assert!(matches!(out, Err(ScopeError::Cancelled(_))));
    /// ```
    pub fn set_deadline(&self, deadline: Instant) {
        *self.shared.scope.deadline.lock() = Some(deadline);
        let waker = self.shared.scope.lock().owner_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The scope's deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     assert_eq!(n.deadline(), None);
    ///     let at = Instant::now() + Duration::from_secs(60);
    ///     n.set_deadline(at);
    ///     assert_eq!(n.deadline(), Some(at));
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        *self.shared.scope.deadline.lock()
    }

    /// Children alive now.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     assert!(n.is_empty());
    ///     let child = n.spawn(async { Ok::<_, std::io::Error>(()) });
    ///     child.await?;
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.shared.scope.lock().live_all
    }

    /// True when no child is alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     assert!(n.is_empty());
    ///     let child = n.spawn(std::future::pending::<Result<(), std::io::Error>>());
    ///     assert!(!n.is_empty());
    ///     child.abort();
    ///     let _ = child.await;
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The scope's id.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::nursery;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(nursery(|n| async move {
    ///     assert_eq!(n.id(), pitcrew::scope::current().unwrap().id());
    ///     Ok::<_, std::io::Error>(())
    /// }))
    /// .unwrap();
    /// ```
    pub fn id(&self) -> ScopeId {
        self.shared.scope.id
    }
}

impl<E> fmt::Debug for Nursery<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery")
            .field("scope", &self.shared.scope)
            .finish()
    }
}

/// Runs `body` in a new nursery; see [`nursery_with`].
///
/// # Examples
///
/// ```
/// use pitcrew::scope::nursery;
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// let total = rt.block_on(nursery(|n| async move {
///     let a = n.spawn(async { Ok::<_, std::io::Error>(20) });
///     let b = n.spawn(async { Ok(22) });
///     Ok(a.await.unwrap() + b.await.unwrap())
/// }));
/// assert_eq!(total.unwrap(), 42);
/// ```
///
/// # Panics
///
/// Outside a pitcrew runtime.
pub fn nursery<T, E, F, Fut>(body: F) -> impl Future<Output = Result<T, ScopeError<E>>>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    nursery_with(ScopeOptions::new(), body)
}

/// Runs `body` inline in the calling task, in a new scope, with a [`Nursery`] to spawn
/// children. Returns once the body and every child have ended and been dropped:
/// `Ok(value)` with the body's value, or [`ScopeError::Failed`] with every failure (the one
/// that cancelled the rest first), or [`ScopeError::Cancelled`] when the scope was cancelled
/// before the body produced its value.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{nursery_with, CancelReason, ScopeError, ScopeOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = ScopeOptions::new().name("slow-lane").timeout(Duration::from_millis(5));
/// let out = rt.block_on(nursery_with(opts, |n| async move {
///     n.spawn(async {
///         pitcrew::time::sleep(Duration::from_secs(3600)).await;
///         Ok(())
///     });
///     pitcrew::time::sleep(Duration::from_secs(3600)).await;
///     Ok::<_, std::io::Error>(())
/// }));
/// let Err(ScopeError::Cancelled(c)) = out else { panic!("{out:?}") };
/// assert_eq!(c.reason, CancelReason::Deadline);
/// ```
///
/// # Cancel safety
///
/// Dropping the returned future cancels the scope and aborts every child at once.
///
/// # Panics
///
/// Outside a pitcrew runtime.
pub fn nursery_with<T, E, F, Fut>(
    opts: ScopeOptions,
    body: F,
) -> impl Future<Output = Result<T, ScopeError<E>>>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    NurseryRun::Start(Some((opts, body)))
}

/// The nursery future: its options and body until the first poll, then the running nursery.
/// Written out by hand rather than as an `async fn`, which would keep the options and the body
/// closure next to the running nursery for its whole life (a nursery is part of every task
/// that opens one, so its size is paid per task).
enum NurseryRun<F, Fut, T, E> {
    Start(Option<(ScopeOptions, F)>),
    Running(NurseryFuture<Fut, T, E>),
}

impl<T, E, F, Fut> Future for NurseryRun<F, Fut, T, E>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Result<T, ScopeError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: only the `Running` variant is pinned structurally, and it is never moved:
        // it is written once, in place, over `Start` (whose contents are not pinned), and
        // then only polled through `Pin::new_unchecked` and dropped in place.
        let this = unsafe { self.get_unchecked_mut() };
        if let NurseryRun::Start(init) = this {
            let (opts, body) = init.take().expect("nursery polled after it returned");
            match open(opts, body) {
                Ok(running) => *this = NurseryRun::Running(running),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this {
            // SAFETY: see above.
            NurseryRun::Running(running) => unsafe { Pin::new_unchecked(running) }.poll(cx),
            NurseryRun::Start(_) => unreachable!("the nursery was just opened"),
        }
    }
}

/// Opens the nursery's scope under the current one and calls the body (in the scope).
fn open<T, E, F, Fut>(
    opts: ScopeOptions,
    body: F,
) -> Result<NurseryFuture<Fut, T, E>, ScopeError<E>>
where
    F: FnOnce(Nursery<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    let runtime = Handle::current().shared;
    let parent = context::with_current_scope(|s| s.cloned());
    let scope = match Scope::new(parent, opts.name.clone(), false) {
        Ok(scope) => scope,
        Err(()) => {
            return Err(ScopeError::Cancelled(Cancelled {
                reason: CancelReason::Parent,
            }));
        }
    };
    if let Some(deadline) = opts.deadline {
        *scope.deadline.lock() = Some(deadline);
    }
    let shared = DataArc::new(NurseryShared {
        scope: scope.clone(),
        runtime,
        failures: Mutex::new(Failures {
            list: Vec::new(),
            after_cancel: false,
        }),
        finishing: AtomicBool::new(false),
        grace: opts.grace,
    });
    let body = {
        let _enter = context::enter_scope(&scope);
        body(Nursery {
            shared: shared.clone(),
        })
    };
    Ok(NurseryFuture {
        scope,
        shared,
        body: Some(body),
        output: None,
        cancelled_at: None,
        deadline_fired: false,
        background_cancelled: false,
        timer: None,
        done: false,
    })
}

/// The body is pinned structurally, in place (no box of its own): it is never moved out, only
/// dropped in place by setting `body` to `None`, and the future is `!Unpin` whenever the body
/// is.
struct NurseryFuture<Fut, T, E> {
    scope: DataArc<Scope>,
    shared: DataArc<NurseryShared<E>>,
    body: Option<Fut>,
    output: Option<T>,
    cancelled_at: Option<Instant>,
    deadline_fired: bool,
    background_cancelled: bool,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<Fut: Future<Output = Result<T, E>>, T, E> NurseryFuture<Fut, T, E> {
    /// Polls the body once, recording its value or failure when it ends.
    fn poll_body(&mut self, cx: &mut Context<'_>) {
        let Some(body) = self.body.as_mut() else {
            return;
        };
        // SAFETY: `body` is structurally pinned (see `NurseryFuture`): `self` is only reached
        // through `Pin<&mut NurseryFuture>`, and the body is dropped in place, never moved.
        let body = unsafe { Pin::new_unchecked(body) };
        let outcome = match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(Ok(v))) => Ok(v),
            Ok(Poll::Ready(Err(e))) => Err(FailureKind::Error(e)),
            Err(payload) => Err(FailureKind::Panic(payload)),
        };
        self.body = None;
        match outcome {
            Ok(v) => self.output = Some(v),
            Err(kind) => self.shared.fail(Failure {
                task: None,
                name: None,
                kind,
            }),
        }
    }

    /// The next instant something is due (the deadline, or a hard cancellation), after
    /// performing whatever is due now.
    fn run_timers(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let deadline = *self.scope.deadline.lock();
        if let Some(d) = deadline {
            if d <= now {
                if !self.deadline_fired {
                    self.deadline_fired = true;
                    self.scope.cancel(CancelReason::Deadline);
                }
            } else {
                // A deadline moved later re-arms.
                self.deadline_fired = false;
                next = Some(d);
            }
        }
        if self.scope.is_cancelled() {
            let at = *self.cancelled_at.get_or_insert(now);
            let grace = self.shared.grace;
            if let Some(due) = self.scope.abort_members_due(at, grace, now) {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            match at.checked_add(grace) {
                Some(hard) if hard <= now => {
                    // Hard cancellation of the body: drop it, never while it is being polled.
                    self.body = None;
                }
                Some(hard) if self.body.is_some() => {
                    next = Some(next.map_or(hard, |n| n.min(hard)))
                }
                _ => {}
            }
        } else {
            // Every request was withdrawn within the grace period: carry on.
            self.cancelled_at = None;
        }
        next
    }

    fn result(&mut self) -> Result<T, ScopeError<E>> {
        let mut failures = self.shared.failures.lock();
        let list = std::mem::take(&mut failures.list);
        let after_cancel = failures.after_cancel;
        drop(failures);
        if !list.is_empty() && !after_cancel {
            return Err(ScopeError::Failed(list));
        }
        match self.output.take() {
            Some(v) => Ok(v),
            None => Err(ScopeError::Cancelled(Cancelled {
                reason: self.scope.reason().unwrap_or(CancelReason::Parent),
            })),
        }
    }
}

impl<Fut: Future<Output = Result<T, E>>, T, E> Future for NurseryFuture<Fut, T, E> {
    type Output = Result<T, ScopeError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is moved out of `this`; `body` stays pinned (see `NurseryFuture`).
        let this = unsafe { self.get_unchecked_mut() };
        let scope = this.scope.clone();
        let _enter = context::enter_scope(&scope);
        loop {
            {
                let mut s = scope.lock();
                if !s
                    .owner_waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    s.owner_waker = Some(cx.waker().clone());
                }
            }
            // The clock is read only when something is timed: a deadline, or a cancellation
            // (its grace period).
            let timed = scope.is_cancelled()
                || this.cancelled_at.is_some()
                || scope.deadline.lock().is_some();
            let next = if timed {
                this.run_timers(Instant::now())
            } else {
                None
            };
            this.poll_body(cx);

            let (waited, all) = {
                let s = scope.lock();
                (s.live_waited, s.live_all)
            };
            if this.body.is_none() && waited == 0 && all > 0 && !this.background_cancelled {
                // Only background members are left: they are cancelled now.
                this.background_cancelled = true;
                this.shared.finishing.store(true, Ordering::Release);
                scope.cancel(CancelReason::Parent);
                continue;
            }
            if this.body.is_none() && all == 0 {
                // Closed only if still empty, in one step: a member that joined since the
                // count was read (from a `Nursery` handle elsewhere) is waited for too.
                if !scope.close_if_empty() {
                    continue;
                }
                this.done = true;
                return Poll::Ready(this.result());
            }
            match next {
                Some(at) => {
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(crate::time::sleep_until(at)));
                    if timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        continue;
                    }
                }
                None => this.timer = None,
            }
            return Poll::Pending;
        }
    }
}

impl<Fut, T, E> Drop for NurseryFuture<Fut, T, E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped mid-flight (it lost a select, or its task was aborted): cancel everything
        // at once. The body goes first, then every child, and the drop returns only once they
        // are all gone, so the owning task is not reported finished before its children.
        self.scope.cancel(CancelReason::Parent);
        self.body = None;
        self.scope.reap_now();
    }
}
