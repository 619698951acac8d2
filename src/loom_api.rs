//! Internals exposed to the loom models in `loom-tests/` (built with `--cfg loom` only).
//!
//! The models drive the real task cell, state word and harness through a mock scheduler (a
//! queue under a mutex that the model runs by hand), and the real parker. Whole-runtime models
//! use the public API.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;

use crate::io::reactor::Reactor;
use crate::loom::{Arc, DataArc, Mutex};
use crate::task::list::OwnedTasks;
use crate::task::raw::{Header, Notified, RawTask, Schedule};
use crate::task::{Id, JoinHandle};

/// A scheduler whose run queue the model drives by hand.
#[derive(Clone, Debug)]
pub struct MockScheduler {
    inner: Arc<MockInner>,
}

#[derive(Debug)]
struct MockInner {
    queue: Mutex<VecDeque<Notified>>,
    owned: OwnedTasks,
}

struct MockSchedule(Arc<MockInner>);

impl Schedule for MockSchedule {
    fn schedule(&self, task: Notified) {
        self.0.queue.lock().push_back(task);
    }

    fn release(&self, task: &Header) -> bool {
        self.0.owned.remove(task)
    }
}

impl Default for MockScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl MockScheduler {
    /// An empty scheduler.
    pub fn new() -> Self {
        MockScheduler {
            inner: Arc::new(MockInner {
                queue: Mutex::new(VecDeque::new()),
                owned: OwnedTasks::new(1),
            }),
        }
    }

    /// Spawns a task: it is queued once, as on a real runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = Id::next();
        let span = crate::runtime::task_span("task", id, None, Location::caller());
        let raw = RawTask::new(
            future,
            MockSchedule(self.inner.clone()),
            id,
            None,
            None,
            span,
            std::time::Instant::now(),
        );
        // SAFETY: `RawTask::new` counted a reference for each of the handle and the first queue
        // entry; the owned list takes the third (or `shutdown` consumes it).
        let (join, task) = unsafe { (JoinHandle::new(raw), Notified::from_raw(raw)) };
        if self.inner.owned.bind(raw).is_err() {
            raw.shutdown();
            drop(task);
        } else {
            self.inner.queue.lock().push_back(task);
        }
        join
    }

    /// Runs the task at the head of the queue. False when the queue was empty.
    pub fn run_one(&self) -> bool {
        let task = self.inner.queue.lock().pop_front();
        match task {
            Some(task) => {
                task.run();
                true
            }
            None => false,
        }
    }

    /// Runs tasks until the queue is empty; returns how many runs that took.
    pub fn run_all(&self) -> usize {
        let mut n = 0;
        while self.run_one() {
            n += 1;
        }
        n
    }

    /// Queue entries waiting.
    pub fn queued(&self) -> usize {
        self.inner.queue.lock().len()
    }

    /// Tasks alive (in the owned list).
    pub fn alive(&self) -> usize {
        self.inner.owned.len()
    }

    /// Runtime shutdown: close the list, drop every live task's future, drop the queue.
    pub fn shutdown(&self) {
        self.inner.owned.close();
        for shard in 0..self.inner.owned.shard_count() {
            for task in self.inner.owned.drain_shard(shard) {
                task.shutdown();
            }
        }
        loop {
            let task = self.inner.queue.lock().pop_front();
            match task {
                Some(task) => drop(task),
                None => break,
            }
        }
    }
}

loom::lazy_static! {
    /// The local-queue capacity of this execution (`set_local_capacity`).
    static ref LOCAL_CAPACITY: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(4);
}

/// Lowers (or raises) every worker's local-queue capacity for the rest of this execution of
/// the model (loom resets it for the next), so that an overflow into the injector is reachable
/// with fewer tasks. At least 2: an overflow moves half of it.
pub fn set_local_capacity(capacity: usize) {
    assert!(capacity >= 2, "a local queue holds at least 2 tasks");
    LOCAL_CAPACITY.store(capacity, std::sync::atomic::Ordering::Relaxed);
}

