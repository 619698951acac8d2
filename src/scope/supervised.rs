//! The supervisor's state and its children: the `Supervisor` handle, how a child instance is
//! started (outside every lock: the factory is user code) and how it reports its end.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::loom::{DataArc, Mutex};
use crate::scheduler::Shared;
use crate::scope::child::ChildHandle;
use crate::scope::spec::{ChildFuture, ChildId, ChildInfo, ChildSpec, ChildState, FailureRecord};
use crate::scope::tree::{Membership, Scope};
use crate::scope::{CancelReason, SupervisorOptions};
use crate::task::{self, AbortHandle, JoinError};

/// Failures remembered for diagnostics; older ones are forgotten (the history is bounded).
pub(super) const FAILURE_HISTORY: usize = 32;

/// How a child instance ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Ok,
    Failed(String),
    Cancelled,
}

pub(super) struct Event {
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) outcome: Outcome,
}

pub(super) struct Child {
    pub(super) spec: ChildSpec,
    pub(super) state: ChildState,
    pub(super) generation: u64,
    pub(super) task: Option<(task::Id, AbortHandle)>,
    pub(super) scope: Option<DataArc<Scope>>,
    pub(super) restarts: usize,
    pub(super) consecutive: u32,
    pub(super) restart_at: Option<Instant>,
    /// When the current instance was restarted (`None` for the first): an instance that then
    /// runs for the longest back-off resets the back-off.
    pub(super) restarted_at: Option<Instant>,
    pub(super) stop_deadline: Option<Instant>,
    /// Stopped as part of a restart round: restarted when the round completes.
    pub(super) in_round: bool,
}

pub(super) struct State {
    pub(super) children: Vec<Child>,
    pub(super) events: VecDeque<Event>,
    pub(super) owner: Option<Waker>,
    /// Children to stop, one at a time, in this order.
    pub(super) stop_queue: VecDeque<usize>,
    /// A restart round is under way (its members have `in_round`).
    pub(super) round: bool,
    pub(super) shutting_down: bool,
    pub(super) restart_times: VecDeque<Instant>,
    pub(super) recent_failures: VecDeque<(DataArc<str>, String)>,
    pub(super) temporaries: usize,
    /// Children waiting to start, in start order: one starts once the previous one has been
    /// polled, so they come up in order (as OTP starts children one by one).
    pub(super) start_queue: VecDeque<Ticket>,
    /// `shutdown().await` callers, woken whenever the owner is.
    pub(super) shutdown_waiters: Vec<Waker>,
    /// The supervisor future has returned.
    pub(super) finished: bool,
}

pub(crate) struct SupShared {
    pub(super) scope: DataArc<Scope>,
    pub(super) runtime: crate::loom::Arc<Shared>,
    pub(super) opts: SupervisorOptions,
    pub(super) state: Mutex<State>,
}

impl SupShared {
    pub(super) fn wake_owner(&self, mut s: crate::loom::MutexGuard<'_, State>) {
        let w = s.owner.take();
        let waiters = std::mem::take(&mut s.shutdown_waiters);
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        waiters.into_iter().for_each(Waker::wake);
    }

    pub(super) fn report(&self, index: usize, generation: u64, outcome: Outcome) {
        let mut s = self.state.lock();
        s.events.push_back(Event {
            index,
            generation,
            outcome,
        });
        self.wake_owner(s);
    }
}

/// A handle to a supervisor: add restartable children, spawn temporary ones, shut it down.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use pitcrew::scope::{supervisor, ChildSpec, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// let starts = Arc::new(AtomicUsize::new(0));
/// let s = starts.clone();
/// rt.block_on(supervisor(SupervisorOptions::new().intensity(10, std::time::Duration::from_secs(1)), move |sup| async move {
///     let s2 = s.clone();
///     sup.add(ChildSpec::new("flaky", move || {
///         let n = s2.fetch_add(1, Ordering::SeqCst);
///         async move { if n < 2 { Err("crashed") } else { Ok(()) } }
///     }).restart(pitcrew::scope::Restart::Transient));
/// }))
/// .unwrap();
/// assert_eq!(starts.load(Ordering::SeqCst), 3);
/// ```
#[derive(Clone)]
pub struct Supervisor {
    pub(super) shared: DataArc<SupShared>,
}

