//! loom models of the supervisor (issue #6): the real supervisor future, its event queue and
//! its restart decisions, on a two-worker runtime (the supervisor and its children run as
//! tasks, in parallel). Back-off is off and the grace is an hour, so no decision depends on the
//! clock.

#![cfg(loom)]
// The factories' start counters are std atomics: they are only touched by the supervisor's own
// task (factories run where it launches children) and read after it returned, so loom has no
// interleaving of them to explore.
#![allow(clippy::disallowed_types)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use loom::thread;
use pitcrew::scope::{
    supervisor, ChildSpec, ChildState, Restart, Strategy, Supervisor, SupervisorOptions,
};
use pitcrew_loom_tests::*;

fn runtime(workers: usize) -> pitcrew::Runtime {
    pitcrew::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime builds under loom")
}

fn options(strategy: Strategy) -> SupervisorOptions {
    SupervisorOptions::new()
        .strategy(strategy)
        .intensity(100, Duration::from_secs(3600))
        .backoff(Duration::ZERO, Duration::ZERO)
        .grace(Duration::from_secs(3600))
}

/// A child instance: its first generation fails at its first poll; later ones wait for their
/// scope's cancellation (or, with `later_ok`, end `Ok` at once). Each holds a drop token.
fn instance(
    generation: usize,
    later_ok: bool,
    token: DropToken,
) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
    Box::pin(async move {
        let _t = token;
        if generation == 0 {
            return Err("boom".to_string());
        }
        if !later_ok {
            pitcrew::scope::cancelled().await;
        }
        Ok(())
    })
}

/// A child spec whose factory counts its calls.
fn spec(
    name: &'static str,
    restart: Restart,
    later_ok: bool,
    starts: StdArc<AtomicUsize>,
    drops: DropCounter,
) -> ChildSpec {
    ChildSpec::new(name, move || {
        let generation = starts.fetch_add(1, Ordering::SeqCst);
        instance(generation, later_ok, drops.token())
    })
    .restart(restart)
}

/// Polls `sup.shutdown()` once from this (non-runtime) thread: that is when shutdown begins.
fn begin_shutdown(sup: &Supervisor) {
    let mut fut = Box::pin(sup.shutdown());
    let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

/// A place where the supervisor's body leaves its handle for the model's main thread.
#[derive(Clone, Default)]
struct HandleSlot(loom::sync::Arc<loom::sync::Mutex<Option<Supervisor>>>);

impl HandleSlot {
    fn put(&self, sup: &Supervisor) {
        *self.0.lock().unwrap() = Some(sup.clone());
    }

    fn take_spin(&self) -> Supervisor {
        loop {
            if let Some(s) = self.0.lock().unwrap().take() {
                return s;
            }
            thread::yield_now();
        }
    }
}

/// Issue #6: a child fails at the moment `shutdown()` is called. Whatever the order, no restart
/// is decided after shutdown began, the supervisor returns, and no child is left running:
/// every instance started has been dropped. Two workers: the supervisor and its child run in
/// parallel; the model's main thread begins the shutdown. (The supervisor runs as a task, not
/// in `block_on`: loom cannot model a thread that is unparked while it waits for a mutex.)
#[test]
fn child_failing_as_shutdown_begins_is_not_restarted_after_it() {
    model_bounded(1, || {
        let rt = runtime(2);
        let starts = StdArc::new(AtomicUsize::new(0));
        let drops = DropCounter::new();
        let slot = HandleSlot::default();
        let (st, dr, sl) = (starts.clone(), drops.clone(), slot.clone());
        let join = rt.spawn(async move {
            supervisor(options(Strategy::OneForOne), |sup| {
                sup.add(spec("c", Restart::Transient, true, st, dr));
                sl.put(&sup);
                async {}
            })
            .await
        });
        let sup = slot.take_spin();
        begin_shutdown(&sup);
        // Anything counted from here on was decided after shutdown began.
        let restarts_at_shutdown = sup.children()[0].restarts;
        let result = rt.block_on(join).expect("the supervisor task");
        assert!(
            matches!(
                result,
                Ok(()) | Err(pitcrew::scope::SupervisorError::Cancelled(_))
            ),
            "{result:?}"
        );
        let child = sup.children()[0].clone();
        assert_eq!(
            child.restarts, restarts_at_shutdown,
            "the child was restarted after shutdown began"
        );
        assert!(child.task.is_none(), "a child is still running: {child:?}");
        assert_eq!(child.state, ChildState::Stopped);
        let started = starts.load(Ordering::SeqCst);
        assert!(started <= 1 + child.restarts);
        assert_eq!(drops.count(), started, "an instance was left alive");
        drop(sup);
        drop(rt);
    });
}

/// Issue #6: under `OneForAll`, two children fail before the supervisor has handled either
/// (their failure events are both queued when it looks), or one after the other: one restart
/// round (each child started twice), not two.
#[test]
fn two_children_failing_at_once_under_one_for_all_restart_once() {
    model_bounded(1, || {
        let rt = runtime(2);
        let (sa, sb) = (
            StdArc::new(AtomicUsize::new(0)),
            StdArc::new(AtomicUsize::new(0)),
        );
        let drops = DropCounter::new();
        let (a, b, dr) = (sa.clone(), sb.clone(), drops.clone());
        let join = rt.spawn(async move {
            let mut handle = None;
            let result = supervisor(options(Strategy::OneForAll), |sup| {
                sup.add(spec("a", Restart::Permanent, false, a.clone(), dr.clone()));
                sup.add(spec("b", Restart::Permanent, false, b.clone(), dr));
                handle = Some(sup.clone());
                async move {
                    // The supervisor polls its body whenever it wakes: wait until the round
                    // (or rounds) restarted both children and they run, then shut down.
                    std::future::poll_fn(|_| {
                        let running = sup
                            .children()
                            .iter()
                            .all(|c| c.state == ChildState::Running && c.task.is_some());
                        let restarted =
                            a.load(Ordering::SeqCst) >= 2 && b.load(Ordering::SeqCst) >= 2;
                        if running && restarted {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await;
                    sup.shutdown().await;
                }
            })
            .await;
            (result, handle.unwrap().children())
        });
        let (result, children) = rt.block_on(join).expect("the supervisor task");
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            sa.load(Ordering::SeqCst),
            2,
            "child a started more than twice"
        );
        assert_eq!(
            sb.load(Ordering::SeqCst),
            2,
            "child b started more than twice"
        );
        let rounds: usize = children.iter().map(|c| c.restarts).sum();
        assert_eq!(
            rounds, 1,
            "two failures made two restart rounds: {children:?}"
        );
        assert_eq!(drops.count(), 4, "an instance was left alive");
        drop(rt);
    });
}