/// The capacity `scheduler::queue` uses under loom.
pub(crate) fn local_capacity() -> usize {
    LOCAL_CAPACITY.load(std::sync::atomic::Ordering::Relaxed)
}

loom::lazy_static! {
    /// Whether workers wait in the (mock) I/O poller in this execution (`park_in_poller`).
    static ref PARK_IN_POLLER: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
}

/// For the rest of this execution, the last worker to park waits in the runtime's I/O poller,
/// as outside loom, instead of on its condition variable. The poller under loom is a mock
/// (`io::sys`) whose wait blocks on a loom condition variable until the poller is notified or
/// the model reports an event ([`report_readable`]).
pub fn park_in_poller() {
    PARK_IN_POLLER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `scheduler::worker` parks the last worker in the poller.
pub(crate) fn parks_in_poller() -> bool {
    PARK_IN_POLLER.load(std::sync::atomic::Ordering::Relaxed)
}

/// The OS reports every source registered with `handle`'s reactor readable: the next turn of
/// the reactor (by the worker parked in the poller) delivers the events.
pub fn report_readable(handle: &crate::runtime::Handle) {
    handle.shared.io.post_readable_to_all();
}

/// What the mock poller of `handle`'s runtime saw in this execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollerStats {
    /// Distinct threads that waited in the poller (2: its ownership passed between workers).
    pub waiters: usize,
    /// Blocking waits that an unpark (a notification of the poller) ended.
    pub notify_wakeups: usize,
}

/// The mock poller's [`PollerStats`].
pub fn poller_stats(handle: &crate::runtime::Handle) -> PollerStats {
    let (waiters, notify_wakeups) = handle.shared.io.poller_stats();
    PollerStats {
        waiters,
        notify_wakeups,
    }
}

/// `n` workers of one scheduler, to be run by hand, each on the thread it is moved to: the
/// real queue, steal and run code of `scheduler::worker`, without the run loop, parking or I/O.
/// Workers that no thread runs still count, as idle-but-awake workers do (the searcher limit
/// is half the workers).
pub fn model_workers(n: usize) -> Vec<ModelWorker> {
    let blocking = crate::blocking::BlockingPool::new(crate::blocking::PoolConfig {
        max_threads: 1,
        keep_alive: std::time::Duration::from_secs(1),
        thread_name: "model-blocking".into(),
        stack_size: None,
        on_start: None,
        on_stop: None,
    });
    let config = crate::scheduler::Config {
        workers: n,
        thread_name: "model".into(),
        stack_size: None,
        on_start: None,
        on_stop: None,
        slow_poll_threshold: None,
        track_poll_time: false,
    };
    let reactor = Reactor::new().expect("create a reactor");
    let (shared, locals) = crate::scheduler::Shared::new(config, blocking, reactor);
    locals
        .into_iter()
        .enumerate()
        .map(|(index, (local, parker))| {
            ModelWorker(crate::scheduler::WorkerCx::for_model(
                shared.clone(),
                index,
                local,
                parker,
            ))
        })
        .collect()
}

/// One worker of [`model_workers`].
#[derive(Debug)]
pub struct ModelWorker(crate::scheduler::WorkerCx);

