//! The scope tree: cancellation state that propagates down eagerly, and membership.
//!
//! Each scope holds, under its own lock, its cancel requests, whether an enclosing scope is
//! cancelled (`inherited`), the reason, its child scopes, its member tasks and the wakers of
//! `cancelled().await` callers. The *effective* state is mirrored in an atomic flag, so that
//! "am I cancelled?" is one load.
//!
//! Rules:
//! 1. A scope is cancelled while it has requests, or while its parent is cancelled and it is
//!    not a shield.
//! 2. A change of a scope's effective state is pushed to its child scopes after its lock is
//!    released. The child then re-reads the parent's *current* state while it holds its own
//!    lock (`refresh`), so concurrent cancel and uncancel requests converge to the parent's
//!    final state whatever the order their pushes arrive in. That is the only nesting of scope
//!    locks (child, then parent), so they cannot deadlock. (The loom model
//!    `propagation_converges_to_the_parents_final_state` caught a version that read the parent
//!    before taking the child's lock.)
//! 3. A new child scope or member task is added under the scope's lock, and reads the state
//!    under that lock: a concurrent cancel either sees it (and cancels it) or happened before
//!    (and the newcomer starts out cancelled). Nothing is missed.
//! 4. Once a scope is closed (its nursery returned), it accepts no members.

use std::fmt;
use std::task::Waker;

use crate::loom::DataArc;
use crate::loom::{
    AtomicBool, Counter, DataArc as Arc, DataWeak as Weak, Mutex, MutexGuard, Ordering,
};
use crate::scope::{CancelReason, ScopeId};
use crate::task::AbortHandle;

static NEXT_SCOPE_ID: Counter = Counter::new(1);

pub(crate) struct Scope {
    pub(crate) id: ScopeId,
    pub(crate) name: Option<DataArc<str>>,
    pub(crate) parent: Option<Arc<Scope>>,
    /// A shield does not inherit its ancestors' cancellation.
    shield: bool,
    /// The scope's tracing span (`runtime.scope`): its tasks' `runtime.spawn` spans are its
    /// children, so a subscriber shows the scope tree.
    pub(crate) span: tracing::Span,
    /// When the owner cancels the scope with `CancelReason::Deadline`; it may be moved.
    pub(crate) deadline: crate::scope::cancel::Deadline,
    /// Mirror of the effective state, for O(1) checks.
    cancelled: AtomicBool,
    state: Mutex<State>,
}

pub(crate) struct State {
    requests: usize,
    own_reason: Option<CancelReason>,
    inherited: Option<CancelReason>,
    children: Vec<Weak<Scope>>,
    members: Vec<Member>,
    free_members: Vec<usize>,
    /// Members the owner waits for before it starts finishing (not background).
    pub(crate) live_waited: usize,
    /// All members, background included.
    pub(crate) live_all: usize,
    closed: bool,
    /// Hard cancellation started: newcomers are aborted at once.
    hard_cancelled: bool,
    cancel_waiters: Vec<Waker>,
    /// The owner (a nursery) waiting for members to end or for the state to change.
    pub(crate) owner_waker: Option<Waker>,
}

impl State {
    fn effective(&self) -> Option<CancelReason> {
        if self.requests > 0 {
            self.own_reason.clone().or(Some(CancelReason::Explicit))
        } else {
            self.inherited.clone()
        }
    }
}

/// A member slot: a task (once its abort handle is attached).
#[derive(Default)]
struct Member {
    generation: u32,
    active: bool,
    background: bool,
    grace: Option<std::time::Duration>,
    /// Kept after the member is aborted: `reap_now` may still have to drop it in place.
    abort: Option<AbortHandle>,
    /// Hard cancellation was sent (the task is queued to be dropped on a worker).
    aborted: bool,
}

/// Membership of a task in a scope; ends (waking the owner) when dropped.
pub(crate) struct Membership {
    scope: Arc<Scope>,
    slot: usize,
    generation: u32,
}

