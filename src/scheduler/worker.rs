//! A worker thread: the find-work loop, local scheduling, searching, parking and shutdown.

use std::cell::Cell;

use crate::loom::{Arc, DataArc};
use crate::runtime::{context, Handle};
use crate::scheduler::queue::local_capacity;
use crate::scheduler::{Local, Parker, Shared, Steal, WorkerStats, EVENT_INTERVAL, MAX_LIFO_POLLS};
use crate::task::raw::Notified;

/// How long a searcher that found no work keeps looking before it parks.
const SPIN_BEFORE_PARK: std::time::Duration = std::time::Duration::from_micros(50);

/// Looks for work between two clock reads while spinning.
const SPIN_CHECKS_PER_CLOCK: u32 = 8;

/// A worker's own state. Only its thread touches it (through `&self`, hence the cells), either
/// from the run loop or from a task it polls that wakes or spawns another task.
pub(crate) struct WorkerCx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    /// This worker's counters (also reachable as `shared.remotes[index].stats`).
    pub(crate) stats: DataArc<WorkerStats>,
    local: Local<Notified>,
    lifo: Cell<Option<Notified>>,
    parker: Parker,
    is_searching: Cell<bool>,
    /// Set while this worker turns the reactor as its way of parking: tasks the events wake
    /// are queued here without waking other workers (we run them as soon as the turn ends).
    in_driver: Cell<bool>,
    /// Event buffer for polls of the reactor that do not block.
    io_events: std::cell::RefCell<crate::io::reactor::Driver>,
    tick: Cell<u32>,
    /// A clock reading refreshed every `EVENT_INTERVAL` ticks and after each park: spawn
    /// times for dumps, without a clock read per spawn.
    coarse_now: Cell<std::time::Instant>,
    lifo_streak: Cell<u32>,
    rng: Cell<u32>,
}

crate::loom::thread_local! {
    static CURRENT: Cell<*const WorkerCx> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with the worker of this thread, if it is one.
#[inline]
pub(crate) fn with_current_worker<R>(f: impl FnOnce(Option<&WorkerCx>) -> R) -> R {
    CURRENT.with(|c| {
        let ptr = c.get();
        // SAFETY: the pointer is set by `run_worker` to a `WorkerCx` on its stack and cleared
        // before that frame ends; only this thread reads it.
        f(unsafe { ptr.as_ref() })
    })
}

/// A recent clock reading: the worker's coarse clock on a worker thread, the real clock
/// elsewhere.
pub(crate) fn coarse_now() -> std::time::Instant {
    with_current_worker(|w| match w {
        Some(w) => w.coarse_now.get(),
        None => std::time::Instant::now(),
    })
}

/// Whether the last worker to park waits in the I/O poller: always, except under loom, where
/// the poller is a mock that only the models that ask for it use
/// (`loom_api::park_in_poller`).
#[inline(always)]
fn parks_in_poller() -> bool {
    #[cfg(not(loom))]
    return true;
    #[cfg(loom)]
    return crate::loom_api::parks_in_poller();
}

impl WorkerCx {
    /// Worker `index`'s state, before its loop starts.
    fn new(shared: Arc<Shared>, index: usize, local: Local<Notified>, parker: Parker) -> WorkerCx {
        WorkerCx {
            stats: shared.remotes[index].stats.clone(),
            shared,
            index,
            local,
            lifo: Cell::new(None),
            parker,
            is_searching: Cell::new(false),
            in_driver: Cell::new(false),
            io_events: std::cell::RefCell::new(crate::io::reactor::Driver::new()),
            tick: Cell::new(0),
            coarse_now: Cell::new(std::time::Instant::now()),
            lifo_streak: Cell::new(0),
            rng: Cell::new(0x9E37_79B9 ^ (index as u32 + 1).wrapping_mul(0x85EB_CA6B)),
        }
    }
}

/// The body of worker thread `index`.
pub(crate) fn run_worker(
    shared: Arc<Shared>,
    index: usize,
    local: Local<Notified>,
    parker: Parker,
) {
    let cx = WorkerCx::new(shared.clone(), index, local, parker);
    let _runtime = context::enter_worker(Handle { shared });
    CURRENT.with(|c| c.set(&cx));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(std::ptr::null()));
        }
    }
    let _reset = Reset;

    crate::runtime::run_hook(cx.shared.config.on_start.as_ref(), "on_thread_start");
    cx.run();
    cx.shutdown();
    crate::runtime::run_hook(cx.shared.config.on_stop.as_ref(), "on_thread_stop");
}

