//! pitcrew against tokio and async-executor, one workload per row.
//!
//! Every workload runs on three runtimes built once, up front, with the same number of worker
//! threads ([`WORKERS`]):
//!
//! * pitcrew: `Runtime::builder().workers(WORKERS)`;
//! * tokio: the multi-thread runtime with `worker_threads(WORKERS)` and its I/O and time drivers
//!   (for the network and timer rows);
//! * async-executor: one `Executor` run by `WORKERS` threads, each in
//!   `async_io::block_on(ex.run(shutdown))`.
//!
//! The samples of a workload are interleaved round-robin (pitcrew, tokio, async-executor, pitcrew,
//! ...) so that noise on the machine lands on all three alike. Each runtime first runs the
//! workload once as a warm-up; that run also sets how many back-to-back runs make up one sample,
//! so that a sample lasts at least [`Config::target`] and short workloads are not lost in timer
//! noise. A row reports the median ns/op over the samples and the ratios pitcrew/tokio and
//! pitcrew/async-executor (below 1.0 means pitcrew is faster).
//!
//! Environment and arguments:
//!
//! * `BENCH_QUICK=1`: 5 samples of at least 20 ms each instead of 15 of at least 100 ms (CI);
//! * `BENCH_JSON=path`: also write the rows as
//!   `[{"name": "...", "pitcrew_ns": 0.0, "tokio_ns": 0.0, "async_executor_ns": 0.0}]`;
//! * any argument not starting with `--` is a filter: only rows whose name contains one of them
//!   run (`cargo bench --bench compare -- yield`).
//!
//! # Adding a row
//!
//! Write `fn my_workload<R: Rt>(rt: &R) -> Sample` against the [`Rt`] and [`Spawner`] traits
//! below (use [`run_inside`] when the workload is driven from inside a task), then add
//! `row!("my_workload", my_workload)` to [`workloads`]. A workload that needs code specific to
//! one runtime can instead fill the three closures of a [`Workload`] by hand. Workloads talk
//! between tasks only through the runtime-neutral [`mailbox`] and [`SelfWake`], never through a
//! runtime's own timers, channels or I/O. The network rows in `compare/net.rs` and the timer
//! rows in `compare/timers.rs` are the exceptions: they measure each runtime's own TCP and
//! timers.

// clippy.toml sends the crate's own locks through `crate::loom` so loom can model them. This
// bench is outside the crate and wants plain std primitives that behave the same on all three
// runtimes.
#![allow(clippy::disallowed_types)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

#[path = "compare/net.rs"]
mod net;
#[path = "compare/scope.rs"]
mod scope;
#[path = "compare/timers.rs"]
mod timers;

use net::{tcp_accept_churn, tcp_echo_1k, tcp_echo_lat, tcp_echo_tput};
use scope::{cancel_fanout, nested_nursery, nursery_fanout, restart_storm_pitcrew, spawn_join_seq};
use timers::{timeout_ready, timer_accuracy, timer_fire_1m, timer_register_cancel};

/// Worker threads of every runtime under test.
const WORKERS: usize = 2;

/// Names of the runtimes, in the order their samples run.
const RUNTIMES: [&str; 3] = ["pitcrew", "tokio", "async-executor"];

/// One run (or several back-to-back runs) of a workload: how long it took and how many
/// operations it did; the report divides one by the other.
#[derive(Clone, Copy, Debug)]
struct Sample {
    elapsed: Duration,
    ops: u64,
}

impl Sample {
    fn new(elapsed: Duration, ops: usize) -> Self {
        Sample {
            elapsed,
            ops: ops as u64,
        }
    }

    fn ns_per_op(self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// The three runtimes behind one interface, so each workload is written once.
// ---------------------------------------------------------------------------------------------

/// Spawning from inside a task of a runtime.
trait Spawner: Clone + Send + Sync + 'static {
    /// A spawned task's handle; resolves to the task's output (a failed task panics the awaiter).
    type Task<T: Send + 'static>: Future<Output = T> + Send + 'static;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Spawn a task nobody awaits (async-executor cancels a task whose handle is dropped).
    fn spawn_detached<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// The runtime's own yield.
    fn yield_now() -> impl Future<Output = ()> + Send;
}

/// A built runtime, seen from the bench thread.
trait Rt: 'static {
    type Spawner: Spawner;

