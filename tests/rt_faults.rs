//! Fault injection (RELIABILITY.md, "Faults"): wakers that panic in `clone`, `wake` or `drop`,
//! thread hooks that panic, user code that re-enters the runtime (spawns, wakes, blocks, takes
//! a lock) from a `Drop` or a `wake`, shutdown under load with such Drops, a saturated blocking
//! pool and `spawn_blocking` during shutdown. Each test checks that the runtime carries on: no
//! dead worker, timer or reactor, no deadlock, every future dropped once.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use common::{
    join, panic_message, recv, wait_until, within, DropCounter, Latch, WakerSlot, TIMEOUT,
};

// ---------------------------------------------------------------------------------------------
// A waker that misbehaves on request.

/// What a [`faulty_waker`] does; shared by every clone of it.
#[derive(Default)]
struct Faults {
    panic_on_clone: AtomicBool,
    panic_on_wake: AtomicBool,
    panic_on_drop: AtomicBool,
    wakes: AtomicUsize,
    /// Run inside `wake`, before any panic.
    on_wake: Mutex<Option<Box<dyn Fn() + Send>>>,
}

const FAULTY_VTABLE: RawWakerVTable =
    RawWakerVTable::new(faulty_clone, faulty_wake, faulty_wake_by_ref, faulty_drop);

fn faulty_waker(faults: &Arc<Faults>) -> Waker {
    let data = Arc::into_raw(faults.clone()) as *const ();
    // SAFETY: `data` is an `Arc<Faults>` reference that the vtable's functions manage.
    unsafe { Waker::from_raw(RawWaker::new(data, &FAULTY_VTABLE)) }
}

/// # Safety
///
/// `data` is a live `Arc<Faults>` pointer owned by a waker.
unsafe fn faults_of<'a>(data: *const ()) -> &'a Faults {
    // SAFETY: the caller's contract.
    unsafe { &*(data as *const Faults) }
}

unsafe fn faulty_clone(data: *const ()) -> RawWaker {
    // SAFETY: called on a live waker.
    if unsafe { faults_of(data) }
        .panic_on_clone
        .load(Ordering::SeqCst)
    {
        panic!("intentional panic in a waker's clone");
    }
    // SAFETY: `data` came from `Arc::into_raw`; the clone owns one more reference.
    unsafe { Arc::increment_strong_count(data as *const Faults) };
    RawWaker::new(data, &FAULTY_VTABLE)
}

unsafe fn faulty_wake_by_ref(data: *const ()) {
    // SAFETY: called on a live waker.
    let faults = unsafe { faults_of(data) };
    faults.wakes.fetch_add(1, Ordering::SeqCst);
    if let Some(f) = faults.on_wake.lock().unwrap().as_ref() {
        f();
    }
    if faults.panic_on_wake.load(Ordering::SeqCst) {
        panic!("intentional panic in a waker's wake");
    }
}

unsafe fn faulty_wake(data: *const ()) {
    // The waker's reference is released even if the wake panics.
    struct Release(*const ());
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: the by-value wake owns this reference.
            drop(unsafe { Arc::from_raw(self.0 as *const Faults) });
        }
    }
    let _release = Release(data);
    // SAFETY: the reference is live until `_release` drops.
    unsafe { faulty_wake_by_ref(data) };
}

unsafe fn faulty_drop(data: *const ()) {
    // SAFETY: the dropped waker owned this reference.
    let faults = unsafe { Arc::from_raw(data as *const Faults) };
    if faults.panic_on_drop.load(Ordering::SeqCst) {
        drop(faults);
        panic!("intentional panic in a waker's drop");
    }
}

/// Polls `fut` once with `waker` on the calling thread.
fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A sleep made inside `rt` (a sleep binds to the current runtime), to be polled outside it.
fn sleep_made_in(rt: &pitcrew::Runtime, d: Duration) -> Pin<Box<pitcrew::time::Sleep>> {
    let (sleep,) = rt.block_on(async move { (Box::pin(pitcrew::time::sleep(d)),) });
    sleep
}

