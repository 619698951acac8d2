//! Waking tasks: from the task itself, from other threads, many times and concurrently. No
//! wake-up is lost and a task is never polled by two threads at once.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};

use common::{join, recv, runtime, within, WakerSlot, TIMEOUT};

/// Pending until `flag` is set; stores its waker first so a concurrent set is never missed, and
/// reports once that it has parked.
struct WaitForFlag {
    flag: Arc<AtomicBool>,
    slot: Arc<WakerSlot>,
    parked: Option<mpsc::Sender<()>>,
    polls: Arc<AtomicUsize>,
}

impl Future for WaitForFlag {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.slot.store(cx.waker());
        if self.flag.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if let Some(tx) = self.parked.take() {
            tx.send(()).unwrap();
        }
        Poll::Pending
    }
}

#[test]
fn task_woken_from_another_thread_runs() {
    let rt = runtime(2);
    let flag = Arc::new(AtomicBool::new(false));
    let slot = WakerSlot::new();
    let polls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let h = rt.spawn(WaitForFlag {
        flag: flag.clone(),
        slot: slot.clone(),
        parked: Some(tx),
        polls: polls.clone(),
    });
    recv("the task to park", &rx, TIMEOUT);
    std::thread::spawn(move || {
        flag.store(true, Ordering::SeqCst);
        assert!(slot.wake(), "the task left no waker");
    })
    .join()
    .unwrap();
    join("the woken task", h).expect("task completes");
    assert!(polls.load(Ordering::SeqCst) >= 2);
}

/// Wakes itself `remaining` more times, alternating `wake_by_ref` and `wake` on a clone.
struct SelfWaking {
    remaining: usize,
    polls: Arc<AtomicUsize>,
}

impl Future for SelfWaking {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.remaining == 0 {
            return Poll::Ready(());
        }
        self.remaining -= 1;
        if self.remaining % 2 == 0 {
            cx.waker().wake_by_ref();
        } else {
            // Exercise the by-value wake path (it consumes a reference) too.
            let owned = cx.waker().clone();
            owned.wake();
        }
        Poll::Pending
    }
}

#[test]
fn task_waking_itself_many_times_is_polled_once_per_wake() {
    const WAKES: usize = 10_000;
    let rt = runtime(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let h = rt.spawn(SelfWaking {
        remaining: WAKES,
        polls: polls.clone(),
    });
    join("the self-waking task", h).expect("task completes");
    assert_eq!(polls.load(Ordering::SeqCst), WAKES + 1);
}

#[test]
fn waker_outliving_its_completed_task_is_harmless() {
    let rt = runtime(1);
    let slot = WakerSlot::new();
    let h = {
        let slot = slot.clone();
        rt.spawn(std::future::poll_fn(move |cx| {
            slot.store(cx.waker());
            Poll::Ready(9)
        }))
    };
    assert_eq!(join("task", h).unwrap(), 9);
    // The task is complete and its JoinHandle gone: waking it must do nothing.
    assert!(slot.wake());
    let h = rt.spawn(async { 1 });
    assert_eq!(join("a later task", h).unwrap(), 1);
}

/// Per-task state for the wake storm.
struct Storm {
    slot: WakerSlot,
    wakes: AtomicUsize,
    in_poll: AtomicBool,
    overlapping_polls: AtomicUsize,
}

struct StormTask {
    state: Arc<Storm>,
    needed: usize,
}

impl Future for StormTask {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let s = &self.state;
        if s.in_poll.swap(true, Ordering::SeqCst) {
            s.overlapping_polls.fetch_add(1, Ordering::SeqCst);
        }
        s.slot.store(cx.waker());
        let done = s.wakes.load(Ordering::SeqCst) >= self.needed;
        // Give a concurrent second poll, if the runtime allowed one, time to overlap.
        std::hint::spin_loop();
        s.in_poll.store(false, Ordering::SeqCst);
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn wakes_from_two_threads_are_never_lost_and_polls_never_overlap() {
    const TASKS: usize = 100;
    const WAKES: usize = 200;
    let rt = runtime(2);
    let states: Vec<Arc<Storm>> = (0..TASKS)
        .map(|_| {
            Arc::new(Storm {
                slot: WakerSlot::default(),
                wakes: AtomicUsize::new(0),
                in_poll: AtomicBool::new(false),
                overlapping_polls: AtomicUsize::new(0),
            })
        })
        .collect();
    let handles: Vec<_> = states
        .iter()
        .map(|s| {
            rt.spawn(StormTask {
                state: s.clone(),
                needed: WAKES,
            })
        })
        .collect();
    // Each thread delivers exactly WAKES / 2 wakes to every task: a lost wake-up leaves a task
    // pending for ever.
    let wakers: Vec<_> = (0..2)
        .map(|_| {
            let states = states.clone();
            std::thread::spawn(move || {
                for _ in 0..WAKES / 2 {
                    for s in &states {
                        // Count the wake before delivering it, so the poll it causes sees it.
                        s.wakes.fetch_add(1, Ordering::SeqCst);
                        s.slot.wake_keep();
                    }
                }
            })
        })
        .collect();
    for w in wakers {
        w.join().unwrap();
    }
    within("every storm task to complete", TIMEOUT, move || {
        futures_lite::future::block_on(async move {
            for h in handles {
                h.await.unwrap();
            }
        })
    });
    for s in &states {
        assert_eq!(
            s.overlapping_polls.load(Ordering::SeqCst),
            0,
            "a task was polled by two threads at once"
        );
    }
}