    /// A spawner for use inside this runtime's tasks.
    fn spawner(&self) -> Self::Spawner;

    /// Spawn from the bench thread, which is not one of the runtime's threads.
    fn spawn_remote<F>(&self, fut: F) -> TaskOf<Self, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Drive `fut` to completion on the bench thread.
    fn block_on<F: Future>(&self, fut: F) -> F::Output;
}

type TaskOf<R, T> = <<R as Rt>::Spawner as Spawner>::Task<T>;

/// Unwraps the `Result<T, JoinError>` of a pitcrew or tokio join handle, so that all three
/// runtimes' tasks resolve to plain `T` like async-executor's.
struct Joined<H>(H);

impl<H, T, E> Future for Joined<H>
where
    H: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            Poll::Ready(Err(err)) => panic!("benchmark task failed: {err:?}"),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct PitcrewRt {
    rt: pitcrew::Runtime,
}

impl PitcrewRt {
    fn new() -> Self {
        let rt = pitcrew::Runtime::builder()
            .workers(WORKERS)
            .build()
            .expect("build the pitcrew runtime");
        PitcrewRt { rt }
    }
}

#[derive(Clone)]
struct PitcrewSpawner;

impl Spawner for PitcrewSpawner {
    type Task<T: Send + 'static> = Joined<pitcrew::task::JoinHandle<T>>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(pitcrew::spawn(fut))
    }

    fn spawn_detached<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(pitcrew::spawn(fut));
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        pitcrew::yield_now()
    }
}

impl Rt for PitcrewRt {
    type Spawner = PitcrewSpawner;

    fn spawner(&self) -> PitcrewSpawner {
        PitcrewSpawner
    }

    fn spawn_remote<F>(&self, fut: F) -> TaskOf<Self, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(self.rt.spawn(fut))
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }
}

struct TokioRt {
    rt: tokio::runtime::Runtime,
}

impl TokioRt {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("tokio-worker")
            .enable_io()
            .enable_time()
            .build()
            .expect("build the tokio runtime");
        TokioRt { rt }
    }
}

#[derive(Clone)]
struct TokioSpawner;

impl Spawner for TokioSpawner {
    type Task<T: Send + 'static> = Joined<tokio::task::JoinHandle<T>>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(tokio::spawn(fut))
    }

    fn spawn_detached<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(tokio::spawn(fut));
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

impl Rt for TokioRt {
    type Spawner = TokioSpawner;

    fn spawner(&self) -> TokioSpawner {
        TokioSpawner
    }

    fn spawn_remote<F>(&self, fut: F) -> TaskOf<Self, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Joined(self.rt.spawn(fut))
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }
}

struct AsyncExecutorRt {
    ex: Arc<async_executor::Executor<'static>>,
    stops: Vec<Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl AsyncExecutorRt {
    fn new() -> Self {
        let ex = Arc::new(async_executor::Executor::new());
        let mut stops = Vec::with_capacity(WORKERS);
        let mut threads = Vec::with_capacity(WORKERS);
        for index in 0..WORKERS {
            let (stop, stopped) = mailbox::<()>();
            let ex = Arc::clone(&ex);
            let thread = thread::Builder::new()
                .name(format!("async-executor-{index}"))
                .spawn(move || async_io::block_on(ex.run(async move { stopped.recv().await })))
                .expect("start an async-executor thread");
            stops.push(stop);
            threads.push(thread);
        }
        AsyncExecutorRt { ex, stops, threads }
    }
}

impl Drop for AsyncExecutorRt {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            stop.send(());
        }
        for thread in self.threads.drain(..) {
            thread.join().expect("async-executor thread panicked");
        }
    }
}

