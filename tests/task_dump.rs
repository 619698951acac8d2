//! `task::dump`: what it reports about a live task (scope, state, polls, poll time), and that it
//! and `Runtime::metrics` stay consistent and deadlock-free while the runtime churns.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use pitcrew::scope::{nursery_with, ScopeOptions};
use pitcrew::task::{self, TaskInfo, TaskState};

use common::{join, recv, runtime, wait_until, within, Latch, TIMEOUT};

/// A runtime that adds up each task's poll time.
fn tracking_runtime(workers: usize) -> pitcrew::Runtime {
    pitcrew::Runtime::builder()
        .workers(workers)
        .track_poll_time(true)
        .build()
        .expect("build a runtime")
}

fn find(tasks: &[TaskInfo], id: task::Id) -> Option<&TaskInfo> {
    tasks.iter().find(|t| t.id == id)
}

#[test]
fn dump_lists_a_sleeping_named_task_in_its_nursery() {
    let rt = Arc::new(runtime(2));
    let (asleep_tx, asleep_rx) = mpsc::channel();
    let (wake_tx, wake_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = {
        let rt2 = rt.clone();
        std::thread::spawn(move || {
            rt2.block_on(nursery_with(
                ScopeOptions::new().name("sleepers"),
                move |n| async move {
                    let napper = n.child().name("napper").spawn(async {
                        pitcrew::time::sleep(Duration::from_secs(3600)).await;
                        Ok::<(), String>(())
                    });
                    asleep_tx.send(napper.id()).unwrap();
                    let _ = wake_rx.await;
                    n.cancel();
                    Ok::<(), String>(())
                },
            ))
        })
    };
    let id = recv("the sleeper's id", &asleep_rx, TIMEOUT);
    // It is idle once its first poll has registered the timer and returned.
    let mut seen = None;
    wait_until("the sleeper to be idle in its sleep", TIMEOUT, || {
        seen = find(&task::dump(rt.handle()), id).cloned();
        seen.as_ref()
            .is_some_and(|t| t.state == TaskState::Idle && t.polls >= 1)
    });
    let napper = seen.expect("found above");
    assert_eq!(napper.name.as_deref(), Some("napper"));
    let path: Vec<&str> = napper.scope_path.iter().map(|s| &**s).collect();
    assert_eq!(path, ["sleepers"]);
    assert_eq!(napper.polls, 1, "a sleeping task is not polled again");

    let tree = task::dump_tree(rt.handle()).to_string();
    let scope_line = tree
        .lines()
        .position(|l| l == "  sleepers")
        .unwrap_or_else(|| panic!("no scope header in:\n{tree}"));
    let task_line = tree
        .lines()
        .position(|l| l.starts_with(&format!("    task {id} \"napper\" idle polls=1 ")))
        .unwrap_or_else(|| panic!("no line for the sleeper under its scope in:\n{tree}"));
    assert!(scope_line < task_line, "{tree}");

    wake_tx.send(()).unwrap();
    let out = within("the nursery to end", TIMEOUT, move || {
        driver.join().unwrap()
    });
    out.expect("a nursery whose body cancels it ends cleanly");
    wait_until("the sleeper to leave the dump", TIMEOUT, || {
        find(&task::dump(rt.handle()), id).is_none()
    });
}

#[test]
fn dump_adds_up_the_time_spent_in_every_poll() {
    const POLLS: u64 = 3;
    const BLOCK: Duration = Duration::from_millis(10);
    let rt = tracking_runtime(2);
    let (polled_tx, polled_rx) = mpsc::channel();
    let release = tokio::sync::watch::channel(false);
    let mut go = release.1.clone();
    let h = rt.spawn(async move {
        let mut n = 0;
        std::future::poll_fn(|cx| {
            // Each poll holds its worker for at least `BLOCK`.
            std::thread::sleep(BLOCK);
            n += 1;
            if n == POLLS {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        polled_tx.send(task::id()).unwrap();
        let _ = go.wait_for(|v| *v).await;
    });
    let id = recv("the task's busy polls to end", &polled_rx, TIMEOUT);
    let mut seen = None;
    wait_until("the task to wait for its release", TIMEOUT, || {
        seen = find(&task::dump(rt.handle()), id).cloned();
        seen.as_ref().is_some_and(|t| t.state == TaskState::Idle)
    });
    let t = seen.expect("found above");
    // The poll that finished the busy loop went on to the watch channel: POLLS polls in all.
    assert_eq!(t.polls, POLLS, "{t:?}");
    let poll_time = t.poll_time.expect("the runtime tracks poll time");
    // 10% below the sum, for the cycle counter's calibration; one poll alone is far below.
    let least = BLOCK * POLLS as u32 * 9 / 10;
    assert!(
        poll_time >= least && poll_time < TIMEOUT,
        "poll time {poll_time:?} is not the sum of {POLLS} polls of at least {BLOCK:?}"
    );
    assert!(t.age >= poll_time, "{t:?}");
    let tree = task::dump_tree(rt.handle()).to_string();
    let line = tree
        .lines()
        .find(|l| l.contains(&format!("task {id} ")))
        .unwrap_or_else(|| panic!("no line for the task in:\n{tree}"));
    assert!(line.contains(" poll_time="), "{line}");
    release.0.send(true).unwrap();
    join("the task", h).unwrap();
}

#[test]
fn a_task_that_was_never_polled_has_no_poll_time() {
    let rt = tracking_runtime(1);
    let blocker_in = Latch::new();
    let release = Latch::new();
    let blocker = {
        let (blocker_in, release) = (blocker_in.clone(), release.clone());
        rt.spawn(async move {
            blocker_in.open();
            assert!(release.wait(TIMEOUT), "never released");
        })
    };
    assert!(blocker_in.wait(TIMEOUT), "the blocker never ran");
    // The only worker is held: this one stays queued.
    let queued = rt.spawn(async {});
    let t = find(&task::dump(rt.handle()), queued.id())
        .cloned()
        .expect("a queued task is live");
    assert_eq!(t.state, TaskState::Scheduled);
    assert_eq!((t.polls, t.poll_time), (0, Some(Duration::ZERO)));
    release.open();
    join("the blocker", blocker).unwrap();
    join("the queued task", queued).unwrap();
}

#[test]
fn poll_time_is_absent_unless_the_runtime_tracks_it() {
    let rt = runtime(1);
    let (polled_tx, polled_rx) = mpsc::channel();
    let h = rt.spawn(async move {
        polled_tx.send(()).unwrap();
        std::future::pending::<()>().await
    });
    recv("the task's first poll", &polled_rx, TIMEOUT);
    let t = find(&task::dump(rt.handle()), h.id())
        .cloned()
        .expect("a pending task is live");
    assert_eq!(t.poll_time, None);
    let tree = task::dump_tree(rt.handle()).to_string();
    assert!(!tree.contains("poll_time="), "{tree}");
    h.abort();
}

/// Counters of `Runtime::metrics` that only grow.
fn counters(m: &pitcrew::runtime::Metrics) -> Vec<(String, u64)> {
    let mut out = vec![
        ("spawned".to_owned(), m.spawned),
        ("polls".to_owned(), m.polls),
        ("steals".to_owned(), m.steals),
        ("parks".to_owned(), m.parks),
        ("injected".to_owned(), m.injected),
        ("slow_polls".to_owned(), m.slow_polls),
    ];
    for (i, w) in m.per_worker.iter().enumerate() {
        out.push((format!("worker {i} polls"), w.polls));
        out.push((format!("worker {i} steals"), w.steals));
        out.push((format!("worker {i} parks"), w.parks));
        out.push((format!("worker {i} spawned"), w.spawned));
        out.push((format!("worker {i} lifo_hits"), w.lifo_hits));
        out.push((format!("worker {i} overflows"), w.overflows));
    }
    out
}

#[test]
fn dump_and_metrics_from_another_thread_stay_consistent_while_ten_thousand_tasks_churn() {
    const TASKS: usize = 10_000;
    const WAVE: usize = 250;
    const NURSERY_CHILDREN: usize = 8;
    const LOOKS: usize = 1_000;
    let rt = Arc::new(tracking_runtime(2));
    let finished = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(AtomicUsize::new(0));
    let churning = Latch::new();
    let observer_done = Arc::new(AtomicBool::new(false));

    // Waves of tasks that yield and end, some named, some in a named nursery: at least TASKS of
    // them, and more until the observer has had all its looks, so every look sees churn.
    let churn = {
        let (finished, spawned) = (finished.clone(), spawned.clone());
        let (churning, observer_done) = (churning.clone(), observer_done.clone());
        rt.spawn(async move {
            churning.open();
            let mut wave = 0;
            while wave < TASKS / WAVE || !observer_done.load(Ordering::SeqCst) {
                let mut handles = Vec::with_capacity(WAVE);
                for i in 0..WAVE {
                    let finished = finished.clone();
                    let work = async move {
                        for _ in 0..(i % 3) {
                            pitcrew::yield_now().await;
                        }
                        finished.fetch_add(1, Ordering::Relaxed);
                    };
                    handles.push(if i % 2 == 0 {
                        task::Builder::new()
                            .name(format!("churn-{wave}-{i}"))
                            .spawn(work)
                            .expect("the runtime is running")
                    } else {
                        pitcrew::spawn(work)
                    });
                }
                spawned.fetch_add(WAVE, Ordering::Relaxed);
                if wave % 4 == 0 {
                    let finished = finished.clone();
                    nursery_with(ScopeOptions::new().name("wave"), |n| async move {
                        for _ in 0..NURSERY_CHILDREN {
                            let finished = finished.clone();
                            n.spawn(async move {
                                pitcrew::yield_now().await;
                                finished.fetch_add(1, Ordering::Relaxed);
                                Ok::<(), String>(())
                            });
                        }
                        Ok::<(), String>(())
                    })
                    .await
                    .expect("the wave's nursery succeeds");
                    spawned.fetch_add(NURSERY_CHILDREN, Ordering::Relaxed);
                }
                for h in handles {
                    h.await.expect("a churn task");
                }
                wave += 1;
            }
        })
    };

    let observer = {
        let rt = rt.clone();
        std::thread::spawn(move || {
            assert!(churning.wait(TIMEOUT), "the churn never started");
            let mut last = counters(&rt.metrics());
            let mut per_task: HashMap<task::Id, (u64, Option<Duration>)> = HashMap::new();
            for _ in 0..LOOKS {
                let tasks = task::dump(rt.handle());
                let m = rt.metrics();
                // Every task at most once; never more tasks than were ever spawned.
                let mut ids: Vec<task::Id> = tasks.iter().map(|t| t.id).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), tasks.len(), "a task listed twice");
                assert!(tasks.len() as u64 <= m.spawned, "{} > {m:?}", tasks.len());
                assert!(m.alive as u64 <= m.spawned, "{m:?}");
                // A task's own statistics never go backwards.
                for t in &tasks {
                    assert!(t.poll_time.is_some(), "the runtime tracks poll time");
                    let entry = per_task.entry(t.id).or_insert((0, Some(Duration::ZERO)));
                    assert!(
                        t.polls >= entry.0 && t.poll_time >= entry.1,
                        "task {} went from {entry:?} to ({}, {:?})",
                        t.id,
                        t.polls,
                        t.poll_time
                    );
                    *entry = (t.polls, t.poll_time);
                    if !t.scope_path.is_empty() {
                        let path: Vec<&str> = t.scope_path.iter().map(|s| &**s).collect();
                        assert_eq!(path, ["wave"]);
                    }
                }
                // Counters only grow; the totals are the sums of the workers' counters.
                let now = counters(&m);
                for ((name, before), (_, after)) in last.iter().zip(&now) {
                    assert!(after >= before, "{name} went from {before} to {after}");
                }
                last = now;
                let sum = |f: fn(&pitcrew::runtime::WorkerMetrics) -> u64| {
                    m.per_worker.iter().map(f).sum::<u64>()
                };
                assert_eq!(m.polls, sum(|w| w.polls), "{m:?}");
                assert_eq!(m.steals, sum(|w| w.steals), "{m:?}");
                assert_eq!(m.parks, sum(|w| w.parks), "{m:?}");
                assert!(m.spawned >= sum(|w| w.spawned), "{m:?}");
            }
            observer_done.store(true, Ordering::SeqCst);
        })
    };
    // A deadlock in either shows up as one of these timing out.
    within(
        "1,000 dumps and metrics during the churn",
        TIMEOUT * 3,
        move || observer.join().expect("the observer's checks hold"),
    );
    join("the churn", churn).unwrap();
    let spawned = spawned.load(Ordering::Relaxed);
    assert!(spawned >= TASKS);
    assert_eq!(finished.load(Ordering::Relaxed), spawned);
    wait_until("every task to be released", TIMEOUT, || {
        rt.metrics().alive == 0 && task::dump(rt.handle()).is_empty()
    });
    assert_eq!(
        rt.metrics().spawned,
        1 + spawned as u64,
        "the driver and its tasks"
    );
}
