//! `Runtime::metrics`: the counters follow what the runtime did.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::{join, recv, runtime, wait_until, Latch, TIMEOUT};

#[test]
fn metrics_report_the_configured_worker_count() {
    let rt = runtime(3);
    let m = rt.metrics();
    assert_eq!(m.workers, 3);
    assert_eq!(m.per_worker.len(), 3);
    assert!(!format!("{m:?}").is_empty());
}

#[test]
fn metrics_spawned_counts_every_spawn() {
    let rt = runtime(2);
    let before = rt.metrics().spawned;
    assert_eq!(before, 0, "a fresh runtime has spawned nothing");
    let handles: Vec<_> = (0..100).map(|i| rt.spawn(async move { i })).collect();
    let inner = rt.spawn(async { pitcrew::spawn(async {}).await.unwrap() });
    for h in handles {
        join("a task", h).unwrap();
    }
    join("a task spawning another", inner).unwrap();
    assert_eq!(rt.metrics().spawned, 102);
}

#[test]
fn metrics_alive_counts_live_tasks_and_returns_to_zero() {
    const N: usize = 50;
    let rt = runtime(2);
    let release = tokio::sync::watch::channel(false);
    let (started_tx, started_rx) = mpsc::channel();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let mut go = release.1.clone();
            let started = started_tx.clone();
            rt.spawn(async move {
                started.send(()).unwrap();
                let _ = go.wait_for(|v| *v).await;
            })
        })
        .collect();
    for _ in 0..N {
        recv("every task to start", &started_rx, TIMEOUT);
    }
    assert_eq!(rt.metrics().alive, 50, "{:?}", rt.metrics());
    release.0.send(true).unwrap();
    for h in handles {
        join("a task", h).unwrap();
    }
    wait_until("alive to return to 0", TIMEOUT, || rt.metrics().alive == 0);
}

#[test]
fn metrics_alive_returns_to_zero_for_detached_and_aborted_tasks() {
    let rt = runtime(2);
    for _ in 0..20 {
        drop(rt.spawn(async {}));
    }
    let aborted: Vec<_> = (0..20)
        .map(|_| rt.spawn(std::future::pending::<()>()))
        .collect();
    for h in &aborted {
        h.abort();
    }
    for h in aborted {
        assert!(join("an aborted task", h).unwrap_err().is_cancelled());
    }
    wait_until("alive to return to 0", TIMEOUT, || rt.metrics().alive == 0);
    assert_eq!(rt.metrics().spawned, 40);
}

