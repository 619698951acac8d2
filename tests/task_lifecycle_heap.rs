//! Every lifecycle combination of RELIABILITY.md, "Lifecycle combinations", in all three places a
//! task can live: the runtime's root scope, a nursery as a plain `pitcrew::spawn` member, and a
//! nursery as a child (`Nursery::spawn`, whose `Err` or panic fails the nursery). Each case
//! asserts that the future is dropped exactly once, that the output is dropped exactly once or
//! never created, that panics are contained (and reach the nursery as API.md says), that the
//! workers survive, and that the live heap, counted by this binary's global allocator, is back at
//! its baseline.
//!
//! The allocator counts every allocation of the process, so this binary holds a single test that
//! runs its cases one after another: a second test running in parallel would move the count.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::counting_alloc::live_bytes;
use common::{join, panic_message, recv, within, DropCounter, Latch, TIMEOUT};
use pitcrew::scope::{nursery, ChildHandle, FailureKind, Nursery, ScopeError};
use pitcrew::task::{AbortHandle, JoinError, JoinHandle};

#[global_allocator]
static ALLOC: common::counting_alloc::Counting = common::counting_alloc::Counting;

/// What the runtime may keep between cases without it being a leak. Measured after the warm-up:
/// the heap comes back to the baseline within 488 bytes on one worker and 824 on two, the same
/// every run (the runtime's queues keep some memory across cases: crossbeam's injector allocates
/// its slots in blocks as its tail moves on). The baseline is fixed for the whole pass, so a leak
/// of even one small task per case adds up past this within a few cases.
const TOLERANCE: isize = 4 * 1024;

/// Frees what crossbeam-epoch (under crossbeam-deque's stealers) has deferred: the records of
/// exited threads and retired queue buffers wait in its garbage until some thread collects.
fn collect_deferred_garbage() {
    for _ in 0..256 {
        crossbeam_epoch::pin().flush();
    }
}

/// Waits (without allocating) until the live heap is at most `limit`; returns the excess if it
/// is still above after [`TIMEOUT`]. Frees may lag the case by a moment: a worker drops a task's
/// last reference just after its handle resolved.
fn settle(limit: isize) -> Result<(), isize> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        collect_deferred_garbage();
        let live = live_bytes();
        if live <= limit {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(live - limit);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    /// Spawned from outside any scope.
    Root,
    /// `pitcrew::spawn` inside a nursery body: a member of the scope with a plain `JoinHandle`.
    Member,
    /// `Nursery::spawn`: a child whose failure fails the nursery.
    Child,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Body {
    Returns,
    /// Returns `Err` (for a nursery child, a failure; elsewhere just an output).
    Fails,
    PanicsInPoll,
    PanicsInDrop,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Output {
    Plain,
    PanicsOnDrop,
}

/// When something happens to the task. `Never` for the join handle means it is awaited at the
/// end; for abort, that there is none.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Phase {
    BeforeFirstPoll,
    Pending,
    Completed,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    JoinHandle,
    AbortHandle,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    place: Place,
    body: Body,
    output: Output,
    join: Phase,
    abort: Phase,
    via: Via,
}

impl Case {
    fn aborted_early(&self) -> bool {
        self.abort < Phase::Completed
    }
}

const PANIC_IN_POLL: &str = "intentional panic in poll";
const PANIC_IN_DROP: &str = "intentional panic in a Drop";
const ERROR: &str = "intentional error";

/// Panics when dropped, unless the thread is already unwinding.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", PANIC_IN_DROP);
        }
    }
}

struct Out {
    _drops: DropCounter,
    _bomb: Option<Bomb>,
}

type TaskOutput = Result<Out, &'static str>;

#[derive(Default)]
struct Counters {
    polls: AtomicUsize,
    future_drops: Arc<AtomicUsize>,
    outputs_created: AtomicUsize,
    output_drops: Arc<AtomicUsize>,
}

/// Reports its drop on a channel.
struct NotifyOnDrop(mpsc::Sender<()>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// The task's future: the async body, plus a bomb that goes off when the future is dropped,
/// and a notice of that drop (which comes with the task's end) for the test to wait on.
struct CaseFuture<F> {
    body: Pin<Box<F>>,
    _bomb: Option<Bomb>,
    _dropped: NotifyOnDrop,
}

impl<F: Future> Future for CaseFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.body.as_mut().poll(cx)
    }
}

