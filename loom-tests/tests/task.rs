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

/// A wake of a task that is already notified (queued, not yet run) must still publish what the
/// waker wrote before waking: the next poll sees it. The wake is a release read-modify-write
/// even when it changes nothing; a load-only fast path lets the poll read stale data, return
/// `Pending`, and the task is never woken again (mutant `load_only_wake`).
#[test]
fn wake_of_a_notified_task_publishes_the_wakers_writes() {
    model(|| {
        let sched = MockScheduler::new();
        let data = Arc::new(AtomicUsize::new(0));
        let slot = WakerSlot::new();
        let (d, s) = (data.clone(), slot.clone());
        let mut join = sched.spawn(std::future::poll_fn(move |cx| {
            if d.load(Ordering::Relaxed) == 1 {
                return Poll::Ready(());
            }
            s.put(cx.waker());
            Poll::Pending
        }));
        // First poll: no data yet; the task parks its waker and goes idle.
        assert!(sched.run_one());
        let waker = slot.take_spin();
        // Notified and queued, not yet run.
        waker.wake_by_ref();
        assert_eq!(sched.queued(), 1);
        let writer = {
            let data = data.clone();
            thread::spawn(move || {
                data.store(1, Ordering::Relaxed);
                waker.wake_by_ref();
                drop(waker);
            })
        };
        sched.run_all();
        writer.join().unwrap();
        sched.run_all();
        assert!(
            matches!(poll_once(&mut join, Waker::noop()), Poll::Ready(Ok(()))),
            "the task missed the data its waker published and was never woken again"
        );
        // The wakers the pending polls left in the slot hold task references.
        drop(slot);
        assert_eq!(sched.alive(), 0);
    });
}

/// Two wakes from two threads on an idle task: one queue entry per idle-to-notified edge, and
/// the task runs once per entry. A second entry for one edge would run the task twice
/// concurrently on a real runtime.
#[test]
fn two_remote_wakes_queue_the_task_once_per_edge() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let (fut, polls) = pending_once(&drops, &slot);
        let join = sched.spawn(fut);
        assert!(sched.run_one());
        let first = slot.take_spin();
        let second = first.clone();
        let a = thread::spawn(move || first.wake());
        let b = thread::spawn(move || second.wake_by_ref());
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(
            sched.queued(),
            1,
            "two wakes of one idle task queued it twice"
        );
        assert!(sched.run_one());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        assert_eq!(drops.count(), 1);
        drop(join);
        assert_eq!(sched.alive(), 0);
    });
}

/// A clone of the task's waker dropped on another thread while the task completes and its
/// handle is dropped: the future is dropped once and the task released (a reference count
/// error shows up as a debug assertion, a leak as a live task).
#[test]
fn waker_clone_dropped_elsewhere_vs_completion_frees_once() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let (fut, _polls) = pending_once(&drops, &slot);
        let join = sched.spawn(fut);
        assert!(sched.run_one());
        let waker = slot.take_spin();
        let clone = waker.clone();
        let t = thread::spawn(move || drop(clone));
        waker.wake();
        sched.run_all();
        drop(join);
        t.join().unwrap();
        assert_eq!(drops.count(), 1);
        assert_eq!(sched.alive(), 0);
        assert_eq!(sched.queued(), 0);
    });
}

/// Abort of an idle task from another thread: the future is dropped exactly once, by the
/// scheduler's thread (the one running the queue), never by the aborting thread.
#[test]
fn abort_of_an_idle_task_drops_the_future_on_the_scheduler_thread() {
    model(|| {
        let sched = MockScheduler::new();
        let dropped_on = Arc::new(loom::sync::Mutex::new(Vec::new()));
        struct Marker(Arc<loom::sync::Mutex<Vec<loom::thread::ThreadId>>>);
        impl Drop for Marker {
            fn drop(&mut self) {
                self.0.lock().unwrap().push(thread::current().id());
            }
        }
        let marker = Marker(dropped_on.clone());
        let mut join = sched.spawn(async move {
            let _m = marker;
            std::future::pending::<()>().await;
        });
        assert!(sched.run_one());
        let abort = join.abort_handle();
        let aborter = thread::spawn(move || abort.abort());
        sched.run_all();
        aborter.join().unwrap();
        sched.run_all();
        let on = dropped_on.lock().unwrap().clone();
        assert_eq!(on, vec![thread::current().id()], "dropped once, here");
        match poll_once(&mut join, Waker::noop()) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("aborted task resolved to {other:?}"),
        }
        assert_eq!(sched.alive(), 0);
    });
}

