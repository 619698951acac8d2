//! A timer entry: the heap cell a `Sleep` shares with the timer thread, and its state word.
//!
//! The handle side ([`Registration`], owned by a `Sleep`) and the timer thread each hold at most
//! one reference to an entry. Which of them may touch which field, and who frees the entry, is
//! decided by one atomic word, [`Entry::state`]: the deadline tick in the low 48 bits and the
//! flags below in the high ones, so that "move the deadline later" and "fire" are one
//! compare-exchange on the same word and can never both win.
//!
//! # Rules
//!
//! 1. `REGISTERED` is set by the handle when it pushes the entry to the timer thread and cleared
//!    by the timer thread when it lets go (after firing it, after releasing it at shutdown).
//!    While it is clear the handle owns the entry outright.
//! 2. `CANCELLED` is set by the handle when it lets go of a `REGISTERED` entry (drop, or a
//!    reset that cannot reuse it). From then on the handle never touches the entry; the timer
//!    thread frees it. The entry is freed by whoever makes "`CANCELLED`, not `REGISTERED`"
//!    true, or by the handle alone if it was never `REGISTERED` when the handle let go.
//! 3. `IN_WHEEL` is set by the timer thread when it links the entry into the wheel and cleared
//!    when it fires it. A handle that cancels an `IN_WHEEL` entry pushes it to the timer
//!    thread's stack again, as a cancellation, so that the thread unlinks and frees it promptly;
//!    one that cancels an entry not yet linked does not, since the thread will see `CANCELLED`
//!    when it takes the registration from the stack. (So an entry taken from the stack is a
//!    cancellation exactly when it is `IN_WHEEL`, and is never in the stack twice.)
//! 4. The waker slot: while `REGISTERED` and neither `FIRED` nor `SHUTDOWN`, the handle may touch
//!    it only while it holds `LOCKED` (in `poll`, to store a new waker; in `cancel`, to take
//!    its waker back), which it takes with a compare-exchange that fails on `FIRED` or
//!    `SHUTDOWN`; the timer thread never touches it. The timer thread fires (or releases at
//!    shutdown) with a compare-exchange: if `LOCKED` is clear, it owns the slot from then on,
//!    takes the waker and clears `REGISTERED`; if `LOCKED` is set, it clears `REGISTERED` in the
//!    same exchange and leaves the slot (and the entry) to the handle, which sees `FIRED` when
//!    it unlocks. `cancel` unlocks and sets `CANCELLED` in one exchange, so the timer thread
//!    never sees a cancelled entry locked.
//! 5. `queue_next` belongs to whoever pushes the entry to the stack until the push publishes it,
//!    then to the timer thread, which reads it before it changes the state word again (so a
//!    handle that later pushes the entry again, as a cancellation, cannot overwrite it too
//!    early). `links` belong to the timer thread alone.
//! 6. The deadline may be moved *later* by the handle while the entry is registered (one
//!    compare-exchange, no message): the timer thread rereads it when the slot it sits in comes
//!    due and relinks it. Moving it earlier needs the timer thread, so the handle lets the old
//!    entry go and registers a new one.
//!
//! # Why the waker is called at most once, and never after the entry is freed
//!
//! The waker is taken out of the slot exactly once, by the thread that won the `FIRED` (or
//! `SHUTDOWN`) exchange with `LOCKED` clear, and is called after the entry has been let go. The
//! entry's memory is not reachable from the waker, so freeing it first is fine. A wake taken out
//! just before the `Sleep` was dropped may still land after the drop returned: waiting for it
//! would make `drop` wait on user code (a waker) running on the timer thread.

use std::ptr;
use std::task::{Poll, Waker};

use crate::loom::{AtomicU64, Ordering, UnsafeCell};
use crate::time::driver::TimeShared;

/// The deadline tick (milliseconds since the timer's start).
const WHEN_MASK: u64 = (1 << 48) - 1;
/// The timer thread holds a reference (rule 1).
const REGISTERED: u64 = 1 << 48;
/// Linked into the wheel (rule 3).
const IN_WHEEL: u64 = 1 << 49;
/// The deadline was reached; the waker was (or is being) taken.
const FIRED: u64 = 1 << 50;
/// The handle let go (rule 2).
const CANCELLED: u64 = 1 << 51;
/// The handle is writing the waker slot (rule 4).
const LOCKED: u64 = 1 << 52;
/// Released by the timer thread at runtime shutdown; it will never fire.
const SHUTDOWN: u64 = 1 << 53;

/// The largest tick a timer can have; later deadlines never fire.
pub(crate) const MAX_TICK: u64 = WHEN_MASK;
/// The tick of a deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// A value of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Snapshot(u64);