impl ModelWorker {
    /// Spawns a task from this worker, as a task running on it would: into the LIFO slot (the
    /// previous occupant moves to the deque), or with `to_deque` to the back of the deque (the
    /// path of a task that yields). A full deque overflows into the injector.
    #[track_caller]
    pub fn spawn<F>(&self, future: F, to_deque: bool) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (join, task) = crate::scheduler::Shared::bind_new(
            &self.0.shared,
            future,
            None,
            None,
            Location::caller(),
        );
        if let Some(task) = task {
            self.0.model_schedule(task, to_deque);
        }
        join
    }

    /// Takes the next task from this worker's LIFO slot, deque or the injector and runs it.
    /// False when there was none.
    pub fn run_next(&self) -> bool {
        self.0.model_run_next()
    }

    /// Searches: steals half of another worker's deque (or a batch of the injector), and runs
    /// the first task taken. False when nothing was found.
    pub fn steal_and_run(&self) -> bool {
        self.0.model_steal_and_run()
    }

    /// Times this worker's deque overflowed into the injector.
    pub fn overflows(&self) -> u64 {
        self.0.model_overflows()
    }

    /// Tasks alive in the scheduler (its owned list).
    pub fn alive(&self) -> usize {
        self.0.shared.owned.len()
    }

    /// Shutdown as a worker performs it (the owned list is closed first): drops every live
    /// task's future and this worker's and the injector's queue entries.
    pub fn shutdown(&self) {
        self.0.shared.close();
        self.0.model_shutdown();
    }
}

/// The worker parker, for park/unpark models (the condition-variable path).
#[derive(Debug)]
pub struct Parker(crate::scheduler::Parker, DataArc<Reactor>);

/// Wakes a [`Parker`].
#[derive(Debug, Clone)]
pub struct Unparker(crate::scheduler::Unparker, DataArc<Reactor>);

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    /// A parker with no pending notification.
    pub fn new() -> Self {
        let reactor = Reactor::new().expect("create a reactor");
        Parker(crate::scheduler::Parker::new(), DataArc::new(reactor))
    }

    /// Its unparker.
    pub fn unparker(&self) -> Unparker {
        Unparker(self.0.unparker(), self.1.clone())
    }

    /// Blocks until unparked.
    pub fn park(&self) {
        self.0.park();
    }

    /// Blocks in the reactor's poller until unparked, as the last worker to park does: takes
    /// the driver, then waits in the (mock) poller.
    pub fn park_in_poller(&self) {
        let mut driver = self
            .1
            .try_lock_driver()
            .expect("only this parker takes the driver");
        self.0.park_in_driver(&self.1, &mut driver);
    }

    /// A busy worker's non-blocking look at the same reactor, with a buffer of its own.
    pub fn busy_poller(&self) -> BusyPoller {
        BusyPoller(self.1.clone(), crate::io::reactor::Driver::new())
    }
}

/// Polls a [`Parker`]'s reactor without blocking, as a busy worker does between tasks.
pub struct BusyPoller(DataArc<Reactor>, crate::io::reactor::Driver);

impl std::fmt::Debug for BusyPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusyPoller").finish_non_exhaustive()
    }
}

impl BusyPoller {
    /// One non-blocking poll (`Reactor::poll_now`).
    pub fn poll_now(&mut self) {
        self.0.poll_now(&mut self.1);
    }
}

impl Unparker {
    /// Wakes the parker's owner.
    pub fn unpark(&self) {
        self.0.unpark(&self.1);
    }
}

/// One I/O source's readiness and wakers, for reactor models.
#[derive(Debug)]
pub struct IoSource(crate::io::scheduled_io::ScheduledIo);

/// What an operation saw when the source was ready.
#[derive(Debug, Clone, Copy)]
pub struct IoReady(crate::io::scheduled_io::ReadyEvent);

impl Default for IoSource {
    fn default() -> Self {
        Self::new()
    }
}

impl IoSource {
    /// A fresh source (assumed ready both ways, as on registration).
    pub fn new() -> Self {
        IoSource(crate::io::scheduled_io::ScheduledIo::new())
    }

    /// `poll_ready` for reading (`write == false`) or writing.
    pub fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
        write: bool,
    ) -> std::task::Poll<IoReady> {
        use crate::io::scheduled_io::Direction;
        let dir = if write {
            Direction::Write
        } else {
            Direction::Read
        };
        self.0.poll_ready(cx, dir).map(IoReady)
    }

    /// An operation saw `ready` and then got `WouldBlock`.
    pub fn clear_readiness(&self, ready: IoReady) {
        self.0.clear_readiness(ready.0);
    }

    /// The reactor reports an event; the wakers it collects are woken here.
    pub fn event(&self, readable: bool, writable: bool) {
        let mut wake = Vec::new();
        self.0.set_readiness(
            crate::io::sys::Readiness {
                readable,
                writable,
                ..Default::default()
            },
            &mut wake,
        );
        wake.into_iter().for_each(std::task::Waker::wake);
    }
}