#[derive(Clone)]
struct AsyncExecutorSpawner(Arc<async_executor::Executor<'static>>);

impl Spawner for AsyncExecutorSpawner {
    type Task<T: Send + 'static> = async_executor::Task<T>;

    fn spawn<F>(&self, fut: F) -> Self::Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(fut)
    }

    fn spawn_detached<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(fut).detach();
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
}

impl Rt for AsyncExecutorRt {
    type Spawner = AsyncExecutorSpawner;

    fn spawner(&self) -> AsyncExecutorSpawner {
        AsyncExecutorSpawner(Arc::clone(&self.ex))
    }

    fn spawn_remote<F>(&self, fut: F) -> TaskOf<Self, F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.ex.spawn(fut)
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        async_io::block_on(fut)
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime-neutral primitives: plain std, identical on every runtime.
// ---------------------------------------------------------------------------------------------

/// A single-slot channel: a mutex around the value and the receiver's waker. It carries one
/// value at a time and can be reused (the ring passes a token through each link many times).
fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    (Sender(Arc::clone(&slot)), Receiver(slot))
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

struct Sender<T>(Arc<Mutex<Slot<T>>>);

struct Receiver<T>(Arc<Mutex<Slot<T>>>);

impl<T> Sender<T> {
    fn send(&self, value: T) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            assert!(slot.value.is_none(), "mailbox already holds a value");
            slot.value = Some(value);
            slot.waker.take()
        };
        // Wake outside the lock so the woken task never contends for it.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    fn recv(&self) -> Recv<'_, T> {
        Recv(self)
    }
}

struct Recv<'a, T>(&'a Receiver<T>);

impl<T> Future for Recv<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0 .0.lock().unwrap();
        if let Some(value) = slot.value.take() {
            return Poll::Ready(value);
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            stale => *stale = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Yields once through the waker alone: wakes itself and returns `Pending`, then completes.
/// Unlike each runtime's own `yield_now`, this takes no runtime-specific path.
struct SelfWake {
    yielded: bool,
}

impl SelfWake {
    fn new() -> Self {
        SelfWake { yielded: false }
    }
}

impl Future for SelfWake {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// ---------------------------------------------------------------------------------------------
// Workloads. Each runs once on a built runtime and returns its elapsed time and op count.
// ---------------------------------------------------------------------------------------------

/// Runs `body` as one task on the runtime (spawned from the bench thread and awaited there) and
/// times it from its first poll to its end, so the hand-off to and from the bench thread is not
/// measured. `body` returns its op count.
fn run_inside<R, F, Fut>(rt: &R, body: F) -> Sample
where
    R: Rt,
    F: FnOnce(R::Spawner) -> Fut,
    Fut: Future<Output = usize> + Send + 'static,
{
    let driver = body(rt.spawner());
    rt.block_on(rt.spawn_remote(async move {
        let start = Instant::now();
        let ops = driver.await;
        Sample::new(start.elapsed(), ops)
    }))
}

/// Spawns `n` trivial tasks from inside a task and awaits them in order; returns the sum of
/// their outputs so nothing is optimized away.
async fn spawn_and_join<S: Spawner>(s: &S, n: usize) -> usize {
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        handles.push(s.spawn(async move { black_box(i) }));
    }
    let mut sum = 0;
    for handle in handles {
        sum += handle.await;
    }
    sum
}

/// 10,000 tasks spawned from the bench thread, then awaited in one `block_on`; per task.
fn spawn_remote<R: Rt>(rt: &R) -> Sample {
    const TASKS: usize = 10_000;
    let start = Instant::now();
    let mut handles = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        handles.push(rt.spawn_remote(async move {
            black_box(i);
        }));
    }
    rt.block_on(async move {
        for handle in handles {
            handle.await;
        }
    });
    Sample::new(start.elapsed(), TASKS)
}

/// 10,000 trivial tasks spawned from inside a task and awaited; per task.
fn spawn_local<R: Rt>(rt: &R) -> Sample {
    const TASKS: usize = 10_000;
    run_inside(rt, |s| async move {
        black_box(spawn_and_join(&s, TASKS).await);
        TASKS
    })
}

