//! Nurseries: every child joined, the first failure cancels the rest, failures come back in
//! order, child options, cancellation counters and grace.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use pitcrew::scope::{
    self, nursery, nursery_with, CancelReason, FailureKind, ScopeError, ScopeOptions,
};
use pitcrew::task::{self, SpawnError};
use pitcrew::Runtime;

use common::{within, TIMEOUT};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().expect("runtime")
}

/// Bumps a counter when dropped.
struct OnDrop(Arc<AtomicUsize>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn nursery_returns_only_after_every_child_was_dropped() {
    within("nursery joins", TIMEOUT, || {
        let rt = rt();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let out = rt.block_on(nursery(move |n| async move {
            for i in 0..50u64 {
                let guard = OnDrop(d.clone());
                n.spawn(async move {
                    let _guard = guard;
                    pitcrew::time::sleep(Duration::from_millis(i % 5)).await;
                    Ok::<_, String>(())
                });
            }
            Ok::<_, String>(7)
        }));
        assert_eq!(out.unwrap(), 7);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            50,
            "a child outlived its nursery"
        );
    });
}

#[test]
fn first_failure_cancels_siblings_and_comes_first() {
    within("first failure", TIMEOUT, || {
        let rt = rt();
        let saw_cancel = Arc::new(AtomicUsize::new(0));
        let s = saw_cancel.clone();
        // A grace period, so the siblings get to see the cancellation before they are dropped.
        let opts = ScopeOptions::new().grace(Duration::from_secs(10));
        let out = rt.block_on(nursery_with(opts, move |n| async move {
            for _ in 0..3 {
                let s = s.clone();
                n.spawn(async move {
                    let c = scope::cancelled().await;
                    assert!(matches!(c.reason, CancelReason::SiblingFailed(_)));
                    s.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                });
            }
            let failing = n
                .child()
                .name("failing")
                .spawn(async { Err::<(), _>("boom".to_string()) });
            let id = failing.id();
            scope::cancelled().await;
            Ok::<_, String>(id)
        }));
        match out {
            Err(ScopeError::Failed(f)) => {
                assert_eq!(f.len(), 1);
                assert_eq!(f[0].name.as_deref(), Some("failing"));
                assert!(matches!(&f[0].kind, FailureKind::Error(e) if e == "boom"));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(saw_cancel.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn two_failures_are_both_reported_trigger_first() {
    within("two failures", TIMEOUT, || {
        let rt = rt();
        // A grace period, so the second child gets to see the cancellation and fail too.
        let opts = ScopeOptions::new().grace(Duration::from_secs(10));
        let out = rt.block_on(nursery_with(opts, |n| async move {
            n.spawn(async { Err::<(), _>("first") });
            // The second fails after seeing the cancellation the first caused.
            n.spawn(async {
                scope::cancelled().await;
                Err::<(), _>("second")
            });
            Ok::<_, &str>(())
        }));
        // The second failed after the scope was cancelled by the first: both are reported.
        match out {
            Err(ScopeError::Failed(f)) => {
                assert_eq!(f.len(), 2);
                assert!(matches!(f[0].kind, FailureKind::Error("first")));
                assert!(matches!(f[1].kind, FailureKind::Error("second")));
            }
            other => panic!("expected failures, got {other:?}"),
        }
    });
}

#[test]
fn a_panic_is_a_failure_and_into_first_resumes_it() {
    within("panic", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            n.spawn(async {
                if true {
                    panic!("child exploded");
                }
                Ok::<(), String>(())
            });
            scope::cancelled().await;
            Ok::<(), String>(())
        }));
        let err = out.unwrap_err();
        assert!(matches!(err.failures()[0].kind, FailureKind::Panic(_)));
        let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| err.into_first()));
        let payload = resumed.unwrap_err();
        assert_eq!(*payload.downcast::<&str>().unwrap(), "child exploded");
    });
}

