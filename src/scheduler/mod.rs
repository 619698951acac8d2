//! The work-stealing scheduler.
//!
//! Each worker thread owns a FIFO deque and a one-task LIFO slot; all workers share one
//! injector queue (tasks from outside the runtime) and can steal from each other's deques.
//!
//! # Where a runnable task goes
//!
//! - Woken or spawned on a worker of the same runtime: into that worker's LIFO slot, pushing the
//!   previous occupant to the back of the deque. Message passing (A wakes B, B wakes A) then
//!   runs on one warm core. A worker runs at most [`MAX_LIFO_POLLS`] LIFO tasks in a row before
//!   it takes from the deque again, so two tasks ping-ponging cannot starve the rest.
//! - Woken while running (it yielded, or its budget ran out): to the back of the deque.
//! - From any other thread: into the injector.
//! - When a deque holds [`local_capacity()`](queue::local_capacity) tasks, the older half moves to
//!   the injector, where every worker can reach it.
//!
//! # Where a worker looks for work
//!
//! In order: every [`EVENT_INTERVAL`] ticks the injector first (so remote tasks are not starved
//! by a busy deque); the LIFO slot; its deque; a batch from the injector. Then it *searches*:
//! steals half of a random victim's deque, then the injector. Searching and parking follow the
//! rules in `idle.rs`.
//!
//! # Shutdown
//!
//! 1. The owned-task list is closed: spawns from now on fail or resolve to cancelled handles.
//! 2. (Grace) the owner waits until every task ended or the grace period ran out.
//! 3. The shutdown flag is set and every worker is unparked.
//! 4. Each worker, between two polls, sees the flag and: drops the future of every task still
//!    in the owned list (shards are drained, so each task is claimed by one worker; a task being
//!    polled elsewhere is dropped by its poller right after that poll); then drops the queue
//!    entries of its deque and LIFO slot and of the injector; then exits.
//! 5. The owner joins the workers, drops what the injector still holds, and shuts down the
//!    blocking pool.
//! 6. The owner stops the timer thread (`time/`), which lets go of every timer still pending.

mod idle;
mod park;
pub(crate) mod queue;
mod worker;

use std::future::Future;
use std::panic::Location;
use std::time::Duration;

use crate::blocking::BlockingPool;
use crate::io::reactor::Reactor;
use crate::loom::{Arc, AtomicBool, Condvar, Counter, DataArc, Mutex, Ordering};
use crate::runtime::{task_span_in, Hook};
use crate::scope::tree::Scope;
use crate::task::list::OwnedTasks;
use crate::task::raw::{Header, Notified, RawTask, Schedule};
use crate::task::{Id, JoinHandle, SpawnError};

pub(crate) use idle::Idle;
pub(crate) use park::{Parker, Unparker};
pub(crate) use queue::{Injector, Local, Steal, Stealer};
#[cfg(loom)]
pub(crate) use worker::WorkerCx;
pub(crate) use worker::{coarse_now, run_worker, with_current_worker};

/// A worker looks at the injector before its own queue every this many ticks.
pub(crate) const EVENT_INTERVAL: u32 = if cfg!(loom) { 4 } else { 61 };

/// LIFO-slot tasks a worker runs in a row before it turns to its deque.
pub(crate) const MAX_LIFO_POLLS: u32 = 3;

/// Settings of the worker pool.
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
    pub(crate) slow_poll_threshold: Option<Duration>,
    /// Per-task poll time for dumps (`Builder::track_poll_time`).
    pub(crate) track_poll_time: bool,
}

/// Per-worker statistics, written by the worker only.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) polls: Counter,
    pub(crate) steals: Counter,
    pub(crate) parks: Counter,
    pub(crate) spawned: Counter,
    pub(crate) lifo_hits: Counter,
    pub(crate) overflows: Counter,
}

/// What other threads may use of a worker.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    pub(crate) unparker: Unparker,
    /// Shared with the worker, which keeps its own pointer to bump them without indexing.
    pub(crate) stats: DataArc<WorkerStats>,
}

