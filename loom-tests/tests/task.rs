//! loom models of the task state protocol: wakes, aborts, completion and the join handle.

#![cfg(loom)]

use std::task::{Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pitcrew::loom_api::MockScheduler;
use pitcrew_loom_tests::*;

fn pending_once(counter: &DropCounter, slot: &WakerSlot) -> (PendingN, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let fut = PendingN {
        left: 1,
        polls: polls.clone(),
        slot: slot.clone(),
        _token: counter.token(),
    };
    (fut, polls)
}

/// A wake from another thread, racing with the poll that handed out the waker, queues the task
/// exactly once, and the task then completes.
#[test]
fn wake_while_running_is_rescheduled_exactly_once() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let (fut, polls) = pending_once(&drops, &slot);
        let mut join = sched.spawn(fut);

        let waker_slot = slot.clone();
        let waker = thread::spawn(move || waker_slot.take_spin().wake());
        assert!(sched.run_one());
        waker.join().unwrap();

        assert_eq!(
            sched.queued(),
            1,
            "one wake must queue the task exactly once"
        );
        assert!(sched.run_one());
        assert_eq!(sched.queued(), 0);
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(drops.count(), 1, "future dropped exactly once");
        assert!(matches!(
            poll_once(&mut join, Waker::noop()),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(sched.alive(), 0);
    });
}

/// A wake by reference racing with completion never queues a completed task.
#[test]
fn wake_after_complete_is_a_no_op() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let slot2 = slot.clone();
        let token = drops.token();
        let join = sched.spawn(std::future::poll_fn(move |cx| {
            let _ = &token;
            polls.fetch_add(1, Ordering::SeqCst);
            slot2.put(cx.waker());
            Poll::Ready(7)
        }));
        let waker_slot = slot.clone();
        let waker = thread::spawn(move || {
            let w = waker_slot.take_spin();
            w.wake_by_ref();
            drop(w);
        });
        assert!(sched.run_one());
        waker.join().unwrap();
        assert_eq!(sched.queued(), 0, "a completed task was queued again");
        assert_eq!(drops.count(), 1);
        drop(join);
    });
}

/// Abort racing with a poll: the future is dropped exactly once, never during a poll, and the
/// handle reports cancellation.
#[test]
fn abort_vs_poll_drops_the_future_once() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let fut = PendingN {
            left: usize::MAX,
            polls: polls.clone(),
            slot,
            _token: drops.token(),
        };
        let mut join = sched.spawn(fut);
        let abort = join.abort_handle();
        let aborter = thread::spawn(move || abort.abort());
        sched.run_one();
        aborter.join().unwrap();
        sched.run_all();
        assert_eq!(drops.count(), 1, "future dropped exactly once");
        match poll_once(&mut join, Waker::noop()) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("aborted task resolved to {other:?}"),
        }
        assert_eq!(sched.alive(), 0);
    });
}

/// Dropping the join handle racing with completion: the output is dropped exactly once.
#[test]
fn join_handle_drop_vs_complete_drops_output_once() {
    model(|| {
        let sched = MockScheduler::new();
        let outputs = DropCounter::new();
        let futures = DropCounter::new();
        let out = outputs.token();
        let fut_token = futures.token();
        let join = sched.spawn(async move {
            let _held = fut_token;
            out
        });
        let dropper = thread::spawn(move || drop(join));
        sched.run_one();
        dropper.join().unwrap();
        assert_eq!(futures.count(), 1, "future dropped exactly once");
        assert_eq!(outputs.count(), 1, "output dropped exactly once");
    });
}

/// The join handle registering its waker racing with completion: a pending poll is always
/// followed by a wake-up.
#[test]
fn join_waker_registration_vs_complete_is_not_lost() {
    model(|| {
        let sched = MockScheduler::new();
        let mut join = sched.spawn(async { 5 });
        let (waker, flag) = flag_waker();
        let joiner = thread::spawn(move || {
            let first = poll_once(&mut join, &waker);
            (first, join)
        });
        sched.run_one();
        let (first, mut join) = joiner.join().unwrap();
        match first {
            Poll::Ready(v) => assert_eq!(v.unwrap(), 5),
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "join waker was not woken");
                assert!(matches!(
                    poll_once(&mut join, Waker::noop()),
                    Poll::Ready(Ok(5))
                ));
            }
        }
    });
}

/// Shutdown racing with a remote wake: every future is dropped once and nothing is left alive.
#[test]
fn shutdown_vs_wake_drops_every_future_once() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let (fut, _polls) = pending_once(&drops, &slot);
        let join = sched.spawn(fut);
        sched.run_one();
        let waker_slot = slot.clone();
        let waker = thread::spawn(move || waker_slot.take_spin().wake());
        sched.shutdown();
        waker.join().unwrap();
        sched.shutdown();
        assert_eq!(drops.count(), 1);
        assert_eq!(sched.alive(), 0);
        drop(join);
    });
}
