//! loom models of the scope tree: counters, propagation, membership and the owner's wait.

#![cfg(loom)]

use loom::sync::atomic::Ordering::SeqCst;
use loom::thread;
use pitcrew::loom_api::ScopeModel;
use pitcrew_loom_tests::*;

/// The last child leaving races with the owner starting to wait: the owner either sees no
/// member left, or is woken. Never a lost wake-up, never an early return.
#[test]
fn last_child_vs_owner_wait() {
    model(|| {
        let scope = ScopeModel::root();
        let member = scope.join().unwrap();
        let leaver = thread::spawn(move || drop(member));
        let (waker, flag) = flag_waker();
        let live = scope.owner_wait(&waker);
        leaver.join().unwrap();
        if live > 0 {
            assert!(
                flag.0.load(SeqCst),
                "the owner missed the last child leaving"
            );
        }
    });
}

/// A cancel request races with a child scope being created: the child ends up cancelled
/// either way.
#[test]
fn cancel_reaches_a_child_scope_created_concurrently() {
    model(|| {
        let parent = ScopeModel::root();
        let p2 = parent.clone();
        let creator = thread::spawn(move || p2.child(false).unwrap());
        parent.cancel();
        let child = creator.join().unwrap();
        assert!(
            child.is_cancelled(),
            "the new child scope missed the cancel"
        );
        // And a grandchild created afterwards starts cancelled.
        assert!(child.child(false).unwrap().is_cancelled());
        // A shield does not inherit it.
        assert!(!child.child(true).unwrap().is_cancelled());
    });
}

/// Concurrent cancel and uncancel: the counter never goes below zero, never loses a request,
/// and the child scopes converge to the parent's final state.
#[test]
fn cancel_vs_uncancel_counts_exactly() {
    model(|| {
        let parent = ScopeModel::root();
        let child = parent.child(false).unwrap();
        parent.cancel();
        let p2 = parent.clone();
        let t = thread::spawn(move || p2.uncancel());
        parent.cancel();
        let left = t.join().unwrap();
        assert!(left <= 2);
        assert_eq!(parent.cancelling(), 1, "count = requests - uncancels");
        assert!(parent.is_cancelled());
        assert!(child.is_cancelled());
        assert_eq!(parent.uncancel(), 0);
        assert!(!parent.is_cancelled());
        assert!(
            !child.is_cancelled(),
            "the child did not follow the parent's final state"
        );
    });
}

/// Two threads cancel and uncancel at once: the child follows whatever the parent ends with.
#[test]
fn propagation_converges_to_the_parents_final_state() {
    model(|| {
        let parent = ScopeModel::root();
        let child = parent.child(false).unwrap();
        let p2 = parent.clone();
        parent.cancel();
        let t = thread::spawn(move || {
            p2.uncancel();
        });
        let p3 = parent.clone();
        let u = thread::spawn(move || p3.cancel());
        t.join().unwrap();
        u.join().unwrap();
        assert_eq!(child.is_cancelled(), parent.is_cancelled());
    });
}

/// Joining a scope racing with its close: a member is either counted (and the owner sees it)
/// or refused.
#[test]
fn join_vs_close_is_counted_or_refused() {
    model(|| {
        let scope = ScopeModel::root();
        let s2 = scope.clone();
        let joiner = thread::spawn(move || s2.join().is_some());
        let closed = scope.close();
        let joined = joiner.join().unwrap();
        // Refused only while a member was alive.
        assert!(closed || joined);
        let (waker, _) = flag_waker();
        // The member (if any) was dropped by the joiner thread already.
        assert_eq!(scope.owner_wait(&waker), 0);
        if !closed {
            assert!(scope.close(), "an empty scope closes");
        }
        assert!(scope.join().is_none(), "a closed scope takes no member");
    });
}

fn runtime(workers: usize) -> pitcrew::Runtime {
    pitcrew::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime builds under loom")
}

