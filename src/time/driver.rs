//! The timer thread: what handles share with it ([`TimeShared`]), its loop ([`Driver`]), how it
//! sleeps and is woken, and how it shuts down.
//!
//! # One turn of the loop
//!
//! 1. Take the stack (`queue.rs`): free cancelled entries (unlinking those that were linked),
//!    fire registrations due by the wheel's current tick, link the rest into the wheel, even
//!    those that came due since: fired with the wheel's own in step 2, overdue timers fire in
//!    deadline order after a stall (the stack holds them newest first).
//! 2. Fire every wheel slot due at `now` (relinking entries whose deadline moved later, and
//!    spreading higher-level slots over the lower levels).
//! 3. Call the collected wakers (in batches, outside any lock: there is none).
//!
//! # Sleeping and waking
//!
//! After a turn the thread computes the tick it must wake at (the wheel's next deadline; at
//! most [`ACTIVE_MAX_SLEEP`] ahead when the turn took any message), stores it in
//! `sleeping_until` and marks the stack `SLEEPING` with a compare-exchange that succeeds only on
//! an empty stack. A handle that pushes a message and finds the mark wakes the thread (clearing
//! the mark, so that one wake-up serves everyone) when:
//! - it registers a deadline earlier than `sleeping_until`; or
//! - its message is the first since the thread fell into a long sleep (one longer than
//!   [`ACTIVE_MAX_SLEEP`]: nothing was happening); or
//! - [`BACKLOG`] messages are waiting (checked every `BACKLOG`-th push).
//!
//! So the thread is never woken for a deadline it would meet anyway, and never misses an
//! earlier one: a message pushed before the mark makes the thread's compare-exchange fail, one
//! pushed after it sees the mark. While timers come and go the thread sleeps at most
//! [`ACTIVE_MAX_SLEEP`], so registrations far in the future (I/O timeouts, mostly cancelled
//! early) wait in the stack without a wake-up each, and every message is taken within about
//! that long: a cancelled timer's memory is freed within a second or after `BACKLOG` others,
//! whichever comes first. An idle runtime's timer thread sleeps until its next deadline, or for
//! ever.
//!
//! # Shutdown
//!
//! After the runtime's workers are joined:
//! 1. Refuse registrations (a registering handle keeps its entry and learns that the timer is
//!    gone) and take the stack: free the cancelled entries, let go of the registered ones
//!    (waking their wakers, so that anyone still polling a sleep outside the runtime learns
//!    that it never fires rather than hangs).
//! 2. Let go of every entry in the wheel the same way, except the cancelled ones: their
//!    cancellers push them to the stack, which still takes cancellations.
//! 3. Close the stack and free the cancellations it took. An entry whose canceller finds the
//!    stack closed is freed by that canceller: the thread no longer looks at it (and the
//!    Acquire of the failed push orders the thread's last look before the free).

use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::loom::{thread, AtomicBool, AtomicU64, Condvar, Counter, Mutex, Ordering};
use crate::time::entry::{Entry, Transition, MAX_TICK, NEVER};
use crate::time::queue::{Closed, EntryStack, Message, Pushed};
use crate::time::wheel::Wheel;

/// Longest sleep, in ticks, after a turn that took messages.
pub(crate) const ACTIVE_MAX_SLEEP: u64 = 1_000;

/// Messages the thread may fall behind before a handle wakes it.
pub(crate) const BACKLOG: u64 = 4_096;

/// Past this backlog, pushers yield their CPU to the timer thread (backpressure).
pub(crate) const BACKLOG_MAX: u64 = 16 * BACKLOG;

/// Wakers called at once, at most.
const WAKE_BATCH: usize = 256;

/// What every timer handle shares with the timer thread.
pub(crate) struct TimeShared {
    /// Tick 0.
    start: Instant,
    /// Registrations and cancellations on their way to the thread.
    stack: EntryStack,
    /// The tick the timer thread sleeps until while the stack is marked.
    sleeping_until: AtomicU64,
    /// The last tick the timer thread has processed.
    now: AtomicU64,
    stop: AtomicBool,
    parker: TimerParker,
    /// Written by handles: registrations and cancellations pushed, striped so that workers
    /// registering at once do not fight over one cache line.
    pushes: [CachePadded<PushCounts>; STRIPES],
    /// Written by the timer thread.
    progress: CachePadded<Progress>,
    /// Entries the timer thread retired, for registrations to reuse.
    #[cfg(not(loom))]
    pool: crate::time::pool::EntryPool,
}

/// Stripes of the handles' counters.
const STRIPES: usize = 8;