impl Snapshot {
    fn when(self) -> u64 {
        self.0 & WHEN_MASK
    }
    fn with_when(self, when: u64) -> Snapshot {
        debug_assert!(when <= MAX_TICK);
        Snapshot((self.0 & !WHEN_MASK) | when)
    }
    fn has(self, flag: u64) -> bool {
        self.0 & flag != 0
    }
    /// Fired or released at shutdown: the handle may no longer take the slot.
    fn is_done(self) -> bool {
        self.has(FIRED | SHUTDOWN)
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("when", &self.when())
            .field("registered", &self.has(REGISTERED))
            .field("in_wheel", &self.has(IN_WHEEL))
            .field("fired", &self.has(FIRED))
            .field("cancelled", &self.has(CANCELLED))
            .field("locked", &self.has(LOCKED))
            .field("shutdown", &self.has(SHUTDOWN))
            .finish()
    }
}

/// Where the entry sits in the wheel (timer thread only).
#[derive(Debug)]
pub(crate) struct Links {
    /// `level * 64 + slot`, or [`Links::UNLINKED`].
    pub(crate) slot: u16,
    /// Its index in that slot's vector.
    pub(crate) index: u32,
}

impl Links {
    pub(crate) const UNLINKED: u16 = u16::MAX;
}

/// A timer shared between a handle and the timer thread.
pub(crate) struct Entry {
    state: AtomicU64,
    waker: UnsafeCell<Option<Waker>>,
    queue_next: UnsafeCell<*mut Entry>,
    links: UnsafeCell<Links>,
    /// Makes loom report an entry that is never freed.
    #[cfg(loom)]
    _leak_check: loom::alloc::Track<()>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("state", &Snapshot(self.state.load(Ordering::Relaxed)))
            .finish_non_exhaustive()
    }
}

/// What the timer thread does with an entry it holds.
#[must_use]
pub(crate) enum Transition {
    /// The handle let go. Taken from the stack: unlink it if linked, and free it. Found in the
    /// wheel: just unlink it (its canceller pushes it to the stack).
    Cancelled,
    /// Not due yet: link it into the wheel at this tick.
    Link(u64),
    /// Fired (or released at shutdown) and let go; wake this, if any.
    Done(Option<Waker>),
}

/// The timer thread has shut down: the timer can never fire.
#[derive(Debug)]
pub(crate) struct TimerShutdown;

impl Entry {
    /// A new registered entry: recycled from this thread's cache or `shared`'s pool if one is
    /// free, else allocated.
    fn alloc(when: u64, waker: Waker, shared: &TimeShared) -> *mut Entry {
        #[cfg(not(loom))]
        if let Some(entry) = crate::time::pool::take(shared.pool()) {
            // SAFETY: a free entry, ours alone (the pool's Acquire ordered its last use before).
            unsafe {
                let this = &*entry;
                this.state.store(when | REGISTERED, Ordering::Relaxed);
                this.waker.with_mut(|w| *w = Some(waker));
                this.queue_next.with_mut(|p| *p = ptr::null_mut());
                this.links.with_mut(|l| {
                    (*l).slot = Links::UNLINKED;
                    (*l).index = 0;
                });
            }
            return entry;
        }
        #[cfg(loom)]
        let _ = shared;
        Box::into_raw(Box::new(Entry {
            state: AtomicU64::new(when | REGISTERED),
            waker: UnsafeCell::new(Some(waker)),
            queue_next: UnsafeCell::new(ptr::null_mut()),
            links: UnsafeCell::new(Links {
                slot: Links::UNLINKED,
                index: 0,
            }),
            #[cfg(loom)]
            _leak_check: loom::alloc::Track::new(()),
        }))
    }

    /// Frees an entry (and drops its waker, if any).
    ///
    /// # Safety
    ///
    /// The caller is the entry's last owner (see the module rules) and nothing refers to it.
    pub(crate) unsafe fn free(entry: *mut Entry) {
        // SAFETY: forwarded from the caller.
        unsafe { Entry::dealloc(entry) };
    }

    /// Drops the waker of a dead entry and hands the entry to `keep` for reuse (which frees it
    /// when it has no room). Outside loom only: under loom every entry is freed.
    ///
    /// # Safety
    ///
    /// As [`Entry::free`].
    pub(crate) unsafe fn recycle(entry: *mut Entry, keep: impl FnOnce(*mut Entry)) {
        if cfg!(loom) {
            // SAFETY: forwarded from the caller.
            unsafe { Entry::free(entry) };
            return;
        }
        // SAFETY: the caller is the last owner. The waker may be user code: no lock is held.
        // Read first: a cancelled entry's waker was taken back already, and writing the line
        // would take it away from the thread that reuses the entry.
        let waker = unsafe {
            (*entry)
                .waker
                .with_mut(|w| if (*w).is_some() { (*w).take() } else { None })
        };
        drop(waker);
        keep(entry);
    }

