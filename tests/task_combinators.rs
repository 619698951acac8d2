//! asyncio-style combinators: join_all, try_join_all, wait, as_completed, spawn_after.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use pitcrew::task::{self, ReturnWhen};
use pitcrew::Runtime;
use tokio::sync::oneshot;

use common::{within, TIMEOUT};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().expect("runtime")
}

#[test]
fn join_all_returns_every_result_in_order_errors_included() {
    within("join_all", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(async {
            let a = pitcrew::spawn(async { 1 });
            let b = pitcrew::spawn(async {
                if true {
                    panic!("b failed");
                }
                2
            });
            let c = pitcrew::spawn(async { 3 });
            task::join_all(vec![a, b, c]).await
        });
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert!(out[1].as_ref().unwrap_err().is_panic());
        assert_eq!(*out[2].as_ref().unwrap(), 3);
    });
}

#[test]
fn try_join_all_aborts_the_rest_on_the_first_error() {
    within("try_join_all", TIMEOUT, || {
        let rt = rt();
        rt.block_on(async {
            let never = pitcrew::spawn(std::future::pending::<u32>());
            let abort = never.abort_handle();
            let failing = pitcrew::spawn(async {
                if true {
                    panic!("first error");
                }
                0u32
            });
            let err = task::try_join_all(vec![never, failing]).await.unwrap_err();
            assert!(err.is_panic());
            // The pending one was aborted.
            while !abort.is_finished() {
                pitcrew::yield_now().await;
            }
        });
        let ok = rt.block_on(task::try_join_all(
            (0..5u32).map(|i| rt.spawn(async move { i })),
        ));
        assert_eq!(ok.unwrap(), [0, 1, 2, 3, 4]);
    });
}

#[test]
fn wait_first_completed_leaves_the_rest_running() {
    within("wait first completed", TIMEOUT, || {
        let rt = rt();
        rt.block_on(async {
            let (tx, rx) = oneshot::channel::<u32>();
            let slow = pitcrew::spawn(async move { rx.await.unwrap() });
            let quick = pitcrew::spawn(async { 7u32 });
            let quick_id = quick.id();
            let (done, pending) =
                task::wait(vec![slow, quick], ReturnWhen::FirstCompleted, None).await;
            assert_eq!(done.len(), 1);
            assert_eq!(done[0].0, quick_id);
            assert_eq!(*done[0].1.as_ref().unwrap(), 7);
            assert_eq!(pending.len(), 1);
            tx.send(9).unwrap();
            let rest = task::join_all(pending).await;
            assert_eq!(
                *rest[0].as_ref().unwrap(),
                9,
                "the pending task kept running"
            );
        });
    });
}

#[test]
fn wait_first_error_returns_on_a_failure_or_when_all_are_done() {
    within("wait first error", TIMEOUT, || {
        let rt = rt();
        rt.block_on(async {
            let slow = pitcrew::spawn(std::future::pending::<u32>());
            let bad = pitcrew::spawn(async {
                if true {
                    panic!("bad");
                }
                0u32
            });
            let (done, pending) = task::wait(vec![slow, bad], ReturnWhen::FirstError, None).await;
            assert_eq!(done.len(), 1);
            assert!(done[0].1.is_err());
            assert_eq!(pending.len(), 1);
            for p in pending {
                p.abort();
            }
            let (done, pending) = task::wait(
                vec![
                    pitcrew::spawn(async { 1u32 }),
                    pitcrew::spawn(async { 2u32 }),
                ],
                ReturnWhen::FirstError,
                None,
            )
            .await;
            assert_eq!(done.len(), 2, "no failure: waits for all");
            assert!(pending.is_empty());
        });
    });
}

#[test]
fn wait_with_a_timeout_returns_what_finished_so_far() {
    within("wait timeout", TIMEOUT, || {
        let rt = rt();
        rt.block_on(async {
            let started = Instant::now();
            let (done, pending) = task::wait(
                vec![
                    pitcrew::spawn(async { 1u32 }),
                    pitcrew::spawn(std::future::pending::<u32>()),
                ],
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(20)),
            )
            .await;
            assert!(started.elapsed() >= Duration::from_millis(20));
            assert_eq!(done.len(), 1);
            assert_eq!(pending.len(), 1);
            for p in pending {
                p.abort();
            }
        });
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    within("as_completed", TIMEOUT, || {
        let rt = rt();
        rt.block_on(async {
            let (tx1, rx1) = oneshot::channel::<&str>();
            let (tx2, rx2) = oneshot::channel::<&str>();
            let first_spawned = pitcrew::spawn(async move { rx1.await.unwrap() });
            let second_spawned = pitcrew::spawn(async move { rx2.await.unwrap() });
            let mut stream = task::as_completed(vec![first_spawned, second_spawned]);
            tx2.send("second spawned, first done").unwrap();
            assert_eq!(
                stream.next().await.unwrap().unwrap(),
                "second spawned, first done"
            );
            tx1.send("first spawned, last done").unwrap();
            assert_eq!(
                stream.next().await.unwrap().unwrap(),
                "first spawned, last done"
            );
            assert!(stream.next().await.is_none());
        });
    });
}

#[test]
fn spawn_after_starts_the_future_after_the_delay() {
    within("spawn_after", TIMEOUT, || {
        let rt = rt();
        let started = Instant::now();
        let polled_at = rt.block_on(async {
            task::spawn_after(Duration::from_millis(20), async { Instant::now() })
                .await
                .unwrap()
        });
        assert!(polled_at.duration_since(started) >= Duration::from_millis(20));
    });
}
