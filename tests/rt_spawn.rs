//! Spawning tasks: from workers, from `block_on`, from plain threads; every task runs exactly
//! once and queued work is not stranded behind a busy worker.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{join, recv, runtime, wait_until, within, Latch, TIMEOUT};

#[test]
fn one_million_tiny_tasks_all_complete() {
    const N: usize = 1_000_000;
    const HALF: usize = N / 2;
    let rt = runtime(2);
    let done = Arc::new(AtomicUsize::new(0));

    // Half are spawned from a worker (local queues, overflow, stealing), half from this
    // non-runtime thread (the injector); every handle is dropped, so the tasks are detached.
    let from_worker = {
        let done = done.clone();
        rt.spawn(async move {
            for _ in 0..HALF {
                let done = done.clone();
                drop(pitcrew::spawn(async move {
                    done.fetch_add(1, Ordering::Relaxed);
                }));
            }
        })
    };
    for _ in 0..HALF {
        let done = done.clone();
        drop(rt.spawn(async move {
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    join("the spawning task", from_worker).expect("spawning task completes");
    wait_until(
        "all 1,000,000 tasks to run",
        Duration::from_secs(60),
        || done.load(Ordering::Relaxed) >= N,
    );
    within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(
        done.load(Ordering::SeqCst),
        N,
        "some task ran more than once"
    );
}

#[test]
fn join_handles_return_each_task_output() {
    let rt = runtime(2);
    let handles: Vec<_> = (0..1_000u64)
        .map(|i| rt.spawn(async move { i * 3 }))
        .collect();
    let outputs = within("joining 1,000 tasks", TIMEOUT, move || {
        rt.block_on(async move {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.expect("task completes"));
            }
            out
        })
    });
    assert_eq!(outputs, (0..1_000u64).map(|i| i * 3).collect::<Vec<_>>());
}

#[test]
fn task_spawned_from_a_non_runtime_thread_runs_on_a_worker() {
    let rt = pitcrew::Runtime::builder()
        .workers(2)
        .thread_name("remote-spawn")
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The JoinHandle is dropped at once: the task must still run.
        drop(handle.spawn(async move {
            tx.send(std::thread::current().name().map(str::to_owned))
                .unwrap();
        }));
    })
    .join()
    .unwrap();
    let name = recv("the remotely spawned task to run", &rx, TIMEOUT);
    let name = name.expect("worker threads are named");
    assert!(
        name.starts_with("remote-spawn-"),
        "task ran on thread {name:?}, not on a worker"
    );
}

#[test]
fn runtime_spawn_from_the_owning_thread_runs() {
    let rt = runtime(1);
    let h = rt.spawn(async { 7 });
    assert_eq!(join("rt.spawn task", h).unwrap(), 7);
}

#[test]
fn task_spawned_from_inside_a_task_runs() {
    let rt = runtime(2);
    let outer = rt.spawn(async {
        let inner = pitcrew::spawn(async { 40 });
        inner.await.unwrap() + 2
    });
    assert_eq!(join("nested spawn", outer).unwrap(), 42);
}

#[test]
fn task_spawned_from_block_on_runs() {
    let rt = runtime(2);
    let v = within("block_on", TIMEOUT, move || {
        rt.block_on(async { pitcrew::spawn(async { 5 }).await.unwrap() })
    });
    assert_eq!(v, 5);
}

#[test]
fn tasks_queued_behind_a_blocked_worker_are_run_by_another_worker() {
    // One task blocks its worker thread inside a poll after queueing children locally; the
    // children can only run if the other worker takes them.
    const CHILDREN: usize = 16;
    let rt = pitcrew::Runtime::builder()
        .workers(2)
        .thread_name("steal")
        .build()
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let release = Latch::new();
    let (tx, rx) = mpsc::channel();
    let blocker = {
        let ran = ran.clone();
        let release = release.clone();
        rt.spawn(async move {
            let me = std::thread::current().id();
            let mut children = Vec::new();
            for _ in 0..CHILDREN {
                let ran = ran.clone();
                children.push(pitcrew::spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                    std::thread::current().id()
                }));
            }
            // Block the worker (not just the task) until the test has seen the children run.
            tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "never released");
            let mut threads = HashSet::new();
            for c in children {
                threads.insert(c.await.unwrap());
            }
            (me, threads)
        })
    };
    recv("the blocker to queue its children", &rx, TIMEOUT);
    // A LIFO-style slot may legitimately hold one child back; the rest must move.
    wait_until(
        "children queued on a blocked worker to run elsewhere",
        TIMEOUT,
        || ran.load(Ordering::SeqCst) >= CHILDREN - 1,
    );
    release.open();
    let (blocker_thread, child_threads) = join("the blocker", blocker).unwrap();
    assert!(
        child_threads.iter().any(|t| *t != blocker_thread),
        "no child ran on another worker"
    );
}

#[test]
fn spawn_outside_a_runtime_panics_naming_pitcrew_and_try_current() {
    let err = std::panic::catch_unwind(|| drop(pitcrew::spawn(async {})))
        .expect_err("pitcrew::spawn outside a runtime must panic");
    let msg = common::panic_message(&*err);
    assert!(
        msg.contains("pitcrew"),
        "message does not name pitcrew: {msg:?}"
    );
    assert!(
        msg.contains("Handle::try_current"),
        "message does not point at Handle::try_current: {msg:?}"
    );
}

#[test]
fn spawn_blocking_free_function_outside_a_runtime_panics_naming_pitcrew() {
    let err = std::panic::catch_unwind(|| drop(pitcrew::spawn_blocking(|| ())))
        .expect_err("pitcrew::spawn_blocking outside a runtime must panic");
    let msg = common::panic_message(&*err);
    assert!(
        msg.contains("pitcrew"),
        "message does not name pitcrew: {msg:?}"
    );
}