/// A timer thread driven by hand: the model calls its turns and sleeps, with ticks for a clock.
#[derive(Debug)]
pub struct TimerDriver(crate::time::Driver);

/// What timer entries share with a [`TimerDriver`].
#[derive(Debug, Clone)]
pub struct TimerHandle(Arc<crate::time::TimeShared>);

/// A timer's handle side, as a `Sleep` holds it, with its deadline in ticks.
#[derive(Debug)]
pub struct TimerEntry {
    shared: Arc<crate::time::TimeShared>,
    registration: crate::time::Registration,
    tick: u64,
}

/// A timer whose clock is at tick 0.
pub fn timer() -> (TimerDriver, TimerHandle) {
    let shared = Arc::new(crate::time::TimeShared::new());
    (
        TimerDriver(crate::time::Driver::new(shared.clone())),
        TimerHandle(shared),
    )
}

impl TimerDriver {
    /// One turn of the timer thread at tick `now`: cancellations, due slots, registrations,
    /// then the wakers. True when it saw registrations or cancellations.
    pub fn turn(&mut self, now: u64) -> bool {
        self.0.turn(now)
    }

    /// The next tick the thread would wake at, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.0.next_deadline()
    }

    /// Entries linked in the wheel.
    pub fn wheel_len(&self) -> usize {
        self.0.wheel_len()
    }

    /// The thread's sleep when the clock is about to reach tick `horizon`: if its next deadline
    /// is at or before it, the timed wait would end by itself (returns false at once);
    /// otherwise it marks itself asleep and blocks until a handle wakes it (true), or finds a
    /// registration waiting and does not sleep (false).
    pub fn sleep_unless_due(&self, horizon: u64) -> bool {
        let until = self.0.next_deadline().unwrap_or(crate::time::NEVER);
        if until <= horizon || !self.0.prepare_sleep(until) {
            return false;
        }
        self.0.sleep_until_woken();
        true
    }

    /// Shuts the timer down (as a runtime shutdown does).
    pub fn shutdown(&mut self) {
        self.0.shutdown();
    }
}

impl TimerHandle {
    /// Registrations not yet fired or cancelled and freed.
    pub fn live_timers(&self) -> usize {
        self.0.live_timers()
    }
}

impl TimerEntry {
    /// A timer for tick `tick` (not registered until polled).
    pub fn new(handle: &TimerHandle, tick: u64) -> TimerEntry {
        TimerEntry {
            shared: handle.0.clone(),
            registration: crate::time::Registration::new(),
            tick,
        }
    }

    /// Polls as `Sleep` does: `Ready(Ok)` once fired, `Ready(Err)` after shutdown.
    pub fn poll(&mut self, waker: &std::task::Waker) -> std::task::Poll<Result<(), ()>> {
        self.registration
            .poll(&self.shared, self.tick, waker)
            .map(|r| r.map_err(drop))
    }

    /// Moves the deadline to `tick`, as `Sleep::reset` does.
    pub fn reset(&mut self, tick: u64) {
        self.tick = tick;
        self.registration.reset(&self.shared, tick);
    }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        self.registration.cancel(&self.shared);
    }
}

/// A scope record, for scope-tree models.
#[derive(Debug, Clone)]
pub struct ScopeModel(DataArc<crate::scope::tree::Scope>);

impl ScopeModel {
    /// A root scope.
    pub fn root() -> Self {
        ScopeModel(crate::scope::tree::Scope::new(None, None, false).expect("root"))
    }