#[test]
fn body_failure_cancels_children() {
    within("body failure", TIMEOUT, || {
        let rt = rt();
        let cancelled = Arc::new(AtomicUsize::new(0));
        let c = cancelled.clone();
        let opts = ScopeOptions::new().grace(Duration::from_secs(10));
        let out = rt.block_on(nursery_with(opts, move |n| async move {
            let c = c.clone();
            n.spawn(async move {
                scope::cancelled().await;
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            Err::<(), _>("body gave up")
        }));
        match out {
            Err(ScopeError::Failed(f)) => {
                assert!(f[0].task.is_none(), "the body's failure has no task id");
            }
            other => panic!("expected failure, got {other:?}"),
        }
        assert_eq!(cancelled.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn swallowing_a_cancellation_does_not_help() {
    within("checkpoint fires again", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery_with(
            ScopeOptions::new().grace(Duration::from_secs(5)),
            |n| async move {
                n.cancel();
                assert!(scope::checkpoint().is_err());
                // Ignore it, and look again: still cancelled.
                assert!(scope::checkpoint().is_err());
                assert!(scope::is_cancelled());
                Ok::<_, String>(1)
            },
        ));
        // The body returned its value within the grace period.
        assert_eq!(out.unwrap(), 1);
    });
}

#[test]
fn explicit_cancel_with_zero_grace_drops_the_body() {
    within("hard cancel", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            n.cancel();
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        }));
        match out {
            Err(ScopeError::Cancelled(c)) => assert_eq!(c.reason, CancelReason::Explicit),
            other => panic!("expected cancelled, got {other:?}"),
        }
    });
}

#[test]
fn uncancel_within_grace_lets_the_scope_carry_on() {
    within("uncancel", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery_with(
            ScopeOptions::new().grace(Duration::from_secs(10)),
            |n| async move {
                let child = n.spawn(async {
                    scope::cancelled().await;
                    // Asked to stop, but the request is withdrawn: keep going.
                    Ok::<_, String>("kept going")
                });
                n.cancel();
                assert_eq!(n.cancelling(), 1);
                let v = child.await.unwrap();
                assert_eq!(n.uncancel(), 0);
                assert!(!scope::is_cancelled());
                Ok::<_, String>(v)
            },
        ));
        assert_eq!(out.unwrap(), "kept going");
    });
}

#[test]
fn cancel_requests_are_counted() {
    within("counters", TIMEOUT, || {
        let rt = rt();
        rt.block_on(nursery_with(
            ScopeOptions::new().grace(Duration::from_secs(10)),
            |n| async move {
                n.cancel();
                n.cancel();
                assert_eq!(n.cancelling(), 2);
                assert_eq!(n.uncancel(), 1);
                assert!(scope::is_cancelled());
                assert_eq!(n.uncancel(), 0);
                assert_eq!(n.uncancel(), 0, "never below zero");
                assert!(!scope::is_cancelled());
                Ok::<_, String>(())
            },
        ))
        .unwrap();
    });
}

#[test]
fn isolated_failure_stays_on_its_handle() {
    within("isolated", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            let h = n.child().isolated().spawn(async { Err::<(), _>(5u32) });
            let err = h.await.unwrap_err();
            assert!(err.is_failed());
            assert_eq!(*err.into_failure().unwrap().downcast::<u32>().unwrap(), 5);
            assert!(!scope::is_cancelled());
            Ok::<_, u32>("fine")
        }));
        assert_eq!(out.unwrap(), "fine");
    });
}