/// Wakes the owner waiting for every task to end during the shutdown grace.
struct Drain {
    waiting: AtomicBool,
    lock: Mutex<()>,
    cvar: Condvar,
}

/// The state every worker and every handle shares.
pub(crate) struct Shared {
    pub(crate) injector: Injector<Notified>,
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    shutdown: AtomicBool,
    pub(crate) config: Config,
    pub(crate) blocking: BlockingPool,
    pub(crate) io: Reactor,
    /// The root of the scope tree: plain tasks outside any nursery belong here, and shutdown
    /// cancels it.
    pub(crate) root: DataArc<Scope>,
    drain: Drain,
    pub(crate) remote_spawned: Counter,
    pub(crate) injected: Counter,
    pub(crate) slow_polls: Counter,
    /// Tasks whose future was dropped before it completed.
    pub(crate) cancelled: Counter,
    /// What sleeps share with the timer thread (`time/`).
    pub(crate) time: Arc<crate::time::TimeShared>,
}

impl Shared {
    /// Builds the shared state and the parts each worker thread takes with it.
    pub(crate) fn new(
        config: Config,
        blocking: BlockingPool,
        io: Reactor,
    ) -> (Arc<Shared>, Vec<(Local<Notified>, Parker)>) {
        if config.track_poll_time {
            // Task dumps convert poll ticks to time against a reference point taken here.
            crate::task::poll_time::start();
        }
        let mut locals = Vec::with_capacity(config.workers);
        let mut remotes = Vec::with_capacity(config.workers);
        for _ in 0..config.workers {
            let local = Local::new_fifo();
            let parker = Parker::new();
            remotes.push(Remote {
                stealer: local.stealer(),
                unparker: parker.unparker(),
                stats: DataArc::default(),
            });
            locals.push((local, parker));
        }
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            remotes: remotes.into_boxed_slice(),
            idle: Idle::new(config.workers),
            owned: OwnedTasks::new(config.workers),
            shutdown: AtomicBool::new(false),
            config,
            blocking,
            io,
            root: Scope::new(None, Some("root".into()), false).expect("a root scope has no parent"),
            drain: Drain {
                waiting: AtomicBool::new(false),
                lock: Mutex::new(()),
                cvar: Condvar::new(),
            },
            remote_spawned: Counter::new(0),
            injected: Counter::new(0),
            slow_polls: Counter::new(0),
            cancelled: Counter::new(0),
            time: Arc::new(crate::time::TimeShared::new()),
        });
        (shared, locals)
    }

    /// Spawns a task in the current scope. After shutdown the handle resolves to a cancelled
    /// error at once.
    pub(crate) fn spawn<F>(
        this: &Arc<Self>,
        future: F,
        name: Option<DataArc<str>>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match crate::runtime::context::with_nonroot_scope(|s| s.cloned()) {
            None => Self::spawn_in(this, future, name, None, location),
            Some(scope) => crate::scope::spawn_member(this, scope, future, name, location),
        }
    }

    /// Spawns a task that belongs to `scope` (`None`: the root scope).
    pub(crate) fn spawn_in<F>(
        this: &Arc<Self>,
        future: F,
        name: Option<DataArc<str>>,
        scope: Option<DataArc<Scope>>,
        location: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, task) = Self::bind_new(this, future, name, scope, location);
        if let Some(task) = task {
            Self::schedule_spawned(this, task);
        }
        join
    }

    /// As [`Shared::spawn`], but refuses with [`SpawnError::Shutdown`] after shutdown began.
    pub(crate) fn try_spawn<F>(
        this: &Arc<Self>,
        future: F,
        name: Option<DataArc<str>>,
        location: &'static Location<'static>,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if this.owned.is_closed() {
            return Err(SpawnError::Shutdown);
        }
        let scope = crate::runtime::context::with_nonroot_scope(|s| s.cloned());
        if let Some(scope) = scope {
            // Into the current scope, as a plain spawn would.
            return crate::scope::try_spawn_member(this, scope, future, name, location);
        }
        match Self::bind_new(this, future, name, None, location) {
            (join, Some(task)) => {
                Self::schedule_spawned(this, task);
                Ok(join)
            }
            (_join, None) => Err(SpawnError::Shutdown),
        }
    }

    /// `task::Builder::eager`: like [`try_spawn`](Self::try_spawn), but the first poll runs
    /// here, in the spawner, through the normal harness (state transitions, panic catching, coop
    /// budget, task context, all saved and restored around it). A task that finishes on that
    /// poll never touches a queue; one that returns `Pending` after being woken was requeued by
    /// the harness. Inside a non-root scope the task joins the scope first, exactly as a plain
    /// spawn there does (`scope::try_spawn_member_eager`). Falls back to a plain spawn on a
    /// thread that is not one of this runtime's workers or `block_on` threads.
    pub(crate) fn try_spawn_eager<F>(
        this: &Arc<Self>,
        future: F,
        name: Option<DataArc<str>>,
        location: &'static Location<'static>,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if !crate::runtime::context::is_polling_thread_of(this) {
            return Self::try_spawn(this, future, name, location);
        }
        if this.owned.is_closed() {
            return Err(SpawnError::Shutdown);
        }
        let scope = crate::runtime::context::with_nonroot_scope(|s| s.cloned());
        if let Some(scope) = scope {
            return crate::scope::try_spawn_member_eager(this, scope, future, name, location);
        }
        match Self::bind_new(this, future, name, None, location) {
            (join, Some(task)) => {
                Self::run_spawned_eager(this, task);
                Ok(join)
            }
            (_join, None) => Err(SpawnError::Shutdown),
        }
    }

    /// The first poll of an eager task, bound to the owned list (and to its scope) by the
    /// caller, here on the spawner's thread, which must poll `this` runtime's tasks. The
    /// spawner's inline scope is left for that poll, so that the task sees its own scope (from
    /// its header) exactly as it will when a worker polls it.
    pub(crate) fn run_spawned_eager(this: &Arc<Self>, task: Notified) {
        debug_assert!(crate::runtime::context::is_polling_thread_of(this));
        let _scope = crate::runtime::context::leave_scope();
        task.run();
    }

    /// Allocates a task and adds it to the owned list. When the list is closed the task is
    /// cancelled at once (its future dropped here) and no `Notified` is returned.
    pub(crate) fn bind_new<F>(
        this: &Arc<Self>,
        future: F,
        name: Option<DataArc<str>>,
        scope: Option<DataArc<Scope>>,
        location: &'static Location<'static>,
    ) -> (JoinHandle<F::Output>, Option<Notified>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = Id::next();
        let span = task_span_in(
            "task",
            id,
            name.as_deref(),
            location,
            scope.as_ref().map(|s| &s.span),
        );
        let raw = RawTask::new(future, this.clone(), id, name, scope, span, coarse_now());
        // SAFETY: `RawTask::new` counted one reference for each of these two, and the third
        // for the owned list, which `bind` takes over (or `shutdown` consumes).
        let (join, task) = unsafe { (JoinHandle::new(raw), Notified::from_raw(raw)) };
        // Counted before the task is listed: a metrics snapshot, which reads `alive` from the
        // list before these counters, never shows more tasks alive than spawned.
        with_current_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(&*cx.shared, &**this) => cx.stats.spawned.add_local(1),
            _ => {
                this.remote_spawned.add(1);
            }
        });
        if this.owned.bind(raw).is_err() {
            raw.shutdown();
            drop(task);
            return (join, None);
        }
        (join, Some(task))
    }

    fn schedule_spawned(this: &Arc<Self>, task: Notified) {
        with_current_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(&*cx.shared, &**this) => cx.schedule_local(task, false),
            _ => this.inject(task),
        });
    }

    fn schedule_task(&self, task: Notified, is_yield: bool) {
        with_current_worker(|cx| match cx {
            Some(cx) if std::ptr::eq(&*cx.shared, self) => cx.schedule_local(task, is_yield),
            _ => self.inject(task),
        });
    }

    /// Queues a task from outside the workers and wakes one if nobody is searching.
    pub(crate) fn inject(&self, task: Notified) {
        self.injected.add(1);
        self.injector.push(task);
        // Shutdown swaps the flag and then drains the injector; this RMW on the same flag is
        // ordered before or after that swap. Before: the drain sees our push. After: we see the
        // flag and drain it ourselves, so no queue entry outlives the runtime.
        if self.shutdown.fetch_or(false, Ordering::SeqCst) {
            self.drain_injector();
            return;
        }
        self.notify_parked();
    }

    /// Wakes a parked worker unless one is searching already (see `idle.rs`).
    pub(crate) fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.remotes[index].unparker.unpark(&self.io);
        }
    }

    /// True when some queue another worker could take from is not empty.
    pub(crate) fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Step 1 of shutdown: no task can be spawned from now on.
    pub(crate) fn close(&self) {
        self.owned.close();
    }

    /// Step 2: waits until every task has ended, or until `grace` runs out. Returns the number of
    /// tasks still alive.
    pub(crate) fn wait_for_tasks(&self, grace: Duration) -> usize {
        let mut alive = self.owned.len();
        if alive == 0 || grace.is_zero() {
            return alive;
        }
        let deadline = std::time::Instant::now().checked_add(grace);
        self.drain.waiting.store(true, Ordering::SeqCst);
        let mut guard = self.drain.lock.lock();
        loop {
            alive = self.owned.len();
            let now = std::time::Instant::now();
            let remaining = match deadline {
                Some(d) if d <= now => break,
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            if alive == 0 {
                break;
            }
            // The waker in `release` takes the lock before notifying, so no wake-up is lost;
            // the timeout only bounds the wait by the grace period.
            guard = self.drain.cvar.wait_timeout(guard, remaining).0;
        }
        drop(guard);
        self.drain.waiting.store(false, Ordering::SeqCst);
        alive
    }

    /// Step 3: tell every worker to stop.
    pub(crate) fn signal_shutdown(&self) {
        self.shutdown.swap(true, Ordering::SeqCst);
        for (index, remote) in self.remotes.iter().enumerate() {
            let _ = self.idle.unpark_worker_by_id(index);
            remote.unparker.unpark(&self.io);
        }
    }

    /// Step 5 (and part of 4): drop the queue entries left in the injector.
    pub(crate) fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    /// Step 4: drop the future of every task left in the owned list, starting at `first_shard`
    /// so that workers spread over the shards.
    pub(crate) fn shutdown_owned(&self, first_shard: usize) {
        let n = self.owned.shard_count();
        for i in 0..n {
            for task in self.owned.drain_shard((first_shard + i) % n) {
                task.shutdown();
            }
        }
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Notified) {
        self.schedule_task(task, false);
    }

    fn yield_now(&self, task: Notified) {
        self.schedule_task(task, true);
    }

    fn release(&self, task: &Header) -> bool {
        let removed = self.owned.remove(task);
        if removed && self.drain.waiting.load(Ordering::SeqCst) {
            drop(self.drain.lock.lock());
            self.drain.cvar.notify_all();
        }
        removed
    }

    fn slow_poll_threshold(&self) -> Option<Duration> {
        self.config.slow_poll_threshold
    }

    fn on_slow_poll(&self) {
        self.slow_polls.add(1);
    }

    fn on_cancelled(&self) {
        self.cancelled.add(1);
    }

    fn tracks_poll_time(&self) -> bool {
        self.config.track_poll_time
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("workers", &self.config.workers)
            .field("injector_len", &self.injector.len())
            .field("idle", &self.idle)
            .field("owned", &self.owned)
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}
