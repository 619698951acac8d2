//! `JoinHandle` and `JoinError`: outputs, detaching, `is_finished`, error conversions and the
//! auto traits users rely on.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{join, recv, runtime, wait_until, within, DropCounter, Latch, TIMEOUT};
use pitcrew::task::{AbortHandle, Id, JoinError, JoinHandle};

fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}
fn assert_error_send_sync<T: std::error::Error + Send + Sync + 'static>() {}
fn assert_id_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Display + std::fmt::Debug>() {}

#[test]
fn join_handle_is_send_sync_unpin() {
    // The output need only be Send (a Cell is not Sync): the handle is still Sync, since it
    // never hands out a shared reference to the output.
    assert_send_sync_unpin::<JoinHandle<()>>();
    assert_send_sync_unpin::<JoinHandle<std::cell::Cell<u8>>>();
    assert_send_sync_unpin::<AbortHandle>();
}

#[test]
fn join_error_is_a_send_sync_error_and_id_has_its_traits() {
    assert_error_send_sync::<JoinError>();
    assert_id_traits::<Id>();
}

#[test]
fn join_handle_resolves_to_the_task_output() {
    let rt = runtime(2);
    let h = rt.spawn(async { String::from("output") });
    assert_eq!(join("task", h).unwrap(), "output");
}

#[test]
fn join_handle_is_woken_when_the_task_completes_later() {
    let rt = runtime(2);
    let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
    let h = rt.spawn(async move { rx.await.unwrap() });
    // Await the handle from another thread first, so its waker is registered before completion.
    let waiter = std::thread::spawn(move || futures_lite::future::block_on(h));
    std::thread::spawn(move || tx.send(3).unwrap())
        .join()
        .unwrap();
    let v = within("the awaited handle", TIMEOUT, move || {
        waiter.join().unwrap()
    });
    assert_eq!(v.unwrap(), 3);
}

#[test]
fn dropping_a_join_handle_detaches_the_task_and_it_keeps_running() {
    let rt = runtime(2);
    let gate = Latch::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let h = {
        let gate = gate.clone();
        rt.spawn(async move {
            started_tx.send(()).unwrap();
            // Wait on something the runtime knows nothing about, then report.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                if gate.wait(TIMEOUT) {
                    let _ = tx.send(());
                }
            });
            rx.await.unwrap();
            done_tx.send("finished").unwrap();
        })
    };
    recv("the task to start", &started_rx, TIMEOUT);
    drop(h);
    gate.open();
    assert_eq!(
        recv("the detached task to finish", &done_rx, TIMEOUT),
        "finished"
    );
}

#[test]
fn is_finished_is_false_while_pending_and_true_after_completion() {
    let rt = runtime(2);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = rt.spawn(async move { rx.await.unwrap() });
    assert!(!h.is_finished());
    tx.send(()).unwrap();
    wait_until("is_finished to become true", TIMEOUT, || h.is_finished());
    join("task", h).unwrap();
}

#[test]
fn task_output_is_dropped_once_when_the_join_handle_is_dropped_first() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = {
        let drops = drops.clone();
        rt.spawn(async move {
            rx.await.unwrap();
            DropCounter(drops)
        })
    };
    drop(h);
    tx.send(()).unwrap();
    wait_until("the unclaimed output to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn task_output_is_dropped_once_when_the_join_handle_is_dropped_after_completion() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let h = {
        let drops = drops.clone();
        rt.spawn(async move { DropCounter(drops) })
    };
    wait_until("the task to finish", TIMEOUT, || h.is_finished());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "output dropped while still claimable"
    );
    drop(h);
    wait_until("the output to be dropped with its handle", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn join_handle_id_matches_join_error_id() {
    let rt = runtime(1);
    let h = rt.spawn(async { std::panic::panic_any("intentional panic for join_error_id") });
    let id = h.id();
    let err = join("panicking task", h).unwrap_err();
    assert_eq!(err.id(), id);
}

#[test]
fn cancelled_join_error_reports_cancellation_not_panic() {
    let rt = runtime(1);
    let h = rt.spawn(std::future::pending::<()>());
    h.abort();
    let err = join("aborted task", h).unwrap_err();
    assert!(err.is_cancelled());
    assert!(!err.is_panic());
    assert!(
        err.to_string().to_lowercase().contains("cancel"),
        "Display of a cancelled JoinError: {err}"
    );
    let err = err
        .try_into_panic()
        .expect_err("a cancelled task has no panic payload");
    assert!(err.is_cancelled());
}

#[test]
fn join_error_converts_into_io_error() {
    let rt = runtime(1);
    let cancelled = rt.spawn(std::future::pending::<()>());
    cancelled.abort();
    let cancelled = join("aborted task", cancelled).unwrap_err();
    let panicked = join(
        "panicking task",
        rt.spawn(async { std::panic::panic_any("intentional panic for io conversion") }),
    )
    .unwrap_err();

    let io: std::io::Error = cancelled.into();
    assert!(
        io.to_string().to_lowercase().contains("cancel"),
        "io::Error from a cancelled JoinError: {io}"
    );
    let io: std::io::Error = panicked.into();
    assert!(
        io.to_string().to_lowercase().contains("panic"),
        "io::Error from a panicked JoinError: {io}"
    );

    // `?` works in a function returning io::Result.
    fn via_question_mark(e: JoinError) -> std::io::Result<()> {
        Err(e)?;
        Ok(())
    }
    let again = rt.spawn(std::future::pending::<()>());
    again.abort();
    assert!(via_question_mark(join("aborted task", again).unwrap_err()).is_err());
}