/// 25,000 tasks spawned from inside a task, handles collected, then all joined; per task.
fn spawn_join_batch<R: Rt>(rt: &R) -> Sample {
    const TASKS: usize = 25_000;
    run_inside(rt, |s| async move {
        let sum = spawn_and_join(&s, TASKS).await;
        assert_eq!(sum, TASKS * (TASKS - 1) / 2);
        TASKS
    })
}

/// Tasks of the `spawn_ready` and `spawn_eager_ready` rows.
const READY_TASKS: usize = 100_000;

/// 100,000 tasks that finish on their first poll, spawned from inside a task, then all joined;
/// per task. The reference for `spawn_eager_ready`.
fn spawn_ready<R: Rt>(rt: &R) -> Sample {
    run_inside(rt, |s| async move {
        black_box(spawn_and_join(&s, READY_TASKS).await);
        READY_TASKS
    })
}

/// `spawn_ready` with pitcrew's eager tasks: each first poll runs inline in the spawner, so a
/// task that finishes there never touches a queue. The other columns run `spawn_ready`.
fn spawn_eager_ready_pitcrew(rt: &PitcrewRt) -> Sample {
    run_inside(rt, |_| async move {
        let mut handles = Vec::with_capacity(READY_TASKS);
        for i in 0..READY_TASKS {
            let eager = pitcrew::task::Builder::new().eager();
            handles.push(eager.spawn(async move { black_box(i) }).expect("running"));
        }
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.expect("an eager task");
        }
        black_box(sum);
        READY_TASKS
    })
}

const YIELD_TASKS: usize = 200;
const YIELDS_PER_TASK: usize = 1_000;

/// `YIELD_TASKS` tasks each yielding `YIELDS_PER_TASK` times through `yield_once`; per yield.
fn yields<R, Y, M>(rt: &R, yield_once: M) -> Sample
where
    R: Rt,
    M: Fn() -> Y + Copy + Send + 'static,
    Y: Future<Output = ()> + Send,
{
    run_inside(rt, move |s| async move {
        let mut handles = Vec::with_capacity(YIELD_TASKS);
        for _ in 0..YIELD_TASKS {
            handles.push(s.spawn(async move {
                for i in 0..YIELDS_PER_TASK {
                    black_box(i);
                    yield_once().await;
                }
            }));
        }
        for handle in handles {
            handle.await;
        }
        YIELD_TASKS * YIELDS_PER_TASK
    })
}

/// 200 tasks x 1,000 self-wakes through the waker alone; per yield.
fn yield_many<R: Rt>(rt: &R) -> Sample {
    yields(rt, SelfWake::new)
}

/// 200 tasks x 1,000 of the runtime's own `yield_now`; per yield.
fn yield_many_native<R: Rt>(rt: &R) -> Sample {
    yields(rt, <R::Spawner as Spawner>::yield_now)
}

/// 1,000 pairs: A sends to B, B replies to A, A completes; all spawned from inside a task and
/// awaited; per pair.
fn ping_pong<R: Rt>(rt: &R) -> Sample {
    const PAIRS: usize = 1_000;
    run_inside(rt, |s| async move {
        let mut pings = Vec::with_capacity(PAIRS);
        let mut pongs = Vec::with_capacity(PAIRS);
        for i in 0..PAIRS {
            let (to_b, from_a) = mailbox::<usize>();
            let (to_a, from_b) = mailbox::<usize>();
            pongs.push(s.spawn(async move {
                let ball = from_a.recv().await;
                to_a.send(ball + 1);
            }));
            pings.push(s.spawn(async move {
                to_b.send(i);
                from_b.recv().await
            }));
        }
        for (i, ping) in pings.into_iter().enumerate() {
            assert_eq!(ping.await, i + 1);
        }
        for pong in pongs {
            pong.await;
        }
        PAIRS
    })
}

/// A task spawns a task which spawns a task ... 1,000 deep; the last signals the driver through a
/// mailbox; per hop.
fn chained_spawn<R: Rt>(rt: &R) -> Sample {
    const DEPTH: usize = 1_000;

    fn hop<S: Spawner>(s: S, done: Sender<()>, left: usize) {
        if left == 0 {
            done.send(());
        } else {
            let next = s.clone();
            s.spawn_detached(async move { hop(next, done, left - 1) });
        }
    }

    run_inside(rt, |s| async move {
        let (done, finished) = mailbox();
        hop(s, done, DEPTH);
        finished.recv().await;
        DEPTH
    })
}