/// Blocks `n` workers inside a poll until the returned latch opens.
fn occupy_workers(rt: &pitcrew::Runtime, n: usize) -> Arc<Latch> {
    let release = Latch::new();
    let (tx, rx) = mpsc::channel();
    for _ in 0..n {
        let (release, tx) = (release.clone(), tx.clone());
        drop(rt.spawn(async move {
            tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "workers never released");
        }));
    }
    for _ in 0..n {
        recv("every worker to be occupied", &rx, TIMEOUT);
    }
    release
}

/// A task's handle, of either kind.
enum Handle {
    Task(JoinHandle<TaskOutput>),
    Child(ChildHandle<Out>),
}

impl Handle {
    fn abort(&self) {
        match self {
            Handle::Task(h) => h.abort(),
            Handle::Child(h) => h.abort(),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Handle::Task(h) => h.is_finished(),
            Handle::Child(h) => h.is_finished(),
        }
    }

    /// The task's result, seen through a nursery child's eyes: an `Err` output of a plain task
    /// is folded into the same shape as a child's failure.
    fn resolve(self, what: &str) -> Result<Result<Out, &'static str>, JoinError> {
        match self {
            Handle::Task(h) => join(what, h),
            Handle::Child(h) => within(what, TIMEOUT, move || {
                futures_lite::future::block_on(h).map(Ok)
            }),
        }
    }
}

/// The handles of one case's task, and what watches it finish once its handle is gone.
struct Handles {
    join: Option<Handle>,
    abort: Option<AbortHandle>,
    observer: Option<AbortHandle>,
    nursery: Option<Nursery<&'static str>>,
}

impl Handles {
    fn new(join: Handle, nursery: Option<Nursery<&'static str>>) -> Handles {
        let (abort, observer) = match &join {
            Handle::Task(h) => (Some(h.abort_handle()), Some(h.abort_handle())),
            Handle::Child(_) => (None, None),
        };
        Handles {
            join: Some(join),
            abort,
            observer,
            nursery,
        }
    }

    fn finished(&self) -> bool {
        match (&self.observer, &self.join, &self.nursery) {
            (Some(o), _, _) => o.is_finished(),
            (None, Some(h), _) => h.is_finished(),
            // A child whose handle is gone: it has finished once it left the nursery.
            (None, None, Some(n)) => n.is_empty(),
            (None, None, None) => unreachable!("a task nobody can observe"),
        }
    }

    /// Does what the case says happens at `phase`: abort first, then drop the join handle.
    fn act(&mut self, case: Case, phase: Phase) {
        if case.abort == phase {
            match case.via {
                Via::JoinHandle => self.join.as_ref().expect("handle kept for abort").abort(),
                Via::AbortHandle => self.abort.as_ref().expect("an abort handle").abort(),
            }
        }
        if case.join == phase {
            // An output that panics on drop may be dropped right here; that panic is the
            // output's own, on this thread, and the output must still be dropped once.
            let h = self.join.take();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(h)));
        }
    }
}

fn make_future(
    case: Case,
    counters: &Arc<Counters>,
    gate_rx: tokio::sync::oneshot::Receiver<()>,
    polled_tx: mpsc::Sender<()>,
    dropped_tx: mpsc::Sender<()>,
) -> impl Future<Output = TaskOutput> + Send + 'static {
    let counters = counters.clone();
    let guard = DropCounter(counters.future_drops.clone());
    // Not `then_some`: that builds (and drops) the bomb either way.
    let bomb = if case.body == Body::PanicsInDrop {
        Some(Bomb)
    } else {
        None
    };
    let body = async move {
        let _guard = guard;
        counters.polls.fetch_add(1, Ordering::SeqCst);
        polled_tx.send(()).unwrap();
        let _ = gate_rx.await;
        match case.body {
            Body::PanicsInPoll => panic!("{}", PANIC_IN_POLL),
            Body::Fails => return Err(ERROR),
            Body::Returns | Body::PanicsInDrop => {}
        }
        counters.outputs_created.fetch_add(1, Ordering::SeqCst);
        Ok(Out {
            _drops: DropCounter(counters.output_drops.clone()),
            _bomb: if case.output == Output::PanicsOnDrop {
                Some(Bomb)
            } else {
                None
            },
        })
    };
    CaseFuture {
        body: Box::pin(body),
        _bomb: bomb,
        _dropped: NotifyOnDrop(dropped_tx),
    }
}

type NurseryResult = Result<(), ScopeError<&'static str>>;