#[test]
fn metrics_polls_count_task_polls_on_the_workers() {
    let rt = runtime(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let h = {
        let polls = polls.clone();
        rt.spawn(std::future::poll_fn(move |cx| {
            if polls.fetch_add(1, Ordering::SeqCst) + 1 == 100 {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    };
    join("a task polled 100 times", h).unwrap();
    wait_until("metrics to show 100 polls", TIMEOUT, || {
        rt.metrics().polls >= 100
    });
    wait_until("per-worker polls to add up to the total", TIMEOUT, || {
        let m = rt.metrics();
        m.per_worker.iter().fold(0, |sum, w| sum + w.polls) == m.polls
    });
}

#[test]
fn metrics_injected_counts_spawns_from_outside_the_workers() {
    let rt = runtime(2);
    let handles: Vec<_> = (0..20).map(|_| rt.spawn(async {})).collect();
    for h in handles {
        join("a task", h).unwrap();
    }
    wait_until("injected to count 20 remote spawns", TIMEOUT, || {
        rt.metrics().injected >= 20
    });
}

#[test]
fn metrics_parks_count_idle_workers_going_to_sleep() {
    let rt = runtime(2);
    join("a task", rt.spawn(async {})).unwrap();
    wait_until("an idle worker to park", TIMEOUT, || {
        let m = rt.metrics();
        m.parks > 0 && m.per_worker.iter().any(|w| w.parks > 0)
    });
}

#[test]
fn metrics_steals_count_tasks_taken_from_a_blocked_worker() {
    let rt = runtime(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let release = Latch::new();
    let blocker = {
        let ran = ran.clone();
        let release = release.clone();
        rt.spawn(async move {
            for _ in 0..16 {
                let ran = ran.clone();
                drop(pitcrew::spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                }));
            }
            assert!(release.wait(TIMEOUT), "never released");
        })
    };
    wait_until(
        "children of a blocked worker to run elsewhere",
        TIMEOUT,
        || ran.load(Ordering::SeqCst) >= 15,
    );
    release.open();
    join("the blocker", blocker).unwrap();
    wait_until("steals to be counted", TIMEOUT, || {
        let m = rt.metrics();
        m.steals > 0 && m.per_worker.iter().any(|w| w.steals > 0)
    });
}

#[test]
fn metrics_io_registrations_counts_live_sockets() {
    let rt = Arc::new(runtime(2));
    assert_eq!(
        rt.metrics().io_registrations,
        0,
        "a fresh runtime has no sources"
    );
    let rt2 = rt.clone();
    let during = common::within("register three sockets", TIMEOUT, move || {
        rt2.block_on(async {
            let a = pitcrew::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = pitcrew::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let l = pitcrew::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            let during = rt2.metrics().io_registrations;
            drop((a, b, l));
            during
        })
    });
    assert_eq!(during, 3);
    wait_until("sockets deregistered", TIMEOUT, || {
        rt.metrics().io_registrations == 0
    });
}

/// Runs one task whose single poll holds its worker for 50 ms on a runtime with `threshold`,
/// and returns the slow-poll count before and after.
fn slow_polls_around_a_50ms_poll(threshold: std::time::Duration) -> (u64, u64) {
    let rt = pitcrew::Runtime::builder()
        .workers(2)
        .slow_poll_threshold(threshold)
        .build()
        .expect("build a runtime");
    let before = rt.metrics().slow_polls;
    let h = rt.spawn(async { std::thread::sleep(std::time::Duration::from_millis(50)) });
    join("the slow task", h).unwrap();
    // The count is bumped inside the poll, before the task completes and wakes its joiner.
    let after = rt.metrics().slow_polls;
    (before, after)
}

#[test]
fn metrics_slow_polls_count_polls_longer_than_the_threshold() {
    let (before, after) = slow_polls_around_a_50ms_poll(std::time::Duration::from_millis(10));
    assert_eq!(before, 0, "a fresh runtime has polled nothing");
    assert!(
        after >= 1,
        "a 50 ms poll over a 10 ms threshold was not counted"
    );
}

#[test]
fn metrics_slow_polls_ignore_polls_under_the_threshold() {
    let (before, after) = slow_polls_around_a_50ms_poll(std::time::Duration::from_secs(3600));
    assert_eq!((before, after), (0, 0));
}

#[test]
fn metrics_count_completed_and_cancelled_tasks() {
    let rt = runtime(2);
    let done: Vec<_> = (0..30).map(|i| rt.spawn(async move { i })).collect();
    let panicked = rt.spawn(async { panic!("a task that panics completes too") });
    let aborted: Vec<_> = (0..12)
        .map(|_| rt.spawn(std::future::pending::<()>()))
        .collect();
    for h in done {
        join("a task", h).unwrap();
    }
    assert!(join("the panicking task", panicked).unwrap_err().is_panic());
    for h in &aborted {
        h.abort();
    }
    for h in aborted {
        assert!(join("an aborted task", h).unwrap_err().is_cancelled());
    }
    // Left pending: dropped (cancelled) by the shutdown below.
    let pending = rt.spawn(std::future::pending::<()>());
    wait_until("the ended tasks to leave", TIMEOUT, || {
        rt.metrics().alive == 1
    });
    let m = rt.metrics();
    assert_eq!((m.spawned, m.completed, m.cancelled), (44, 31, 12));
    let handle = rt.handle().clone();
    drop(pending);
    rt.shutdown(std::time::Duration::ZERO);
    let m = handle.metrics();
    assert_eq!(
        (m.spawned, m.completed, m.cancelled, m.alive),
        (44, 31, 13, 0)
    );
}