/// One stripe of the handles' counters.
#[derive(Debug, Default)]
struct PushCounts {
    registered: Counter,
    cancels: Counter,
}

std::thread_local! {
    /// This thread's stripe, picked round-robin on first use.
    static STRIPE: usize = {
        static NEXT: Counter = Counter::new(0);
        NEXT.add(1) as usize % STRIPES
    };
}

/// The timer thread's counters.
#[derive(Debug, Default)]
struct Progress {
    /// Messages taken from the stack.
    taken: Counter,
    /// Registrations finished (fired, cancelled and freed, or released at shutdown).
    retired: Counter,
}

/// Blocks the timer thread until a deadline or a wake-up.
struct TimerParker {
    notified: Mutex<bool>,
    cvar: Condvar,
}

impl TimerParker {
    fn park(&self, timeout: Option<Duration>) {
        let mut notified = self.notified.lock();
        if !*notified {
            notified = match timeout {
                None => self.cvar.wait(notified),
                Some(t) => self.cvar.wait_timeout(notified, t).0,
            };
        }
        *notified = false;
    }

    fn unpark(&self) {
        *self.notified.lock() = true;
        self.cvar.notify_one();
    }
}

impl TimeShared {
    pub(crate) fn new() -> TimeShared {
        TimeShared {
            start: Instant::now(),
            stack: EntryStack::new(),
            sleeping_until: AtomicU64::new(NEVER),
            now: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            parker: TimerParker {
                notified: Mutex::new(false),
                cvar: Condvar::new(),
            },
            pushes: std::array::from_fn(|_| CachePadded::new(PushCounts::default())),
            progress: CachePadded::new(Progress::default()),
            #[cfg(not(loom))]
            pool: crate::time::pool::EntryPool::new(),
        }
    }

    #[cfg(not(loom))]
    pub(crate) fn pool(&self) -> &crate::time::pool::EntryPool {
        &self.pool
    }

    /// The tick of `deadline`, rounded up (a timer never fires early); [`NEVER`] beyond
    /// [`MAX_TICK`].
    pub(crate) fn deadline_to_tick(&self, deadline: Instant) -> u64 {
        match deadline.checked_duration_since(self.start) {
            Some(d) => duration_to_tick(d),
            None => 0,
        }
    }

    /// The tick of `now + after` (as [`TimeShared::deadline_to_tick`], without making the
    /// `Instant`).
    pub(crate) fn after_to_tick(&self, now: Instant, after: Duration) -> u64 {
        match now.saturating_duration_since(self.start).checked_add(after) {
            Some(d) => duration_to_tick(d),
            None => NEVER,
        }
    }