/// Abort racing with the poll that completes the task: the handle reports the output or the
/// cancellation, and either way the future and the output are dropped exactly once. Both
/// outcomes occur across the explored interleavings.
#[test]
fn abort_vs_complete_drops_future_and_output_once() {
    // Tallies across loom's executions, outside the model: plain std atomics on purpose.
    #![allow(clippy::disallowed_types)]
    static COMPLETED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static CANCELLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    model(|| {
        let sched = MockScheduler::new();
        let futures = DropCounter::new();
        let outputs = DropCounter::new();
        let (f, o) = (futures.token(), outputs.token());
        let mut join = sched.spawn(async move {
            let _f = f;
            o
        });
        let abort = join.abort_handle();
        let aborter = thread::spawn(move || abort.abort());
        sched.run_all();
        aborter.join().unwrap();
        sched.run_all();
        assert_eq!(futures.count(), 1, "future dropped exactly once");
        match poll_once(&mut join, Waker::noop()) {
            Poll::Ready(Ok(out)) => {
                COMPLETED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                assert_eq!(outputs.count(), 0);
                drop(out);
            }
            Poll::Ready(Err(e)) => {
                assert!(e.is_cancelled());
                CANCELLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Poll::Pending => panic!("handle pending after the task ended"),
        }
        drop(join);
        assert_eq!(outputs.count(), 1, "output dropped exactly once");
        assert_eq!(sched.alive(), 0);
    });
    let (c, x) = (
        COMPLETED.load(std::sync::atomic::Ordering::Relaxed),
        CANCELLED.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(
        c > 0 && x > 0,
        "both outcomes must be explored: completed {c}, cancelled {x}"
    );
}

/// A poll that panics, racing with the handle being polled from another thread: the handle
/// resolves to a panic error (or is woken to see it), the future is dropped once, and the
/// panic stays in the task.
#[test]
fn panic_in_poll_vs_join_handle_poll() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let token = drops.token();
        let mut join = sched.spawn(async move {
            let _t = token;
            panic!("boom (expected by the model)");
        });
        let (waker, flag) = flag_waker();
        let joiner = thread::spawn(move || {
            let first = poll_once(&mut join, &waker);
            (first.map(|r| r.map_err(|e| e.is_panic())), join)
        });
        sched.run_all();
        let (first, mut join) = joiner.join().unwrap();
        assert_eq!(drops.count(), 1);
        let result = match first {
            Poll::Ready(r) => r,
            Poll::Pending => {
                assert!(flag.0.load(Ordering::SeqCst), "join waker not woken");
                match poll_once(&mut join, Waker::noop()) {
                    Poll::Ready(r) => r.map_err(|e| e.is_panic()),
                    Poll::Pending => panic!("handle pending after the task panicked"),
                }
            }
        };
        assert_eq!(result, Err(true), "the handle must report the panic");
        assert_eq!(sched.alive(), 0);
    });
}

/// The join handle moves its waker from A to B (two polls from different tasks) while the task
/// completes: B is woken if the last poll was pending, A is never woken after B replaced it,
/// and every waker clone is dropped.
#[test]
fn join_waker_change_vs_complete_wakes_the_latest() {
    model(|| {
        let sched = MockScheduler::new();
        let mut join = sched.spawn(async { 3 });
        let (a, a_flag) = flag_waker();
        let (b, b_flag) = flag_waker();
        assert!(poll_once(&mut join, &a).is_pending());
        let joiner = thread::spawn(move || {
            let second = poll_once(&mut join, &b).is_ready();
            (second, join)
        });
        sched.run_all();
        let (second_ready, mut join) = joiner.join().unwrap();
        if !second_ready {
            assert!(b_flag.0.load(Ordering::SeqCst), "B was not woken");
            assert!(matches!(
                poll_once(&mut join, Waker::noop()),
                Poll::Ready(Ok(3))
            ));
        }
        drop(join);
        drop(a);
        // Every clone the handle kept is gone; at most the first waker was woken before B
        // replaced it, and only if the task completed before the change.
        assert_eq!(std::sync::Arc::strong_count(&a_flag), 1, "waker A leaked");
        assert_eq!(std::sync::Arc::strong_count(&b_flag), 1, "waker B leaked");
        let _ = a_flag.0.load(Ordering::SeqCst);
    });
}

/// Two tasks each awaiting the other's handle (a cycle that never completes): shutting the
/// scheduler down drops both futures once, with the handles they hold, and frees both tasks.
#[test]
fn tasks_awaiting_each_others_handles_leak_nothing_at_shutdown() {
    model(|| {
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let (tx, rx) = std::sync::mpsc::channel::<pitcrew::task::JoinHandle<()>>();
        let ta = drops.token();
        let a = sched.spawn(async move {
            let _t = ta;
            // Waits for B's handle, then for B.
            let b = rx.recv().unwrap();
            let _ = b.await;
        });
        let tb = drops.token();
        let b = sched.spawn(async move {
            let _t = tb;
            let _ = a.await;
        });
        tx.send(b).unwrap();
        let runner = {
            let sched = sched.clone();
            thread::spawn(move || {
                sched.run_all();
            })
        };
        sched.run_all();
        runner.join().unwrap();
        sched.shutdown();
        assert_eq!(drops.count(), 2, "each future dropped once");
        assert_eq!(sched.alive(), 0, "a task of the cycle leaked");
    });
}

/// `wake_by_ref` from a third thread while two threads run the queue and the task's first poll
/// is still pending: the wake is not lost, the task is never polled by two threads at once,
/// and it is queued at most once at any time.
#[test]
fn wake_by_ref_vs_pending_poll_never_polls_concurrently() {
    model(|| {
        use loom::sync::atomic::AtomicBool;
        let sched = MockScheduler::new();
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let in_poll = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicUsize::new(0));
        let (s, busy, n, token) = (slot.clone(), in_poll.clone(), polls.clone(), drops.token());
        let join = sched.spawn(std::future::poll_fn(move |cx| {
            let _ = &token;
            assert!(!busy.swap(true, Ordering::SeqCst), "two concurrent polls");
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            if first {
                s.put(cx.waker());
            }
            busy.store(false, Ordering::SeqCst);
            if first {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        let waker_slot = slot.clone();
        let waker = thread::spawn(move || waker_slot.take_spin().wake_by_ref());
        let runner = {
            let sched = sched.clone();
            thread::spawn(move || {
                sched.run_all();
            })
        };
        sched.run_all();
        waker.join().unwrap();
        runner.join().unwrap();
        assert!(sched.queued() <= 1, "queued more than once");
        sched.run_all();
        assert_eq!(polls.load(Ordering::SeqCst), 2, "the wake-up was lost");
        assert_eq!(drops.count(), 1);
        drop(join);
        assert_eq!(sched.alive(), 0);
    });
}
