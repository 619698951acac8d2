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