    /// The tick of `now`, rounded down (the timer thread's clock).
    pub(crate) fn now_to_tick(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.start);
        d.as_secs()
            .saturating_mul(1_000)
            .saturating_add(u64::from(d.subsec_millis()))
    }

    fn tick_to_instant(&self, tick: u64) -> Option<Instant> {
        self.start.checked_add(Duration::from_millis(tick))
    }

    /// The last tick the timer thread processed: every deadline at or before it has passed.
    pub(crate) fn now_tick(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// Timers registered and not yet fired, or cancelled and freed.
    pub(crate) fn live_timers(&self) -> usize {
        let registered: u64 = self.pushes.iter().map(|p| p.registered.get()).sum();
        let retired = self.progress.retired.get();
        registered.saturating_sub(retired) as usize
    }

    /// Hands a registered entry to the timer thread, waking it when needed (module docs).
    ///
    /// # Safety
    ///
    /// As [`EntryStack::push`]; the entry is `REGISTERED` with deadline `tick`.
    pub(crate) unsafe fn register(&self, entry: *mut Entry, tick: u64) -> Result<(), Closed> {
        // SAFETY: forwarded from the caller.
        let pushed = unsafe { self.stack.push(entry, Message::Register) }?;
        let n = self.stripe().registered.add(1) + 1;
        self.after_push(pushed, tick, n);
        Ok(())
    }

    /// Hands a cancelled entry that is linked in the wheel to the timer thread to unlink and
    /// free. If the thread has shut down, frees it here.
    ///
    /// # Safety
    ///
    /// The caller set `CANCELLED` on the entry while it was `IN_WHEEL` (entry rule 3).
    pub(crate) unsafe fn push_cancel(&self, entry: *mut Entry) {
        // SAFETY: entry rule 5: nobody reads or frees the entry until it is pushed.
        match unsafe { self.stack.push(entry, Message::Cancel) } {
            Ok(pushed) => {
                let n = self.stripe().cancels.add(1) + 1;
                self.after_push(pushed, NEVER, n);
            }
            Err(Closed) => {
                self.progress.retired.add(1);
                // SAFETY: the shut-down thread no longer looks at cancelled entries: ours.
                unsafe { Entry::free(entry) };
            }
        }
    }

    fn stripe(&self) -> &PushCounts {
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0);
        &self.pushes[stripe]
    }

    /// Decides whether a message (the `n`-th of its kind, for a deadline at `tick`) wakes the
    /// timer thread; see the module docs.
    fn after_push(&self, pushed: Pushed, tick: u64, n: u64) {
        if pushed.sleeping {
            // Relaxed: the push's Acquire read the mark, which the thread set (Release) after
            // storing these.
            let until = self.sleeping_until.load(Ordering::Relaxed);
            let long_sleep = until.saturating_sub(self.now_tick()) > ACTIVE_MAX_SLEEP;
            if tick < until || (pushed.was_empty && long_sleep) {
                self.wake();
                return;
            }
        }
        if n % (BACKLOG / STRIPES as u64) == 0 {
            if self.backlog() >= BACKLOG {
                self.wake();
            }
            // Backpressure: on a loaded machine the timer thread may go unscheduled while
            // others register and cancel without end; past `BACKLOG_MAX` the pushers give it
            // their CPU, so the backlog (and the memory it holds) stays bounded.
            let mut rounds = 0;
            while self.backlog() >= BACKLOG_MAX
                && !self.stop.load(Ordering::Acquire)
                && rounds < 10_000
            {
                self.wake();
                crate::loom::thread::yield_now();
                rounds += 1;
            }
        }
    }

    /// Messages pushed and not yet taken by the timer thread.
    fn backlog(&self) -> u64 {
        let pushed: u64 = self
            .pushes
            .iter()
            .map(|p| p.registered.get() + p.cancels.get())
            .sum();
        pushed.saturating_sub(self.progress.taken.get())
    }

    /// Wakes the timer thread if it is marked asleep (once per sleep).
    fn wake(&self) {
        if self.stack.clear_sleeping() {
            self.parker.unpark();
        }
    }

    /// Asks the timer thread to shut down (it finishes its turn first).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.stack.clear_sleeping();
        self.parker.unpark();
    }
}

/// Milliseconds in `d`, rounded up; [`NEVER`] beyond [`MAX_TICK`].
fn duration_to_tick(d: Duration) -> u64 {
    let ms = d
        .as_secs()
        .saturating_mul(1_000)
        .saturating_add(u64::from(d.subsec_nanos()).div_ceil(1_000_000));
    if ms > MAX_TICK {
        NEVER
    } else {
        ms
    }
}

impl Drop for TimeShared {
    fn drop(&mut self) {
        // Only when no timer thread ever ran (it closes the stack): whatever is left was let go
        // by its handle (a live handle would keep us alive), so it is ours to free.
        let mut entry = self.stack.take_remaining();
        while !entry.is_null() {
            // SAFETY: taken from the stack; cancelled, and nobody else refers to it.
            unsafe {
                let next = Entry::queue_next(entry);
                Entry::free(entry);
                entry = next;
            }
        }
    }
}

impl std::fmt::Debug for TimeShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeShared")
            .field("now", &self.now_tick())
            .field("live_timers", &self.live_timers())
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

/// The timer thread's own state: the wheel, and the wakers of one turn.
pub(crate) struct Driver {
    shared: crate::loom::Arc<TimeShared>,
    wheel: Wheel,
    wakers: WakeList,
    /// Entries added to the pool since it was last found empty.
    pooled: usize,
    shut_down: bool,
}

/// Wakers collected during a turn, called in batches.
struct WakeList(Vec<Waker>);

impl WakeList {
    fn push(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.0.push(waker);
            if self.0.len() >= WAKE_BATCH {
                self.wake_all();
            }
        }
    }

    /// Calls the collected wakers. The entries they came from are already let go, and no lock
    /// is held: a waker is user code, and one that panics must not stop the timer thread.
    fn wake_all(&mut self) {
        for waker in self.0.drain(..) {
            crate::task::wake_contained(waker, "timer");
        }
    }
}

impl Driver {
    pub(crate) fn new(shared: crate::loom::Arc<TimeShared>) -> Driver {
        Driver {
            shared,
            wheel: Wheel::new(),
            wakers: WakeList(Vec::with_capacity(WAKE_BATCH)),
            pooled: 0,
            shut_down: false,
        }
    }

