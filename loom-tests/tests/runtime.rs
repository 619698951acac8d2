//! loom models of the whole runtime: injector hand-off, stealing, parking and shutdown.

#![cfg(loom)]

use std::future::Future;
use std::task::{Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pitcrew::Runtime;
use pitcrew_loom_tests::*;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime builds under loom")
}

/// A task injected while the only worker is on its way to park still runs: the pusher sees
/// no searcher and wakes the worker, or the worker sees the task before it parks.
#[test]
fn injected_task_is_not_lost_while_worker_parks() {
    model(|| {
        let rt = runtime(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let ran2 = ran.clone();
        let join = rt.spawn(async move {
            ran2.fetch_add(1, Ordering::SeqCst);
        });
        rt.block_on(join).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        drop(rt);
    });
}

/// Two tasks injected back to back on two workers; the first blocks its worker until the
/// second has run, so the second must be taken by the other worker, even when that worker was
/// on its way to park without searching (the searcher limit turned it away) while the searcher
/// found the first task and stopped searching: rule 4 of `scheduler::idle`.
#[test]
fn work_behind_a_blocked_worker_is_taken_by_the_other() {
    model_bounded(2, || {
        let rt = runtime(2);
        let gate = Arc::new((loom::sync::Mutex::new(false), loom::sync::Condvar::new()));
        let g = gate.clone();
        let blocker = rt.spawn(async move {
            let (lock, cvar) = &*g;
            let mut second_ran = lock.lock().unwrap();
            while !*second_ran {
                second_ran = cvar.wait(second_ran).unwrap();
            }
        });
        let g = gate.clone();
        let second = rt.spawn(async move {
            let (lock, cvar) = &*g;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        });
        rt.block_on(async {
            blocker.await.unwrap();
            second.await.unwrap();
        });
        drop(rt);
    });
}

/// Two tasks injected from outside with two workers (which steal from each other): each runs
/// exactly once and nothing is lost.
#[test]
fn injector_and_steal_run_each_task_once() {
    // Three threads running the whole scheduler: bounded tighter to stay under a minute.
    model_bounded(1, || {
        let rt = runtime(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let ran = ran.clone();
                rt.spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        rt.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        drop(rt);
    });
}

/// A spawn racing with shutdown: the future is dropped exactly once (having run, or not) and
/// its handle resolves.
#[test]
fn spawn_vs_shutdown_drops_the_future_once() {
    model(|| {
        let rt = runtime(1);
        let handle = rt.handle().clone();
        let drops = DropCounter::new();
        let token = drops.token();
        let spawner = thread::spawn(move || {
            handle.spawn(async move {
                let _held = token;
            })
        });
        drop(rt);
        let mut join = spawner.join().unwrap();
        assert_eq!(drops.count(), 1, "future dropped exactly once");
        match poll_once(&mut join, Waker::noop()) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            Poll::Pending => panic!("handle still pending after the runtime was dropped"),
        }
    });
}

/// The parker: an unpark before the park is not lost; one during it wakes it.
#[test]
fn unpark_is_never_lost() {
    model(|| {
        let parker = pitcrew::loom_api::Parker::new();
        let unparker = parker.unparker();
        let t = thread::spawn(move || unparker.unpark());
        parker.park();
        t.join().unwrap();
    });
}

/// Wakes the task whose waker is in the slot when dropped, and counts the drop.
struct WakeOnDrop(WakerSlot, #[allow(dead_code)] DropToken);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }
}

/// Runtime shutdown drops a pending task whose `Drop` wakes another pending task: no deadlock,
/// every future dropped exactly once, both handles resolve to cancelled.
#[test]
fn drop_that_wakes_another_task_during_shutdown() {
    model(|| {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let slot = WakerSlot::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let mut b = rt.spawn(PendingN {
            left: usize::MAX,
            polls,
            slot: slot.clone(),
            _token: drops.token(),
        });
        let guard = WakeOnDrop(slot, drops.token());
        let mut a = rt.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        drop(rt);
        assert_eq!(drops.count(), 2, "each future dropped exactly once");
        for h in [&mut a, &mut b] {
            match poll_once(h, Waker::noop()) {
                Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
                other => panic!("a task outlived shutdown: {other:?}"),
            }
        }
    });
}

/// Runtime shutdown while a task waits on a timer (registered with the timer, which loom runs
/// without a thread) and another sits in the injector: each future is dropped exactly once and
/// the timer entry is let go (loom reports a leaked entry).
#[test]
fn shutdown_drops_a_task_waiting_on_a_timer_once() {
    model(|| {
        let rt = runtime(1);
        let drops = DropCounter::new();
        let (ta, tb) = (drops.token(), drops.token());
        let polled = Arc::new(AtomicUsize::new(0));
        let slot = WakerSlot::new();
        let (p, s) = (polled.clone(), slot.clone());
        let sleeper = rt.spawn(async move {
            let _t = ta;
            let mut sleep = Box::pin(pitcrew::time::sleep(std::time::Duration::from_secs(3600)));
            std::future::poll_fn(|cx| {
                let r = sleep.as_mut().poll(cx);
                // Registered now: tell the main thread.
                if p.fetch_add(1, Ordering::SeqCst) == 0 {
                    if let Some(w) = s.take() {
                        w.wake();
                    }
                }
                r
            })
            .await;
        });
        // Wait until the sleep is registered, so that shutdown finds the task in a timer wait.
        rt.block_on(std::future::poll_fn(|cx| {
            slot.put(cx.waker());
            if polled.load(Ordering::SeqCst) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        let queued = rt.spawn(async move {
            let _t = tb;
        });
        drop(rt);
        assert_eq!(drops.count(), 2, "each future dropped exactly once");
        drop((sleeper, queued));
    });
}
