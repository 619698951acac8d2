//! loom models of the run queues: a worker's deque overflowing into the injector while another
//! worker steals, and two stealers racing with the owner. The workers are the real ones
//! (`scheduler::worker`), run one step at a time by hand (`loom_api::model_workers`) on the
//! threads that own them, over the loom stand-ins of the deques.

#![cfg(loom)]

use std::task::{Poll, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pitcrew::loom_api::{model_workers, set_local_capacity, ModelWorker};
use pitcrew::task::JoinHandle;
use pitcrew_loom_tests::*;

/// The thread each task ran on (plain data, written once per run, read after the joins).
type RanOn = std::sync::Arc<std::sync::Mutex<Vec<Option<loom::thread::ThreadId>>>>;

/// Spawns three tasks from `owner` (to the back of its deque, the path of a yielding task),
/// each counting its runs in its own counter, recording its thread and holding a drop token.
fn spawn_three(
    owner: &ModelWorker,
    drops: &DropCounter,
) -> (Vec<JoinHandle<()>>, Vec<Arc<AtomicUsize>>, RanOn) {
    let runs: Vec<_> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let ran_on: RanOn = std::sync::Arc::new(std::sync::Mutex::new(vec![None; 3]));
    let handles = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (r, token, on) = (r.clone(), drops.token(), ran_on.clone());
            owner.spawn(
                async move {
                    let _token = token;
                    r.fetch_add(1, Ordering::SeqCst);
                    on.lock().unwrap()[i] = Some(thread::current().id());
                },
                true,
            )
        })
        .collect();
    (handles, runs, ran_on)
}

/// A thief's turn: one search, then whatever it took into its own deque (and the injector).
fn steal_then_drain(thief: &ModelWorker) {
    if thief.steal_and_run() {
        while thief.run_next() {}
    }
}

/// Each task ran exactly once, its future was dropped once, its handle is ready, nothing is
/// left alive.
fn check_each_ran_once(
    owner: &ModelWorker,
    handles: Vec<JoinHandle<()>>,
    runs: &[Arc<AtomicUsize>],
    drops: &DropCounter,
) {
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.load(Ordering::SeqCst), 1, "task {i} ran once");
    }
    assert_eq!(drops.count(), runs.len(), "each future dropped once");
    assert_eq!(owner.alive(), 0, "no task left alive");
    for mut h in handles {
        match poll_once(&mut h, Waker::noop()) {
            Poll::Ready(Ok(())) => {}
            other => panic!("a finished task's handle is {other:?}"),
        }
    }
    owner.shutdown();
}

/// Executions of `overflow_to_injector_vs_steal_runs_each_task_once` in which the deque
/// overflowed, and in which the thief then ran the task that overflowed (taken from the
/// injector): plain counters, outside the model, kept across its executions.
static OVERFLOWED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static THIEF_RAN_OVERFLOWED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// With a deque of capacity 2, a third task overflows the older one into the injector while a
/// second worker steals (half the deque, or a batch of the injector): each task runs exactly
/// once, and the overflow is reached.
#[test]
fn overflow_to_injector_vs_steal_runs_each_task_once() {
    OVERFLOWED.store(0, std::sync::atomic::Ordering::Relaxed);
    THIEF_RAN_OVERFLOWED.store(0, std::sync::atomic::Ordering::Relaxed);
    model(|| {
        set_local_capacity(2);
        let mut workers = model_workers(2);
        let thief = workers.pop().unwrap();
        let owner = workers.pop().unwrap();
        let drops = DropCounter::new();
        let t = thread::spawn(move || steal_then_drain(&thief));
        let (handles, runs, ran_on) = spawn_three(&owner, &drops);
        let overflowed = owner.overflows() > 0;
        while owner.run_next() {}
        let thief_id = t.thread().id();
        t.join().unwrap();
        // Whatever the thief moved to the injector after the owner's last look.
        while owner.run_next() {}
        check_each_ran_once(&owner, handles, &runs, &drops);
        if overflowed {
            OVERFLOWED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The oldest task is the one that moved to the injector.
            if ran_on.lock().unwrap()[0] == Some(thief_id) {
                THIEF_RAN_OVERFLOWED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    assert!(
        OVERFLOWED.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution overflowed the deque"
    );
    assert!(
        THIEF_RAN_OVERFLOWED.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "in no execution did the thief take the overflowed task from the injector"
    );
}

/// Executions of `two_stealers_and_the_owner_pop_run_each_task_once` in which the owner and
/// both thieves each ran one task.
static EACH_RAN_ONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Two workers steal from a third's deque (and from each other) while it pops its own: each
/// task runs exactly once. Four workers, so that two may search at once (at most half do),
/// the fourth idle but awake.
#[test]
fn two_stealers_and_the_owner_pop_run_each_task_once() {
    EACH_RAN_ONE.store(0, std::sync::atomic::Ordering::Relaxed);
    model(|| {
        let mut workers = model_workers(4);
        workers.pop();
        let thief2 = workers.pop().unwrap();
        let thief1 = workers.pop().unwrap();
        let owner = workers.pop().unwrap();
        let drops = DropCounter::new();
        let (handles, runs, ran_on) = spawn_three(&owner, &drops);
        let t1 = thread::spawn(move || steal_then_drain(&thief1));
        let t2 = thread::spawn(move || steal_then_drain(&thief2));
        while owner.run_next() {}
        t1.join().unwrap();
        t2.join().unwrap();
        while owner.run_next() {}
        check_each_ran_once(&owner, handles, &runs, &drops);
        let on = ran_on.lock().unwrap().clone();
        if on[0] != on[1] && on[1] != on[2] && on[0] != on[2] {
            EACH_RAN_ONE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(
        EACH_RAN_ONE.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "in no execution did the owner and both thieves each run a task"
    );
}