impl Scope {
    /// A new scope under `parent` (the runtime's root scope has none).
    pub(crate) fn new(
        parent: Option<Arc<Scope>>,
        name: Option<DataArc<str>>,
        shield: bool,
    ) -> Result<Arc<Scope>, ()> {
        let make = |inherited: Option<CancelReason>| {
            let id = ScopeId(NEXT_SCOPE_ID.add(1));
            let span = match &parent {
                Some(p) => tracing::trace_span!(
                    target: "runtime::scope",
                    parent: &p.span,
                    "runtime.scope",
                    scope.id = id.0,
                    scope.name = name.as_deref().unwrap_or(""),
                    scope.shield = shield,
                ),
                None => tracing::trace_span!(
                    target: "runtime::scope",
                    parent: None,
                    "runtime.scope",
                    scope.id = id.0,
                    scope.name = name.as_deref().unwrap_or(""),
                    scope.shield = shield,
                ),
            };
            Arc::new(Scope {
                id,
                name: name.clone(),
                parent: parent.clone(),
                span,
                shield,
                deadline: Mutex::new(None),
                cancelled: AtomicBool::new(inherited.is_some()),
                state: Mutex::new(State {
                    requests: 0,
                    own_reason: None,
                    inherited,
                    children: Vec::new(),
                    members: Vec::new(),
                    free_members: Vec::new(),
                    live_waited: 0,
                    live_all: 0,
                    closed: false,
                    hard_cancelled: false,
                    cancel_waiters: Vec::new(),
                    owner_waker: None,
                }),
            })
        };
        let Some(p) = &parent else {
            return Ok(make(None));
        };
        // Rule 3: created, initialised and registered under the parent's lock. The new scope
        // is not reachable by anyone else until then, so its own lock is not needed.
        let mut ps = p.state.lock();
        if ps.closed {
            return Err(());
        }
        let inherited = if shield { None } else { ps.effective() };
        let scope = make(inherited);
        ps.children.retain(|c| c.strong_count() > 0);
        ps.children.push(Arc::downgrade(&scope));
        Ok(scope)
    }

