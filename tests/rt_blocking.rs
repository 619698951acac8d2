//! The blocking pool: `spawn_blocking` runs closures off the workers, on threads created on
//! demand up to `max_blocking_threads` and retired after `blocking_keep_alive`.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{join, recv, wait_until, within, DropCounter, Latch, Rendezvous, TIMEOUT};

/// A runtime with the given blocking settings whose thread hooks count starts and stops (of
/// workers and blocking threads: not the timer thread).
fn pool_runtime(
    workers: usize,
    max_blocking: usize,
    keep_alive: Duration,
) -> (pitcrew::Runtime, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (started, stopped) = (started.clone(), stopped.clone());
        pitcrew::Runtime::builder()
            .workers(workers)
            .thread_name("pool")
            .max_blocking_threads(max_blocking)
            .blocking_keep_alive(keep_alive)
            .on_thread_start(move || {
                if !common::is_timer_thread() {
                    started.fetch_add(1, Ordering::SeqCst);
                }
            })
            .on_thread_stop(move || {
                if !common::is_timer_thread() {
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap()
    };
    (rt, started, stopped)
}

#[test]
fn spawn_blocking_returns_the_closure_result() {
    let rt = common::runtime(1);
    let h = rt.spawn_blocking(|| 6 * 7);
    assert_eq!(join("blocking job", h).unwrap(), 42);
}

#[test]
fn spawn_blocking_runs_off_the_worker_so_tasks_keep_running() {
    // With one worker, a blocked job would starve every task if it ran on the worker.
    let rt = common::runtime(1);
    let release = Latch::new();
    let (running_tx, running_rx) = mpsc::channel();
    let job = {
        let release = release.clone();
        rt.spawn_blocking(move || {
            running_tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "never released");
            std::thread::current().id()
        })
    };
    recv("the blocking job to start", &running_rx, TIMEOUT);
    let task = rt.spawn(async { std::thread::current().id() });
    let worker = join("a task while the blocking job is blocked", task).unwrap();
    release.open();
    let blocking = join("the blocking job", job).unwrap();
    assert_ne!(
        worker, blocking,
        "the blocking job ran on the worker thread"
    );
}

#[test]
fn spawn_blocking_free_function_inside_a_task_runs_on_the_pool() {
    let rt = common::runtime(1);
    let h = rt.spawn(async {
        let worker = std::thread::current().id();
        let job = pitcrew::spawn_blocking(|| std::thread::current().id())
            .await
            .unwrap();
        (worker, job)
    });
    let (worker, job) = join("task awaiting a blocking job", h).unwrap();
    assert_ne!(worker, job);
}

#[test]
fn handle_spawn_blocking_from_a_non_runtime_thread_runs() {
    let rt = common::runtime(1);
    let handle = rt.handle().clone();
    let h = std::thread::spawn(move || handle.spawn_blocking(|| "from afar"))
        .join()
        .unwrap();
    assert_eq!(join("blocking job", h).unwrap(), "from afar");
}

#[test]
fn blocking_pool_grows_to_run_jobs_concurrently() {
    // Two jobs that can only finish together: a pool that ran them one after another would
    // time out at the rendezvous.
    let (rt, _, _) = pool_runtime(1, 2, Duration::from_secs(10));
    let meet = Rendezvous::new(2);
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let meet = meet.clone();
            rt.spawn_blocking(move || meet.wait(TIMEOUT))
        })
        .collect();
    for j in jobs {
        assert!(
            join("a rendezvous job", j).unwrap(),
            "the two blocking jobs never ran at the same time"
        );
    }
}