    /// One turn at tick `now` (see the module docs). True when the turn took messages.
    pub(crate) fn turn(&mut self, now: u64) -> bool {
        let Driver {
            shared,
            wheel,
            wakers,
            pooled,
            ..
        } = self;
        let now = now.max(wheel.elapsed());
        let mut retired = 0;

        // 1. The stack. Registrations due by the wheel's tick are earlier than anything linked
        // and fire now; the others are linked, due or not, so that step 2 fires them in order.
        let elapsed = wheel.elapsed();
        let mut taken = 0;
        let mut dead = DeadChain::default();
        let mut entry = shared.stack.take_all();
        while !entry.is_null() {
            // SAFETY: taken from the stack, so the thread holds it; `queue_next` is read before
            // the state changes (entry rule 5).
            let next = unsafe { Entry::queue_next(entry) };
            taken += 1;
            // SAFETY: as above.
            match unsafe { Entry::on_taken(entry, elapsed) } {
                Transition::Cancelled => {
                    retired += 1;
                    // SAFETY: a cancelled registration, or a cancellation of a linked entry:
                    // the handle left it to us; unlink it (unless a due slot did) and free it.
                    unsafe {
                        wheel.remove(entry);
                        Entry::recycle(entry, |e| dead.push(e));
                    }
                }
                // SAFETY: not linked; `when > elapsed` (see `Wheel::insert`).
                Transition::Link(when) => unsafe { wheel.insert(entry, when) },
                Transition::Done(waker) => {
                    retired += 1;
                    wakers.push(waker);
                }
            }
            dead.step();
            entry = next;
        }
        dead.recycle(shared, pooled);

        // 2. The wheel.
        while let Some((due, deadline)) = wheel.take_expired(now) {
            for &entry in &due {
                // SAFETY: it was linked in the wheel, so the thread holds it.
                match unsafe { Entry::on_expired(entry, deadline) } {
                    // Its canceller pushes it to the stack.
                    Transition::Cancelled => {}
                    // SAFETY: unlinked by `take_expired`; `when > deadline`, the wheel's tick.
                    Transition::Link(when) => unsafe { wheel.insert(entry, when) },
                    Transition::Done(waker) => {
                        retired += 1;
                        wakers.push(waker);
                    }
                }
            }
            wheel.give_back(due);
        }
        wheel.advance(now);
        shared.now.store(now, Ordering::Relaxed);

        shared.progress.taken.add_local(taken);
        shared.progress.retired.add_local(retired);
        wakers.wake_all();
        taken > 0
    }

    /// The tick of the next wheel slot to come due, if any.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }

    /// Timers linked in the wheel.
    #[cfg(loom)]
    pub(crate) fn wheel_len(&self) -> usize {
        self.wheel.len()
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn wheel_len_for_tests(&self) -> usize {
        self.wheel.len()
    }

    /// Blocks until woken (loom has no clock: the models decide when time passes).
    #[cfg(loom)]
    pub(crate) fn sleep_until_woken(&self) {
        self.shared.parker.park(None);
    }

    /// Publishes that the thread sleeps until tick `until` (or for ever: [`NEVER`]) and marks it
    /// asleep. False when a message arrived meanwhile: run a turn instead of sleeping.
    pub(crate) fn prepare_sleep(&self, until: u64) -> bool {
        self.shared.sleeping_until.store(until, Ordering::Relaxed);
        self.shared.stack.try_sleep()
    }

    /// Blocks until tick `until` (real time) or a wake-up; `NEVER` waits for a wake-up only.
    pub(crate) fn sleep(&self, until: u64) {
        let timeout = if until == NEVER {
            None
        } else {
            self.shared
                .tick_to_instant(until)
                .map(|at| at.saturating_duration_since(Instant::now()))
        };
        self.shared.parker.park(timeout);
    }

    /// Shuts the timer down (module docs, "Shutdown"). Idempotent.
    pub(crate) fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        let Driver {
            shared,
            wheel,
            wakers,
            ..
        } = self;
        let mut retired = 0;

        // 1.
        let mut entry = shared.stack.refuse_registrations();
        while !entry.is_null() {
            // SAFETY: taken from the stack, so held; `queue_next` read first.
            unsafe {
                let next = Entry::queue_next(entry);
                match Entry::on_shutdown(entry) {
                    Transition::Cancelled => {
                        wheel.remove(entry);
                        Entry::free(entry);
                    }
                    Transition::Done(waker) => wakers.push(waker),
                    Transition::Link(_) => unreachable!("on_shutdown never links"),
                }
                entry = next;
            }
            retired += 1;
        }

        // 2.
        let mut linked = Vec::with_capacity(wheel.len());
        wheel.drain(|entry| linked.push(entry));
        for entry in linked {
            // SAFETY: it was linked, so the thread holds it. A cancelled one is left alone: its
            // canceller pushes it to the stack (taken below) or, once that is closed, frees it.
            match unsafe { Entry::on_shutdown(entry) } {
                Transition::Cancelled => {}
                Transition::Done(waker) => {
                    retired += 1;
                    wakers.push(waker);
                }
                Transition::Link(_) => unreachable!("on_shutdown never links"),
            }
        }

        // 3.
        let mut entry = shared.stack.close();
        while !entry.is_null() {
            // SAFETY: a cancellation pushed before the close; nobody else refers to it, and the
            // wheel no longer links it.
            unsafe {
                let next = Entry::queue_next(entry);
                Entry::free(entry);
                entry = next;
            }
            retired += 1;
        }
        // Not `add_local`: a canceller that finds the stack closed counts its entry too.
        shared.progress.retired.add(retired);
        wakers.wake_all();
    }
}

