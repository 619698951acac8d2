//! Supervisors: a scope whose children fail independently and are restarted by Erlang/OTP
//! strategies.
//!
//! The supervisor future runs the body inline (like a nursery) and is the only place that
//! decides anything: children report how they ended through an event queue, and the future
//! applies the restart policy, the strategy, the intensity limit and the back-off, and stops
//! children one at a time in reverse start order (each with its grace: asked through its own
//! scope first, dropped when the grace runs out).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::loom::{DataArc, Mutex};
use crate::runtime::{context, Handle};
use crate::scope::spec::ChildState;
use crate::scope::tree::Scope;
use crate::scope::{
    CancelReason, Cancelled, Restart, Strategy, SupervisorError, SupervisorOptions,
};
use crate::task::{self};
use crate::time::Sleep;

use crate::scope::supervised::{
    begin_shutdown, launch, next_start, prepare_start, Event, Outcome, State, SupShared,
    Supervisor, Ticket, FAILURE_HISTORY,
};
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
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{supervisor, ChildSpec, Restart, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = SupervisorOptions::new().intensity(3, Duration::from_secs(5));
/// let out = rt.block_on(supervisor(opts, |sup| async move {
///     sup.add(
///         ChildSpec::new("job", || async { Ok::<(), String>(()) })
///             .restart(Restart::Transient),
///     );
///     "body done"
/// }));
/// // Returns once the body has returned and the child has ended.
/// assert_eq!(out.unwrap(), "body done");
/// ```
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
        // `child.scope` stays: the next instance may reuse it (see `launch`).
        child.stop_deadline = None;
        let failed = matches!(ev.outcome, Outcome::Failed(_) | Outcome::Cancelled);
        if let Outcome::Failed(e) = ev.outcome {
            tracing::warn!(child = %child.spec.name, error = %e, "supervised child failed");
            let name = child.spec.name.clone();
            if s.recent_failures.len() == FAILURE_HISTORY {
                s.recent_failures.pop_front();
            }
            s.recent_failures.push_back((name, e));
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
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => failed,
            Restart::Temporary => false,
        };
        if !restart {
            child.state = ChildState::Stopped;
            return;
        }
        // Intensity: more than `max_restarts` within `period` and the supervisor gives up. The
        // history holds at most `max_restarts + 1` times; with no limit, none.
        let opts = &self.shared.opts;
        if opts.max_restarts != usize::MAX {
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
        }
        let child = &s.children[ev.index];
        // A child that ran for the longest back-off since its last restart was healthy for a
        // while: its next restart waits the shortest delay again.
        let consecutive = match child.restarted_at {
            Some(at) if now.saturating_duration_since(at) >= opts.backoff_max => 0,
            _ => child.consecutive,
        };
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
    /// in start order; one child starts at a time), and when to look again.
    fn drive_starts(&mut self, s: &mut State, now: Instant) -> (Option<Ticket>, Option<Instant>) {
        if s.shutting_down {
            return (None, None);
        }
        if s.round {
            let waiting = s.children.iter().any(|c| c.in_round && c.task.is_some());
            if waiting || !s.stop_queue.is_empty() {
                return (None, None);
            }
            let due = s
                .children
                .iter()
                .filter(|c| c.in_round)
                .filter_map(|c| c.restart_at)
                .max();
            if let Some(at) = due {
                if at > now {
                    return (None, Some(at));
                }
            }
            s.round = false;
            for j in 0..s.children.len() {
                if s.children[j].in_round {
                    let t = prepare_start(s, j, Some(now));
                    s.start_queue.push_back(t);
                }
            }
            return (next_start(s), None);
        }
        let mut next: Option<Instant> = None;
        for j in 0..s.children.len() {
            match s.children[j].restart_at {
                Some(at) if at <= now => {
                    let t = prepare_start(s, j, Some(now));
                    s.start_queue.push_back(t);
                }
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        (next_start(s), next)
    }
}

impl<Fut: Future> Future for SupervisorFuture<Fut> {
    type Output = Result<Fut::Output, SupervisorError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let scope = this.scope.clone();
        let _enter = context::enter_scope(&scope);
        let shared = this.shared.clone();
        loop {
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

            let mut s = shared.state.lock();
            // Registered under the lock the events are read under: an event queued after this
            // wakes us, so nothing is looked at twice.
            if !s.owner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.owner = Some(cx.waker().clone());
            }
            while let Some(ev) = s.events.pop_front() {
                this.on_ended(&mut s, ev, now);
            }
            let stops = this.drive_stops(&mut s, now);
            let (ticket, starts) = this.drive_starts(&mut s, now);
            for t in [stops, starts].into_iter().flatten() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            if let Some(ticket) = ticket {
                // Started with no lock held. Nothing else can be due before the child's first
                // poll (which wakes us, as does its end: the waker is registered), so this
                // pass goes on rather than starting over.
                drop(s);
                launch(&shared, ticket);
                s = shared.state.lock();
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
                // As in the nursery: closed only if no member joined since the count.
                if !scope.close_if_empty() {
                    continue;
                }
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
