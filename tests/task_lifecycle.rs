//! Every combination of how a task ends, what its output does, what happens to its
//! `JoinHandle` and when it is aborted (RELIABILITY.md, "Lifecycle combinations", without
//! nurseries): the future is dropped exactly once, the output is dropped exactly once if it was
//! created, panics stay contained and the workers survive.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};

use common::{join, recv, wait_until, within, DropCounter, Latch, TIMEOUT};
use pitcrew::task::{AbortHandle, JoinHandle};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Body {
    Returns,
    PanicsInPoll,
    PanicsInDrop,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Output {
    Plain,
    PanicsOnDrop,
}

/// When something happens to the task. `Never` for the join handle means it is awaited at the
/// end; for abort, that there is none.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Phase {
    BeforeFirstPoll,
    Pending,
    Completed,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    JoinHandle,
    AbortHandle,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    body: Body,
    output: Output,
    join: Phase,
    abort: Phase,
    via: Via,
}

/// Panics when dropped, unless the thread is already unwinding.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("intentional panic in a Drop");
        }
    }
}

struct Out {
    _drops: DropCounter,
    _bomb: Option<Bomb>,
}

#[derive(Default)]
struct Counters {
    polls: AtomicUsize,
    future_drops: Arc<AtomicUsize>,
    outputs_created: AtomicUsize,
    output_drops: Arc<AtomicUsize>,
}

/// The task's future: the async body, plus a bomb that goes off when the future is dropped,
/// whether after completion (with the output already made) or on cancellation.
struct CaseFuture<F> {
    body: Pin<Box<F>>,
    _bomb: Option<Bomb>,
}

impl<F: Future> Future for CaseFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.body.as_mut().poll(cx)
    }
}

/// Blocks every worker inside a poll until the returned latch opens, so that a task spawned
/// meanwhile is not polled.
fn occupy_workers(rt: &pitcrew::Runtime, workers: usize) -> Arc<Latch> {
    let release = Latch::new();
    let (tx, rx) = mpsc::channel();
    for _ in 0..workers {
        let (release, tx) = (release.clone(), tx.clone());
        drop(rt.spawn(async move {
            tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "workers never released");
        }));
    }
    for _ in 0..workers {
        recv("every worker to be occupied", &rx, TIMEOUT);
    }
    release
}

/// The handles of one case's task; `observer` only watches for completion.
struct Handles {
    join: Option<JoinHandle<Out>>,
    abort: AbortHandle,
    observer: AbortHandle,
}

impl Handles {
    fn new(join: JoinHandle<Out>) -> Handles {
        Handles {
            abort: join.abort_handle(),
            observer: join.abort_handle(),
            join: Some(join),
        }
    }

    /// Does what the case says happens at `phase`: abort first, then drop the join handle.
    fn act(&mut self, case: Case, phase: Phase) {
        if case.abort == phase {
            match case.via {
                Via::JoinHandle => self.join.as_ref().expect("handle kept for abort").abort(),
                Via::AbortHandle => self.abort.abort(),
            }
        }
        if case.join == phase {
            // An output that panics on drop may be dropped right here; that panic is the
            // output's own, on this thread, and the output must still be dropped once.
            let h = self.join.take();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(h)));
        }
    }
}

