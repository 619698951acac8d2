//! Scheduling fairness (RELIABILITY.md, "Scheduling regressions other runtimes shipped"): busy
//! local work does not starve remote spawns, remote wakes, yielding tasks, timers, I/O or
//! `block_on`; tasks queued behind a worker blocked in a poll migrate to another worker; and a
//! task that keeps finding ready work yields on its budget.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};

use common::{join, recv, runtime, wait_until, WakerSlot, TIMEOUT};

/// Sets `stop` when dropped, so that busy tasks end even when an assertion fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Spawns `n` tasks that yield in a loop until `stop` is set.
fn spawn_busy_yielders(rt: &pitcrew::Runtime, n: usize, stop: &Arc<AtomicBool>) {
    for _ in 0..n {
        let stop = stop.clone();
        drop(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                pitcrew::yield_now().await;
            }
        }));
    }
}
#[test]
fn remote_spawn_is_not_starved_by_a_self_respawning_task() {
    // On one worker, a task that keeps spawning a successor (always local work) must not keep
    // a task spawned from outside (in the injector) from ever running.
    fn respawn(stop: Arc<AtomicBool>, hops: Arc<AtomicUsize>) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        hops.fetch_add(1, Ordering::Relaxed);
        drop(pitcrew::spawn(async move { respawn(stop, hops) }));
    }
    let rt = runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let hops = Arc::new(AtomicUsize::new(0));
    {
        let (stop, hops) = (stop.clone(), hops.clone());
        drop(rt.spawn(async move { respawn(stop, hops) }));
    }
    wait_until("the respawning chain to start", TIMEOUT, || {
        hops.load(Ordering::Relaxed) > 100
    });
    let (tx, rx) = mpsc::channel();
    drop(rt.spawn(async move { tx.send(()).unwrap() }));
    let got = rx.recv_timeout(TIMEOUT);
    stop.store(true, Ordering::SeqCst);
    assert!(
        got.is_ok(),
        "a remotely spawned task never ran while a self-respawning task held the only worker"
    );
}

/// Pending until `rounds` wakes have been delivered; reports each time it parks.
struct Probe {
    slot: Arc<WakerSlot>,
    delivered: Arc<AtomicUsize>,
    rounds: usize,
    parked: mpsc::Sender<usize>,
    seen: usize,
}

impl Future for Probe {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.slot.store(cx.waker());
        let delivered = self.delivered.load(Ordering::SeqCst);
        if delivered >= self.rounds {
            return Poll::Ready(());
        }
        if delivered == self.seen {
            self.seen += 1;
            let _ = self.parked.send(delivered);
        }
        Poll::Pending
    }
}

#[test]
fn task_woken_from_outside_runs_among_busy_self_waking_tasks() {
    const ROUNDS: usize = 10;
    let rt = runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    spawn_busy_yielders(&rt, 100, &stop);
    let slot = WakerSlot::new();
    let delivered = Arc::new(AtomicUsize::new(0));
    let (parked_tx, parked_rx) = mpsc::channel();
    let probe = rt.spawn(Probe {
        slot: slot.clone(),
        delivered: delivered.clone(),
        rounds: ROUNDS,
        parked: parked_tx,
        seen: 0,
    });
    for round in 0..ROUNDS {
        assert_eq!(
            recv("the probe to be polled after a wake", &parked_rx, TIMEOUT),
            round
        );
        delivered.fetch_add(1, Ordering::SeqCst);
        assert!(slot.wake_keep());
    }
    join("the probe's last round", probe).unwrap();
}