/// 300 tasks each spawning and awaiting 300 children, all awaited; per leaf task.
fn spawn_recursively<R: Rt>(rt: &R) -> Sample {
    const FANOUT: usize = 300;
    run_inside(rt, |s| async move {
        let mut parents = Vec::with_capacity(FANOUT);
        for _ in 0..FANOUT {
            let inner = s.clone();
            parents.push(s.spawn(async move { spawn_and_join(&inner, FANOUT).await }));
        }
        for parent in parents {
            black_box(parent.await);
        }
        FANOUT * FANOUT
    })
}

/// 300 tasks in a ring pass one token around 300 times; each waits for it from its predecessor
/// and forwards it; per hop.
fn ring<R: Rt>(rt: &R) -> Sample {
    const MEMBERS: usize = 300;
    const LAPS: usize = 300;
    run_inside(rt, |s| async move {
        let (mut into, mut out): (Vec<_>, Vec<_>) = (0..MEMBERS).map(|_| mailbox()).unzip();
        // Member i reads link i and writes link i + 1; the last one closes the ring on link 0.
        into.rotate_left(1);
        into[MEMBERS - 1].send(0usize);
        let mut members = Vec::with_capacity(MEMBERS);
        for (from_prev, to_next) in out.drain(..).zip(into.drain(..)) {
            members.push(s.spawn(async move {
                let mut token = 0;
                for _ in 0..LAPS {
                    token = from_prev.recv().await;
                    to_next.send(token + 1);
                }
                token
            }));
        }
        let mut last = 0;
        for member in members {
            last = member.await;
        }
        assert_eq!(last + 1, MEMBERS * LAPS);
        MEMBERS * LAPS
    })
}

// ---------------------------------------------------------------------------------------------
// Rows and the runner.
// ---------------------------------------------------------------------------------------------

/// One row of the report: the same workload once per runtime.
struct Workload {
    name: &'static str,
    pitcrew: Box<dyn Fn(&PitcrewRt) -> Sample>,
    tokio: Box<dyn Fn(&TokioRt) -> Sample>,
    async_executor: Box<dyn Fn(&AsyncExecutorRt) -> Sample>,
}

/// A row whose workload is one function generic over [`Rt`].
macro_rules! row {
    ($name:literal, $workload:ident) => {
        Workload {
            name: $name,
            pitcrew: Box::new($workload::<PitcrewRt>),
            tokio: Box::new($workload::<TokioRt>),
            async_executor: Box::new($workload::<AsyncExecutorRt>),
        }
    };
}

fn workloads() -> Vec<Workload> {
    vec![
        row!("spawn_remote", spawn_remote),
        row!("spawn_local", spawn_local),
        row!("spawn_join_batch", spawn_join_batch),
        row!("spawn_ready", spawn_ready),
        // Eager tasks are pitcrew's own: the other columns spawn and join the same tasks
        // plainly (target: eager at most 0.5x tokio's spawn + join).
        Workload {
            name: "spawn_eager_ready",
            pitcrew: Box::new(spawn_eager_ready_pitcrew),
            tokio: Box::new(spawn_ready::<TokioRt>),
            async_executor: Box::new(spawn_ready::<AsyncExecutorRt>),
        },
        row!("yield_many", yield_many),
        row!("yield_many_native", yield_many_native),
        row!("ping_pong", ping_pong),
        row!("chained_spawn", chained_spawn),
        row!("spawn_recursively", spawn_recursively),
        row!("ring", ring),
        row!("tcp_echo_lat", tcp_echo_lat),
        row!("tcp_echo_tput", tcp_echo_tput),
        row!("tcp_echo_1k", tcp_echo_1k),
        row!("tcp_accept_churn", tcp_accept_churn),
        row!("timer_register_cancel", timer_register_cancel),
        row!("timer_fire_1m", timer_fire_1m),
        row!("timeout_ready", timeout_ready),
        row!("timer_accuracy", timer_accuracy),
        row!("nursery_fanout", nursery_fanout),
        row!("nested_nursery", nested_nursery),
        row!("cancel_fanout", cancel_fanout),
        row!("spawn_join_seq", spawn_join_seq),
        // No other runtime has supervisors: the tokio and async-executor columns run
        // `spawn_join_seq` as the reference (aim: a restart under 3x a spawn + join).
        Workload {
            name: "restart_storm",
            pitcrew: Box::new(restart_storm_pitcrew),
            tokio: Box::new(spawn_join_seq::<TokioRt>),
            async_executor: Box::new(spawn_join_seq::<AsyncExecutorRt>),
        },
    ]
}