/// A runtime whose thread-stop hook counts into the returned counter (workers only).
fn watched_runtime(workers: usize) -> (pitcrew::Runtime, Arc<AtomicUsize>) {
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let stopped = stopped.clone();
        pitcrew::Runtime::builder()
            .workers(workers)
            .on_thread_stop(move || {
                if std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("pitcrew-worker"))
                {
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap()
    };
    (rt, stopped)
}

/// The runtime still runs tasks on every worker (tasks that wait for each other need all of
/// them), timers and blocking jobs, and no worker has stopped.
#[track_caller]
fn assert_healthy(rt: &pitcrew::Runtime, stopped: &AtomicUsize) {
    let workers = rt.metrics().workers;
    let all = common::Rendezvous::new(workers);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let all = all.clone();
            rt.spawn(async move { all.wait(TIMEOUT) })
        })
        .collect();
    for t in tasks {
        assert!(
            join("a task on every worker", t).unwrap(),
            "a worker no longer runs tasks"
        );
    }
    let h = rt.spawn(async {
        pitcrew::time::sleep(Duration::from_millis(1)).await;
        pitcrew::spawn_blocking(|| 5).await.unwrap() + 1
    });
    assert_eq!(join("a task after the fault", h).unwrap(), 6);
    assert_eq!(stopped.load(Ordering::SeqCst), 0, "a worker thread stopped");
}

/// Silences the intentional panics of this file (they would fill the log); any other panic
/// goes to the default hook.
fn quiet_intentional_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with("intentional") {
                default_hook(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Panicking wakers.

#[test]
fn join_waker_panicking_in_wake_is_contained_and_the_output_still_arrives() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(1);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut h = rt.spawn(async move {
        let _ = rx.await;
        42
    });
    let faults = Arc::new(Faults::default());
    faults.panic_on_wake.store(true, Ordering::SeqCst);
    assert!(poll_once(&mut h, &faulty_waker(&faults)).is_pending());
    tx.send(()).unwrap();
    wait_until(
        "the task to complete and wake the join waker",
        TIMEOUT,
        || faults.wakes.load(Ordering::SeqCst) >= 1,
    );
    assert_eq!(join("the handle after a panicking wake", h).unwrap(), 42);
    assert_healthy(&rt, &stopped);
}

#[test]
fn join_waker_panicking_in_clone_leaves_the_handle_usable() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(1);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut h = rt.spawn(async move {
        let _ = rx.await;
        7
    });
    let faults = Arc::new(Faults::default());
    faults.panic_on_clone.store(true, Ordering::SeqCst);
    let polled = catch_unwind(AssertUnwindSafe(|| {
        poll_once(&mut h, &faulty_waker(&faults))
    }));
    // The clone's panic reaches the caller of `poll` (or the handle did not need a clone).
    if let Err(payload) = &polled {
        assert_eq!(
            panic_message(&**payload),
            "intentional panic in a waker's clone"
        );
    }
    tx.send(()).unwrap();
    assert_eq!(join("the handle after a panicking clone", h).unwrap(), 7);
    assert_healthy(&rt, &stopped);
}

/// Polls `h` with a well-behaved waker until it is ready, tolerating (and checking) the panic
/// of a faulty waker it replaces.
fn poll_to_completion<T>(
    h: &mut pitcrew::task::JoinHandle<T>,
) -> Result<T, pitcrew::task::JoinError> {
    wait_until("the task to finish", TIMEOUT, || h.is_finished());
    let good = Arc::new(Faults::default());
    for _ in 0..2 {
        match catch_unwind(AssertUnwindSafe(|| poll_once(h, &faulty_waker(&good)))) {
            Ok(Poll::Ready(r)) => return r,
            Ok(Poll::Pending) => panic!("a finished task's handle is pending"),
            Err(payload) => assert_eq!(
                panic_message(&*payload),
                "intentional panic in a waker's drop"
            ),
        }
    }
    panic!("the handle never gave its output")
}