/// Spawns the case's task as `case.place` says. For a nursery, a driver task runs the nursery
/// and keeps its body open until `finish` fires; with `before_first_poll`, the body blocks its
/// worker right after spawning until `acted` opens, so the task cannot be polled before the test
/// has acted on it.
fn spawn_in_nursery(
    rt: &pitcrew::Runtime,
    case: Case,
    future: impl Future<Output = TaskOutput> + Send + 'static,
    before_first_poll: Option<Arc<Latch>>,
    finish: tokio::sync::oneshot::Receiver<()>,
) -> (Handles, JoinHandle<NurseryResult>) {
    let (handles_tx, handles_rx) = mpsc::channel();
    let driver = rt.spawn(nursery(move |n: Nursery<&'static str>| async move {
        let handle = match case.place {
            Place::Member => Handle::Task(pitcrew::spawn(future)),
            Place::Child => Handle::Child(n.spawn(future)),
            Place::Root => unreachable!("a root task is spawned by the test"),
        };
        handles_tx.send((handle, n.clone())).unwrap();
        if let Some(acted) = before_first_poll {
            assert!(acted.wait(TIMEOUT), "the test never acted on the task");
        }
        let _ = finish.await;
        Ok(())
    }));
    let (handle, n) = recv("the nursery to spawn the task", &handles_rx, TIMEOUT);
    (Handles::new(handle, Some(n)), driver)
}

/// Checks what the case's handle resolved to.
fn check_result(case: Case, result: Result<Result<Out, &'static str>, JoinError>) {
    let child = case.place == Place::Child;
    match (case.aborted_early(), case.body, result) {
        (true, Body::PanicsInDrop, Err(e)) => {
            assert!(e.is_cancelled() || e.is_panic(), "{case:?}: {e:?}")
        }
        (true, _, Err(e)) => assert!(e.is_cancelled(), "{case:?}: {e:?}"),
        (false, Body::Returns, Ok(Ok(out))) => {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(out)));
        }
        // A child's failure goes to the nursery; its handle only says that it failed.
        (false, Body::Fails | Body::PanicsInPoll | Body::PanicsInDrop, Err(e)) if child => {
            assert!(e.is_failed(), "{case:?}: {e:?}")
        }
        (false, Body::Fails, Ok(Err(e))) if !child => assert_eq!(e, ERROR),
        (false, Body::PanicsInPoll | Body::PanicsInDrop, Err(e)) => {
            assert!(e.is_panic(), "{case:?}: {e:?}")
        }
        (_, _, r) => panic!(
            "{case:?}: unexpected result {:?}",
            r.map(|o| o.map(|_| "output")).map_err(|e| e.to_string())
        ),
    }
}

/// Checks what the nursery returned: only a child that failed, or panicked in its poll or in
/// its future's `Drop` once it had ended, fails it (with that failure first); an abort, a
/// member's panic or a plain output does not.
fn check_nursery(case: Case, result: NurseryResult) {
    let failed_child = case.place == Place::Child
        && !case.aborted_early()
        && matches!(
            case.body,
            Body::Fails | Body::PanicsInPoll | Body::PanicsInDrop
        );
    match result {
        Ok(()) => assert!(
            !failed_child,
            "{case:?}: the nursery missed the child's failure"
        ),
        Err(ScopeError::Failed(failures)) => {
            assert!(
                failed_child,
                "{case:?}: the nursery failed with {failures:?}"
            );
            assert_eq!(failures.len(), 1, "{case:?}: {failures:?}");
            assert!(failures[0].task.is_some(), "{case:?}: blamed the body");
            match (&failures[0].kind, case.body) {
                (FailureKind::Error(e), Body::Fails) => assert_eq!(*e, ERROR),
                (FailureKind::Panic(p), Body::PanicsInPoll) => {
                    assert_eq!(panic_message(&**p), PANIC_IN_POLL)
                }
                (FailureKind::Panic(p), Body::PanicsInDrop) => {
                    assert_eq!(panic_message(&**p), PANIC_IN_DROP)
                }
                (kind, _) => panic!("{case:?}: the nursery reported {kind:?}"),
            }
        }
        Err(e) => panic!("{case:?}: the nursery returned {e:?}"),
    }
}

