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
    /// Head of the free list threaded through `Member::next_free` (`NO_SLOT`: empty).
    free_head: u32,
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
    /// The next free slot while this one is free.
    next_free: u32,
    active: bool,
    background: bool,
    grace: Option<std::time::Duration>,
    /// Kept until the member leaves, even once it was aborted: `reap_now` must still be able
    /// to drop the future inline (an abort only queues the task, and the worker that would
    /// run it may be the very one waiting in `reap_now`).
    abort: Option<AbortHandle>,
    /// The abort above was already sent (grace ran out); not sent again.
    aborted: bool,
}

const NO_SLOT: u32 = u32::MAX;

/// Membership of a task in a scope; ends (waking the owner) when dropped.
pub(crate) struct Membership {
    scope: Arc<Scope>,
    slot: u32,
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
                    free_head: NO_SLOT,
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
        // Dead entries are swept only when the vector would grow, so a scope whose children
        // come and go keeps it short at O(1) amortised per child.
        if ps.children.len() == ps.children.capacity() {
            ps.children.retain(|c| c.strong_count() > 0);
        }
        ps.children.push(Arc::downgrade(&scope));
        Ok(scope)
    }

    /// Makes a scope that nothing refers to any more (no task, handle or child scope: the
    /// caller holds its only strong reference) as good as new, for a supervised child's next
    /// instance; it keeps its id and span. False when something still refers to it.
    pub(crate) fn recycle(self: &Arc<Self>) -> bool {
        if Arc::strong_count(self) != 1 {
            return false;
        }
        let mut s = self.state.lock();
        if s.closed || s.live_all > 0 {
            return false;
        }
        s.requests = 0;
        s.own_reason = None;
        s.children.clear();
        s.members.clear();
        s.free_head = NO_SLOT;
        s.hard_cancelled = false;
        s.cancel_waiters.clear();
        s.owner_waker = None;
        *self.deadline.lock() = None;
        // Rule 2: the parent is read while our lock is held, and the flag set under it.
        s.inherited = match &self.parent {
            Some(p) if !self.shield => p.reason(),
            _ => None,
        };
        self.cancelled
            .store(s.inherited.is_some(), Ordering::Release);
        true
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
        let slot = match s.free_head {
            NO_SLOT => {
                s.members.push(Member::default());
                u32::try_from(s.members.len() - 1).expect("more than 4 billion scope members")
            }
            free => {
                s.free_head = s.members[free as usize].next_free;
                free
            }
        };
        let m = &mut s.members[slot as usize];
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
    pub(crate) fn attach(&self, (slot, generation): (u32, u32), abort: AbortHandle) {
        let mut s = self.state.lock();
        let (hard, reaping) = (s.hard_cancelled, s.closed && s.hard_cancelled);
        if let Some(m) = s.members.get_mut(slot as usize) {
            if m.active && m.generation == generation {
                m.abort = Some(abort.clone());
                m.aborted = hard;
                drop(s);
                if reaping {
                    // `reap_now` is waiting for this member on another thread and could not
                    // see its handle: drop the future here rather than queue it.
                    abort.cancel_now();
                } else if hard {
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
            for m in s.members.iter_mut().filter(|m| m.active && !m.aborted) {
                let grace = m.grace.unwrap_or(default_grace);
                match cancelled_at.checked_add(grace) {
                    Some(at) if at <= now => {
                        if let Some(h) = &m.abort {
                            m.aborted = true;
                            due.push(h.clone());
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
    /// aborted are dropped here too: their abort only queued them, and waiting for a worker to
    /// run them could wait forever when every worker is in here (or the task sits in this
    /// worker's own queue).
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

    /// No members from now on, if there are none now; false (and still open) otherwise.
    pub(crate) fn close_if_empty(&self) -> bool {
        let mut s = self.state.lock();
        if s.live_all > 0 {
            return false;
        }
        s.closed = true;
        true
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
    pub(crate) fn slot(&self) -> (u32, u32) {
        (self.slot, self.generation)
    }

    /// Mutant `DecrementBeforeDrop`: leaves the scope now, while the member's future is still
    /// alive (the later drop finds the slot inactive and does nothing).
    #[cfg(all(loom, loom_mutants))]
    pub(crate) fn mutant_leave_early(&mut self) {
        if crate::loom_api::mutants::active(crate::loom_api::mutants::Mutant::DecrementBeforeDrop) {
            self.leave();
        }
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
        self.leave();
    }
}

impl Membership {
    /// Ends the membership: frees the slot, and wakes the owner when the members it waits for
    /// are gone. Idempotent: once the slot is inactive (or reused) this does nothing.
    fn leave(&mut self) {
        let mut s = self.scope.state.lock();
        let free_head = s.free_head;
        let background = match s.members.get_mut(self.slot as usize) {
            Some(m) if m.active && m.generation == self.generation => {
                m.active = false;
                m.abort = None;
                m.next_free = free_head;
                m.background
            }
            _ => return,
        };
        s.free_head = self.slot;
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