#[test]
fn master_child_ending_cancels_the_scope() {
    within("master", TIMEOUT, || {
        let rt = rt();
        let stopped = Arc::new(AtomicUsize::new(0));
        let s = stopped.clone();
        let opts = ScopeOptions::new().grace(Duration::from_secs(10));
        let out = rt.block_on(nursery_with(opts, move |n| async move {
            let s = s.clone();
            n.spawn(async move {
                scope::cancelled().await;
                s.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            n.child().master().spawn(async { Ok::<_, String>(()) });
            Ok::<_, String>(3)
        }));
        assert_eq!(out.unwrap(), 3);
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn background_child_is_cancelled_once_the_rest_ends() {
    within("background", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            let bg = n.child().background().spawn(async {
                scope::cancelled().await;
                Ok::<_, String>("cancelled at the end")
            });
            n.spawn(async {
                pitcrew::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            });
            // Keep the handle to check it after the nursery ends.
            Ok::<_, String>(bg)
        }));
        let bg = out.unwrap();
        match rt.block_on(bg) {
            Ok(msg) => assert_eq!(msg, "cancelled at the end"),
            Err(e) => assert!(e.is_cancelled()),
        }
    });
}

#[test]
fn deadline_cancels_nested_nursery_tasks() {
    within("deadline", TIMEOUT, || {
        let rt = rt();
        let started = Instant::now();
        let out = rt.block_on(nursery_with(
            ScopeOptions::new().timeout(Duration::from_millis(20)),
            |n| async move {
                n.spawn(async {
                    let inner = nursery(|n2| async move {
                        n2.spawn(async {
                            std::future::pending::<()>().await;
                            Ok::<(), String>(())
                        });
                        let c = scope::cancelled().await;
                        assert_eq!(c.reason, CancelReason::Deadline);
                        Ok::<_, String>(())
                    })
                    .await;
                    assert!(inner.is_ok());
                    Ok::<(), String>(())
                });
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            },
        ));
        match out {
            Err(ScopeError::Cancelled(c)) => assert_eq!(c.reason, CancelReason::Deadline),
            other => panic!("expected a deadline, got {other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn spawning_into_a_finished_nursery_is_refused() {
    within("closed", TIMEOUT, || {
        let rt = rt();
        let n = rt
            .block_on(nursery(|n| async move { Ok::<_, String>(n.clone()) }))
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let err = n
            .child()
            .try_spawn(async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            })
            .unwrap_err();
        assert_eq!(err, SpawnError::Closed);
        let handle = n.spawn(async { Ok::<(), String>(()) });
        let res = rt.block_on(handle);
        assert!(res.unwrap_err().is_cancelled());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn ten_thousand_children() {
    within("10k children", TIMEOUT, || {
        let rt = rt();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        rt.block_on(nursery(move |n| async move {
            for _ in 0..10_000 {
                let c = c.clone();
                n.spawn(async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                });
            }
            Ok::<_, String>(())
        }))
        .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 10_000);
    });
}

#[test]
fn plain_spawn_inside_a_nursery_belongs_to_its_scope() {
    within("plain spawn", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            let plain = pitcrew::spawn(async {
                scope::cancelled().await;
                "cancelled with the scope"
            });
            n.cancel();
            Ok::<_, String>(plain)
        }));
        // Hard-cancelled (zero grace) or finished after seeing the cancellation: either way the
        // scope reached it, and it ended before the nursery returned.
        let plain = out.unwrap();
        match rt.block_on(plain) {
            Ok(msg) => assert_eq!(msg, "cancelled with the scope"),
            Err(e) => assert!(e.is_cancelled()),
        }
    });
}

#[test]
fn aborting_the_owner_reaps_the_children_before_its_handle_resolves() {
    within("owner aborted", TIMEOUT, || {
        let rt = rt();
        let dropped = Arc::new(AtomicUsize::new(0));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let d = dropped.clone();
        let owner = rt.spawn(async move {
            let _ = nursery(move |n| async move {
                for _ in 0..20 {
                    let guard = OnDrop(d.clone());
                    n.spawn(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Ok::<(), String>(())
                    });
                }
                let _ = started_tx.send(());
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            })
            .await;
        });
        started_rx.recv_timeout(TIMEOUT).expect("nursery started");
        owner.abort();
        let res = rt.block_on(owner);
        assert!(res.unwrap_err().is_cancelled());
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            20,
            "children outlived the task that owned their nursery"
        );
    });
}