struct Runtimes {
    pitcrew: PitcrewRt,
    tokio: TokioRt,
    async_executor: AsyncExecutorRt,
}

impl Workload {
    /// One run on runtime number `which` (an index into [`RUNTIMES`]).
    fn run_once(&self, runtimes: &Runtimes, which: usize) -> Sample {
        match which {
            0 => (self.pitcrew)(&runtimes.pitcrew),
            1 => (self.tokio)(&runtimes.tokio),
            _ => (self.async_executor)(&runtimes.async_executor),
        }
    }
}

struct Config {
    quick: bool,
    /// Measured samples per runtime, after one warm-up run.
    samples: usize,
    /// Shortest a sample should be; short workloads repeat back to back until they reach it.
    target: Duration,
    /// Rows run only if their name contains one of these (all rows when empty).
    filters: Vec<String>,
    json: Option<String>,
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        Config {
            quick,
            samples: if quick { 5 } else { 15 },
            target: Duration::from_millis(if quick { 20 } else { 100 }),
            filters: std::env::args()
                .skip(1)
                .filter(|arg| !arg.starts_with("--"))
                .collect(),
            json: std::env::var("BENCH_JSON").ok().filter(|p| !p.is_empty()),
        }
    }

    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// Kills the process if one step (building the runtimes, a warm-up run, a sample, shutting down)
/// takes longer than [`Watchdog::LIMIT`], naming it, so a hung runtime fails CI quickly instead
/// of running into its time limit.
struct Watchdog {
    current: Mutex<Option<(String, Instant)>>,
}

impl Watchdog {
    const LIMIT: Duration = Duration::from_secs(60);

    fn start() -> Arc<Self> {
        let dog = Arc::new(Watchdog {
            current: Mutex::new(None),
        });
        let watcher = Arc::clone(&dog);
        thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || loop {
                thread::sleep(Duration::from_millis(500));
                if let Some((what, since)) = &*watcher.current.lock().unwrap() {
                    if since.elapsed() > Self::LIMIT {
                        eprintln!(
                            "compare: {what} has run for over {}s; it looks hung, giving up",
                            Self::LIMIT.as_secs()
                        );
                        std::process::exit(2);
                    }
                }
            })
            .expect("start the watchdog thread");
        dog
    }

    fn watch(&self, what: String) {
        *self.current.lock().unwrap() = Some((what, Instant::now()));
    }

    fn idle(&self) {
        *self.current.lock().unwrap() = None;
    }
}