fn run_case(rt: &pitcrew::Runtime, workers: usize, case: Case) -> Arc<Counters> {
    let counters = Arc::new(Counters::default());
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let (polled_tx, polled_rx) = mpsc::channel();
    let future = {
        let counters = counters.clone();
        let guard = DropCounter(counters.future_drops.clone());
        // Not `then_some`: that builds (and drops) the bomb either way.
        let bomb = if case.body == Body::PanicsInDrop {
            Some(Bomb)
        } else {
            None
        };
        let body = async move {
            let _guard = guard;
            counters.polls.fetch_add(1, Ordering::SeqCst);
            polled_tx.send(()).unwrap();
            let _ = gate_rx.await;
            if case.body == Body::PanicsInPoll {
                panic!("intentional panic in poll");
            }
            counters.outputs_created.fetch_add(1, Ordering::SeqCst);
            Out {
                _drops: DropCounter(counters.output_drops.clone()),
                _bomb: if case.output == Output::PanicsOnDrop {
                    Some(Bomb)
                } else {
                    None
                },
            }
        };
        CaseFuture {
            body: Box::pin(body),
            _bomb: bomb,
        }
    };

    let handles = if case.join == Phase::BeforeFirstPoll || case.abort == Phase::BeforeFirstPoll {
        let release = occupy_workers(rt, workers);
        let mut handles = Handles::new(rt.spawn(future));
        handles.act(case, Phase::BeforeFirstPoll);
        release.open();
        handles
    } else {
        Handles::new(rt.spawn(future))
    };
    let mut handles = handles;
    let aborted_early = case.abort < Phase::Completed;

    if case.abort != Phase::BeforeFirstPoll {
        recv(&format!("{case:?}: the first poll"), &polled_rx, TIMEOUT);
        handles.act(case, Phase::Pending);
    }
    if !aborted_early {
        gate_tx.send(()).unwrap();
    }
    wait_until(&format!("{case:?}: the task to finish"), TIMEOUT, || {
        handles.observer.is_finished()
    });
    handles.act(case, Phase::Completed);

    if let Some(h) = handles.join.take() {
        let result = join(&format!("{case:?}: the task's handle"), h);
        match (aborted_early, case.body, result) {
            (true, Body::PanicsInDrop, Err(e)) => {
                assert!(e.is_cancelled() || e.is_panic(), "{case:?}: {e:?}")
            }
            (true, _, Err(e)) => assert!(e.is_cancelled(), "{case:?}: {e:?}"),
            (false, Body::Returns, Ok(out)) => {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(out)));
            }
            (false, Body::PanicsInPoll | Body::PanicsInDrop, Err(e)) => {
                assert!(e.is_panic(), "{case:?}: {e:?}")
            }
            (_, _, r) => panic!(
                "{case:?}: unexpected result {:?}",
                r.map(|_| "Ok(output)").map_err(|e| e.to_string())
            ),
        }
    }
    wait_until(
        &format!("{case:?}: the future to be dropped"),
        TIMEOUT,
        || counters.future_drops.load(Ordering::SeqCst) >= 1,
    );
    wait_until(
        &format!("{case:?}: the output to be dropped"),
        TIMEOUT,
        || {
            counters.output_drops.load(Ordering::SeqCst)
                >= counters.outputs_created.load(Ordering::SeqCst)
        },
    );
    counters
}

fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for body in [Body::Returns, Body::PanicsInPoll, Body::PanicsInDrop] {
        for output in [Output::Plain, Output::PanicsOnDrop] {
            for join in [
                Phase::Never,
                Phase::BeforeFirstPoll,
                Phase::Pending,
                Phase::Completed,
            ] {
                for abort in [
                    Phase::Never,
                    Phase::BeforeFirstPoll,
                    Phase::Pending,
                    Phase::Completed,
                ] {
                    for via in [Via::JoinHandle, Via::AbortHandle] {
                        // Aborting through a JoinHandle needs the handle: not after dropping it.
                        if via == Via::JoinHandle && abort != Phase::Never && join < abort {
                            continue;
                        }
                        if abort == Phase::Never && via == Via::AbortHandle {
                            continue;
                        }
                        cases.push(Case {
                            body,
                            output,
                            join,
                            abort,
                            via,
                        });
                    }
                }
            }
        }
    }
    cases
}

fn run_all(workers: usize) {
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let stopped = stopped.clone();
        pitcrew::Runtime::builder()
            .workers(workers)
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let mut results = Vec::new();
    for case in all_cases() {
        results.push((case, run_case(&rt, workers, case)));
    }
    // Still healthy.
    assert_eq!(
        join("a task after every case", rt.spawn(async { 1 })).unwrap(),
        1
    );
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "a worker thread died");
    within("runtime drop", TIMEOUT, move || drop(rt));

    let mut failures = Vec::new();
    for (case, c) in &results {
        let polls = c.polls.load(Ordering::SeqCst);
        let future_drops = c.future_drops.load(Ordering::SeqCst);
        let created = c.outputs_created.load(Ordering::SeqCst);
        let output_drops = c.output_drops.load(Ordering::SeqCst);
        let mut bad = Vec::new();
        if future_drops != 1 {
            bad.push(format!("future dropped {future_drops} times"));
        }
        if created > 1 || output_drops != created {
            bad.push(format!(
                "output created {created} times, dropped {output_drops}"
            ));
        }
        if case.abort == Phase::BeforeFirstPoll && polls != 0 {
            bad.push(format!(
                "aborted before its first poll, yet polled {polls} times"
            ));
        }
        if case.abort < Phase::Completed && created != 0 {
            bad.push("aborted while pending, yet it produced an output".to_owned());
        }
        if !bad.is_empty() {
            failures.push(format!("{case:?}: {}", bad.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[test]
fn every_lifecycle_combination_on_one_worker() {
    run_all(1);
}

#[test]
fn every_lifecycle_combination_on_two_workers() {
    run_all(2);
}