/// Ready at its first poll with `Ok(())`, holding a drop token until the future itself is
/// dropped (an `async` block would drop it before returning `Ready`).
struct ReadyHolding(#[allow(dead_code)] DropToken);

impl std::future::Future for ReadyHolding {
    type Output = Result<(), ()>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A nursery returns only after its child's future has been dropped: the child leaves the
/// scope (the live count the owner waits on) after its future is gone, never when it merely
/// completes (mutant `decrement_before_drop`). The owner runs in `block_on` on the model's
/// main thread, the child on the worker.
#[test]
fn nursery_returns_only_after_its_childs_future_is_dropped() {
    model(|| {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let token = drops.token();
        let seen = drops.clone();
        rt.block_on(async move {
            let r = pitcrew::scope::nursery(|n: pitcrew::scope::Nursery<()>| async move {
                n.spawn(ReadyHolding(token));
                Ok::<_, ()>(())
            })
            .await;
            assert!(r.is_ok());
            assert_eq!(
                seen.count(),
                1,
                "the nursery returned before its child's future was dropped"
            );
        });
        drop(rt);
    });
}

/// A child that panics while its sibling waits for cancellation: the sibling is cancelled, the
/// nursery reports exactly one failure (the panic, the trigger), and both futures are dropped
/// once.
#[test]
fn child_panic_cancels_its_sibling_and_is_delivered_once() {
    model_bounded(1, || {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let (ta, tb) = (drops.token(), drops.token());
        let seen = drops.clone();
        rt.block_on(async move {
            let r =
                pitcrew::scope::nursery(|n: pitcrew::scope::Nursery<&'static str>| async move {
                    n.spawn(async move {
                        let _t = tb;
                        let c = pitcrew::scope::cancelled().await;
                        assert!(
                            matches!(c.reason, pitcrew::scope::CancelReason::SiblingFailed(_)),
                            "{c:?}"
                        );
                        Ok::<(), &'static str>(())
                    });
                    n.spawn(async move {
                        let _t = ta;
                        if true {
                            panic!("boom (expected by the model)");
                        }
                        Ok::<(), &'static str>(())
                    });
                    Ok(())
                })
                .await;
            match r {
                Err(pitcrew::scope::ScopeError::Failed(failures)) => {
                    assert_eq!(
                        failures.len(),
                        1,
                        "the failure was delivered more than once"
                    );
                    assert!(matches!(
                        failures[0].kind,
                        pitcrew::scope::FailureKind::Panic(_)
                    ));
                }
                other => panic!("nursery returned {other:?}"),
            }
            assert_eq!(seen.count(), 2);
        });
        drop(rt);
    });
}

/// A nursery child spawned while another thread cancels the nursery: the child is counted and
/// sees the cancellation (it waits for nothing else, so a lost cancel is a deadlock), or it is
/// refused; the nursery returns, and every future is dropped once. The
/// nursery runs as a task (its owner must not sit in `block_on`, see the README), the model's
/// main thread cancels it.
#[test]
fn spawn_vs_cancel_child_is_cancelled_or_refused() {
    model(|| {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let token = drops.token();
        let slot: loom::sync::Arc<loom::sync::Mutex<Option<pitcrew::scope::Nursery<()>>>> =
            Default::default();
        let put = slot.clone();
        let join = rt.spawn(async move {
            pitcrew::scope::nursery(|n: pitcrew::scope::Nursery<()>| async move {
                *put.lock().unwrap() = Some(n.clone());
                let child = n.spawn(async move {
                    let _t = token;
                    pitcrew::scope::cancelled().await;
                    Ok(())
                });
                drop(child);
                Ok(())
            })
            .await
        });
        let nursery = loop {
            if let Some(n) = slot.lock().unwrap().take() {
                break n;
            }
            thread::yield_now();
        };
        nursery.cancel();
        let result = rt.block_on(join).expect("the nursery task");
        // The body returned its value; a cancel the children obeyed is not a failure.
        assert!(
            matches!(
                result,
                Ok(()) | Err(pitcrew::scope::ScopeError::Cancelled(_))
            ),
            "{result:?}"
        );
        assert_eq!(drops.count(), 1, "the child's future dropped exactly once");
        drop(nursery);
        drop(rt);
    });
}
