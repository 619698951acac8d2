//! `Runtime::block_on` and `Handle::block_on`: they drive a future on the calling thread with
//! the runtime entered, from any non-runtime thread, and refuse to run on a runtime thread.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::sync::mpsc;

use common::{join, panic_message, within, TIMEOUT};
use pitcrew::Handle;

#[test]
fn block_on_returns_the_future_output() {
    let rt = common::runtime(1);
    assert_eq!(rt.block_on(async { 6 * 7 }), 42);
}

#[test]
fn block_on_waits_for_a_wake_from_another_thread() {
    let rt = common::runtime(1);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (waiting_tx, waiting_rx) = mpsc::channel::<()>();
    // The value is sent only once the blocked-on future has started waiting.
    let sender = std::thread::spawn(move || {
        common::recv("block_on to start waiting", &waiting_rx, TIMEOUT);
        tx.send(11).unwrap();
    });
    let v = within("block_on on a channel", TIMEOUT, move || {
        rt.block_on(async move {
            let mut rx = rx;
            let mut waiting = Some(waiting_tx);
            std::future::poll_fn(|cx| {
                let poll = std::pin::Pin::new(&mut rx).poll(cx);
                if poll.is_pending() {
                    if let Some(w) = waiting.take() {
                        w.send(()).unwrap();
                    }
                }
                poll
            })
            .await
            .unwrap()
        })
    });
    sender.join().unwrap();
    assert_eq!(v, 11);
}

#[test]
fn block_on_can_be_called_repeatedly() {
    let rt = common::runtime(2);
    for i in 0..100 {
        assert_eq!(
            rt.block_on(async move { pitcrew::spawn(async move { i }).await })
                .unwrap(),
            i
        );
    }
}

#[test]
fn handle_current_works_inside_block_on() {
    let rt = common::runtime(2);
    let v = within("block_on", TIMEOUT, move || {
        rt.block_on(async {
            assert!(Handle::try_current().is_ok());
            Handle::current().spawn(async { 8 }).await.unwrap()
        })
    });
    assert_eq!(v, 8);
}

#[test]
fn handle_block_on_works_from_a_non_runtime_thread() {
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let v = handle.block_on(async {
            let inner = Handle::current().spawn(async { 20 });
            pitcrew::spawn(async { 1 }).await.unwrap() + inner.await.unwrap()
        });
        tx.send(v).unwrap();
    });
    assert_eq!(
        common::recv("Handle::block_on from a std thread", &rx, TIMEOUT),
        21
    );
    t.join().unwrap();
    drop(rt);
}

#[test]
fn handle_block_on_from_many_threads_at_once() {
    let rt = common::runtime(2);
    let threads: Vec<_> = (0..4u32)
        .map(|i| {
            let handle = rt.handle().clone();
            std::thread::spawn(move || {
                handle.block_on(async move { pitcrew::spawn(async move { i * 2 }).await.unwrap() })
            })
        })
        .collect();
    let got = within(
        "four concurrent Handle::block_on calls",
        TIMEOUT,
        move || {
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        },
    );
    assert_eq!(got, vec![0, 2, 4, 6]);
}

#[test]
fn block_on_on_a_runtime_thread_panics_with_a_clear_message() {
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let h = rt.spawn(async move { handle.block_on(async {}) });
    let err = join("the task calling block_on", h).expect_err("block_on on a worker must panic");
    assert!(err.is_panic(), "expected a panic, got {err:?}");
    let msg = panic_message(&*err.into_panic());
    assert_eq!(
        msg,
        "cannot block_on inside a pitcrew runtime thread; .await instead"
    );
    // The worker survived.
    assert_eq!(join("a later task", rt.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn block_on_panic_reaches_the_caller_with_its_payload() {
    let rt = common::runtime(1);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async { std::panic::panic_any(1234_u32) })
    }))
    .expect_err("the panic propagates out of block_on");
    assert_eq!(err.downcast_ref::<u32>(), Some(&1234));
    // The runtime is still usable afterwards.
    assert_eq!(rt.block_on(async { 2 }), 2);
}
