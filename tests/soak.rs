//! Soak tests: the runtime under sustained churn gives back everything it took. Each soak checks
//! its counting invariant (created = completed + cancelled = dropped, fired + cancelled =
//! created, every byte echoed, every child dropped before its parent resumes, thread starts =
//! stops) and that the live heap (a counting global allocator), the fd count and the runtime's
//! gauges come back to where they started.
//!
//! Written once, parameterised by size: `cargo test` runs them small; `PITCREW_SOAK=full` runs
//! the sizes of RELIABILITY.md (see `ci/soak`), and `PITCREW_SOAK_<NAME>=n` overrides one
//! figure (the names are in [`size`]'s callers). Each soak prints one line starting with
//! `SOAK ` of `key=value` figures, which `ci/soak` gathers into its table. The soaks run one
//! at a time (a lock), since the heap and fd figures are process-wide.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::net::Shutdown;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Once};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::counting_alloc::live_bytes;
use common::{panic_message, wait_until, within, WakerSlot};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use pitcrew::net::{TcpListener, TcpStream};
use pitcrew::scope::{self, nursery, Nursery, ScopeError};
use pitcrew::time::{sleep, sleep_until};
use pitcrew::{Handle, Runtime};

// ---------------------------------------------------------------------------------------------
// Measuring: a counting allocator, RSS, fds.

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

/// How far the live heap may end above where it started.
const HEAP_SLACK: isize = 64 << 10;

/// How far RSS may grow from the first cycle to the last: far below what a leak of even a few
/// bytes per task would add at full size, far above allocator noise.
const RSS_SLACK_KIB: u64 = 32 << 10;

/// Resident set size in KiB, from `/proc/self/statm`.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf reads a configuration value; no memory is involved.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

/// Open file descriptors of this process.
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// Waits until the heap is back within [`HEAP_SLACK`] of `before` (threads that just ended may
/// still be freeing their locals), then returns it; fails loudly if it never comes back.
#[track_caller]
fn heap_settles(what: &str, before: isize) -> isize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = live_bytes();
        if now - before <= HEAP_SLACK {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: live heap {now} B is {} B above the baseline {before} B (slack {HEAP_SLACK} B)",
            now - before
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the fd count is back to `before`, failing loudly if it never is.
#[track_caller]
fn fds_settle(what: &str, before: usize) -> usize {
    wait_until(
        &format!("{what}: fd count back to {before}"),
        budget(),
        || fd_count() == before,
    );
    fd_count()
}

// ---------------------------------------------------------------------------------------------
// Sizes, reports, serialisation.

fn full() -> bool {
    std::env::var("PITCREW_SOAK").is_ok_and(|v| v == "full")
}

/// A soak figure: `PITCREW_SOAK_<NAME>` if set, else the full or the PR size.
fn size(name: &str, pr: u64, full_size: u64) -> u64 {
    let var = format!("PITCREW_SOAK_{name}");
    match std::env::var(&var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a number")),
        Err(_) if full() => full_size,
        Err(_) => pr,
    }
}

/// The bound on one phase of a soak: generous at PR size for a loaded machine (and valgrind),
/// and under `ci/soak`'s 30 minutes at full size.
fn budget() -> Duration {
    if full() {
        Duration::from_secs(25 * 60)
    } else {
        Duration::from_secs(180)
    }
}

/// Prints the machine-readable line `ci/soak` gathers.
fn report(soak: &str, figures: &[(&str, String)]) {
    let mut line = format!("SOAK soak={soak}");
    for (k, v) in figures {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}

/// Holds the soak lock: one soak at a time, since heap and fd figures are process-wide. Also
/// silences the planned panics of the scope soak (the default hook still reports any other).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with("soak: planned") {
                default(info);
            }
        }));
    });
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    warm_up();
    guard
}

/// Builds, uses and drops one runtime, so lazily built process-wide state (thread-local keys,
/// tracing call sites, the epoch collector) exists before a baseline is taken.
fn warm_up() {
    let rt = runtime(2);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let accept = pitcrew::spawn(async move { listener.accept().await.map(|_| ()) });
        drop(TcpStream::connect(addr).await.expect("connect"));
        accept.await.unwrap().expect("accept");
        sleep(Duration::from_millis(1)).await;
        let _ = nursery(|n: Nursery<()>| async move {
            n.spawn(async { Ok(()) });
            Ok::<(), ()>(())
        })
        .await;
    });
    drop(rt);
}

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("build a runtime")
}