    /// A child scope (`None` when the parent is closed).
    pub fn child(&self, shield: bool) -> Option<Self> {
        crate::scope::tree::Scope::new(Some(self.0.clone()), None, shield)
            .ok()
            .map(ScopeModel)
    }

    /// Adds an explicit cancel request.
    pub fn cancel(&self) {
        self.0.cancel(crate::scope::CancelReason::Explicit);
    }

    /// Withdraws a request; returns what is left.
    pub fn uncancel(&self) -> usize {
        self.0.uncancel()
    }

    /// Pending requests.
    pub fn cancelling(&self) -> usize {
        self.0.cancelling()
    }

    /// The O(1) effective check.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Reserves a waited member slot; dropping the returned value ends the membership.
    pub fn join(&self) -> Option<ScopeMember> {
        self.0.reserve(false, None).ok().map(ScopeMember)
    }

    /// Registers `waker` as the owner's and returns the waited members alive, as the nursery
    /// does before deciding to wait.
    pub fn owner_wait(&self, waker: &std::task::Waker) -> usize {
        self.0.lock().owner_waker = Some(waker.clone());
        self.0.lock().live_waited
    }

    /// Closes the scope to new members if it has none now, as the nursery does when it
    /// returns; false when a member is alive.
    pub fn close(&self) -> bool {
        self.0.close_if_empty()
    }
}

/// A member of a [`ScopeModel`].
#[derive(Debug)]
pub struct ScopeMember(#[allow(dead_code)] crate::scope::tree::Membership);

/// A reactor with real registrations (over pipes) and injected events, for deregistration
/// models.
#[derive(Debug)]
pub struct ReactorModel {
    reactor: DataArc<Reactor>,
}

/// A source registered with a [`ReactorModel`]; owns its pipe.
#[derive(Debug)]
pub struct ModelSource {
    registration: crate::io::reactor::Registration,
    _pipe: [std::os::fd::OwnedFd; 2],
}

impl Default for ReactorModel {
    fn default() -> Self {
        Self::new()
    }
}

impl ReactorModel {
    /// A fresh reactor.
    pub fn new() -> Self {
        ReactorModel {
            reactor: DataArc::new(Reactor::new().expect("create a reactor")),
        }
    }

    /// Registers the read end of a new pipe.
    pub fn register(&self) -> ModelSource {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2 failed");
        // SAFETY: pipe2 just opened these two descriptors; we own them from here.
        let pipe = unsafe { [OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])] };
        let registration = self
            .reactor
            .register(pipe[0].as_raw_fd())
            .expect("register");
        ModelSource {
            registration,
            _pipe: pipe,
        }
    }

    /// Deregisters a source (its slot may be reused by the next registration).
    pub fn deregister(&self, source: &ModelSource) {
        self.reactor.deregister(&source.registration);
    }

    /// Delivers a readable event for `key` as the poller would.
    pub fn event(&self, key: u64) {
        self.reactor.inject_event(
            key,
            crate::io::sys::Readiness {
                readable: true,
                ..Default::default()
            },
        );
    }
}

impl ModelSource {
    /// Its poller key (slot and generation).
    pub fn key(&self) -> u64 {
        self.registration.key
    }

    /// Read readiness, as an operation would see it (`poll_ready` with a no-op waker), after
    /// clearing what it saw once (a read that would block).
    pub fn drain_read(&self) {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(ev) = self
            .registration
            .io
            .poll_ready(&mut cx, crate::io::scheduled_io::Direction::Read)
        {
            self.registration.io.clear_readiness(ev);
        }
    }

    /// True when the source is ready to read.
    pub fn is_readable(&self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        self.registration
            .io
            .poll_ready(&mut cx, crate::io::scheduled_io::Direction::Read)
            .is_ready()
    }
}

/// Deliberately broken variants of the protocols, for `ci/loom-mutants` (see the module).
#[cfg(loom_mutants)]
pub mod mutants;