/// The entries a turn retired from the stack, chained through `queue_next` for the pool.
///
/// Entries that were next to each other in the stack are already chained, so a run of
/// cancelled registrations is passed on without writing to any of them.
#[derive(Default)]
struct DeadChain {
    first: Option<*mut Entry>,
    last: *mut Entry,
    len: usize,
    /// The entry just looked at was pushed here (so `last.queue_next` is the next one).
    adjacent: bool,
    pushed: bool,
}

impl DeadChain {
    /// Adds a free entry (the one being looked at in the stack walk).
    fn push(&mut self, entry: *mut Entry) {
        match self.first {
            None => self.first = Some(entry),
            Some(_) if self.adjacent => {}
            // SAFETY: `last` is a free entry of the chain, ours.
            Some(_) => unsafe { (*self.last).set_queue_next(entry) },
        }
        self.last = entry;
        self.len += 1;
        self.pushed = true;
    }

    /// Moves on to the next entry of the stack walk.
    fn step(&mut self) {
        self.adjacent = std::mem::take(&mut self.pushed);
    }

    /// Hands the chain to the pool (which frees what does not fit).
    fn recycle(self, shared: &TimeShared, pooled: &mut usize) {
        let Some(first) = self.first else { return };
        #[cfg(not(loom))]
        {
            // SAFETY: a chain of free entries.
            *pooled = unsafe { shared.pool.put_chain(first, self.last, self.len, *pooled) };
        }
        #[cfg(loom)]
        {
            let _ = (shared, pooled, first);
            unreachable!("no recycling under loom");
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("wheel", &self.wheel)
            .field("shut_down", &self.shut_down)
            .finish()
    }
}

/// The body of the timer thread.
fn run(mut driver: Driver) {
    let shared = driver.shared.clone();
    loop {
        let now = shared.now_to_tick(Instant::now());
        let active = driver.turn(now);
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let mut until = driver.next_deadline().unwrap_or(NEVER);
        if active {
            until = until.min(now.saturating_add(ACTIVE_MAX_SLEEP));
        }
        if driver.prepare_sleep(until) {
            driver.sleep(until);
        }
    }
    driver.shutdown();
}

/// What the timer thread needs from the runtime's settings.
pub(crate) struct ThreadConfig {
    pub(crate) name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<crate::runtime::Hook>,
    pub(crate) on_stop: Option<crate::runtime::Hook>,
}

/// Starts the timer thread of `handle`'s runtime. Under loom there is none (`Ok(None)`): the
/// models drive a [`Driver`] by hand with a manual clock.
pub(crate) fn start_thread(
    handle: &crate::runtime::Handle,
    config: ThreadConfig,
) -> std::io::Result<Option<thread::JoinHandle<()>>> {
    if cfg!(loom) {
        return Ok(None);
    }
    let driver = Driver::new(handle.shared.time.clone());
    let handle = handle.clone();
    let mut builder = thread::Builder::new().name(config.name);
    if let Some(size) = config.stack_size {
        builder = builder.stack_size(size);
    }
    builder
        .spawn(move || {
            let _runtime = crate::runtime::context::enter_blocking_thread(handle);
            crate::runtime::run_hook(config.on_start.as_ref(), "on_thread_start");
            run(driver);
            crate::runtime::run_hook(config.on_stop.as_ref(), "on_thread_stop");
        })
        .map(Some)
}