#[test]
fn join_waker_panicking_in_drop_is_contained_when_replaced_or_released() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(1);
    // Released by the worker when the task completes, or by the next poll of the handle.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut h = rt.spawn(async move {
        let _ = rx.await;
        1
    });
    // Only the handle's clone is left when the fault is armed.
    let faults = Arc::new(Faults::default());
    assert!(poll_once(&mut h, &faulty_waker(&faults)).is_pending());
    faults.panic_on_drop.store(true, Ordering::SeqCst);
    tx.send(()).unwrap();
    assert_eq!(poll_to_completion(&mut h).unwrap(), 1);
    // Replaced by a second poll with another waker before the task completes.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut h2 = rt.spawn(async move {
        let _ = rx.await;
        2
    });
    faults.panic_on_drop.store(false, Ordering::SeqCst);
    assert!(poll_once(&mut h2, &faulty_waker(&faults)).is_pending());
    faults.panic_on_drop.store(true, Ordering::SeqCst);
    let other = Arc::new(Faults::default());
    let replaced = catch_unwind(AssertUnwindSafe(|| {
        poll_once(&mut h2, &faulty_waker(&other))
    }));
    if let Err(payload) = &replaced {
        assert_eq!(
            panic_message(&**payload),
            "intentional panic in a waker's drop"
        );
    }
    tx.send(()).unwrap();
    assert_eq!(poll_to_completion(&mut h2).unwrap(), 2);
    faults.panic_on_drop.store(false, Ordering::SeqCst);
    drop((h, h2));
    assert_healthy(&rt, &stopped);
}

#[test]
fn timer_thread_survives_a_sleep_waker_that_panics_in_wake() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(1);
    let mut sleep = sleep_made_in(&rt, Duration::from_millis(5));
    let faults = Arc::new(Faults::default());
    faults.panic_on_wake.store(true, Ordering::SeqCst);
    assert!(poll_once(&mut sleep, &faulty_waker(&faults)).is_pending());
    wait_until("the timer to fire the panicking waker", TIMEOUT, || {
        faults.wakes.load(Ordering::SeqCst) >= 1
    });
    // Later timers still fire (`assert_healthy` sleeps), and so does one made before.
    assert_healthy(&rt, &stopped);
    let handle = rt.handle().clone();
    within("a sleep after the panicking wake", TIMEOUT, move || {
        handle.block_on(async { pitcrew::time::sleep(Duration::from_millis(2)).await })
    });
}

#[test]
fn reactor_survives_an_io_waker_that_panics_in_wake() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(2);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let socket = rt.block_on(async move { pitcrew::io::Async::new(socket).unwrap() });
    let faults = Arc::new(Faults::default());
    faults.panic_on_wake.store(true, Ordering::SeqCst);
    let waker = faulty_waker(&faults);
    let mut buf = [0u8; 8];
    assert!(socket
        .poll_read_with(&mut Context::from_waker(&waker), |s| s.recv(&mut buf))
        .is_pending());
    drop(waker);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"ping", addr).unwrap();
    wait_until("the reactor to wake the panicking waker", TIMEOUT, || {
        faults.wakes.load(Ordering::SeqCst) >= 1
    });
    assert_healthy(&rt, &stopped);
    // The same source, and a new one, still get readiness.
    let handle = rt.handle().clone();
    let got = within("I/O after the panicking wake", TIMEOUT, move || {
        handle.block_on(async move {
            let mut buf = [0u8; 8];
            let n = socket.read_with(|s| s.recv(&mut buf)).await.unwrap();
            let fresh = pitcrew::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sender
                .send_to(b"pong", fresh.local_addr().unwrap())
                .unwrap();
            let mut buf2 = [0u8; 8];
            let (m, _) = fresh.recv_from(&mut buf2).await.unwrap();
            (buf[..n].to_vec(), buf2[..m].to_vec())
        })
    });
    assert_eq!(got, (b"ping".to_vec(), b"pong".to_vec()));
}