    /// Releases the memory of an entry (dropping what it holds).
    ///
    /// # Safety
    ///
    /// As [`Entry::free`].
    pub(crate) unsafe fn dealloc(entry: *mut Entry) {
        // SAFETY: allocated by `alloc` with `Box`; the caller is its last owner.
        drop(unsafe { Box::from_raw(entry) });
    }

    /// # Safety
    ///
    /// As [`EntryStack::push`](crate::time::queue::EntryStack::push): the caller is the pusher.
    pub(crate) unsafe fn set_queue_next(&self, next: *mut Entry) {
        // SAFETY: rule 5: the pusher owns the field until the push publishes the entry.
        self.queue_next.with_mut(|p| unsafe { *p = next });
    }

    /// # Safety
    ///
    /// Timer thread only, on an entry it took from a stack and has not yet changed the state of.
    pub(crate) unsafe fn queue_next(entry: *mut Entry) -> *mut Entry {
        // SAFETY: rule 5; the caller took the entry from a stack with an Acquire swap.
        unsafe { (*entry).queue_next.with(|p| *p) }
    }

    /// Runs `f` on the wheel links.
    ///
    /// # Safety
    ///
    /// Timer thread only, on an entry it holds a reference to.
    pub(crate) unsafe fn with_links<R>(entry: *mut Entry, f: impl FnOnce(&mut Links) -> R) -> R {
        // SAFETY: rule 5: only the timer thread touches the links.
        unsafe { (*entry).links.with_mut(|l| f(&mut *l)) }
    }

    fn load(&self) -> Snapshot {
        Snapshot(self.state.load(Ordering::Acquire))
    }

    fn cas(&self, current: Snapshot, new: Snapshot) -> Result<(), Snapshot> {
        self.state
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(Snapshot)
    }

    /// Timer thread: an entry taken from the stack (a registration, or the cancellation of a
    /// linked entry). A registration due at or before `now` fires; a later one is linked.
    ///
    /// # Safety
    ///
    /// The timer thread holds the entry's reference and has read its `queue_next`.
    pub(crate) unsafe fn on_taken(entry: *mut Entry, now: u64) -> Transition {
        // SAFETY: the caller holds a reference, so the entry is live.
        let this = unsafe { &*entry };
        let mut s = this.load();
        loop {
            if s.has(CANCELLED) {
                return Transition::Cancelled;
            }
            debug_assert!(s.has(REGISTERED) && !s.has(IN_WHEEL), "{s:?}");
            if s.when() <= now {
                // SAFETY: forwarded from the caller.
                match unsafe { Entry::finish(entry, s, FIRED) } {
                    Ok(waker) => return Transition::Done(waker),
                    Err(actual) => s = actual,
                }
                continue;
            }
            match this.cas(s, Snapshot(s.0 | IN_WHEEL)) {
                Ok(()) => return Transition::Link(s.when()),
                Err(actual) => s = actual,
            }
        }
    }

    /// Timer thread: an entry taken out of a wheel slot that came due at tick `deadline`.
    ///
    /// # Safety
    ///
    /// The entry was linked in the wheel (so the timer thread holds its reference).
    pub(crate) unsafe fn on_expired(entry: *mut Entry, deadline: u64) -> Transition {
        // SAFETY: the caller holds a reference, so the entry is live.
        let this = unsafe { &*entry };
        let mut s = this.load();
        loop {
            debug_assert!(s.has(REGISTERED) && s.has(IN_WHEEL), "{s:?}");
            if s.has(CANCELLED) {
                return Transition::Cancelled;
            }
            if s.when() > deadline {
                return Transition::Link(s.when());
            }
            // SAFETY: forwarded from the caller.
            match unsafe { Entry::finish(entry, s, FIRED) } {
                Ok(waker) => return Transition::Done(waker),
                Err(actual) => s = actual,
            }
        }
    }

    /// Timer thread, at shutdown: lets go of an entry that will never fire.
    ///
    /// # Safety
    ///
    /// The timer thread holds the entry's reference.
    pub(crate) unsafe fn on_shutdown(entry: *mut Entry) -> Transition {
        // SAFETY: the caller holds a reference, so the entry is live.
        let this = unsafe { &*entry };
        let mut s = this.load();
        loop {
            if s.has(CANCELLED) {
                return Transition::Cancelled;
            }
            // SAFETY: forwarded from the caller.
            match unsafe { Entry::finish(entry, s, SHUTDOWN) } {
                Ok(waker) => return Transition::Done(waker),
                Err(actual) => s = actual,
            }
        }
    }

