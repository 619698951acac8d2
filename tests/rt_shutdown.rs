//! Shutting a runtime down: every future still alive is dropped exactly once (idle, queued or
//! running, and even when its Drop wakes or spawns other tasks), tasks that end within the grace
//! period are reported as such, and spawning afterwards is refused.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{join, recv, runtime, wait_until, within, DropCounter, Latch, WakerSlot, TIMEOUT};
use pitcrew::task::{self, SpawnError};
use pitcrew::Handle;

/// One drop counter per future, so that a double drop of one cannot hide a missed drop of
/// another.
#[derive(Default)]
struct Ledger(Vec<Arc<AtomicUsize>>);

impl Ledger {
    fn guard(&mut self) -> DropCounter {
        let c = Arc::new(AtomicUsize::new(0));
        self.0.push(c.clone());
        DropCounter(c)
    }

    #[track_caller]
    fn assert_each_dropped_once(&self) {
        let counts: Vec<usize> = self.0.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        let bad: Vec<(usize, usize)> = counts
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, n)| n != 1)
            .collect();
        assert!(
            bad.is_empty(),
            "{} of {} futures not dropped exactly once; first (index, drops): {:?}",
            bad.len(),
            counts.len(),
            &bad[..bad.len().min(8)]
        );
    }
}

/// Waits for shutdown to begin; each probe accepted before that waits for `release`.
fn wait_for_shutdown(handle: &Handle, release: &tokio::sync::watch::Receiver<bool>) -> usize {
    common::wait_for_shutdown_to_begin(handle, || {
        let mut release = release.clone();
        async move {
            let _ = release.wait_for(|go| *go).await;
        }
    })
}

/// Wakes the stored waker when dropped.
struct WakesOnDrop(Arc<WakerSlot>);

impl Drop for WakesOnDrop {
    fn drop(&mut self) {
        self.0.wake();
    }
}

/// Stores its waker in the slot and stays pending; reports its first poll.
struct ParksIn {
    slot: Arc<WakerSlot>,
    parked: Option<mpsc::Sender<()>>,
}

impl Future for ParksIn {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.slot.store(cx.waker());
        if let Some(tx) = self.parked.take() {
            tx.send(()).unwrap();
        }
        Poll::Pending
    }
}

/// Spawns a tracked future onto `handle` when dropped, recording what the spawn returned.
struct SpawnsOnDrop {
    handle: Handle,
    payload: Option<DropCounter>,
    outcome: mpsc::Sender<&'static str>,
}

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let payload = self.payload.take().unwrap();
        let outcome = match task::Builder::new().spawn_on(
            async move {
                let _payload = payload;
            },
            &self.handle,
        ) {
            Ok(_) => "accepted",
            Err(SpawnError::Shutdown) => "shutdown",
            Err(_) => "other error",
        };
        let _ = self.outcome.send(outcome);
    }
}

#[test]
fn shutdown_drops_every_pending_future_exactly_once() {
    let rt = runtime(1);
    let handle = rt.handle().clone();
    let mut ledger = Ledger::default();
    let (parked_tx, parked_rx) = mpsc::channel();
    let mut parked = 0;

    // Idle tasks, waiting on channels that never fire (the senders outlive the runtime).
    let mut never_fired = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        never_fired.push(tx);
        let guard = ledger.guard();
        let parked_tx = parked_tx.clone();
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = guard;
            parked_tx.send(()).unwrap();
            let _ = rx.await;
        }));
    }
    // Pairs whose first task, when dropped, wakes the second: through a channel sender it owns,
    // and through a waker it holds.
    for _ in 0..10 {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (g1, g2) = (ledger.guard(), ledger.guard());
        let p = parked_tx.clone();
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = g1;
            let _sender = tx;
            p.send(()).unwrap();
            std::future::pending::<()>().await;
        }));
        let p = parked_tx.clone();
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = g2;
            p.send(()).unwrap();
            let _ = rx.await;
            std::future::pending::<()>().await;
        }));

        let slot = WakerSlot::new();
        let (g3, g4) = (ledger.guard(), ledger.guard());
        let waker_holder = WakesOnDrop(slot.clone());
        let p = parked_tx.clone();
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = g3;
            let _wakes = waker_holder;
            p.send(()).unwrap();
            std::future::pending::<()>().await;
        }));
        let parks = ParksIn {
            slot,
            parked: Some(parked_tx.clone()),
        };
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = g4;
            parks.await;
        }));
    }
    // Tasks whose Drop spawns another tracked task during shutdown.
    let (outcome_tx, outcome_rx) = mpsc::channel();
    for _ in 0..5 {
        let spawner = SpawnsOnDrop {
            handle: handle.clone(),
            payload: Some(ledger.guard()),
            outcome: outcome_tx.clone(),
        };
        let guard = ledger.guard();
        let p = parked_tx.clone();
        parked += 1;
        drop(rt.spawn(async move {
            let _guard = guard;
            let _spawner = spawner;
            p.send(()).unwrap();
            std::future::pending::<()>().await;
        }));
    }
    for _ in 0..parked {
        recv("every idle task to start waiting", &parked_rx, TIMEOUT);
    }

    // Occupy the only worker, then queue tasks behind it that are never polled before shutdown.
    let release_blocker = Latch::new();
    let (blocking_tx, blocking_rx) = mpsc::channel();
    {
        let release = release_blocker.clone();
        let guard = ledger.guard();
        drop(rt.spawn(async move {
            let _guard = guard;
            blocking_tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "blocker never released");
            std::future::pending::<()>().await;
        }));
    }
    recv("the blocker to occupy the worker", &blocking_rx, TIMEOUT);
    for _ in 0..50 {
        let guard = ledger.guard();
        drop(rt.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
    }
    // Self-waking busy tasks: always queued or running.
    for _ in 0..5 {
        let guard = ledger.guard();
        drop(rt.spawn(async move {
            let _guard = guard;
            loop {
                pitcrew::yield_now().await;
            }
        }));
    }

    let shutting_down = std::thread::spawn(move || rt.shutdown(Duration::ZERO));
    let (_release_tx, release_rx) = tokio::sync::watch::channel(false);
    wait_for_shutdown(&handle, &release_rx);
    release_blocker.open();
    within("shutdown(ZERO) with a blocked worker", TIMEOUT, move || {
        shutting_down.join().unwrap()
    });

    ledger.assert_each_dropped_once();
    drop(never_fired);
    let outcomes: Vec<_> = outcome_rx.try_iter().collect();
    assert_eq!(
        outcomes,
        vec!["shutdown"; 5],
        "spawn from a Drop during shutdown"
    );
}