#[test]
fn yielding_task_is_not_starved_by_ping_pong_pairs() {
    // Each message wakes the partner on the same worker, the case a LIFO slot favours; a task
    // that only yields must still get through its five yields.
    const PAIRS: usize = 100;
    let rt = runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..PAIRS {
        let (a_tx, mut a_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let (b_tx, mut b_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let stop_a = stop.clone();
        drop(rt.spawn(async move {
            while let Some(n) = a_rx.recv().await {
                if stop_a.load(Ordering::Relaxed) || b_tx.send(n + 1).is_err() {
                    break;
                }
            }
        }));
        let stop_b = stop.clone();
        let started = started_tx.clone();
        drop(rt.spawn(async move {
            a_tx.send(0).unwrap();
            let mut reported = false;
            while let Some(n) = b_rx.recv().await {
                if !reported && n > 10 {
                    reported = true;
                    started.send(()).unwrap();
                }
                if stop_b.load(Ordering::Relaxed) || a_tx.send(n + 1).is_err() {
                    break;
                }
            }
        }));
    }
    for _ in 0..PAIRS {
        recv("every pair to be ping-ponging", &started_rx, TIMEOUT);
    }
    let yielder = rt.spawn(async {
        for _ in 0..5 {
            pitcrew::yield_now().await;
        }
    });
    join("a task yielding 5 times among 100 ping-pong pairs", yielder).unwrap();
}

#[test]
fn task_draining_many_ready_join_handles_yields_on_budget() {
    // 1,000 join handles that are all ready: awaiting them in a loop never returns Pending on its
    // own, so only the budget lets the task queued behind it on the single worker run.
    const N: usize = 1_000;
    let rt = runtime(1);
    let handles: Vec<_> = (0..N).map(|_| rt.spawn(async {})).collect();
    wait_until("every task to finish", TIMEOUT, || {
        handles.iter().all(|h| h.is_finished())
    });
    let drainer = rt.spawn(async move {
        let other_ran = Arc::new(AtomicBool::new(false));
        {
            let other_ran = other_ran.clone();
            drop(pitcrew::spawn(async move {
                other_ran.store(true, Ordering::SeqCst);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        other_ran.load(Ordering::SeqCst)
    });
    assert!(
        join("the draining task", drainer).unwrap(),
        "a task awaiting 1,000 ready join handles never yielded to the task queued behind it"
    );
}

#[test]
fn probe_woken_every_10ms_among_a_thousand_busy_tasks_is_polled_after_each_wake() {
    const ROUNDS: usize = 10;
    let rt = runtime(2);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    spawn_busy_yielders(&rt, 1_000, &stop);
    let slot = WakerSlot::new();
    let delivered = Arc::new(AtomicUsize::new(0));
    let (parked_tx, parked_rx) = mpsc::channel();
    let probe = rt.spawn(Probe {
        slot: slot.clone(),
        delivered: delivered.clone(),
        rounds: ROUNDS,
        parked: parked_tx,
        seen: 0,
    });
    for round in 0..ROUNDS {
        assert_eq!(
            recv("the probe to be polled after a wake", &parked_rx, TIMEOUT),
            round
        );
        // Paces the wakes, as a 10 ms tick would; nothing is decided by this sleep.
        std::thread::sleep(std::time::Duration::from_millis(10));
        delivered.fetch_add(1, Ordering::SeqCst);
        assert!(slot.wake_keep());
    }
    join("the probe's last round", probe).unwrap();
}

#[test]
fn timers_and_io_are_not_starved_by_a_hundred_busy_self_waking_tasks() {
    use std::time::Duration;
    let rt = runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    spawn_busy_yielders(&rt, 100, &stop);
    // Timers: five sleeps in a row, each must fire while the worker is saturated.
    let sleeper = rt.spawn(async {
        for _ in 0..5 {
            pitcrew::time::sleep(Duration::from_millis(10)).await;
        }
    });
    join("five sleeps among 100 busy tasks", sleeper).unwrap();
    // I/O: a datagram and a TCP connection, sent from outside, must be delivered.
    let (tx, rx) = mpsc::channel();
    let io = rt.spawn(async move {
        let udp = pitcrew::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tcp = pitcrew::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        tx.send((udp.local_addr().unwrap(), tcp.local_addr().unwrap()))
            .unwrap();
        let mut buf = [0u8; 4];
        let (n, _) = udp.recv_from(&mut buf).await.unwrap();
        let (mut stream, _) = tcp.accept().await.unwrap();
        let mut byte = [0u8; 1];
        futures_lite::AsyncReadExt::read_exact(&mut stream, &mut byte)
            .await
            .unwrap();
        (buf[..n].to_vec(), byte[0])
    });
    let (udp_addr, tcp_addr) = recv("the sockets to be bound", &rx, TIMEOUT);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"ping", udp_addr).unwrap();
    let mut stream = std::net::TcpStream::connect(tcp_addr).unwrap();
    std::io::Write::write_all(&mut stream, b"!").unwrap();
    assert_eq!(
        join("I/O among 100 busy tasks", io).unwrap(),
        (b"ping".to_vec(), b'!')
    );
}

#[test]
fn block_on_is_not_starved_by_a_self_respawning_task_on_one_worker() {
    fn respawn(stop: Arc<AtomicBool>, hops: Arc<AtomicUsize>) {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        hops.fetch_add(1, Ordering::Relaxed);
        drop(pitcrew::spawn(async move { respawn(stop, hops) }));
    }
    let rt = runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let hops = Arc::new(AtomicUsize::new(0));
    {
        let (stop, hops) = (stop.clone(), hops.clone());
        drop(rt.spawn(async move { respawn(stop, hops) }));
    }
    wait_until("the respawning chain to start", TIMEOUT, || {
        hops.load(Ordering::Relaxed) > 100
    });
    // block_on's own future needs the worker: it awaits a spawned task and a timer.
    let handle = rt.handle().clone();
    let out = common::within(
        "block_on beside a self-respawning task",
        TIMEOUT,
        move || {
            handle.block_on(async {
                pitcrew::yield_now().await;
                pitcrew::time::sleep(std::time::Duration::from_millis(1)).await;
                pitcrew::spawn(async { 3 }).await.unwrap()
            })
        },
    );
    assert_eq!(out, 3);
}

#[test]
fn tasks_queued_behind_a_worker_blocked_in_a_poll_migrate_to_the_other_worker() {
    // A task spawns children onto its own worker, then blocks inside its poll. The children in
    // its deque must be stolen and run by the other worker meanwhile. The last child spawned
    // sits in the worker's LIFO slot, which other workers cannot steal: it runs only once the
    // blocked poll returns, so the blocked task waits for the others only.
    const CHILDREN: usize = 8;
    let rt = runtime(2);
    let (tx, rx) = mpsc::channel();
    let blocker = rt.spawn(async move {
        let me = std::thread::current().id();
        let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
        let migrated = common::Latch::new();
        let children: Vec<_> = (0..CHILDREN)
            .map(|_| {
                let (ran, migrated) = (ran.clone(), migrated.clone());
                pitcrew::spawn(async move {
                    let mut ran = ran.lock().unwrap();
                    ran.push(std::thread::current().id());
                    if ran.len() == CHILDREN - 1 {
                        migrated.open();
                    }
                })
            })
            .collect();
        // Blocks this worker, inside this poll, until the deque's children have run elsewhere.
        let all_moved = migrated.wait(TIMEOUT);
        let elsewhere = ran.lock().unwrap().iter().filter(|&&t| t != me).count();
        tx.send((all_moved, elsewhere)).unwrap();
        for c in children {
            c.await.unwrap();
        }
    });
    let (all_moved, elsewhere) = recv("the blocked task's report", &rx, TIMEOUT * 2);
    assert!(
        all_moved,
        "the tasks queued behind a blocked worker were not run by the other worker"
    );
    assert_eq!(elsewhere, CHILDREN - 1);
    join("the blocked task and its children", blocker).unwrap();
}
