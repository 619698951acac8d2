//! Supervisors: a scope whose children fail independently and are restarted by Erlang/OTP
//! strategies.
//!
//! The supervisor future runs the body inline (like a nursery) and is the only place that
//! decides anything: children report how they ended through an event queue, and the future
//! applies the restart policy, the strategy, the intensity limit and the back-off, and stops
//! children one at a time in reverse start order (each with its grace: asked through its own
//! scope first, dropped when the grace runs out).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::{DataArc, Mutex};
use crate::runtime::{context, Handle};
use crate::scheduler::Shared;
use crate::scope::child::ChildHandle;
use crate::scope::spec::{ChildFuture, ChildId, ChildInfo, ChildSpec, ChildState};
use crate::scope::tree::{Membership, Scope};
use crate::scope::{
    CancelReason, Cancelled, Restart, Strategy, SupervisorError, SupervisorOptions,
};
use crate::task::{self, AbortHandle, JoinError};
use crate::time::Sleep;

/// Failures remembered for diagnostics; older ones are forgotten (the history is bounded).
const FAILURE_HISTORY: usize = 32;

/// How a child instance ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Failed(String),
    Cancelled,
}

struct Event {
    index: usize,
    generation: u64,
    outcome: Outcome,
}

struct Child {
    spec: ChildSpec,
    state: ChildState,
    generation: u64,
    task: Option<(task::Id, AbortHandle)>,
    scope: Option<DataArc<Scope>>,
    restarts: usize,
    consecutive: u32,
    restart_at: Option<Instant>,
    stop_deadline: Option<Instant>,
    /// Stopped as part of a restart round: restarted when the round completes.
    in_round: bool,
}

struct State {
    children: Vec<Child>,
    events: VecDeque<Event>,
    owner: Option<Waker>,
    /// Children to stop, one at a time, in this order.
    stop_queue: VecDeque<usize>,
    /// A restart round is under way (its members have `in_round`).
    round: bool,
    shutting_down: bool,
    restart_times: VecDeque<Instant>,
    recent_failures: VecDeque<(DataArc<str>, String)>,
    temporaries: usize,
    /// Children waiting to start, in start order: one starts once the previous one has been
    /// polled, so they come up in order (as OTP starts children one by one).
    start_queue: VecDeque<Ticket>,
    /// `shutdown().await` callers, woken whenever the owner is.
    shutdown_waiters: Vec<Waker>,
    /// The supervisor future has returned.
    finished: bool,
}

pub(crate) struct SupShared {
    scope: DataArc<Scope>,
    runtime: crate::loom::Arc<Shared>,
    opts: SupervisorOptions,
    state: Mutex<State>,
}

impl SupShared {
    fn wake_owner(&self, mut s: crate::loom::MutexGuard<'_, State>) {
        let w = s.owner.take();
        let waiters = std::mem::take(&mut s.shutdown_waiters);
        drop(s);
        if let Some(w) = w {
            w.wake();
        }
        waiters.into_iter().for_each(Waker::wake);
    }

    fn report(&self, index: usize, generation: u64, outcome: Outcome) {
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
    shared: DataArc<SupShared>,
}

impl Supervisor {
    /// Adds a restartable child and starts it now.
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
            stop_deadline: None,
            in_round: false,
        });
        if s.shutting_down {
            s.children[index].state = ChildState::Stopped;
        } else {
            let ticket = prepare_start(&mut s, index);
            s.start_queue.push_back(ticket);
        }
        let ready = next_start(&mut s);
        drop(s);
        launch(&self.shared, ready.into_iter().collect());
        self.shared.wake_owner(self.shared.state.lock());
        ChildId(index)
    }

    /// Spawns a temporary child: never restarted; its failure is logged and seen on its
    /// handle, and its siblings live on.
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

    /// Adds a cancel request on the supervisor's scope (as [`Nursery::cancel`](crate::scope::Nursery::cancel)).
    pub fn cancel(&self) {
        self.shared.scope.cancel(CancelReason::Explicit);
    }

    /// Withdraws a request; returns how many are left.
    pub fn uncancel(&self) -> usize {
        self.shared.scope.uncancel()
    }

    /// Pending cancel requests.
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

fn remember(shared: &SupShared, name: DataArc<str>, error: String) {
    let mut s = shared.state.lock();
    if s.recent_failures.len() == FAILURE_HISTORY {
        s.recent_failures.pop_front();
    }
    s.recent_failures.push_back((name, error));
}