#[test]
fn dropping_the_runtime_drops_pending_futures_once_and_cancels_their_handles() {
    let rt = runtime(2);
    let mut ledger = Ledger::default();
    let (started_tx, started_rx) = mpsc::channel();
    let mut handles = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..100 {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        senders.push(tx);
        let guard = ledger.guard();
        let started = started_tx.clone();
        handles.push(rt.spawn(async move {
            let _guard = guard;
            started.send(()).unwrap();
            let _ = rx.await;
        }));
    }
    for _ in 0..100 {
        recv("every task to start", &started_rx, TIMEOUT);
    }
    within("dropping the runtime", TIMEOUT, move || drop(rt));
    ledger.assert_each_dropped_once();
    assert!(senders.iter().all(|tx| tx.is_closed()));
    let results = within("handles of dropped tasks", TIMEOUT, move || {
        futures_lite::future::block_on(async move {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await);
            }
            out
        })
    });
    for r in results {
        assert!(r.expect_err("the task was dropped").is_cancelled());
    }
}

#[test]
fn shutdown_of_an_idle_runtime_reports_nothing() {
    let rt = runtime(2);
    let h = rt.spawn(async { 1 });
    assert_eq!(join("task", h).unwrap(), 1);
    let report = within("shutdown", TIMEOUT, move || {
        rt.shutdown(Duration::from_secs(5))
    });
    assert_eq!(report.completed_in_grace, 0, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
}

#[test]
fn shutdown_grace_lets_tasks_finish_and_returns_once_they_have() {
    const FINISHERS: usize = 20;
    const GRACE: Duration = Duration::from_secs(10);
    let rt = runtime(2);
    let handle = rt.handle().clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..FINISHERS {
        let mut release = release_rx.clone();
        let finished = finished.clone();
        let started = started_tx.clone();
        drop(rt.spawn(async move {
            started.send(()).unwrap();
            let _ = release.wait_for(|go| *go).await;
            finished.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for _ in 0..FINISHERS {
        recv("every task to start", &started_rx, TIMEOUT);
    }
    let began = Instant::now();
    let shutting_down = std::thread::spawn(move || rt.shutdown(GRACE));
    let probes = wait_for_shutdown(&handle, &release_rx);
    release_tx.send(true).unwrap();
    let report = within("shutdown with a grace period", GRACE + TIMEOUT, move || {
        shutting_down.join().unwrap()
    });
    let took = began.elapsed();
    assert_eq!(finished.load(Ordering::SeqCst), FINISHERS);
    assert_eq!(report.completed_in_grace, FINISHERS + probes, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
    assert!(
        took < GRACE,
        "shutdown took {took:?}: it waited out the grace period after every task had ended"
    );
}

#[test]
fn shutdown_grace_reports_finished_and_dropped_tasks() {
    const FINISHERS: usize = 10;
    const STUCK: usize = 7;
    let rt = runtime(2);
    let handle = rt.handle().clone();
    let mut ledger = Ledger::default();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (started_tx, started_rx) = mpsc::channel();
    let mut never_fired = Vec::new();
    let mut stuck_handles = Vec::new();
    for _ in 0..STUCK {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        never_fired.push(tx);
        let guard = ledger.guard();
        let started = started_tx.clone();
        stuck_handles.push(rt.spawn(async move {
            let _guard = guard;
            started.send(()).unwrap();
            let _ = rx.await;
        }));
    }
    let mut finisher_handles = Vec::new();
    for i in 0..FINISHERS {
        let mut release = release_rx.clone();
        let guard = ledger.guard();
        let started = started_tx.clone();
        finisher_handles.push(rt.spawn(async move {
            let _guard = guard;
            started.send(()).unwrap();
            let _ = release.wait_for(|go| *go).await;
            i
        }));
    }
    for _ in 0..STUCK + FINISHERS {
        recv("every task to start", &started_rx, TIMEOUT);
    }
    let shutting_down = std::thread::spawn(move || rt.shutdown(Duration::from_secs(2)));
    let probes = wait_for_shutdown(&handle, &release_rx);
    release_tx.send(true).unwrap();
    let report = within("shutdown with stuck tasks", TIMEOUT, move || {
        shutting_down.join().unwrap()
    });
    assert_eq!(report.completed_in_grace, FINISHERS + probes, "{report:?}");
    assert_eq!(report.dropped, STUCK, "{report:?}");
    ledger.assert_each_dropped_once();
    for (i, h) in finisher_handles.into_iter().enumerate() {
        assert_eq!(join("a finisher's handle", h).unwrap(), i);
    }
    for h in stuck_handles {
        assert!(join("a dropped task's handle", h)
            .unwrap_err()
            .is_cancelled());
    }
    drop(never_fired);
}

#[test]
fn spawn_after_shutdown_resolves_to_a_cancelled_join_error() {
    let rt = runtime(1);
    let handle = rt.handle().clone();
    within("shutdown", TIMEOUT, move || rt.shutdown(Duration::ZERO));
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter(drops.clone());
    let h = handle.spawn(async move {
        let _guard = guard;
        unreachable!("a task spawned after shutdown must not run");
    });
    let err = join("a handle spawned after shutdown", h).expect_err("never runs");
    assert!(err.is_cancelled(), "{err:?}");
    wait_until("the refused future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn builder_spawn_after_shutdown_returns_spawn_error_shutdown() {
    let rt = runtime(1);
    let handle = rt.handle().clone();
    within("drop", TIMEOUT, move || drop(rt));
    let drops = Arc::new(AtomicUsize::new(0));
    let guard = DropCounter(drops.clone());
    let result = task::Builder::new().name("late").spawn_on(
        async move {
            let _guard = guard;
        },
        &handle,
    );
    assert_eq!(result.map(|_| ()), Err(SpawnError::Shutdown));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the refused future was not dropped"
    );
    let msg = SpawnError::Shutdown.to_string();
    assert!(
        msg.contains("shut"),
        "SpawnError::Shutdown displays as {msg:?}"
    );
}

#[test]
fn builder_spawn_inside_a_task_during_shutdown_returns_spawn_error_shutdown() {
    // A task still running in the grace period sees the refusal through `Builder::spawn` on the
    // current runtime.
    let rt = runtime(2);
    let handle = rt.handle().clone();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (result_tx, result_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    {
        let mut release = release_rx.clone();
        drop(rt.spawn(async move {
            started_tx.send(()).unwrap();
            let _ = release.wait_for(|go| *go).await;
            let r = task::Builder::new().spawn(async {}).map(|_| ());
            result_tx.send(r).unwrap();
        }));
    }
    recv("the task to start", &started_rx, TIMEOUT);
    let shutting_down = std::thread::spawn(move || rt.shutdown(Duration::from_secs(10)));
    wait_for_shutdown(&handle, &release_rx);
    release_tx.send(true).unwrap();
    assert_eq!(
        recv("the task's spawn attempt", &result_rx, TIMEOUT),
        Err(SpawnError::Shutdown)
    );
    within("shutdown", TIMEOUT, move || shutting_down.join().unwrap());
}

/// Records the name of the thread it is dropped on.
struct DropThread(Arc<std::sync::Mutex<Vec<String>>>);

impl Drop for DropThread {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.0.lock().unwrap().push(name);
    }
}

#[test]
fn shutdown_drops_pending_futures_on_runtime_threads() {
    // Pending in a queue, parked on a waker, and parked on a timer: whichever way shutdown
    // finds them, their futures are dropped on one of the runtime's own threads, never on the
    // thread that drops the runtime.
    within("shutdown threads", TIMEOUT, || {
        let rt = pitcrew::Runtime::builder()
            .workers(2)
            .thread_name("shutdown-probe")
            .build()
            .expect("runtime");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let started = Arc::new(AtomicUsize::new(0));
        for i in 0..30 {
            let guard = DropThread(seen.clone());
            let started = started.clone();
            drop(rt.spawn(async move {
                let _guard = guard;
                started.fetch_add(1, Ordering::SeqCst);
                if i % 2 == 0 {
                    pitcrew::time::sleep(Duration::from_secs(3600)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            }));
        }
        wait_until("every task to start", TIMEOUT, || {
            started.load(Ordering::SeqCst) == 30
        });
        // Ten more that never get polled: still in the queues at shutdown.
        for _ in 0..10 {
            let guard = DropThread(seen.clone());
            drop(rt.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }));
        }
        drop(rt);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 40, "every future dropped once");
        let elsewhere: Vec<_> = seen
            .iter()
            .filter(|n| !n.starts_with("shutdown-probe"))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "dropped off the runtime: {elsewhere:?}"
        );
    });
}