#[test]
fn blocking_pool_never_runs_more_than_max_blocking_threads_at_once() {
    const MAX: usize = 2;
    const JOBS: usize = 3;
    let (rt, started, _) = pool_runtime(1, MAX, Duration::from_secs(10));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let jobs: Vec<_> = (0..JOBS)
        .map(|_| {
            let (running, peak, entered, permits, threads) = (
                running.clone(),
                peak.clone(),
                entered.clone(),
                permits.clone(),
                threads.clone(),
            );
            rt.spawn_blocking(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                entered.fetch_add(1, Ordering::SeqCst);
                threads.lock().unwrap().insert(std::thread::current().id());
                // Each job leaves only when the test hands out a permit.
                let (lock, cv) = &*permits;
                let guard = lock.lock().unwrap();
                let (mut guard, timeout) =
                    cv.wait_timeout_while(guard, TIMEOUT, |n| *n == 0).unwrap();
                assert!(!timeout.timed_out(), "never given a permit");
                *guard -= 1;
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    let grant = |n: usize| {
        let (lock, cv) = &*permits;
        *lock.lock().unwrap() += n;
        cv.notify_all();
    };
    wait_until("two jobs to be running", TIMEOUT, || {
        entered.load(Ordering::SeqCst) >= MAX
    });
    // A pool without a cap starts the third job at once. No event can prove it will not start,
    // so give it a moment to show up; a correct pool passes however long this is.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        entered.load(Ordering::SeqCst),
        MAX,
        "a third blocking job started while {MAX} were running (max_blocking_threads = {MAX})"
    );
    // Free one slot: the queued job must now run, on one of the two threads.
    grant(1);
    wait_until("the queued job to start", TIMEOUT, || {
        entered.load(Ordering::SeqCst) == JOBS
    });
    grant(JOBS);
    for j in jobs {
        join("a blocking job", j).unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), MAX, "peak concurrency");
    assert!(
        threads.lock().unwrap().len() <= MAX,
        "jobs ran on more than {MAX} distinct threads"
    );
    // One worker plus at most MAX blocking threads were ever started.
    assert!(started.load(Ordering::SeqCst) <= 1 + MAX);
}

#[test]
fn idle_blocking_threads_retire_after_keep_alive() {
    let (rt, started, stopped) = pool_runtime(1, 4, Duration::from_millis(50));
    let job = rt.spawn_blocking(|| std::thread::current().id());
    join("a blocking job", job).unwrap();
    wait_until(
        "one worker and one blocking thread to start",
        TIMEOUT,
        || started.load(Ordering::SeqCst) >= 2,
    );
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "one worker and one blocking thread"
    );
    wait_until("the idle blocking thread to retire", TIMEOUT, || {
        stopped.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        1,
        "only the blocking thread stops"
    );
    // The pool starts a fresh thread for later work.
    let again = rt.spawn_blocking(|| 3);
    assert_eq!(join("a later blocking job", again).unwrap(), 3);
    assert_eq!(started.load(Ordering::SeqCst), 3);
    within("drop", TIMEOUT, move || drop(rt));
    assert_eq!(
        started.load(Ordering::SeqCst),
        stopped.load(Ordering::SeqCst)
    );
}

#[test]
fn blocking_threads_are_reused_within_keep_alive() {
    // Jobs that run strictly one after another (each waits for the previous handle) on a pool
    // with a long keep-alive should not need a thread each.
    let (rt, started, _) = pool_runtime(1, 16, Duration::from_secs(10));
    for i in 0..20 {
        let h = rt.spawn_blocking(move || i);
        assert_eq!(join("a blocking job", h).unwrap(), i);
    }
    let blocking_threads = started.load(Ordering::SeqCst) - 1;
    assert!(
        blocking_threads < 20,
        "{blocking_threads} blocking threads for 20 sequential jobs: idle threads are not reused"
    );
}

#[test]
fn panicking_blocking_job_is_a_panic_join_error() {
    let rt = common::runtime(1);
    fn boom() -> u8 {
        panic!("intentional panic in a blocking job")
    }
    let h = rt.spawn_blocking(boom);
    let err = join("the blocking job", h).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        common::panic_message(&*err.into_panic()),
        "intentional panic in a blocking job"
    );
    let after = rt.spawn_blocking(|| 1);
    assert_eq!(join("a later blocking job", after).unwrap(), 1);
}

#[test]
fn spawn_blocking_after_shutdown_resolves_cancelled_without_running() {
    let rt = common::runtime(1);
    let handle = rt.handle().clone();
    within("drop", TIMEOUT, move || drop(rt));
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter(drops.clone());
    let h = handle.spawn_blocking(move || {
        let _guard = guard;
        unreachable!("a job spawned after shutdown must not run");
    });
    let err = join("a blocking job spawned after shutdown", h).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    wait_until("the closure to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn queued_blocking_jobs_are_dropped_once_at_shutdown() {
    // One blocking thread, kept busy; the jobs queued behind it never run and must be dropped.
    let (rt, _, _) = pool_runtime(1, 1, Duration::from_secs(10));
    let release = Latch::new();
    let (running_tx, running_rx) = mpsc::channel();
    let busy = {
        let release = release.clone();
        rt.spawn_blocking(move || {
            running_tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "never released");
        })
    };
    recv("the busy job to start", &running_rx, TIMEOUT);
    let drops = Arc::new(AtomicUsize::new(0));
    let queued: Vec<_> = (0..5)
        .map(|_| {
            let guard = DropCounter(drops.clone());
            rt.spawn_blocking(move || drop(guard))
        })
        .collect();
    let handle = rt.handle().clone();
    let dropping = std::thread::spawn(move || drop(rt));
    common::wait_for_shutdown_to_begin(&handle, || async {});
    // Shutdown waits for the running job (it cannot be interrupted); let it end.
    release.open();
    within("drop with a busy blocking thread", TIMEOUT, move || {
        dropping.join().unwrap()
    });
    join("the busy job", busy).unwrap();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        5,
        "each queued job dropped (or run) once"
    );
    for h in queued {
        // Whether a queued job still ran before shutdown reached it is a race; either way its
        // handle resolves.
        let _ = join("a queued job's handle", h);
    }
}