/// Waits until the runtime has no live task.
#[track_caller]
fn no_task_alive(what: &str, rt: &Runtime) {
    wait_until(&format!("{what}: no task alive"), budget(), || {
        rt.metrics().alive == 0
    });
}

/// A seeded splitmix64: soak shapes are reproducible from the seed they print.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    size("SEED", 0x5eed, 0x5eed)
}

fn kib_list(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

#[track_caller]
fn assert_rss_flat(what: &str, rss: &[u64]) {
    let (first, last) = (rss[0], rss[rss.len() - 1]);
    assert!(
        last <= first + RSS_SLACK_KIB,
        "{what}: RSS grew from {first} KiB to {last} KiB over the cycles ({rss:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// spawn: tasks from several threads, a third awaited, a third detached, a third aborted.

#[derive(Default)]
struct Tally {
    created: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    dropped: AtomicU64,
}

/// Lives inside a task's future: its drop is the future's drop.
struct Tracked {
    tally: Arc<Tally>,
    done: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let outcome = if self.done {
            &self.tally.completed
        } else {
            &self.tally.cancelled
        };
        outcome.fetch_add(1, SeqCst);
        self.tally.dropped.fetch_add(1, SeqCst);
    }
}

fn tracked_task(tally: &Arc<Tally>, yields: u64) -> impl Future<Output = u64> + Send + 'static {
    tally.created.fetch_add(1, SeqCst);
    let tracked = Tracked {
        tally: tally.clone(),
        done: false,
    };
    async move {
        // Moved whole (not just the field written below), so it drops with the future.
        let mut tracked = tracked;
        for _ in 0..yields {
            pitcrew::yield_now().await;
        }
        tracked.done = true;
        yields
    }
}

/// One spawner thread's share: batches of three kinds of task.
fn spawn_from_thread(handle: Handle, tally: Arc<Tally>, tasks: u64) {
    const BATCH: u64 = 300;
    let mut left = tasks;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        let (mut awaited, mut aborted) = (Vec::new(), Vec::new());
        for i in 0..n {
            let h = handle.spawn(tracked_task(&tally, i % 4));
            match i % 3 {
                0 => awaited.push((i % 4, h)),
                1 => drop(h),
                _ => {
                    // Half aborted at once (often before the first poll), half later (while
                    // pending or after completing).
                    if i % 2 == 0 {
                        h.abort();
                    }
                    aborted.push(h);
                }
            }
        }
        for (yields, h) in awaited {
            assert_eq!(
                futures_lite::future::block_on(h).expect("awaited task"),
                yields
            );
        }
        for h in aborted {
            h.abort();
            match futures_lite::future::block_on(h) {
                Ok(_) => {}
                Err(e) => assert!(e.is_cancelled(), "an aborted task ended with {e}"),
            }
        }
    }
}