impl Supervisor {
    /// Adds a restartable child and starts it now.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{self, supervisor, ChildId, ChildSpec, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     let id: ChildId = sup.add(ChildSpec::new("listener", || async {
    ///         scope::cancelled().await;
    ///         Ok::<(), String>(())
    ///     }));
    ///     println!("started {id:?}");
    ///     assert_eq!(sup.children().len(), 1);
    ///     sup.shutdown().await;
    /// }))
    /// .unwrap();
    /// ```
    pub fn add(&self, spec: ChildSpec) -> ChildId {
        let mut s = self.shared.state.lock();
        let index = s.children.len();
        s.children.push(Child {
            spec,
            state: ChildState::Starting,
            generation: 0,
            task: None,
            scope: None,
            restarts: 0,
            consecutive: 0,
            restart_at: None,
            restarted_at: None,
            stop_deadline: None,
            in_round: false,
        });
        if s.shutting_down {
            s.children[index].state = ChildState::Stopped;
        } else {
            let ticket = prepare_start(&mut s, index, None);
            s.start_queue.push_back(ticket);
        }
        let ready = next_start(&mut s);
        drop(s);
        if let Some(ticket) = ready {
            launch(&self.shared, ticket);
        }
        self.shared.wake_owner(self.shared.state.lock());
        ChildId(index)
    }