// ---------------------------------------------------------------------------------------------
// Panicking hooks.

#[test]
fn panicking_thread_hooks_are_contained_and_every_thread_still_stops() {
    quiet_intentional_panics();
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (started, stopped) = (started.clone(), stopped.clone());
        pitcrew::Runtime::builder()
            .workers(2)
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
                panic!("intentional panic in on_thread_start");
            })
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
                panic!("intentional panic in on_thread_stop");
            })
            .build()
            .expect("a panicking hook does not fail the build")
    };
    // Both workers run tasks: two tasks that each wait for the other occupy both.
    let both = common::Rendezvous::new(2);
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let both = both.clone();
            rt.spawn(async move { both.wait(TIMEOUT) })
        })
        .collect();
    for t in tasks {
        assert!(
            join("a task on each worker", t).unwrap(),
            "a worker is missing"
        );
    }
    let h = rt.spawn(async {
        pitcrew::time::sleep(Duration::from_millis(1)).await;
        pitcrew::spawn_blocking(|| 3).await.unwrap()
    });
    assert_eq!(join("timers and the blocking pool", h).unwrap(), 3);
    within("dropping the runtime", TIMEOUT, move || drop(rt));
    let (started, stopped) = (
        started.load(Ordering::SeqCst),
        stopped.load(Ordering::SeqCst),
    );
    // Two workers, the timer thread and at least one blocking thread.
    assert!(started >= 4, "on_thread_start ran {started} times");
    assert_eq!(
        started, stopped,
        "a thread whose hook panicked did not stop cleanly"
    );
}

// ---------------------------------------------------------------------------------------------
// User code that re-enters the runtime.

#[test]
fn waker_whose_wake_spawns_and_wakes_runs_outside_every_runtime_lock() {
    // The join waker (woken by a worker) and a sleep's waker (woken by the timer thread) both
    // spawn a task and wake another one from inside `wake`.
    let (rt, stopped) = watched_runtime(2);
    let handle = rt.handle().clone();
    let (spawned_tx, spawned_rx) = mpsc::channel::<&'static str>();
    let slot = WakerSlot::new();
    let (parked_tx, parked_rx) = mpsc::channel();
    // Wakes delivered to the parked task; it ends once it has seen both.
    let delivered = Arc::new(AtomicUsize::new(0));
    let parked = {
        let (slot, delivered) = (slot.clone(), delivered.clone());
        rt.spawn(std::future::poll_fn(move |cx| {
            if delivered.load(Ordering::SeqCst) >= 2 {
                return Poll::Ready(());
            }
            slot.store(cx.waker());
            let _ = parked_tx.send(());
            Poll::Pending
        }))
    };
    recv("the parked task to store its waker", &parked_rx, TIMEOUT);
    let reentrant = |what: &'static str| {
        let faults = Arc::new(Faults::default());
        let (handle, tx, slot) = (handle.clone(), spawned_tx.clone(), slot.clone());
        let delivered = delivered.clone();
        *faults.on_wake.lock().unwrap() = Some(Box::new(move || {
            let tx = tx.clone();
            drop(handle.spawn(async move { tx.send(what).unwrap() }));
            delivered.fetch_add(1, Ordering::SeqCst);
            slot.wake_keep();
        }));
        faults
    };

    let join_faults = reentrant("from a join waker");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut h = rt.spawn(async move {
        let _ = rx.await;
    });
    assert!(poll_once(&mut h, &faulty_waker(&join_faults)).is_pending());
    tx.send(()).unwrap();
    assert_eq!(
        recv("the task spawned by the join waker", &spawned_rx, TIMEOUT),
        "from a join waker"
    );

    let timer_faults = reentrant("from a sleep waker");
    let mut sleep = sleep_made_in(&rt, Duration::from_millis(2));
    assert!(poll_once(&mut sleep, &faulty_waker(&timer_faults)).is_pending());
    assert_eq!(
        recv("the task spawned by the sleep waker", &spawned_rx, TIMEOUT),
        "from a sleep waker"
    );
    join("the task the wakers woke", parked).unwrap();
    assert_healthy(&rt, &stopped);
}