#[test]
fn spawn_soak_accounts_for_every_task_and_gives_back_its_memory() {
    let _serial = serial();
    const THREADS: u64 = 4;
    const CYCLES: usize = 3;
    let per_cycle = size("SPAWN", 60_000, 10_000_000) / CYCLES as u64;
    let started = Instant::now();
    let (fds_before, heap_before) = (fd_count(), live_bytes());

    let rt = runtime(2);
    let tally = Arc::new(Tally::default());
    // One small cycle first, so queues and per-worker buffers reach their working size.
    spawn_from_thread(rt.handle().clone(), tally.clone(), 600);
    no_task_alive("spawn warm-up", &rt);
    let heap_running = live_bytes();

    let mut rss = Vec::new();
    let mut heap_cycles = Vec::new();
    for cycle in 0..CYCLES {
        let (handle, tally2) = (rt.handle().clone(), tally.clone());
        within("a spawn cycle", budget(), move || {
            let spawners: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (handle, tally) = (handle.clone(), tally2.clone());
                    std::thread::spawn(move || {
                        spawn_from_thread(handle, tally, per_cycle / THREADS)
                    })
                })
                .collect();
            for s in spawners {
                s.join().expect("a spawner thread");
            }
        });
        wait_until("every spawned future dropped", budget(), || {
            tally.dropped.load(SeqCst) == tally.created.load(SeqCst)
        });
        no_task_alive("spawn cycle", &rt);
        heap_cycles.push(heap_settles(&format!("spawn cycle {cycle}"), heap_running));
        rss.push(rss_kib());
    }
    let metrics = rt.metrics();
    within("drop the runtime", budget(), move || drop(rt));
    let heap_after = heap_settles("spawn soak, runtime dropped", heap_before);
    let fds_after = fds_settle("spawn soak", fds_before);

    let created = tally.created.load(SeqCst);
    let completed = tally.completed.load(SeqCst);
    let cancelled = tally.cancelled.load(SeqCst);
    let dropped = tally.dropped.load(SeqCst);
    assert_eq!(
        created,
        completed + cancelled,
        "created = completed + cancelled"
    );
    assert_eq!(created, dropped, "created = futures dropped");
    assert_eq!(metrics.spawned, created, "the runtime counted every spawn");
    assert!(cancelled > 0, "no abort took effect before completion");
    assert_rss_flat("spawn soak", &rss);
    report(
        "spawn",
        &[
            ("tasks", created.to_string()),
            ("completed", completed.to_string()),
            ("cancelled", cancelled.to_string()),
            ("dropped", dropped.to_string()),
            ("polls", metrics.polls.to_string()),
            ("steals", metrics.steals.to_string()),
            ("heap_before", heap_before.to_string()),
            (
                "heap_cycles",
                heap_cycles
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("heap_after", heap_after.to_string()),
            ("rss_kib", kib_list(&rss)),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// wake storm: many wakes from two threads; a task is never polled twice at once.

struct Storm {
    in_poll: AtomicBool,
    sent: AtomicU64,
    polls: AtomicU64,
    slot: Arc<WakerSlot>,
    overlaps: Arc<AtomicU64>,
    target: u64,
}

/// Pending until `target` wakes were sent to it; counts polls that overlap another poll.
struct StormTask(Arc<Storm>);

impl Future for StormTask {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let s = &self.0;
        if s.in_poll.swap(true, SeqCst) {
            s.overlaps.fetch_add(1, SeqCst);
        }
        s.polls.fetch_add(1, SeqCst);
        // Stored before reading `sent`: a wake sent after the read finds this waker.
        s.slot.store(cx.waker());
        let done = s.sent.load(SeqCst) >= s.target;
        // A little work inside the poll widens the window in which a second poll would overlap.
        std::hint::black_box((0..32u64).sum::<u64>());
        s.in_poll.store(false, SeqCst);
        if done {
            Poll::Ready(s.polls.load(SeqCst))
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn wake_storm_never_polls_a_task_twice_at_once_and_every_task_completes() {
    let _serial = serial();
    let tasks = size("WAKE_TASKS", 500, 10_000) as usize;
    let wakes = size("WAKES", 200, 1_000) / 2 * 2;
    let started = Instant::now();
    let (fds_before, heap_before, rss_before) = (fd_count(), live_bytes(), rss_kib());
    let rt = runtime(2);
    let overlaps = Arc::new(AtomicU64::new(0));
    let storms: Arc<Vec<Arc<Storm>>> = Arc::new(
        (0..tasks)
            .map(|_| {
                Arc::new(Storm {
                    in_poll: AtomicBool::new(false),
                    sent: AtomicU64::new(0),
                    polls: AtomicU64::new(0),
                    slot: WakerSlot::new(),
                    overlaps: overlaps.clone(),
                    target: wakes,
                })
            })
            .collect(),
    );
    let handles: Vec<_> = storms
        .iter()
        .map(|s| rt.spawn(StormTask(s.clone())))
        .collect();
    let storms2 = storms.clone();
    let polls = within("the wake storm", budget(), move || {
        let wakers: Vec<_> = (0..2)
            .map(|_| {
                let storms = storms2.clone();
                std::thread::spawn(move || {
                    for _ in 0..wakes / 2 {
                        for s in storms.iter() {
                            s.sent.fetch_add(1, SeqCst);
                            s.slot.wake_keep();
                        }
                    }
                })
            })
            .collect();
        for w in wakers {
            w.join().expect("a waker thread");
        }
        handles
            .into_iter()
            .map(|h| futures_lite::future::block_on(h).expect("a storm task"))
            .sum::<u64>()
    });
    no_task_alive("wake storm", &rt);
    let overlapping = overlaps.load(SeqCst);
    assert!(storms.iter().all(|s| s.sent.load(SeqCst) == wakes));
    drop(storms);
    within("drop the runtime", budget(), move || drop(rt));
    let heap_after = heap_settles("wake storm", heap_before);
    let fds_after = fds_settle("wake storm", fds_before);
    assert_eq!(overlapping, 0, "polls of one task overlapped");
    report(
        "wake_storm",
        &[
            ("tasks", tasks.to_string()),
            ("wakes", (tasks as u64 * wakes).to_string()),
            ("polls", polls.to_string()),
            ("overlapping_polls", overlapping.to_string()),
            ("rss_kib", format!("{rss_before},{}", rss_kib())),
            ("heap_before", heap_before.to_string()),
            ("heap_after", heap_after.to_string()),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// timer churn: timers of 0-50 ms, half cancelled.

#[derive(Default)]
struct Timers {
    fired: AtomicU64,
    cancelled: AtomicU64,
    early: AtomicU64,
}

async fn one_timer(t: Arc<Timers>, millis: u64, cancel: bool) {
    let deadline = Instant::now() + Duration::from_millis(millis);
    let mut timer = pin!(sleep_until(deadline));
    if cancel {
        // Registered by the first poll, then dropped while pending: cancelled.
        for _ in 0..(millis % 3) + 1 {
            if futures_lite::future::poll_once(timer.as_mut())
                .await
                .is_some()
            {
                break;
            }
            pitcrew::yield_now().await;
        }
        if !timer.is_elapsed() {
            t.cancelled.fetch_add(1, SeqCst);
            return;
        }
    }
    timer.await;
    if Instant::now() < deadline {
        t.early.fetch_add(1, SeqCst);
    }
    t.fired.fetch_add(1, SeqCst);
}

#[test]
fn timer_churn_fires_or_cancels_every_timer_and_none_early() {
    let _serial = serial();
    const BATCH: u64 = 10_000;
    let created = size("TIMERS", 6_000, 1_000_000);
    let started = Instant::now();
    let (fds_before, heap_before, rss_before) = (fd_count(), live_bytes(), rss_kib());
    let rt = runtime(2);
    let t = Arc::new(Timers::default());
    let mut rng = Rng(seed());
    let mut left = created;
    while left > 0 {
        let n = left.min(BATCH);
        left -= n;
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let cancel = i % 2 == 1;
                let millis = if cancel {
                    1 + rng.below(50)
                } else {
                    rng.below(51)
                };
                rt.spawn(one_timer(t.clone(), millis, cancel))
            })
            .collect();
        within("a batch of timers", budget(), move || {
            for h in handles {
                futures_lite::future::block_on(h).expect("a timer task");
            }
        });
    }
    wait_until("every timer freed", budget(), || rt.metrics().timers == 0);
    no_task_alive("timer churn", &rt);
    within("drop the runtime", budget(), move || drop(rt));
    let heap_after = heap_settles("timer churn", heap_before);
    let fds_after = fds_settle("timer churn", fds_before);
    let (fired, cancelled) = (t.fired.load(SeqCst), t.cancelled.load(SeqCst));
    assert_eq!(fired + cancelled, created, "fired + cancelled = created");
    assert_eq!(
        t.early.load(SeqCst),
        0,
        "timers fired before their deadline"
    );
    assert!(fired >= created / 2 && cancelled > 0);
    report(
        "timer_churn",
        &[
            ("timers", created.to_string()),
            ("fired", fired.to_string()),
            ("cancelled", cancelled.to_string()),
            ("early", t.early.load(SeqCst).to_string()),
            ("rss_kib", format!("{rss_before},{}", rss_kib())),
            ("heap_before", heap_before.to_string()),
            ("heap_after", heap_after.to_string()),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// io echo: connections × messages × 1 KiB over loopback.

const MESSAGE: usize = 1024;

async fn echo_client(addr: std::net::SocketAddr, conn: u64, messages: u64) -> u64 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut out, mut back) = ([0u8; MESSAGE], [0u8; MESSAGE]);
    let mut echoed = 0;
    for m in 0..messages {
        for (i, b) in out.iter_mut().enumerate() {
            *b = (conn as usize * 31 + m as usize * 7 + i) as u8;
        }
        (&stream).write_all(&out).await.expect("write a message");
        (&stream)
            .read_exact(&mut back)
            .await
            .expect("read the echo");
        assert!(
            out == back,
            "connection {conn} message {m} came back changed"
        );
        echoed += MESSAGE as u64;
    }
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    (&stream).read_to_end(&mut rest).await.expect("read to EOF");
    assert!(rest.is_empty(), "bytes after the last echo");
    echoed
}

#[test]
fn io_echo_soak_returns_every_byte_and_every_fd_and_registration() {
    let _serial = serial();
    let connections = size("CONNECTIONS", 32, 1_000);
    let messages = size("MESSAGES", 200, 1_000);
    let started = Instant::now();
    let (fds_before, heap_before, rss_before) = (fd_count(), live_bytes(), rss_kib());
    let rt = runtime(2);
    let fds_running = fd_count();
    let regs_before = rt.metrics().io_registrations;
    let handle = rt.handle().clone();
    let echoed = within("the echo soak", budget(), move || {
        handle.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().unwrap();
            let server = pitcrew::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.expect("accept");
                    pitcrew::spawn(async move {
                        let (mut r, mut w) = (&stream, &stream);
                        futures_lite::io::copy(&mut r, &mut w).await.expect("echo");
                        stream.shutdown(Shutdown::Write).expect("shutdown");
                    });
                }
            });
            let clients: Vec<_> = (0..connections)
                .map(|c| pitcrew::spawn(echo_client(addr, c, messages)))
                .collect();
            let mut echoed = 0;
            for c in clients {
                echoed += c.await.expect("a client");
            }
            server.abort();
            assert!(server.await.unwrap_err().is_cancelled());
            echoed
        })
    });
    no_task_alive("io echo", &rt);
    wait_until("I/O registrations back to baseline", budget(), || {
        rt.metrics().io_registrations == regs_before
    });
    let fds_running_after = fds_settle("io echo, runtime running", fds_running);
    within("drop the runtime", budget(), move || drop(rt));
    let heap_after = heap_settles("io echo", heap_before);
    let fds_after = fds_settle("io echo", fds_before);
    assert_eq!(
        echoed,
        connections * messages * MESSAGE as u64,
        "every byte back"
    );
    report(
        "io_echo",
        &[
            ("connections", connections.to_string()),
            ("messages", (connections * messages).to_string()),
            ("bytes", echoed.to_string()),
            ("registrations_before", regs_before.to_string()),
            ("fds_running_before", fds_running.to_string()),
            ("fds_running_after", fds_running_after.to_string()),
            ("rss_kib", format!("{rss_before},{}", rss_kib())),
            ("heap_before", heap_before.to_string()),
            ("heap_after", heap_after.to_string()),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// scope tree: nested nurseries with seeded cancels, errors and panics.

#[derive(Default)]
struct Tree {
    scopes: AtomicU64,
    /// Child futures alive anywhere in the tree.
    live: AtomicI64,
    /// Times a nursery returned while one of its children's futures was still alive.
    early_resumes: AtomicU64,
    panics: AtomicU64,
    errors: AtomicU64,
    cancels: AtomicU64,
}

/// Lives inside a child's future: counts it in its parent's scope and in the whole tree.
struct ChildGuard {
    tree: Arc<Tree>,
    siblings: Arc<AtomicI64>,
}

impl ChildGuard {
    fn new(tree: &Arc<Tree>, siblings: &Arc<AtomicI64>) -> ChildGuard {
        tree.live.fetch_add(1, SeqCst);
        siblings.fetch_add(1, SeqCst);
        ChildGuard {
            tree: tree.clone(),
            siblings: siblings.clone(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.siblings.fetch_sub(1, SeqCst);
        self.tree.live.fetch_sub(1, SeqCst);
    }
}

type NodeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What a nursery body or a leaf does after starting its children.
fn act(tree: &Tree, rng: &mut Rng, n: Option<&Nursery<String>>) -> Result<(), String> {
    match rng.below(100) {
        0..=5 => {
            if let Some(n) = n {
                tree.cancels.fetch_add(1, SeqCst);
                n.cancel();
            }
            Ok(())
        }
        6..=8 => {
            tree.panics.fetch_add(1, SeqCst);
            panic!("soak: planned panic");
        }
        9..=14 => {
            tree.errors.fetch_add(1, SeqCst);
            Err("soak: planned error".to_string())
        }
        _ => Ok(()),
    }
}

/// A leaf: yields, sleeps briefly or waits for cancellation, then acts.
async fn leaf(tree: Arc<Tree>, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    match rng.below(4) {
        0 => {}
        1 => {
            for _ in 0..rng.below(4) {
                pitcrew::yield_now().await;
                if scope::checkpoint().is_err() {
                    return Ok(());
                }
            }
        }
        2 => sleep(Duration::from_micros(rng.below(2_000))).await,
        _ => {
            let wait = sleep(Duration::from_millis(rng.below(3)));
            futures_lite::future::or(
                async {
                    let _ = scope::cancelled().await;
                },
                wait,
            )
            .await
        }
    }
    act(&tree, &mut rng, None)
}

/// A scope at `depth` whose body spawns `fanout` children (scopes, or leaves at the bottom),
/// then acts; when the nursery returns, none of its children may still be alive.
fn node(tree: Arc<Tree>, depth: u32, max_depth: u32, fanout: u64, seed: u64) -> NodeFuture {
    Box::pin(async move {
        tree.scopes.fetch_add(1, SeqCst);
        let children = Arc::new(AtomicI64::new(0));
        let (tree2, children2) = (tree.clone(), children.clone());
        let result = nursery(move |n: Nursery<String>| async move {
            let mut rng = Rng(seed);
            for _ in 0..fanout {
                let guard = ChildGuard::new(&tree2, &children2);
                let (tree, child_seed) = (tree2.clone(), rng.next());
                if depth + 1 < max_depth {
                    n.spawn(async move {
                        let _guard = guard;
                        node(tree, depth + 1, max_depth, fanout, child_seed).await
                    });
                } else {
                    n.spawn(async move {
                        let _guard = guard;
                        leaf(tree, child_seed).await
                    });
                }
            }
            pitcrew::yield_now().await;
            act(&tree2, &mut rng, Some(&n))
        })
        .await;
        if children.load(SeqCst) != 0 {
            tree.early_resumes.fetch_add(1, SeqCst);
        }
        match result {
            Ok(()) | Err(ScopeError::Cancelled(_)) => Ok(()),
            Err(ScopeError::Failed(failures)) => Err(format!("{} failures", failures.len())),
        }
    })
}

#[test]
fn scope_tree_drops_every_child_before_its_parent_resumes() {
    let _serial = serial();
    let opened_wanted = size("SCOPES", 3_000, 100_000);
    let (fanout, max_depth) = if full() { (4u64, 6) } else { (3u64, 5) };
    let per_tree = (fanout.pow(max_depth) - 1) / (fanout - 1);
    let seed = seed();
    let started = Instant::now();
    let (fds_before, heap_before, rss_before) = (fd_count(), live_bytes(), rss_kib());
    let rt = runtime(2);
    let tree = Arc::new(Tree::default());
    let mut rng = Rng(seed);
    // Cancels and failures stop many subtrees before they open: trees are run, four at a
    // time, until the scopes actually opened reach the figure.
    let mut trees = 0;
    while tree.scopes.load(SeqCst) < opened_wanted {
        let batch: Vec<_> = (0..4)
            .map(|_| rt.spawn(node(tree.clone(), 0, max_depth, fanout, rng.next())))
            .collect();
        trees += 4;
        within("a batch of scope trees", budget(), move || {
            batch
                .into_iter()
                .map(futures_lite::future::block_on)
                .for_each(drop)
        });
    }
    no_task_alive("scope tree", &rt);
    let tasks = rt.metrics().spawned;
    within("drop the runtime", budget(), move || drop(rt));
    let heap_after = heap_settles("scope tree", heap_before);
    let fds_after = fds_settle("scope tree", fds_before);
    assert_eq!(
        tree.early_resumes.load(SeqCst),
        0,
        "a nursery resumed before a child dropped"
    );
    assert_eq!(tree.live.load(SeqCst), 0, "child futures left alive");
    let scopes = tree.scopes.load(SeqCst);
    assert!(tree.panics.load(SeqCst) > 0 && tree.cancels.load(SeqCst) > 0);
    report(
        "scope_tree",
        &[
            ("scopes", scopes.to_string()),
            ("trees", trees.to_string()),
            ("tasks", tasks.to_string()),
            ("per_tree", per_tree.to_string()),
            ("panics", tree.panics.load(SeqCst).to_string()),
            ("errors", tree.errors.load(SeqCst).to_string()),
            ("cancels", tree.cancels.load(SeqCst).to_string()),
            ("seed", seed.to_string()),
            ("rss_kib", format!("{rss_before},{}", rss_kib())),
            ("heap_before", heap_before.to_string()),
            ("heap_after", heap_after.to_string()),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// runtime churn: runtimes built and dropped with pending tasks, timers and a listener.

#[derive(Default)]
struct Churn {
    thread_starts: AtomicU64,
    thread_stops: AtomicU64,
    spawned: AtomicU64,
    dropped: AtomicU64,
}

/// Counts a future's drop.
struct Dropped(Arc<Churn>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, SeqCst);
    }
}

/// One runtime's life: a pending task, a long timer and a listener waiting to accept; every
/// other runtime waits until all three are registered before dropping it.
fn churn_once(c: &Arc<Churn>, i: u64) {
    let (c1, c2) = (c.clone(), c.clone());
    let rt = Runtime::builder()
        .workers(1 + (i % 2) as usize)
        .on_thread_start(move || {
            c1.thread_starts.fetch_add(1, SeqCst);
        })
        .on_thread_stop(move || {
            c2.thread_stops.fetch_add(1, SeqCst);
        })
        .build()
        .expect("build a runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let (ready, registered) = mpsc::channel();
    let tasks: [Pin<Box<dyn Future<Output = ()> + Send>>; 3] = [
        Box::pin(std::future::pending()),
        Box::pin(async { sleep(Duration::from_secs(3_600)).await }),
        Box::pin(async move { drop(listener.accept().await) }),
    ];
    for task in tasks {
        let (guard, ready) = (Dropped(c.clone()), ready.clone());
        c.spawned.fetch_add(1, SeqCst);
        rt.spawn(async move {
            let _guard = guard;
            let mut task = task;
            let first = futures_lite::future::poll_once(task.as_mut()).await;
            assert!(first.is_none(), "a churn task ended");
            let _ = ready.send(());
            task.await
        });
    }
    if i % 2 == 0 {
        for _ in 0..3 {
            common::recv("a churn task registered", &registered, budget());
        }
    }
    drop(rt);
}

#[test]
fn runtime_churn_stops_every_thread_and_gives_back_fds_and_heap() {
    let _serial = serial();
    const CYCLES: u64 = 3;
    let runtimes = size("RUNTIMES", 90, 10_000).div_ceil(CYCLES) * CYCLES;
    let started = Instant::now();
    let (fds_before, heap_before) = (fd_count(), live_bytes());
    let c = Arc::new(Churn::default());
    let mut rss = Vec::new();
    let mut heap_cycles = Vec::new();
    for cycle in 0..CYCLES {
        let c2 = c.clone();
        within("a runtime churn cycle", budget(), move || {
            for i in 0..runtimes / CYCLES {
                churn_once(&c2, cycle * runtimes + i);
            }
        });
        heap_cycles.push(heap_settles(
            &format!("runtime churn cycle {cycle}"),
            heap_before,
        ));
        rss.push(rss_kib());
    }
    let fds_after = fds_settle("runtime churn", fds_before);
    let heap_after = heap_settles("runtime churn", heap_before);
    let (starts, stops) = (c.thread_starts.load(SeqCst), c.thread_stops.load(SeqCst));
    assert_eq!(starts, stops, "thread starts = thread stops");
    // Workers (1 or 2, alternating) and a timer thread per runtime.
    assert!(starts >= runtimes * 2, "too few thread starts: {starts}");
    assert_eq!(
        c.spawned.load(SeqCst),
        c.dropped.load(SeqCst),
        "every task dropped"
    );
    assert_rss_flat("runtime churn", &rss);
    report(
        "runtime_churn",
        &[
            ("runtimes", runtimes.to_string()),
            ("thread_starts", starts.to_string()),
            ("thread_stops", stops.to_string()),
            ("tasks_dropped", c.dropped.load(SeqCst).to_string()),
            ("heap_before", heap_before.to_string()),
            (
                "heap_cycles",
                heap_cycles
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("heap_after", heap_after.to_string()),
            ("rss_kib", kib_list(&rss)),
            ("fds_before", fds_before.to_string()),
            ("fds_after", fds_after.to_string()),
            ("secs", format!("{:.1}", started.elapsed().as_secs_f64())),
        ],
    );
}