impl WorkerCx {
    fn run(&self) {
        while !self.shared.is_shutdown() {
            if let Some(task) = self.next_task() {
                self.run_task(task);
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            if self.poll_io_while_searching() {
                continue;
            }
            if self.spin_for_work() {
                continue;
            }
            self.park();
        }
    }

    fn run_task(&self, task: Notified) {
        if self.is_searching.replace(false) && self.shared.idle.transition_worker_from_searching() {
            // We were the last searcher and found work: there may be more, get help.
            self.shared.notify_parked();
        }
        self.stats.polls.add_local(1);
        task.run();
    }

    /// The next task from this worker's own queues or the injector; `None` means search.
    fn next_task(&self) -> Option<Notified> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % EVENT_INTERVAL == 0 {
            self.coarse_now.set(std::time::Instant::now());
            // Busy workers still look at I/O now and then, so sockets are not starved by CPU
            // work; the events' tasks join our queue behind what is there.
            self.poll_io();
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
        }
        if let Some(task) = self.lifo.take() {
            let streak = self.lifo_streak.get();
            if streak < MAX_LIFO_POLLS {
                self.lifo_streak.set(streak + 1);
                self.stats.lifo_hits.add_local(1);
                return Some(task);
            }
            // Enough LIFO tasks in a row: this one waits its turn at the back of the queue.
            self.push_local(task);
        }
        self.lifo_streak.set(0);
        self.local.pop().or_else(|| self.pop_injector())
    }