fn run_case(rt: &pitcrew::Runtime, workers: usize, case: Case) -> Arc<Counters> {
    let counters = Arc::new(Counters::default());
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let (polled_tx, polled_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let future = make_future(case, &counters, gate_rx, polled_tx, dropped_tx);
    let before_first_poll =
        case.join == Phase::BeforeFirstPoll || case.abort == Phase::BeforeFirstPoll;
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();

    let (mut handles, driver) = if case.place == Place::Root {
        if before_first_poll {
            let release = occupy_workers(rt, workers);
            let mut handles = Handles::new(Handle::Task(rt.spawn(future)), None);
            handles.act(case, Phase::BeforeFirstPoll);
            release.open();
            (handles, None)
        } else {
            (Handles::new(Handle::Task(rt.spawn(future)), None), None)
        }
    } else if before_first_poll {
        // The nursery body holds one worker; the others are occupied.
        let release = occupy_workers(rt, workers - 1);
        let acted = Latch::new();
        let (mut handles, driver) =
            spawn_in_nursery(rt, case, future, Some(acted.clone()), finish_rx);
        handles.act(case, Phase::BeforeFirstPoll);
        acted.open();
        release.open();
        (handles, Some(driver))
    } else {
        let (handles, driver) = spawn_in_nursery(rt, case, future, None, finish_rx);
        (handles, Some(driver))
    };

    if case.abort != Phase::BeforeFirstPoll {
        recv("the first poll", &polled_rx, TIMEOUT);
        handles.act(case, Phase::Pending);
    }
    if !case.aborted_early() {
        gate_tx.send(()).unwrap();
    }
    let deadline = Instant::now() + TIMEOUT;
    // The future is dropped when the task ends; the task is marked finished around then.
    recv("the task's future to be dropped", &dropped_rx, TIMEOUT);
    while !handles.finished() {
        assert!(
            Instant::now() < deadline,
            "{case:?}: the task never finished"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
    handles.act(case, Phase::Completed);

    if let Some(h) = handles.join.take() {
        check_result(case, h.resolve("the task's handle"));
    }
    if let Some(driver) = driver {
        // The body may already be gone (a failed child cancels it).
        let _ = finish_tx.send(());
        let result = join("the nursery", driver).expect("the nursery's task ended");
        check_nursery(case, result);
    }
    drop(handles);
    let deadline = Instant::now() + TIMEOUT;
    while counters.future_drops.load(Ordering::SeqCst) == 0
        || counters.output_drops.load(Ordering::SeqCst)
            < counters.outputs_created.load(Ordering::SeqCst)
    {
        assert!(
            Instant::now() < deadline,
            "{case:?}: the future or the output was never dropped"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    counters
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for place in [Place::Root, Place::Member, Place::Child] {
        for body in [
            Body::Returns,
            Body::Fails,
            Body::PanicsInPoll,
            Body::PanicsInDrop,
        ] {
            for output in [Output::Plain, Output::PanicsOnDrop] {
                for join in [
                    Phase::Never,
                    Phase::BeforeFirstPoll,
                    Phase::Pending,
                    Phase::Completed,
                ] {
                    for abort in [
                        Phase::Never,
                        Phase::BeforeFirstPoll,
                        Phase::Pending,
                        Phase::Completed,
                    ] {
                        for via in [Via::JoinHandle, Via::AbortHandle] {
                            // Aborting through the join handle needs it: not after dropping it.
                            if via == Via::JoinHandle && abort != Phase::Never && join < abort {
                                continue;
                            }
                            if abort == Phase::Never && via == Via::AbortHandle {
                                continue;
                            }
                            // Only a nursery child's `Err` means more than an output.
                            if place != Place::Child && body == Body::Fails {
                                continue;
                            }
                            // A nursery child's handle has no `AbortHandle`.
                            if place == Place::Child && via == Via::AbortHandle {
                                continue;
                            }
                            cases.push(Case {
                                place,
                                body,
                                output,
                                join,
                                abort,
                                via,
                            });
                        }
                    }
                }
            }
        }
    }
    cases
}

/// Checks one case's counters; returns what went wrong.
fn check_counters(case: Case, c: &Counters) -> Vec<String> {
    let polls = c.polls.load(Ordering::SeqCst);
    let future_drops = c.future_drops.load(Ordering::SeqCst);
    let created = c.outputs_created.load(Ordering::SeqCst);
    let output_drops = c.output_drops.load(Ordering::SeqCst);
    let mut bad = Vec::new();
    if future_drops != 1 {
        bad.push(format!("future dropped {future_drops} times"));
    }
    if created > 1 || output_drops != created {
        bad.push(format!(
            "output created {created} times, dropped {output_drops}"
        ));
    }
    if case.abort == Phase::BeforeFirstPoll && polls != 0 {
        bad.push(format!(
            "aborted before its first poll, yet polled {polls} times"
        ));
    }
    if case.aborted_early() && created != 0 {
        bad.push("aborted while pending, yet it produced an output".to_owned());
    }
    bad
}

/// Builds a runtime with `workers` workers whose thread-stop hook counts into `stopped`.
fn build_runtime(workers: usize, stopped: &Arc<AtomicUsize>) -> pitcrew::Runtime {
    let stopped = stopped.clone();
    pitcrew::Runtime::builder()
        .workers(workers)
        .on_thread_stop(move || {
            stopped.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap()
}

/// Runs every case on `rt`, checking the counters and, with `heap_baseline`, that the live heap
/// is back at the baseline after each case. Returns the failures and the largest heap excess.
fn run_pass(
    rt: &pitcrew::Runtime,
    workers: usize,
    cases: &[Case],
    heap_baseline: Option<isize>,
) -> (Vec<String>, isize) {
    let mut failures = Vec::new();
    let mut worst = 0isize;
    for case in cases {
        let counters = run_case(rt, workers, *case);
        let mut bad = check_counters(*case, &counters);
        drop(counters);
        if let Some(baseline) = heap_baseline {
            if let Err(excess) = settle(baseline + TOLERANCE) {
                bad.push(format!(
                    "the live heap stayed {excess} bytes above the baseline plus {TOLERANCE}"
                ));
            }
            worst = worst.max(live_bytes() - baseline);
        }
        if !bad.is_empty() {
            failures.push(format!("{case:?}: {}", bad.join("; ")));
        }
    }
    (failures, worst)
}

/// Runs every case on runtimes with `workers` workers: one pass over every `first_step`-th case
/// on a first runtime, dropped (the one-time allocations happen there), then on a second runtime a warm-up pass
/// and a pass that checks the heap after each case against the baseline the warm-up left, and
/// after the second runtime is dropped, against the heap from before it was built. Returns the
/// number of cases per pass and the largest heap excess after a case. (Nothing is printed in
/// between: the test harness captures output into a buffer on the heap.)
fn run_all(workers: usize, first_step: usize) -> (usize, isize) {
    let cases = all_cases();
    let mut failures = Vec::new();

    let first_cases: Vec<Case> = cases.iter().copied().step_by(first_step).collect();
    let rt = build_runtime(workers, &Arc::new(AtomicUsize::new(0)));
    failures.extend(run_pass(&rt, workers, &first_cases, None).0);
    within("dropping the first runtime", TIMEOUT, move || drop(rt));
    let stopped = Arc::new(AtomicUsize::new(0));
    collect_deferred_garbage();
    let before_runtime = live_bytes();

    let rt = build_runtime(workers, &stopped);
    failures.extend(run_pass(&rt, workers, &cases, None).0);
    collect_deferred_garbage();
    let baseline = live_bytes();
    let (checked, worst) = run_pass(&rt, workers, &cases, Some(baseline));
    failures.extend(checked);
    assert!(
        failures.is_empty(),
        "{workers} worker(s): {} case runs of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    assert_eq!(
        join("a task after every case", rt.spawn(async { 1 })).unwrap(),
        1
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "a worker thread died");
    within("dropping the second runtime", TIMEOUT, move || drop(rt));
    if let Err(excess) = settle(before_runtime) {
        panic!(
            "{workers} worker(s): after the runtime was dropped the heap stayed {excess} bytes \
             above where it was before the runtime was built"
        );
    }
    (cases.len(), worst)
}

#[test]
fn every_lifecycle_combination_in_and_out_of_nurseries_returns_the_heap_to_baseline() {
    // The intentional panics would otherwise be printed (and captured into a growing buffer);
    // anything else goes to the default hook.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = panic_message(info.payload());
        if msg != PANIC_IN_POLL && msg != PANIC_IN_DROP {
            default_hook(info);
        }
    }));
    // The first runtime of the process runs every case; after it, a runtime with more workers
    // has only a few one-time allocations of its own left to make (measured: 4,144 bytes on the
    // first two-worker runtime, none on later ones), which every fourth case makes.
    let (one, worst_one) = run_all(1, 1);
    let (two, worst_two) = run_all(2, 4);
    assert_eq!(one, two);
    eprintln!(
        "{one} cases; worst heap excess over the baseline after a case: {worst_one} bytes on \
         one worker, {worst_two} on two"
    );
}