struct RowResult {
    name: &'static str,
    /// Median ns/op, in [`RUNTIMES`] order.
    ns: [f64; 3],
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // The two middle values of an even count; the same value twice for an odd count.
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

fn measure(workload: &Workload, runtimes: &Runtimes, config: &Config, dog: &Watchdog) -> RowResult {
    // Lets the previous runtime's workers go idle before the next runtime starts, so one
    // runtime's spinning threads do not eat into the next one's sample.
    let settle = || thread::sleep(Duration::from_millis(2));

    let mut reps = [1u32; 3];
    for (which, rt_name) in RUNTIMES.iter().enumerate() {
        dog.watch(format!("{} on {rt_name} (warm-up)", workload.name));
        let warm = workload.run_once(runtimes, which);
        let per_run = warm.elapsed.max(Duration::from_micros(1));
        reps[which] = config
            .target
            .div_duration_f64(per_run)
            .ceil()
            .clamp(1.0, 10_000.0) as u32;
        settle();
    }

    let mut ns = vec![Vec::with_capacity(config.samples); RUNTIMES.len()];
    for sample in 0..config.samples {
        for (which, rt_name) in RUNTIMES.iter().enumerate() {
            dog.watch(format!(
                "{} on {rt_name} (sample {}, {} runs)",
                workload.name,
                sample + 1,
                reps[which]
            ));
            let mut total = Sample {
                elapsed: Duration::ZERO,
                ops: 0,
            };
            for _ in 0..reps[which] {
                let run = workload.run_once(runtimes, which);
                total.elapsed += run.elapsed;
                total.ops += run.ops;
            }
            ns[which].push(total.ns_per_op());
            settle();
        }
    }
    dog.idle();

    RowResult {
        name: workload.name,
        ns: [median(&mut ns[0]), median(&mut ns[1]), median(&mut ns[2])],
    }
}

fn print_header(name_width: usize) {
    println!(
        "{:<name_width$} {:>14} {:>14} {:>14} {:>10} {:>10}",
        "workload (ns/op)", "pitcrew", "tokio", "async-exec", "pc/tokio", "pc/async"
    );
    println!("{}", "-".repeat(name_width + 3 * 15 + 2 * 11));
}

fn print_row(row: &RowResult, name_width: usize) {
    let [pitcrew, tokio, async_executor] = row.ns;
    println!(
        "{:<name_width$} {:>14.1} {:>14.1} {:>14.1} {:>10.2} {:>10.2}",
        row.name,
        pitcrew,
        tokio,
        async_executor,
        pitcrew / tokio,
        pitcrew / async_executor
    );
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON numbers cannot be NaN or infinite; a broken measurement becomes -1.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-1.0".to_owned()
    }
}

fn to_json(rows: &[RowResult]) -> String {
    let objects: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{{\"name\": {}, \"pitcrew_ns\": {}, \"tokio_ns\": {}, \"async_executor_ns\": {}}}",
                json_string(row.name),
                json_number(row.ns[0]),
                json_number(row.ns[1]),
                json_number(row.ns[2])
            )
        })
        .collect();
    format!("[{}]\n", objects.join(",\n "))
}

fn main() {
    let started = Instant::now();
    let config = Config::from_env();
    let rows: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| config.selects(w.name))
        .collect();
    if rows.is_empty() {
        eprintln!("compare: no workload name contains {:?}", config.filters);
        return;
    }

    let dog = Watchdog::start();
    dog.watch("building the runtimes".to_owned());
    let runtimes = Runtimes {
        pitcrew: PitcrewRt::new(),
        tokio: TokioRt::new(),
        async_executor: AsyncExecutorRt::new(),
    };
    dog.idle();

    println!(
        "pitcrew vs tokio vs async-executor: {WORKERS} workers each, median of {} samples \
         (>= {} ms each, after 1 warm-up){}",
        config.samples,
        config.target.as_millis(),
        if config.quick { ", BENCH_QUICK" } else { "" }
    );
    println!("ratios below 1.00 mean pitcrew is faster");
    let name_width = rows.iter().map(|w| w.name.len()).max().unwrap_or(0).max(16);
    print_header(name_width);

    let mut results = Vec::with_capacity(rows.len());
    for workload in &rows {
        let result = measure(workload, &runtimes, &config, &dog);
        print_row(&result, name_width);
        for line in timers::notes(result.name) {
            println!("{line}");
        }
        results.push(result);
    }

    if let Some(path) = &config.json {
        if let Err(err) = std::fs::write(path, to_json(&results)) {
            eprintln!("compare: cannot write BENCH_JSON={path}: {err}");
            std::process::exit(1);
        }
    }

    dog.watch("shutting the runtimes down".to_owned());
    drop(runtimes);
    dog.idle();
    println!("total {:.1}s", started.elapsed().as_secs_f64());
}