    fn pop_injector(&self) -> Option<Notified> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.local) {
                Steal::Success(task) => {
                    // The rest of the batch now sits in our deque. A worker that was woken for
                    // it may have looked while the batch was in flight (in neither queue) and
                    // parked again, and we may be about to block in `task`: make sure someone
                    // awake can steal it. (A no-op while another worker searches.)
                    if !self.local.is_empty() {
                        self.shared.notify_parked();
                    }
                    return Some(task);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Searches other workers' queues and the injector, within the searcher limit.
    fn steal_work(&self) -> Option<Notified> {
        if !self.is_searching.get() {
            if !self.shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.is_searching.set(true);
        }
        let remotes = &self.shared.remotes;
        let n = remotes.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            loop {
                match remotes[victim].stealer.steal_batch_and_pop(&self.local) {
                    Steal::Success(task) => {
                        self.stats.steals.add_local(1);
                        return Some(task);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        self.pop_injector()
    }

    fn next_random(&self) -> u32 {
        // xorshift32: only used to pick where stealing starts.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }

    fn has_local_work(&self) -> bool {
        // SAFETY-free peek: take and put back, since `Cell<Option<_>>` has no `is_some`.
        let lifo = self.lifo.take();
        let has = lifo.is_some();
        self.lifo.set(lifo);
        has || !self.local.is_empty()
    }

    /// A searcher that found nothing keeps looking for a little while before it parks: new
    /// work then lands on an awake, searching worker, and nobody pays a thread wake-up
    /// (~15-22 µs here, far more than the spin). Yielding the CPU between looks lets the
    /// threads that produce the work run on this core.
    fn spin_for_work(&self) -> bool {
        if cfg!(loom) || !self.is_searching.get() {
            return false;
        }
        let started = std::time::Instant::now();
        loop {
            for _ in 0..SPIN_CHECKS_PER_CLOCK {
                if self.shared.has_stealable_work() || self.shared.is_shutdown() {
                    return true;
                }
                crate::loom::thread::yield_now();
            }
            // While another worker is awake, leave I/O to it: it polls as soon as it runs out
            // of work, right after the writes that caused the events, on its own core.
            if self.shared.idle.num_awake() <= 1 && self.poll_io_while_searching() {
                return true;
            }
            if started.elapsed() >= SPIN_BEFORE_PARK {
                return false;
            }
        }
    }

    /// Turns the reactor without blocking, when it has sources. Returns how many tasks the
    /// events woke (queued on this worker). This runs even while another worker blocks in the
    /// poller: an active worker harvests the events its own writes caused before the blocked
    /// one is even scheduled, so the round trip stays on one core.
    fn poll_io(&self) -> usize {
        if cfg!(loom) || !self.shared.io.has_sources() {
            return 0;
        }
        match self.io_events.try_borrow_mut() {
            Ok(mut events) => self.shared.io.poll_now(&mut events),
            Err(_) => 0,
        }
    }

    /// A searcher polls for I/O. Tasks the events woke are ours to run (the first in the LIFO
    /// slot); we stop searching *without* waking another worker, unlike a searcher that found
    /// queued work (rule 3 in `idle.rs`): an event we harvested says nothing about more work
    /// elsewhere, and if it queued more than we run next, the queue push already notified.
    fn poll_io_while_searching(&self) -> bool {
        if self.poll_io() == 0 {
            return false;
        }
        if self.is_searching.replace(false) {
            let _last = self.shared.idle.transition_worker_from_searching();
            if !self.local.is_empty() {
                self.shared.notify_parked();
            }
        }
        true
    }

    fn park(&self) {
        if self.has_local_work() {
            return;
        }
        let shared = &*self.shared;
        let was_searching = self.is_searching.replace(false);
        let parked = shared
            .idle
            .transition_worker_to_parked(self.index, was_searching);
        if shared.has_stealable_work() {
            // Work arrived after we looked (rule 4 in `idle.rs`): wake someone, possibly
            // ourselves, for it.
            #[cfg(all(loom, loom_mutants))]
            let skip = crate::loom_api::mutants::active(
                crate::loom_api::mutants::Mutant::RecheckOnlyLastSearcher,
            ) && !parked.last_searcher_for_mutant;
            #[cfg(not(all(loom, loom_mutants)))]
            let skip = false;
            if !skip {
                shared.notify_parked();
            }
        }
        self.stats.parks.add_local(1);
        // Refresh the coarse clock when the park ends, however it ends.
        struct Refresh<'a>(&'a Cell<std::time::Instant>);
        impl Drop for Refresh<'_> {
            fn drop(&mut self) {
                self.0.set(std::time::Instant::now());
            }
        }
        let _refresh = Refresh(&self.coarse_now);
        // Only the last worker to fall asleep waits in the poller: while any worker is awake
        // it polls for I/O itself, and a sleeper in the poller would only be woken by the
        // kernel (15-22 us) for events the awake worker picks up anyway.
        let mut in_poller = parked.last_awake;
        loop {
            // At most one worker waits in the poller; the others on their condvars.
            let driver = (in_poller && parks_in_poller())
                .then(|| shared.io.try_lock_driver())
                .flatten();
            match driver {
                Some(mut driver) => {
                    self.in_driver.set(true);
                    self.parker.park_in_driver(&shared.io, &mut driver);
                    self.in_driver.set(false);
                }
                None => self.parker.park(),
            }
            if shared.is_shutdown() {
                return;
            }
            if self.has_local_work() {
                // I/O events woke tasks onto our queue: leave the parked list to run them.
                // If a notifier took us off it already, it counted us as a searcher.
                let was_listed = shared.idle.unpark_worker_by_id(self.index);
                self.is_searching.set(!was_listed);
                if !self.local.is_empty() {
                    // More than the LIFO task is queued: others may steal.
                    shared.notify_parked();
                }
                return;
            }
            if shared.idle.is_unparked(self.index) {
                // Whoever woke us counted us as searching (see `idle.rs`, rule 2).
                self.is_searching.set(true);
                return;
            }
            // A spurious wake-up: we are still listed as parked, and the poller is ours to
            // take if it is free.
            in_poller = true;
        }
    }

    /// Queues a task woken or spawned on this worker.
    pub(crate) fn schedule_local(&self, task: Notified, is_yield: bool) {
        if is_yield {
            self.push_local(task);
        } else {
            match self.lifo.replace(Some(task)) {
                None => return,
                Some(previous) => self.push_local(previous),
            }
        }
        // Something stealable was queued: wake a worker if none is searching. Not while we
        // turn the reactor as our park: we are about to run these ourselves and decide then.
        if !self.in_driver.get() {
            self.shared.notify_parked();
        }
    }

    fn push_local(&self, task: Notified) {
        if self.local.len() >= local_capacity() {
            self.overflow();
        }
        self.local.push(task);
    }

    /// Moves the older half of the deque to the injector.
    fn overflow(&self) {
        self.stats.overflows.add_local(1);
        for _ in 0..local_capacity() / 2 {
            match self.local.pop() {
                Some(task) => self.shared.injector.push(task),
                None => break,
            }
        }
    }

    /// Step 4 of shutdown (see `scheduler/mod.rs`).
    fn shutdown(&self) {
        self.shared.shutdown_owned(self.index);
        // Dropping futures may have woken tasks onto our queues: drop those entries.
        loop {
            let lifo = self.lifo.take();
            let had = lifo.is_some();
            drop(lifo);
            let mut drained = had;
            while let Some(task) = self.local.pop() {
                drop(task);
                drained = true;
            }
            if !drained {
                break;
            }
        }
        self.shared.drain_injector();
    }
}

/// Hooks for the loom models that run a worker's steps by hand, each on the thread that owns
/// the worker (`loom_api::ModelWorker`): the real queue, steal and run code, without the run
/// loop, parking or I/O.
#[cfg(loom)]
impl WorkerCx {
    /// A worker as `run_worker` builds it.
    pub(crate) fn for_model(
        shared: Arc<Shared>,
        index: usize,
        local: Local<Notified>,
        parker: Parker,
    ) -> WorkerCx {
        WorkerCx::new(shared, index, local, parker)
    }

    /// Runs `f` with `self` as this thread's current worker, as inside `run_worker`.
    pub(crate) fn model_enter<R>(&self, f: impl FnOnce(&WorkerCx) -> R) -> R {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(std::ptr::null()));
            }
        }
        CURRENT.with(|c| c.set(self));
        let _reset = Reset;
        f(self)
    }

    /// One turn of the run loop's first step: the next task from our own queues or the
    /// injector, run. False when there was none.
    pub(crate) fn model_run_next(&self) -> bool {
        self.model_enter(|cx| cx.next_task().map(|task| cx.run_task(task)).is_some())
    }

    /// The run loop's second step: search (steal from another worker or the injector) and run
    /// what was found. False when nothing was found.
    pub(crate) fn model_steal_and_run(&self) -> bool {
        self.model_enter(|cx| cx.steal_work().map(|task| cx.run_task(task)).is_some())
    }

    /// Queues a task spawned or woken on this worker (`to_deque`: as a yield, behind the deque).
    pub(crate) fn model_schedule(&self, task: Notified, to_deque: bool) {
        self.model_enter(|cx| cx.schedule_local(task, to_deque));
    }

    /// Times this worker's deque overflowed into the injector.
    pub(crate) fn model_overflows(&self) -> u64 {
        self.stats.overflows.get()
    }

    /// Step 4 of shutdown, for this worker.
    pub(crate) fn model_shutdown(&self) {
        self.model_enter(|cx| cx.shutdown());
    }
}

impl std::fmt::Debug for WorkerCx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("local_len", &self.local.len())
            .field("searching", &self.is_searching.get())
            .finish()
    }
}
