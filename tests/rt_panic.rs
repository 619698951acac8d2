//! Panics in tasks are contained: the task ends with a panic `JoinError` carrying the payload,
//! its state is dropped once, no worker dies, and a runtime whose `block_on` future panicked
//! still shuts down.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{join, panic_message, recv, wait_until, within, DropCounter, TIMEOUT};

/// A runtime whose thread start/stop hooks count into the returned counters (workers and
/// blocking threads: not the timer thread).
fn counted_runtime(workers: usize) -> (pitcrew::Runtime, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (started, stopped) = (started.clone(), stopped.clone());
        pitcrew::Runtime::builder()
            .workers(workers)
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
fn thousand_panicking_tasks_leave_the_runtime_healthy() {
    const N: usize = 1_000;
    let (rt, started, stopped) = counted_runtime(2);
    wait_until("both workers to start", TIMEOUT, || {
        started.load(Ordering::SeqCst) == 2
    });
    let handles: Vec<_> = (0..N)
        .map(|i| rt.spawn(async move { std::panic::panic_any(i) }))
        .collect();
    let errors = within("1,000 panicking tasks", TIMEOUT, move || {
        futures_lite::future::block_on(async move {
            let mut errors = Vec::new();
            for h in handles {
                errors.push(h.await.expect_err("a panicking task has no output"));
            }
            errors
        })
    });
    for (i, err) in errors.into_iter().enumerate() {
        assert!(err.is_panic(), "task {i}: expected a panic, got {err:?}");
        assert!(!err.is_cancelled());
        let payload = err.into_panic();
        assert_eq!(
            payload.downcast_ref::<usize>(),
            Some(&i),
            "task {i}: wrong payload"
        );
    }
    // Still healthy: a later task runs, and no worker thread died or was replaced.
    let later = rt.spawn(async { "alive" });
    assert_eq!(join("a task after the panics", later).unwrap(), "alive");
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "a worker thread exited");
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "a worker thread was restarted"
    );
    assert_eq!(rt.metrics().workers, 2);
}

#[test]
fn panic_in_a_single_worker_runtime_does_not_stop_its_only_worker() {
    let (rt, started, stopped) = counted_runtime(1);
    let h = rt.spawn(async { panic!("intentional panic on the only worker") });
    let err = join("the panicking task", h).unwrap_err();
    assert_eq!(
        panic_message(&*err.into_panic()),
        "intentional panic on the only worker"
    );
    let later = rt.spawn(async { 5 });
    assert_eq!(join("a later task", later).unwrap(), 5);
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(stopped.load(Ordering::SeqCst), 0);
}

#[test]
fn try_into_panic_returns_the_payload_of_a_panicked_task() {
    let rt = common::runtime(1);
    let h = rt.spawn(async { panic!("intentional {}", "formatted panic") });
    let err = join("the panicking task", h).unwrap_err();
    let payload = err.try_into_panic().expect("a panicked task has a payload");
    assert_eq!(panic_message(&*payload), "intentional formatted panic");
}

#[test]
fn panicking_task_drops_its_state_exactly_once() {
    let rt = common::runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = {
        let guard = DropCounter(drops.clone());
        rt.spawn(async move {
            let _held_across_await = guard;
            rx.await.unwrap();
            panic!("intentional panic after an await");
        })
    };
    tx.send(()).unwrap();
    assert!(join("the panicking task", h).unwrap_err().is_panic());
    wait_until("the task state to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

/// Panics when dropped.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("intentional panic in a future's Drop");
        }
    }
}

#[test]
fn future_panicking_in_drop_on_abort_is_contained() {
    let (rt, _started, stopped) = counted_runtime(1);
    let (started_tx, started_rx) = mpsc::channel();
    let h = rt.spawn(async move {
        let _bomb = PanicsOnDrop;
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    recv("the task to start", &started_rx, TIMEOUT);
    h.abort();
    // Either a cancellation or the drop's panic is acceptable; a hang or a dead worker is not.
    let err = join("the aborted task", h).expect_err("aborted");
    assert!(err.is_cancelled() || err.is_panic(), "{err:?}");
    let later = rt.spawn(async { 6 });
    assert_eq!(join("a later task", later).unwrap(), 6);
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "the worker died");
}

#[test]
fn task_output_panicking_in_drop_does_not_kill_the_worker() {
    let (rt, _started, stopped) = counted_runtime(1);
    // The handle is gone before the task completes, so the runtime drops the output.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(rt.spawn(async move {
        rx.await.unwrap();
        PanicsOnDrop
    }));
    tx.send(()).unwrap();
    let later = rt.spawn(async { 7 });
    assert_eq!(join("a later task", later).unwrap(), 7);
    let again = rt.spawn(async { 8 });
    assert_eq!(join("another task", again).unwrap(), 8);
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "the worker died");
}

#[test]
fn dropping_a_runtime_after_its_block_on_future_panicked_does_not_hang() {
    let (rt, started, stopped) = counted_runtime(2);
    // Leave some work behind: a pending task and a queued one.
    drop(rt.spawn(std::future::pending::<()>()));
    drop(rt.spawn(async { pitcrew::yield_now().await }));
    let rt = within("block_on whose future panics", TIMEOUT, move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                drop(pitcrew::spawn(std::future::pending::<()>()));
                panic!("intentional panic inside block_on")
            })
        }));
        let payload = result.expect_err("the panic propagates out of block_on");
        assert_eq!(
            panic_message(&*payload),
            "intentional panic inside block_on"
        );
        rt
    });
    within("dropping the runtime", TIMEOUT, move || drop(rt));
    assert_eq!(
        started.load(Ordering::SeqCst),
        stopped.load(Ordering::SeqCst),
        "drop returned before every runtime thread stopped"
    );
}