    /// Sets `flag` (`FIRED` or `SHUTDOWN`) and lets go of the entry (rule 4). Returns the waker
    /// to call, or the state that made the exchange fail.
    ///
    /// # Safety
    ///
    /// The timer thread holds the entry's reference; `s` is not cancelled.
    unsafe fn finish(entry: *mut Entry, s: Snapshot, flag: u64) -> Result<Option<Waker>, Snapshot> {
        // SAFETY: the caller holds a reference, so the entry is live.
        let this = unsafe { &*entry };
        if s.has(LOCKED) {
            // The handle holds the slot (in `poll` or `cancel`): it keeps the slot, and the
            // entry, and sees `flag` when it unlocks.
            this.cas(s, Snapshot((s.0 | flag) & !(REGISTERED | IN_WHEEL)))?;
            return Ok(None);
        }
        this.cas(s, Snapshot((s.0 | flag) & !IN_WHEEL))?;
        // SAFETY: rule 4: `flag` is set with `LOCKED` clear, so the slot is ours.
        let waker = this.waker.with_mut(|w| unsafe { (*w).take() });
        let prev = Snapshot(this.state.fetch_and(!REGISTERED, Ordering::AcqRel));
        if prev.has(CANCELLED) {
            // SAFETY: rule 2: cancelled and no longer registered: we are the last owner.
            unsafe { Entry::free(entry) };
        }
        Ok(waker)
    }
}

/// Keeps a free entry in this thread's cache (outside loom).
fn recycle_here(entry: *mut Entry) {
    #[cfg(not(loom))]
    // SAFETY: `Entry::recycle` passes free entries only.
    unsafe {
        crate::time::pool::give(entry)
    };
    #[cfg(loom)]
    // SAFETY: `Entry::recycle` passes free entries only.
    unsafe {
        Entry::dealloc(entry)
    };
}

/// The handle side of a timer: owns at most one entry (rules above), registered lazily.
#[derive(Debug)]
pub(crate) struct Registration {
    entry: *mut Entry,
}

// SAFETY: the entry is shared with the timer thread only through the protocol of its state word;
// every handle-side access needs `&mut self`, and `&Registration` exposes nothing.
unsafe impl Send for Registration {}
// SAFETY: as above: no method takes `&self`.
unsafe impl Sync for Registration {}

impl Registration {
    pub(crate) const fn new() -> Registration {
        Registration {
            entry: ptr::null_mut(),
        }
    }