#[test]
fn a_nursery_that_loses_a_race_reaps_its_children_at_once() {
    within("nursery dropped", TIMEOUT, || {
        let rt = rt();
        let dropped = Arc::new(AtomicUsize::new(0));
        let spawned = Arc::new(AtomicBool::new(false));
        let (d, s) = (dropped.clone(), spawned.clone());
        let mut racer = Box::pin(nursery(move |n| async move {
            for _ in 0..20 {
                let guard = OnDrop(d.clone());
                n.spawn(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    Ok::<(), String>(())
                });
            }
            s.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok::<(), String>(())
        }));
        // A two-way race, as `select!` runs it: the other branch is ready once the children
        // are spawned, and the nursery future is dropped mid-flight.
        let d = dropped.clone();
        let (won, dropped_before) = rt.block_on(async move {
            let won = std::future::poll_fn(|cx| {
                if racer.as_mut().poll(cx).is_ready() {
                    Poll::Ready(true)
                } else if spawned.load(Ordering::SeqCst) {
                    Poll::Ready(false)
                } else {
                    Poll::Pending
                }
            })
            .await;
            let before = d.load(Ordering::SeqCst);
            drop(racer);
            (won, before)
        });
        assert!(!won, "the nursery never returns on its own");
        assert_eq!(dropped_before, 0, "nothing is dropped before the race ends");
        assert_eq!(dropped.load(Ordering::SeqCst), 20);
    });
}