    /// Effective cancellation (rule 1), in one load.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Why the scope is cancelled, if it is.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        self.state.lock().effective()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Adds one cancel request.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        let mut s = self.state.lock();
        s.requests += 1;
        if s.requests == 1 || s.own_reason.is_none() {
            s.own_reason = Some(reason);
        }
        self.publish(s);
    }

    /// Withdraws one request; returns how many are left. Never goes below zero.
    pub(crate) fn uncancel(&self) -> usize {
        let mut s = self.state.lock();
        s.requests = s.requests.saturating_sub(1);
        if s.requests == 0 {
            s.own_reason = None;
        }
        let left = s.requests;
        self.publish(s);
        left
    }

    /// Pending requests.
    pub(crate) fn cancelling(&self) -> usize {
        self.state.lock().requests
    }

    /// Updates the flag from the state, wakes waiters, and pushes a change to the children
    /// (rule 2). Consumes the guard so the push happens with no lock held.
    fn publish(&self, mut s: MutexGuard<'_, State>) {
        let now = s.effective().is_some();
        let before = self.cancelled.swap(now, Ordering::AcqRel);
        if now == before {
            return;
        }
        let mut wake: Vec<Waker> = Vec::new();
        if now {
            wake.append(&mut s.cancel_waiters);
        }
        wake.extend(s.owner_waker.take());
        let children: Vec<Arc<Scope>> = s.children.iter().filter_map(Weak::upgrade).collect();
        drop(s);
        wake.into_iter().for_each(Waker::wake);
        for child in children {
            child.refresh();
        }
    }

    /// Re-reads the parent's state (rule 2).
    fn refresh(&self) {
        if self.shield {
            return;
        }
        // The parent's state is read while we hold our own lock (the only nesting of scope
        // locks: child, then parent), so the last refresh to get our lock applies the
        // parent's latest state.
        let mut s = self.state.lock();
        s.inherited = self.parent.as_ref().and_then(|p| p.reason());
        self.publish(s);
    }

    /// Reserves a member slot, counted live at once; the task's abort handle is attached once
    /// it is spawned. Fails once the scope is closed (rule 4).
    pub(crate) fn reserve(
        self: &Arc<Self>,
        background: bool,
        grace: Option<std::time::Duration>,
    ) -> Result<Membership, ()> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(());
        }
        let slot = match s.free_members.pop() {
            Some(i) => i,
            None => {
                s.members.push(Member::default());
                s.members.len() - 1
            }
        };
        let m = &mut s.members[slot];
        m.generation = m.generation.wrapping_add(1);
        m.active = true;
        m.background = background;
        m.grace = grace;
        m.abort = None;
        m.aborted = false;
        let generation = m.generation;
        s.live_all += 1;
        if !background {
            s.live_waited += 1;
        }
        Ok(Membership {
            scope: self.clone(),
            slot,
            generation,
        })
    }

    /// Attaches the abort handle of the task spawned for a reserved slot. If hard
    /// cancellation already started, the task is aborted at once (rule 3).
    pub(crate) fn attach(&self, (slot, generation): (usize, u32), abort: AbortHandle) {
        let mut s = self.state.lock();
        let hard = s.hard_cancelled;
        if let Some(m) = s.members.get_mut(slot) {
            if m.active && m.generation == generation {
                m.abort = Some(abort.clone());
                m.aborted = hard;
                if hard {
                    drop(s);
                    abort.abort();
                }
            }
        }
    }

    /// Hard cancellation of the members whose grace (or `default_grace`) has run out since
    /// `cancelled_at`. Returns when the next one runs out, if any member is left waiting.
    pub(crate) fn abort_members_due(
        &self,
        cancelled_at: std::time::Instant,
        default_grace: std::time::Duration,
        now: std::time::Instant,
    ) -> Option<std::time::Instant> {
        let mut due = Vec::new();
        let mut next: Option<std::time::Instant> = None;
        {
            let mut s = self.state.lock();
            for m in s.members.iter_mut().filter(|m| m.active) {
                let grace = m.grace.unwrap_or(default_grace);
                match cancelled_at.checked_add(grace) {
                    Some(at) if at <= now => {
                        // Once per member; an aborted one is not "next" either.
                        let first = !m.aborted;
                        m.aborted = true;
                        if first {
                            due.extend(m.abort.clone());
                        }
                    }
                    Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                    None => {}
                }
            }
            if default_grace_passed(cancelled_at, default_grace, now) {
                s.hard_cancelled = true;
            }
        }
        for h in due {
            h.abort();
        }
        next
    }

    /// The owner is going away: closes the scope, drops every member's future now (on this
    /// thread, or on the worker that is polling it, right after that poll), and returns once
    /// every member has left, so that nothing the scope started outlives it. Members already
    /// aborted are dropped here too: their queue entry may sit behind this very poll on the
    /// only worker that could run it, and waiting for it would spin forever.
    pub(crate) fn reap_now(&self) {
        let due: Vec<AbortHandle> = {
            let mut s = self.state.lock();
            s.closed = true;
            s.hard_cancelled = true;
            s.members
                .iter_mut()
                .filter(|m| m.active)
                .filter_map(|m| m.abort.take())
                .collect()
        };
        for h in due {
            h.cancel_now();
        }
        // Members being polled elsewhere leave as soon as their current poll returns.
        while self.state.lock().live_all > 0 {
            crate::loom::thread::yield_now();
        }
    }

    /// No members from now on.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }

    /// Registers a waker for `cancelled().await`; false when already cancelled.
    pub(crate) fn wait_cancelled(&self, waker: &Waker) -> bool {
        let mut s = self.state.lock();
        if s.effective().is_some() {
            return false;
        }
        if !s.cancel_waiters.iter().any(|w| w.will_wake(waker)) {
            s.cancel_waiters.push(waker.clone());
        }
        true
    }
}

impl Membership {
    pub(crate) fn slot(&self) -> (usize, u32) {
        (self.slot, self.generation)
    }
}

fn default_grace_passed(
    cancelled_at: std::time::Instant,
    grace: std::time::Duration,
    now: std::time::Instant,
) -> bool {
    cancelled_at.checked_add(grace).is_some_and(|at| at <= now)
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut s = self.scope.state.lock();
        let background = match s.members.get_mut(self.slot) {
            Some(m) if m.active && m.generation == self.generation => {
                m.active = false;
                m.abort = None;
                m.background
            }
            _ => return,
        };
        s.free_members.push(self.slot);
        s.live_all -= 1;
        if !background {
            s.live_waited -= 1;
        }
        // The owner cares when the waited members, or all of them, are gone.
        let waker = if s.live_all == 0 || (!background && s.live_waited == 0) {
            s.owner_waker.take()
        } else {
            None
        };
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("scope", &self.scope.id)
            .finish()
    }
}
