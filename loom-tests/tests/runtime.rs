//! loom models of the whole runtime: injector hand-off, stealing, parking and shutdown.

#![cfg(loom)]

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