/// Regression: dropping a nursery whose children were already hard-cancelled (queued to be
/// dropped on a worker) spun forever on a single worker, waiting for those children.
#[test]
fn dropping_a_nursery_after_it_hard_cancelled_its_children_does_not_hang_one_worker() {
    within("nursery dropped after hard cancel", TIMEOUT, || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let task = rt.spawn(async move {
            let mut inner = Box::pin(nursery(move |n| async move {
                for _ in 0..2 {
                    let guard = OnDrop(d.clone());
                    n.spawn(async move {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Ok::<(), String>(())
                    });
                }
                n.cancel();
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }));
            // The first poll runs the body, which cancels the scope; on the second the nursery
            // sees its cancellation and, with no grace, aborts its children, which queues them
            // on this (the only) worker. Then it is dropped.
            for _ in 0..2 {
                let polled = futures_lite::future::poll_once(inner.as_mut()).await;
                assert!(polled.is_none());
            }
            drop(inner);
        });
        rt.block_on(task).unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn task_dump_shows_the_scope_path() {
    within("dump", TIMEOUT, || {
        let rt = rt();
        let handle = rt.handle().clone();
        rt.block_on(nursery_with(
            ScopeOptions::new().name("outer"),
            move |n| async move {
                let inner = n.spawn(async {
                    nursery_with(ScopeOptions::new().name("inner"), |n2| async move {
                        let parked = n2
                            .child()
                            .name("deep")
                            .spawn(std::future::pending::<Result<(), String>>());
                        // Let it be polled once.
                        pitcrew::yield_now().await;
                        let tasks = task::dump(&pitcrew::Handle::current());
                        let deep = tasks
                            .iter()
                            .find(|t| t.id == parked.id())
                            .expect("the parked child is live");
                        assert_eq!(deep.name.as_deref(), Some("deep"));
                        let path: Vec<&str> = deep.scope_path.iter().map(|s| &**s).collect();
                        assert_eq!(path, ["outer", "inner"]);
                        n2.cancel();
                        Ok::<_, String>(())
                    })
                    .await
                    .map_err(|e| format!("{e:?}"))
                });
                let _ = inner.await;
                let _ = &handle;
                Ok::<_, String>(())
            },
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
    });
}

#[test]
fn a_deadline_can_be_moved_while_the_nursery_runs() {
    within("set_deadline", TIMEOUT, || {
        let rt = rt();
        let started = Instant::now();
        let out = rt.block_on(nursery_with(
            ScopeOptions::new().timeout(Duration::from_secs(3600)),
            |n| async move {
                n.set_deadline(Instant::now() + Duration::from_millis(15));
                assert!(n.deadline().unwrap() < Instant::now() + Duration::from_secs(1));
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            },
        ));
        match out {
            Err(ScopeError::Cancelled(c)) => assert_eq!(c.reason, CancelReason::Deadline),
            other => panic!("expected the moved deadline to fire, got {other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(15) && took < Duration::from_secs(60),
            "{took:?}"
        );
    });
}

#[test]
fn task_dump_display_prints_an_indented_scope_tree() {
    within("dump_tree", TIMEOUT, || {
        let rt = rt();
        let loose = rt.spawn(std::future::pending::<()>());
        let (tree, top, deep) = rt
            .block_on(nursery_with(
                ScopeOptions::new().name("outer"),
                move |n| async move {
                    let top = n
                        .child()
                        .name("top")
                        .spawn(std::future::pending::<Result<(), String>>());
                    let out = n
                        .spawn(async {
                            nursery_with(ScopeOptions::new().name("inner"), |n2| async move {
                                let deep = n2
                                    .child()
                                    .name("deep")
                                    .spawn(std::future::pending::<Result<(), String>>());
                                pitcrew::yield_now().await;
                                let tree = task::dump_tree(&pitcrew::Handle::current()).to_string();
                                n2.cancel();
                                Ok::<_, String>((tree, deep.id()))
                            })
                            .await
                            .map_err(|e| format!("{e:?}"))
                        })
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    n.cancel();
                    let (tree, deep) = out;
                    Ok::<_, String>((tree, top.id(), deep))
                },
            ))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let lines: Vec<&str> = tree.lines().collect();
        assert!(lines[0].starts_with("runtime ("), "{tree}");
        let find = |prefix: String| {
            lines
                .iter()
                .position(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{tree}"))
        };
        let loose_at = find(format!("  task {} ", loose.id()));
        let outer_at = find("  outer".to_owned());
        let top_at = find(format!("    task {} \"top\" ", top));
        let inner_at = find("    inner".to_owned());
        let deep_at = find(format!("      task {} \"deep\" ", deep));
        assert!(
            loose_at < outer_at && outer_at < top_at && top_at < inner_at && inner_at < deep_at,
            "tree out of order:\n{tree}"
        );
        for l in &lines[1..] {
            if l.trim_start().starts_with("task ") {
                assert!(l.contains(" polls=") && l.contains(" age="), "{l}");
            }
        }
    });
}

/// Panics when dropped, unless already unwinding.
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("child dropped with a panic");
        }
    }
}

/// A future that is ready at once and panics when dropped afterwards.
struct ReadyWithBomb(PanicsOnDrop);
impl std::future::Future for ReadyWithBomb {
    type Output = Result<u8, &'static str>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(7))
    }
}

#[test]
fn child_whose_future_panics_in_drop_after_returning_fails_the_nursery() {
    // Regression: the panic reached only the child's (usually dropped) handle; the nursery
    // returned Ok.
    within("nursery with a child panicking in Drop", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery(|n| async move {
            // Not an async block: its locals would be dropped inside its last poll.
            let child = n.spawn(ReadyWithBomb(PanicsOnDrop));
            let id = child.id();
            assert!(child.await.unwrap_err().is_failed());
            Ok(id)
        }));
        match out {
            Err(ScopeError::Failed(failures)) => {
                assert_eq!(failures.len(), 1, "{failures:?}");
                match &failures[0].kind {
                    FailureKind::Panic(p) => {
                        assert_eq!(common::panic_message(&**p), "child dropped with a panic")
                    }
                    other => panic!("expected the Drop's panic, got {other:?}"),
                }
            }
            other => panic!("expected the nursery to fail, got {other:?}"),
        }
    });
}