    /// Polls for the deadline `tick` (which must not change between polls except through
    /// [`Registration::reset`]). Registers with the timer thread on the first pending poll.
    pub(crate) fn poll(
        &mut self,
        shared: &TimeShared,
        tick: u64,
        waker: &Waker,
    ) -> Poll<Result<(), TimerShutdown>> {
        if self.entry.is_null() {
            if tick == NEVER {
                return Poll::Pending;
            }
            if tick <= shared.now_tick() {
                return Poll::Ready(Ok(()));
            }
            let entry = Entry::alloc(tick, waker.clone(), shared);
            // SAFETY: a new entry in no stack.
            return match unsafe { shared.register(entry, tick) } {
                Ok(()) => {
                    self.entry = entry;
                    Poll::Pending
                }
                Err(_) => {
                    // SAFETY: never published: still ours alone.
                    unsafe { Entry::free(entry) };
                    Poll::Ready(Err(TimerShutdown))
                }
            };
        }
        // SAFETY: rules 1 and 2: we hold a reference until we cancel.
        let this = unsafe { &*self.entry };
        let mut s = this.load();
        loop {
            if s.has(FIRED) {
                return Poll::Ready(Ok(()));
            }
            if s.has(SHUTDOWN) {
                return Poll::Ready(Err(TimerShutdown));
            }
            if !s.has(REGISTERED) {
                return self.register_again(shared, tick, waker);
            }
            match this.cas(s, Snapshot(s.0 | LOCKED)) {
                Ok(()) => break,
                Err(actual) => s = actual,
            }
        }
        // SAFETY: rule 4: we hold LOCKED, and the timer thread leaves the slot alone.
        this.waker.with_mut(|w| unsafe {
            match &mut *w {
                Some(old) if old.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        });
        let prev = Snapshot(this.state.fetch_and(!LOCKED, Ordering::AcqRel));
        if prev.has(FIRED) {
            Poll::Ready(Ok(()))
        } else if prev.has(SHUTDOWN) {
            Poll::Ready(Err(TimerShutdown))
        } else {
            Poll::Pending
        }
    }

    /// Registers the idle entry we own again (after a reset), reusing its allocation.
    fn register_again(
        &mut self,
        shared: &TimeShared,
        tick: u64,
        waker: &Waker,
    ) -> Poll<Result<(), TimerShutdown>> {
        if tick == NEVER {
            return Poll::Pending;
        }
        if tick <= shared.now_tick() {
            return Poll::Ready(Ok(()));
        }
        // SAFETY: rule 1: not registered, so the entry and its slot are ours alone.
        let this = unsafe { &*self.entry };
        // SAFETY: as above.
        this.waker.with_mut(|w| unsafe {
            match &mut *w {
                Some(old) if old.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
        });
        this.state.store(tick | REGISTERED, Ordering::Relaxed);
        // SAFETY: ours alone and in no stack; the push publishes the writes above.
        match unsafe { shared.register(self.entry, tick) } {
            Ok(()) => Poll::Pending,
            Err(_) => {
                this.state.store(tick | SHUTDOWN, Ordering::Relaxed);
                Poll::Ready(Err(TimerShutdown))
            }
        }
    }

    /// Moves the deadline to `tick` (the next poll waits for it).
    pub(crate) fn reset(&mut self, shared: &TimeShared, tick: u64) {
        if self.entry.is_null() {
            return;
        }
        // SAFETY: rules 1 and 2: we hold a reference until we cancel.
        let this = unsafe { &*self.entry };
        let mut s = this.load();
        loop {
            if !s.has(REGISTERED) {
                // Ours alone: make it idle; the next poll registers it again.
                let when = if tick == NEVER { 0 } else { tick };
                this.state.store(when | (s.0 & SHUTDOWN), Ordering::Relaxed);
                return;
            }
            if s.is_done() || tick == NEVER || tick < s.when() {
                break;
            }
            // Later: rule 6, one exchange and the timer thread relinks it when it comes due.
            match this.cas(s, s.with_when(tick)) {
                Ok(()) => return,
                Err(actual) => s = actual,
            }
        }
        // Earlier, never, or being let go by the timer thread: drop this entry; the next poll
        // registers a fresh one.
        self.cancel(shared);
    }

    /// Lets go of the entry, if any: it is freed here, or by the timer thread (rule 2).
    ///
    /// While the timer may still fire, the waker is taken back first (under `LOCKED`) and
    /// dropped here: the timer thread then frees an entry without a waker, and never touches
    /// the task the waker refers to (whose reference count this thread just used).
    pub(crate) fn cancel(&mut self, shared: &TimeShared) {
        let entry = std::mem::replace(&mut self.entry, ptr::null_mut());
        if entry.is_null() {
            return;
        }
        // SAFETY: we held a reference until now.
        let this = unsafe { &*entry };
        let mut s = this.load();
        let mut waker = None;
        loop {
            if !s.has(REGISTERED) {
                drop(waker);
                // SAFETY: rule 1: ours alone.
                unsafe { Entry::recycle(entry, recycle_here) };
                return;
            }
            debug_assert!(!s.has(CANCELLED), "{s:?}");
            if !s.is_done() && !s.has(LOCKED) {
                // Rule 4: lock the slot and take the waker back.
                match this.cas(s, Snapshot(s.0 | LOCKED)) {
                    Ok(()) => {
                        // SAFETY: rule 4: we hold LOCKED.
                        waker = this.waker.with_mut(|w| unsafe { (*w).take() });
                        s = Snapshot(s.0 | LOCKED);
                    }
                    Err(actual) => s = actual,
                }
                continue;
            }
            // Unlock (if we locked) and let go in one exchange. If the thread fired while we
            // held the lock, it cleared REGISTERED and the entry is ours (first branch).
            match this.cas(s, Snapshot((s.0 & !LOCKED) | CANCELLED)) {
                Ok(()) => break,
                Err(actual) => s = actual,
            }
        }
        drop(waker);
        if s.has(IN_WHEEL) {
            // SAFETY: rule 3: the timer thread frees it only after taking this push from the
            // stack (or, once that is closed, leaves it to us), so it is live for the push.
            unsafe { shared.push_cancel(entry) };
        }
    }

    /// True when an entry is registered or owned (for `Debug`).
    pub(crate) fn is_registered(&self) -> bool {
        !self.entry.is_null()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        debug_assert!(
            self.entry.is_null(),
            "a Registration was dropped without `cancel`"
        );
    }
}