/// Calls `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

#[test]
fn drop_blocking_on_a_lock_held_by_a_thread_that_uses_the_runtime_does_not_deadlock() {
    // An aborted task's Drop waits for a lock that the test thread holds while it spawns, dumps
    // and reads metrics: if the runtime held a lock of its own around that Drop, this would hang.
    let (rt, stopped) = watched_runtime(2);
    let handle = rt.handle().clone();
    let lock = Arc::new(Mutex::new(()));
    let (dropping_tx, dropping_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let drops = Arc::new(AtomicUsize::new(0));
    let victim = {
        let (lock, drops) = (lock.clone(), drops.clone());
        let guard = OnDrop(move || {
            dropping_tx.send(()).unwrap();
            let _held = lock.lock().unwrap();
            drops.fetch_add(1, Ordering::SeqCst);
        });
        rt.spawn(async move {
            let _guard = guard;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    recv("the victim to start", &started_rx, TIMEOUT);
    let held = lock.lock().unwrap();
    victim.abort();
    recv("the victim's Drop to begin", &dropping_rx, TIMEOUT);
    // The victim's worker is stuck in its Drop; everything else must still work.
    let h2 = handle.clone();
    let probe = within("the runtime while a Drop blocks", TIMEOUT, move || {
        let dumped = pitcrew::task::dump(&h2).len();
        let workers = h2.metrics().workers;
        let ran = futures_lite::future::block_on(h2.spawn(async {
            pitcrew::time::sleep(Duration::from_millis(1)).await;
            pitcrew::spawn_blocking(|| 9).await.unwrap()
        }))
        .unwrap();
        (dumped, workers, ran)
    });
    assert_eq!(probe.1, 2);
    assert_eq!(probe.2, 9);
    drop(held);
    let err = join("the aborted victim", victim).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_healthy(&rt, &stopped);
}

#[test]
fn drop_blocking_on_a_lock_held_by_another_task_waits_for_that_task_to_run() {
    // Task A holds an async lock across an await; the aborted task B's Drop blocks its worker
    // on that lock. A, woken from outside, must still be scheduled (on the other worker) and
    // release it: the runtime holds nothing of its own around B's Drop that A's wake needs.
    let (rt, stopped) = watched_runtime(2);
    let lock = Arc::new(tokio::sync::Mutex::new(0u32));
    let (holding_tx, holding_rx) = mpsc::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = {
        let lock = lock.clone();
        rt.spawn(async move {
            let mut guard = lock.lock_owned().await;
            holding_tx.send(()).unwrap();
            let _ = go_rx.await;
            *guard += 1;
        })
    };
    recv("task A to take the lock", &holding_rx, TIMEOUT);
    let (started_tx, started_rx) = mpsc::channel();
    let (dropping_tx, dropping_rx) = mpsc::channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let victim = {
        let (lock, seen) = (lock.clone(), seen.clone());
        let guard = OnDrop(move || {
            dropping_tx.send(()).unwrap();
            let value = *lock.blocking_lock();
            seen.store(value as usize + 1, Ordering::SeqCst);
        });
        rt.spawn(async move {
            let _guard = guard;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    recv("task B to start", &started_rx, TIMEOUT);
    victim.abort();
    recv("B's Drop to block on the lock", &dropping_rx, TIMEOUT);
    go_tx.send(()).unwrap();
    join("task A, run while B's Drop blocks a worker", holder).unwrap();
    assert!(join("the aborted task B", victim)
        .unwrap_err()
        .is_cancelled());
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "B's Drop got the lock before A released it"
    );
    assert_healthy(&rt, &stopped);
}

#[test]
fn block_on_from_a_drop_on_a_worker_panics_clearly_and_is_contained() {
    quiet_intentional_panics();
    let (rt, stopped) = watched_runtime(1);
    let handle = rt.handle().clone();
    let (started_tx, started_rx) = mpsc::channel();
    let (msg_tx, msg_rx) = mpsc::channel();
    let h = rt.spawn(async move {
        let _guard = OnDrop(move || {
            let r = catch_unwind(AssertUnwindSafe(|| handle.block_on(async {})));
            let msg = r.map_err(|p| panic_message(&*p)).err();
            msg_tx.send(msg).unwrap();
        });
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    recv("the task to start", &started_rx, TIMEOUT);
    h.abort();
    let msg = recv("the Drop's block_on attempt", &msg_rx, TIMEOUT)
        .expect("block_on on a worker must panic");
    assert!(
        msg.contains("cannot block_on inside a pitcrew runtime thread"),
        "unclear message: {msg}"
    );
    assert!(join("the aborted task", h).unwrap_err().is_cancelled());
    assert_healthy(&rt, &stopped);
}

// ---------------------------------------------------------------------------------------------
// Shutdown under load, and the blocking pool.

#[test]
fn shutdown_under_load_with_drops_that_wake_lock_spawn_and_spawn_blocking() {
    const BUSY: usize = 200;
    const IDLE: usize = 200;
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let lock = Arc::new(Mutex::new(0usize));
    let stop_hammer = Arc::new(AtomicBool::new(false));
    let mut guards: Vec<Arc<AtomicUsize>> = Vec::new();
    let mut guard = || {
        let c = Arc::new(AtomicUsize::new(0));
        guards.push(c.clone());
        DropCounter(c)
    };
    let (started_tx, started_rx) = mpsc::channel();
    let refused = Arc::new(AtomicUsize::new(0));
    let blocking_ran = Arc::new(AtomicUsize::new(0));
    let blocking_dropped = Arc::new(AtomicUsize::new(0));
    for _ in 0..BUSY {
        let g = guard();
        drop(rt.spawn(async move {
            let _g = g;
            loop {
                pitcrew::yield_now().await;
            }
        }));
    }
    // Each idle task leaves its waker in its slot; some Drops wake the next task through it.
    let slots: Vec<Arc<WakerSlot>> = (0..=IDLE).map(|_| WakerSlot::new()).collect();
    for i in 0..IDLE {
        let g = guard();
        let slot = slots[i + 1].clone();
        let (lock, handle, refused) = (lock.clone(), handle.clone(), refused.clone());
        let (ran, dropped) = (blocking_ran.clone(), blocking_dropped.clone());
        let on_drop = OnDrop(move || match i % 4 {
            // Wake the next idle task (possibly already dropped).
            0 => {
                slot.wake_keep();
            }
            // Take a lock another thread hammers.
            1 => *lock.lock().unwrap() += 1,
            // Spawn: refused during shutdown.
            2 => {
                if pitcrew::task::Builder::new()
                    .spawn_on(async {}, &handle)
                    .is_err()
                {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
            }
            // spawn_blocking: the closure never runs, and is dropped once.
            _ => {
                let guard = DropCounter(dropped.clone());
                let ran = ran.clone();
                drop(handle.spawn_blocking(move || {
                    let _guard = guard;
                    ran.fetch_add(1, Ordering::SeqCst);
                }));
            }
        });
        let started = started_tx.clone();
        let slot_for_task = slots[i].clone();
        drop(rt.spawn(async move {
            let _g = g;
            let _on_drop = on_drop;
            started.send(()).unwrap();
            std::future::poll_fn(|cx| {
                slot_for_task.store(cx.waker());
                Poll::<()>::Pending
            })
            .await;
        }));
    }
    for _ in 0..IDLE {
        recv("every idle task to start", &started_rx, TIMEOUT);
    }
    let hammer = {
        let (lock, stop) = (lock.clone(), stop_hammer.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                *lock.lock().unwrap() += 1;
                std::thread::yield_now();
            }
        })
    };
    within("shutdown(ZERO) under load", TIMEOUT, move || {
        rt.shutdown(Duration::ZERO)
    });
    stop_hammer.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
    let bad: Vec<usize> = guards
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .filter(|&n| n != 1)
        .collect();
    assert!(bad.is_empty(), "futures not dropped exactly once: {bad:?}");
    assert_eq!(refused.load(Ordering::SeqCst), IDLE / 4);
    // A blocking job spawned by a Drop during shutdown either runs or is refused; either way
    // its closure is dropped once.
    assert!(blocking_ran.load(Ordering::SeqCst) <= IDLE / 4);
    wait_until(
        "every refused blocking closure to be dropped",
        TIMEOUT,
        || blocking_dropped.load(Ordering::SeqCst) >= IDLE / 4,
    );
    assert_eq!(blocking_dropped.load(Ordering::SeqCst), IDLE / 4);
}

#[test]
fn spawn_blocking_from_a_task_in_the_shutdown_grace_resolves() {
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let (started_tx, started_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    {
        let mut release = release_rx.clone();
        drop(rt.spawn(async move {
            started_tx.send(()).unwrap();
            let _ = release.wait_for(|go| *go).await;
            let r = pitcrew::spawn_blocking(|| 11).await;
            result_tx.send(r.map_err(|e| e.is_cancelled())).unwrap();
        }));
    }
    recv("the task to start", &started_rx, TIMEOUT);
    let shutting_down = std::thread::spawn(move || rt.shutdown(Duration::from_secs(10)));
    common::wait_for_shutdown_to_begin(&handle, || {
        let mut release = release_rx.clone();
        async move {
            let _ = release.wait_for(|go| *go).await;
        }
    });
    release_tx.send(true).unwrap();
    // Either it still runs (the pool is alive during the grace) or it is refused as cancelled.
    let r = recv("the blocking job's result", &result_rx, TIMEOUT);
    assert!(matches!(r, Ok(11) | Err(true)), "{r:?}");
    within("shutdown", TIMEOUT, move || shutting_down.join().unwrap());
}

#[test]
fn saturated_blocking_pool_queues_jobs_without_stalling_tasks_or_timers() {
    const MAX: usize = 2;
    const QUEUED: usize = 20;
    let rt = pitcrew::Runtime::builder()
        .workers(1)
        .max_blocking_threads(MAX)
        .build()
        .unwrap();
    let release = Latch::new();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let job = |hold: bool| {
        let (release, running, peak, started) = (
            release.clone(),
            running.clone(),
            peak.clone(),
            started_tx.clone(),
        );
        move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            started.send(()).unwrap();
            if hold {
                assert!(release.wait(TIMEOUT), "never released");
            }
            running.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let mut handles: Vec<_> = (0..MAX).map(|_| rt.spawn_blocking(job(true))).collect();
    for _ in 0..MAX {
        recv("the pool to fill", &started_rx, TIMEOUT);
    }
    handles.extend((0..QUEUED).map(|_| rt.spawn_blocking(job(false))));
    // The pool is full and jobs are queued: tasks, timers and block_on carry on.
    let h = rt.spawn(async {
        pitcrew::time::sleep(Duration::from_millis(2)).await;
        pitcrew::yield_now().await;
        4
    });
    assert_eq!(join("a task while the pool is saturated", h).unwrap(), 4);
    let handle = rt.handle().clone();
    within("block_on while the pool is saturated", TIMEOUT, move || {
        handle.block_on(async { pitcrew::time::sleep(Duration::from_millis(1)).await })
    });
    assert!(
        started_rx.try_recv().is_err(),
        "a queued job started while the pool was full"
    );
    release.open();
    for h in handles {
        join("every blocking job", h).unwrap();
    }
    assert!(
        peak.load(Ordering::SeqCst) <= MAX,
        "{} jobs ran at once",
        peak.load(Ordering::SeqCst)
    );
}