/// Catches a panic of the wrapped future's poll.
struct CatchUnwind<F>(AssertUnwindSafe<F>);

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
struct Temporary<T> {
    inner: Pin<Box<dyn Future<Output = Result<T, JoinError>> + Send>>,
    shared: DataArc<SupShared>,
    _membership: Membership,
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
struct Instance {
    future: ChildFuture,
    shared: DataArc<SupShared>,
    index: usize,
    generation: u64,
    started: bool,
    reported: bool,
    _membership: Option<Membership>,
}

impl Future for Instance {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let polled = catch_unwind(AssertUnwindSafe(|| this.future.as_mut().poll(cx)));
        if !this.started {
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
struct Ticket {
    index: usize,
    generation: u64,
    name: DataArc<str>,
    factory: crate::scope::spec::Factory,
}

/// Marks child `index` as starting and hands out its ticket.
fn prepare_start(s: &mut State, index: usize) -> Ticket {
    let child = &mut s.children[index];
    child.generation += 1;
    child.restart_at = None;
    child.stop_deadline = None;
    child.in_round = false;
    child.state = ChildState::Starting;
    Ticket {
        index,
        generation: child.generation,
        name: child.spec.name.clone(),
        factory: child.spec.factory.clone(),
    }
}

/// The next child to start, when none is starting now.
fn next_start(s: &mut State) -> Option<Ticket> {
    let starting = s
        .children
        .iter()
        .any(|c| c.state == ChildState::Starting && c.task.is_some());
    if starting {
        return None;
    }
    s.start_queue.pop_front()
}

/// Starts the tickets' children (no lock held), then records their tasks.
fn launch(shared: &DataArc<SupShared>, tickets: Vec<Ticket>) {
    for t in tickets {
        let scope = Scope::new(Some(shared.scope.clone()), Some(t.name.clone()), false).ok();
        let membership = shared.scope.reserve(false, None).ok();
        let (Some(scope), Some(membership)) = (scope, membership) else {
            let mut s = shared.state.lock();
            if s.children[t.index].generation == t.generation {
                s.children[t.index].state = ChildState::Stopped;
            }
            continue;
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
            continue;
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
}

fn begin_shutdown(s: &mut State) {
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

/// Runs `body` with a [`Supervisor`] in a new scope; returns once the body has returned and
/// every child has ended, or after [`Supervisor::shutdown`].
///
/// # Errors
///
/// [`SupervisorError::IntensityExceeded`] when restarts exceed the intensity,
/// [`SupervisorError::BodyPanicked`], or [`SupervisorError::Cancelled`] when an enclosing scope
/// cancelled it.
///
/// # Panics
///
/// Outside a pitcrew runtime.
pub async fn supervisor<T, F, Fut>(opts: SupervisorOptions, body: F) -> Result<T, SupervisorError>
where
    F: FnOnce(Supervisor) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = Handle::current().shared;
    let parent = context::with_current_scope(|s| s.cloned());
    let Ok(scope) = Scope::new(parent, opts.name.clone(), false) else {
        return Err(SupervisorError::Cancelled(Cancelled {
            reason: CancelReason::Parent,
        }));
    };
    let shared = DataArc::new(SupShared {
        scope: scope.clone(),
        runtime,
        opts,
        state: Mutex::new(State {
            children: Vec::new(),
            events: VecDeque::new(),
            owner: None,
            stop_queue: VecDeque::new(),
            round: false,
            shutting_down: false,
            restart_times: VecDeque::new(),
            recent_failures: VecDeque::new(),
            temporaries: 0,
            start_queue: VecDeque::new(),
            shutdown_waiters: Vec::new(),
            finished: false,
        }),
    });
    let body = {
        let _enter = context::enter_scope(&scope);
        body(Supervisor {
            shared: shared.clone(),
        })
    };
    SupervisorFuture {
        scope,
        shared,
        body: Some(Box::pin(body)),
        output: None,
        error: None,
        cancelled_at: None,
        timer: None,
        body_polled_after_stop: false,
        done: false,
    }
    .await
}

struct SupervisorFuture<Fut: Future> {
    scope: DataArc<Scope>,
    shared: DataArc<SupShared>,
    body: Option<Pin<Box<Fut>>>,
    output: Option<Fut::Output>,
    error: Option<SupervisorError>,
    cancelled_at: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    body_polled_after_stop: bool,
    done: bool,
}

impl<Fut: Future> Unpin for SupervisorFuture<Fut> {}

impl<Fut: Future> SupervisorFuture<Fut> {
    fn backoff(&self, consecutive: u32) -> Duration {
        let o = &self.shared.opts;
        if o.backoff_max.is_zero() {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(consecutive.min(31)).unwrap_or(u32::MAX);
        o.backoff_min.saturating_mul(factor).min(o.backoff_max)
    }

    /// Applies one child's end: restart it (per its policy and the strategy), or not, or give
    /// up when the intensity is exceeded.
    fn on_ended(&mut self, s: &mut State, ev: Event, now: Instant) {
        let Some(child) = s.children.get_mut(ev.index) else {
            return;
        };
        if child.generation != ev.generation {
            return;
        }
        child.task = None;
        child.scope = None;
        child.stop_deadline = None;
        if let Outcome::Failed(e) = &ev.outcome {
            tracing::warn!(child = %child.spec.name, error = %e, "supervised child failed");
            let name = child.spec.name.clone();
            if s.recent_failures.len() == FAILURE_HISTORY {
                s.recent_failures.pop_front();
            }
            s.recent_failures.push_back((name, e.clone()));
        }
        let child = &mut s.children[ev.index];
        if s.shutting_down {
            child.state = ChildState::Stopped;
            return;
        }
        if child.in_round {
            child.state = ChildState::Restarting;
            return;
        }
        let failed = matches!(ev.outcome, Outcome::Failed(_) | Outcome::Cancelled);
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary => false,
        };
        if !restart {
            child.state = ChildState::Stopped;
            return;
        }
        // Intensity: more than `max_restarts` within `period` and the supervisor gives up.
        let opts = &self.shared.opts;
        while s
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > opts.period)
        {
            s.restart_times.pop_front();
        }
        s.restart_times.push_back(now);
        if s.restart_times.len() > opts.max_restarts {
            let restarts = s.restart_times.len();
            s.restart_times.clear();
            self.error = Some(SupervisorError::IntensityExceeded {
                child: s.children[ev.index].spec.name.clone(),
                restarts,
            });
            begin_shutdown(s);
            return;
        }
        let consecutive = s.children[ev.index].consecutive;
        let delay = self.backoff(consecutive);
        let child = &mut s.children[ev.index];
        child.consecutive = consecutive.saturating_add(1);
        child.restarts += 1;
        child.state = ChildState::Restarting;
        let others: Vec<usize> = match opts.strategy {
            Strategy::OneForOne => Vec::new(),
            Strategy::OneForAll => (0..s.children.len()).filter(|&j| j != ev.index).collect(),
            Strategy::RestForOne => ((ev.index + 1)..s.children.len()).collect(),
        };
        if others.is_empty() {
            s.children[ev.index].restart_at = Some(now + delay);
            return;
        }
        // A restart round: stop the others in reverse start order, then restart the whole
        // set in start order.
        s.round = true;
        s.children[ev.index].in_round = true;
        for &j in others.iter().rev() {
            let c = &mut s.children[j];
            if matches!(c.state, ChildState::Stopped) && c.spec.restart == Restart::Temporary {
                continue;
            }
            c.in_round = true;
            if c.task.is_some() {
                s.stop_queue.push_back(j);
            } else {
                c.state = ChildState::Restarting;
            }
        }
        s.children[ev.index].restart_at = Some(now + delay);
    }

    /// Stops the head of the stop queue (one child at a time); returns when to look again.
    fn drive_stops(&mut self, s: &mut State, now: Instant) -> Option<Instant> {
        while let Some(&j) = s.stop_queue.front() {
            let grace = s.children[j].spec.grace.unwrap_or(self.shared.opts.grace);
            let c = &mut s.children[j];
            if c.task.is_none() {
                s.stop_queue.pop_front();
                continue;
            }
            match c.stop_deadline {
                None => {
                    c.state = ChildState::Stopping;
                    if let Some(scope) = &c.scope {
                        scope.cancel(CancelReason::Explicit);
                    }
                    let at = now.checked_add(grace);
                    c.stop_deadline = Some(at.unwrap_or(now + Duration::from_secs(86_400 * 365)));
                    if grace.is_zero() {
                        if let Some((_, h)) = &c.task {
                            h.abort();
                        }
                    }
                    return c.stop_deadline;
                }
                Some(at) if at <= now => {
                    if let Some((_, h)) = &c.task {
                        h.abort();
                    }
                    return None;
                }
                Some(at) => return Some(at),
            }
        }
        None
    }

    /// What is due to start (single restarts, or a round once its members are all stopped,
    /// in start order), and when to look again.
    fn drive_starts(&mut self, s: &mut State, now: Instant) -> (Vec<Ticket>, Option<Instant>) {
        let mut tickets = Vec::new();
        if s.shutting_down {
            return (tickets, None);
        }
        if s.round {
            let waiting = s.children.iter().any(|c| c.in_round && c.task.is_some());
            if waiting || !s.stop_queue.is_empty() {
                return (tickets, None);
            }
            let due = s
                .children
                .iter()
                .filter(|c| c.in_round)
                .filter_map(|c| c.restart_at)
                .max();
            if let Some(at) = due {
                if at > now {
                    return (tickets, Some(at));
                }
            }
            s.round = false;
            for j in 0..s.children.len() {
                if s.children[j].in_round {
                    let t = prepare_start(s, j);
                    s.start_queue.push_back(t);
                }
            }
            tickets.extend(next_start(s));
            return (tickets, None);
        }
        let mut next: Option<Instant> = None;
        for j in 0..s.children.len() {
            match s.children[j].restart_at {
                Some(at) if at <= now => {
                    let t = prepare_start(s, j);
                    s.start_queue.push_back(t);
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        tickets.extend(next_start(s));
        (tickets, next)
    }
}

impl<Fut: Future> Future for SupervisorFuture<Fut> {
    type Output = Result<Fut::Output, SupervisorError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let scope = this.scope.clone();
        let _enter = context::enter_scope(&scope);
        loop {
            this.shared.state.lock().owner = Some(cx.waker().clone());
            scope.lock().owner_waker = Some(cx.waker().clone());
            let now = Instant::now();

            if let Some(body) = this.body.as_mut() {
                match catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => {}
                    Ok(Poll::Ready(v)) => {
                        this.output = Some(v);
                        this.body = None;
                    }
                    Err(p) => {
                        this.body = None;
                        let msg = task::panic_message(&*p).map(str::to_string);
                        this.error = Some(SupervisorError::BodyPanicked(msg));
                        begin_shutdown(&mut this.shared.state.lock());
                    }
                }
            }

            // Cancelled from outside (or by `cancel`): after the grace, shut down.
            let mut next: Option<Instant> = None;
            if scope.is_cancelled() {
                let at = *this.cancelled_at.get_or_insert(now);
                let hard = at.checked_add(this.shared.opts.grace);
                match hard {
                    Some(h) if h <= now => {
                        if this.error.is_none() && this.output.is_none() {
                            this.error = Some(SupervisorError::Cancelled(Cancelled {
                                reason: scope.reason().unwrap_or(CancelReason::Parent),
                            }));
                        }
                        this.body = None;
                        begin_shutdown(&mut this.shared.state.lock());
                    }
                    Some(h) => next = Some(h),
                    None => {}
                }
            } else {
                this.cancelled_at = None;
            }

            let shared = this.shared.clone();
            let mut s = shared.state.lock();
            while let Some(ev) = s.events.pop_front() {
                this.on_ended(&mut s, ev, now);
            }
            let stops = this.drive_stops(&mut s, now);
            let (tickets, starts) = this.drive_starts(&mut s, now);
            for t in [stops, starts].into_iter().flatten() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            if !tickets.is_empty() {
                drop(s);
                launch(&shared, tickets);
                continue;
            }
            let running = s
                .children
                .iter()
                .any(|c| c.task.is_some() || c.state == ChildState::Starting);
            let pending_restart = !s.start_queue.is_empty()
                || s.children
                    .iter()
                    .any(|c| c.restart_at.is_some() || c.in_round);
            let temporaries = s.temporaries;
            let shutting_down = s.shutting_down;
            drop(s);

            let members = scope.lock().live_all;
            let finished = !running
                && temporaries == 0
                && members == 0
                && (shutting_down || (this.body.is_none() && !pending_restart));
            if finished && this.body.is_none() {
                scope.close();
                this.done = true;
                let mut s = this.shared.state.lock();
                s.finished = true;
                this.shared.wake_owner(s);
                if let Some(e) = this.error.take() {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(match this.output.take() {
                    Some(v) => Ok(v),
                    None => Err(SupervisorError::Cancelled(Cancelled {
                        reason: scope.reason().unwrap_or(CancelReason::Parent),
                    })),
                });
            }
            if finished && shutting_down {
                // Shut down while the body still runs. It may itself be awaiting the shutdown,
                // which is complete now: poll it once more; if it still runs, it goes too.
                if !this.body_polled_after_stop {
                    this.body_polled_after_stop = true;
                    continue;
                }
                this.body = None;
                if this.output.is_none() && this.error.is_none() {
                    this.error = Some(SupervisorError::Cancelled(Cancelled {
                        reason: CancelReason::Explicit,
                    }));
                }
                continue;
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
            if !this.shared.state.lock().events.is_empty() {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl<Fut: Future> Drop for SupervisorFuture<Fut> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.body = None;
        begin_shutdown(&mut self.shared.state.lock());
        self.scope.cancel(CancelReason::Parent);
        self.scope.reap_now();
    }
}