    /// Spawns a temporary child: never restarted; its failure is logged and seen on its
    /// handle, and its siblings live on.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     let ok = sup.spawn(async { Ok::<_, String>(2 + 2) });
    ///     let failed = sup.spawn(async { Err::<u32, _>("lost connection") });
    ///     assert_eq!(ok.await.unwrap(), 4);
    ///     assert!(failed.await.is_err()); // and the supervisor lives on
    /// }))
    /// .unwrap();
    /// ```
    #[track_caller]
    pub fn spawn<F, T, E>(&self, future: F) -> ChildHandle<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let shared = self.shared.clone();
        let location = Location::caller();
        let membership = self.shared.scope.reserve(false, None);
        let temp = async move {
            let out = AssertUnwindSafe(future);
            match CatchUnwind(out).await {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    tracing::warn!(task.id = task::id().as_u64(), error = %e, "supervised temporary child failed");
                    remember(&shared, "temporary".into(), e.to_string());
                    Err(JoinError::failed(task::id(), Some(Box::new(e.to_string()))))
                }
                Err(p) => {
                    let msg = task::panic_message(&*p).unwrap_or("panic").to_string();
                    tracing::warn!(task.id = task::id().as_u64(), panic = %msg, "supervised temporary child panicked");
                    remember(&shared, "temporary".into(), msg);
                    Err(JoinError::panic(task::id(), p))
                }
            }
        };
        match membership {
            Ok(m) => {
                let slot = m.slot();
                self.shared.state.lock().temporaries += 1;
                let shared = self.shared.clone();
                let wrapped = Temporary {
                    inner: Box::pin(temp),
                    shared,
                    _membership: m,
                };
                let join = Shared::spawn_in(
                    &self.shared.runtime,
                    wrapped,
                    None,
                    Some(self.shared.scope.clone()),
                    location,
                );
                self.shared.scope.attach(slot, join.abort_handle());
                ChildHandle::from_join(join)
            }
            Err(()) => {
                let join = Shared::spawn_in(
                    &self.shared.runtime,
                    std::future::pending::<Result<T, JoinError>>(),
                    None,
                    None,
                    location,
                );
                join.abort();
                ChildHandle::from_join(join)
            }
        }
    }

    /// Stops every child (reverse start order, each with its grace, then dropped) and makes the
    /// supervisor return; resolves once every child has stopped. (A child that awaits this is
    /// itself stopped, through its grace period, like the others.)
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{self, supervisor, ChildSpec, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     for name in ["a", "b"] {
    ///         sup.add(ChildSpec::new(name, || async {
    ///             scope::cancelled().await;
    ///             Ok::<(), String>(())
    ///         }));
    ///     }
    ///     sup.shutdown().await; // stops "b", then "a"
    ///     assert!(sup.children().iter().all(|c| c.task.is_none()));
    /// }))
    /// .unwrap();
    /// ```
    pub async fn shutdown(&self) {
        {
            let mut s = self.shared.state.lock();
            begin_shutdown(&mut s);
            self.shared.wake_owner(s);
        }
        std::future::poll_fn(|cx| {
            let mut s = self.shared.state.lock();
            let running = s.children.iter().any(|c| c.task.is_some()) || s.temporaries > 0;
            if running && !s.finished {
                s.shutdown_waiters.push(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// Every restartable child: name, task, restarts, state.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{self, supervisor, ChildSpec, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     sup.add(ChildSpec::new("worker", || async {
    ///         scope::cancelled().await;
    ///         Ok::<(), String>(())
    ///     }));
    ///     for child in sup.children() {
    ///         println!("{}: {:?}, {} restarts", child.name, child.state, child.restarts);
    ///     }
    ///     sup.shutdown().await;
    /// }))
    /// .unwrap();
    /// ```
    pub fn children(&self) -> Vec<ChildInfo> {
        self.shared
            .state
            .lock()
            .children
            .iter()
            .map(|c| ChildInfo {
                name: c.spec.name.clone(),
                task: c.task.as_ref().map(|(id, _)| *id),
                restarts: c.restarts,
                state: c.state,
            })
            .collect()
    }

    /// The most recent failures (at most 32, oldest first): the child's name (`"temporary"`
    /// for children from [`spawn`](Supervisor::spawn)) and the error or panic message. Older
    /// ones are forgotten, so a child that fails forever costs no memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     for i in 0..100 {
    ///         let _ = sup.spawn(async move { Err::<(), _>(format!("failure {i}")) }).await;
    ///     }
    ///     let recent = sup.recent_failures();
    ///     assert_eq!(recent.len(), 32);
    ///     assert_eq!(recent.last().unwrap().error, "failure 99");
    /// }))
    /// .unwrap();
    /// ```
    pub fn recent_failures(&self) -> Vec<FailureRecord> {
        self.shared
            .state
            .lock()
            .recent_failures
            .iter()
            .map(|(name, error)| FailureRecord {
                child: name.clone(),
                error: error.clone(),
            })
            .collect()
    }

    /// Adds a cancel request on the supervisor's scope (as [`Nursery::cancel`](crate::scope::Nursery::cancel)).
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     sup.cancel();
    ///     assert!(pitcrew::scope::is_cancelled());
    ///     pitcrew::scope::cancelled().await;
    /// }));
    /// # let _ = out;
    /// ```
    pub fn cancel(&self) {
        self.shared.scope.cancel(CancelReason::Explicit);
    }

    /// Withdraws a request; returns how many are left.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     sup.cancel();
    ///     assert_eq!(sup.uncancel(), 0);
    ///     assert!(!pitcrew::scope::is_cancelled());
    /// }))
    /// .unwrap();
    /// ```
    pub fn uncancel(&self) -> usize {
        self.shared.scope.uncancel()
    }

    /// Pending cancel requests.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
    ///     assert_eq!(sup.cancelling(), 0);
    ///     sup.cancel();
    ///     assert_eq!(sup.cancelling(), 1);
    ///     sup.uncancel();
    /// }))
    /// .unwrap();
    /// ```
    pub fn cancelling(&self) -> usize {
        self.shared.scope.cancelling()
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("scope", &self.shared.scope)
            .field("children", &self.shared.state.lock().children.len())
            .finish()
    }
}

pub(super) fn remember(shared: &SupShared, name: DataArc<str>, error: String) {
    let mut s = shared.state.lock();
    if s.recent_failures.len() == FAILURE_HISTORY {
        s.recent_failures.pop_front();
    }
    s.recent_failures.push_back((name, error));
}

/// Catches a panic of the wrapped future's poll.
pub(super) struct CatchUnwind<F>(pub(super) AssertUnwindSafe<F>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; `CatchUnwind` has no `Drop`.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut (s.0).0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

/// A temporary child: counted while alive so the supervisor waits for it.
pub(super) struct Temporary<T> {
    pub(super) inner: Pin<Box<dyn Future<Output = Result<T, JoinError>> + Send>>,
    pub(super) shared: DataArc<SupShared>,
    pub(super) _membership: Membership,
}

impl<T> Future for Temporary<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> Drop for Temporary<T> {
    fn drop(&mut self) {
        let mut s = self.shared.state.lock();
        s.temporaries -= 1;
        self.shared.wake_owner(s);
    }
}

/// One run of a restartable child: reports how it ended, even when it is dropped unfinished.
pub(super) struct Instance {
    pub(super) future: ChildFuture,
    pub(super) shared: DataArc<SupShared>,
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) started: bool,
    pub(super) reported: bool,
    pub(super) _membership: Option<Membership>,
}

impl Future for Instance {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let polled = catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx)));
        // A child that ends on its first poll is not marked running: its report below tells
        // the supervisor all there is.
        if !this.started && matches!(polled, Ok(Poll::Pending)) {
            // Its first poll is done: it counts as started, and the next child may start.
            this.started = true;
            let mut s = this.shared.state.lock();
            if let Some(c) = s.children.get_mut(this.index) {
                if c.generation == this.generation && c.state == ChildState::Starting {
                    c.state = ChildState::Running;
                }
            }
            this.shared.wake_owner(s);
        }
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => Outcome::Ok,
            Ok(Poll::Ready(Err(e))) => Outcome::Failed(e),
            Err(p) => Outcome::Failed(format!(
                "panicked: {}",
                task::panic_message(&*p).unwrap_or("<non-string payload>")
            )),
        };
        this.reported = true;
        this.shared.report(this.index, this.generation, outcome);
        Poll::Ready(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if !self.reported {
            self.shared
                .report(self.index, self.generation, Outcome::Cancelled);
        }
    }
}

/// What starting a child needs from the locked state; the factory (user code) and the spawn
/// then run with no lock held.
pub(super) struct Ticket {
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) name: DataArc<str>,
    pub(super) factory: crate::scope::spec::Factory,
    /// The previous instance's scope, reused when nothing refers to it any more.
    pub(super) scope: Option<DataArc<Scope>>,
}

/// Marks child `index` as starting and hands out its ticket. `restarted_at`: when, for a
/// restart (`None` for the first start).
pub(super) fn prepare_start(s: &mut State, index: usize, restarted_at: Option<Instant>) -> Ticket {
    let child = &mut s.children[index];
    child.generation += 1;
    child.restarted_at = restarted_at;
    child.restart_at = None;
    child.stop_deadline = None;
    child.in_round = false;
    child.state = ChildState::Starting;
    Ticket {
        index,
        generation: child.generation,
        name: child.spec.name.clone(),
        factory: child.spec.factory.clone(),
        scope: child.scope.take(),
    }
}

/// The next child to start, when none is starting now.
pub(super) fn next_start(s: &mut State) -> Option<Ticket> {
    let starting = s
        .children
        .iter()
        .any(|c| c.state == ChildState::Starting && c.task.is_some());
    if starting {
        return None;
    }
    s.start_queue.pop_front()
}

/// Starts the ticket's child (no lock held), then records its task.
pub(super) fn launch(shared: &DataArc<SupShared>, t: Ticket) {
    let scope = match t.scope.filter(Scope::recycle) {
        Some(scope) => Some(scope),
        None => Scope::new(Some(shared.scope.clone()), Some(t.name.clone()), false).ok(),
    };
    let membership = shared.scope.reserve(false, None).ok();
    let (Some(scope), Some(membership)) = (scope, membership) else {
        let mut s = shared.state.lock();
        if s.children[t.index].generation == t.generation {
            s.children[t.index].state = ChildState::Stopped;
        }
        return;
    };
    let slot = membership.slot();
    let instance = Instance {
        future: (t.factory)(),
        shared: shared.clone(),
        index: t.index,
        generation: t.generation,
        started: false,
        reported: false,
        _membership: Some(membership),
    };
    let join = Shared::spawn_in(
        &shared.runtime,
        instance,
        Some(t.name.clone()),
        Some(scope.clone()),
        Location::caller(),
    );
    let abort = join.abort_handle();
    shared.scope.attach(slot, abort.clone());
    let mut s = shared.state.lock();
    let shutting_down = s.shutting_down;
    let child = &mut s.children[t.index];
    if child.generation != t.generation {
        return;
    }
    if shutting_down {
        // Shutdown began while it started: it goes at once.
        abort.abort();
    }
    // Its end may already be queued as an event; the event carries the generation, so
    // recording the task here is still right.
    child.task = Some((join.id(), abort));
    child.scope = Some(scope);
    if shutting_down {
        child.state = ChildState::Stopping;
    }
    drop(s);
}

pub(super) fn begin_shutdown(s: &mut State) {
    if s.shutting_down {
        return;
    }
    s.shutting_down = true;
    s.round = false;
    for t in std::mem::take(&mut s.start_queue) {
        s.children[t.index].state = ChildState::Stopped;
    }
    s.stop_queue = (0..s.children.len()).rev().collect();
    for c in &mut s.children {
        c.restart_at = None;
        c.in_round = false;
        if c.task.is_none() {
            c.state = ChildState::Stopped;
        }
    }
}
