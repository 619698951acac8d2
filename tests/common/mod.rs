//! Helpers shared by the runtime integration tests: bounded waits that fail loudly, drop
//! counters and panic-payload formatting.
#![allow(dead_code)]

pub(crate) mod counting_alloc;

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

/// The bound on any wait for something that should happen promptly. Generous, because a debug
/// build on a loaded 2-core machine is slow, and a wait that hits it means a hang.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `f` on a fresh std thread and returns its result, panicking with `what` if it does not
/// finish within `d`. A panic inside `f` is resumed on the caller.
#[track_caller]
pub(crate) fn within<T, F>(what: &str, d: Duration, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("within: {what}"))
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .expect("spawn the `within` thread");
    match rx.recv_timeout(d) {
        Ok(Ok(value)) => {
            let _ = thread.join();
            value
        }
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => {
            dump_threads(what);
            panic!("timed out after {d:?} waiting for: {what}")
        }
    }
}

/// A wait that should have ended did not: print every thread's stack (where each worker is,
/// what it runs, whether it is parked) to stderr before the test fails, so that a rare hang seen
/// once in CI can be diagnosed from its log. Best effort: needs `gdb` and `timeout` on the PATH
/// and permission to attach; prints nothing otherwise.
pub(crate) fn dump_threads(what: &str) {
    let pid = std::process::id().to_string();
    let out = std::process::Command::new("timeout")
        .args([
            "60",
            "gdb",
            "-batch",
            "-nx",
            "-ex",
            "thread apply all bt",
            "-p",
            &pid,
        ])
        .stdin(std::process::Stdio::null())
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            eprintln!(
                "--- every thread's stack, waiting for: {what}\n{}--- end of stacks",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

/// Polls `cond` every millisecond until it is true, panicking with `what` after `d`.
#[track_caller]
pub(crate) fn wait_until(what: &str, d: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + d;
    while !cond() {
        if Instant::now() >= deadline {
            dump_threads(what);
            panic!("timed out after {d:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Receives from `rx`, panicking with `what` if nothing arrives within `d`.
#[track_caller]
pub(crate) fn recv<T>(what: &str, rx: &mpsc::Receiver<T>, d: Duration) -> T {
    match rx.recv_timeout(d) {
        Ok(v) => v,
        Err(e) => {
            dump_threads(what);
            panic!("no message within {d:?} for: {what} ({e})")
        }
    }
}

/// Counts how many times values holding it are dropped.
#[derive(Debug)]
pub(crate) struct DropCounter(pub(crate) Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

/// A one-shot latch that std threads and tasks can block on with a timeout.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    pub(crate) fn new() -> Arc<Latch> {
        Arc::new(Latch::default())
    }

    pub(crate) fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }

    /// Blocks the calling thread until the latch opens; returns false on timeout.
    pub(crate) fn wait(&self, d: Duration) -> bool {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self.cv.wait_timeout_while(guard, d, |open| !*open).unwrap();
        *guard
    }
}

/// A reusable-once barrier for `n` parties that gives up after a timeout instead of hanging.
#[derive(Debug)]
pub(crate) struct Rendezvous {
    arrived: Mutex<usize>,
    cv: Condvar,
    parties: usize,
}

impl Rendezvous {
    pub(crate) fn new(parties: usize) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            arrived: Mutex::new(0),
            cv: Condvar::new(),
            parties,
        })
    }

    /// Arrives and blocks until all parties have arrived; returns false on timeout.
    pub(crate) fn wait(&self, d: Duration) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.cv.notify_all();
        let (arrived, _) = self
            .cv
            .wait_timeout_while(arrived, d, |n| *n < self.parties)
            .unwrap();
        *arrived >= self.parties
    }
}

/// A slot where a pending future leaves its waker for another thread to wake it.
#[derive(Debug, Default)]
pub(crate) struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    pub(crate) fn new() -> Arc<WakerSlot> {
        Arc::new(WakerSlot::default())
    }

    pub(crate) fn store(&self, waker: &Waker) {
        *self.0.lock().unwrap() = Some(waker.clone());
    }

    /// Wakes a clone of the stored waker and keeps it stored; returns whether there was one.
    pub(crate) fn wake_keep(&self) -> bool {
        let waker = self.0.lock().unwrap().clone();
        match waker {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }

    /// Wakes the stored waker, if any; returns whether there was one.
    pub(crate) fn wake(&self) -> bool {
        match self.0.lock().unwrap().take() {
            Some(w) => {
                w.wake();
                true
            }
            None => false,
        }
    }
}

/// True on a runtime's timer thread (named "{thread_name}-timer"). It runs the thread hooks
/// too; tests that count workers and blocking threads through the hooks leave it out.
pub(crate) fn is_timer_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|name| name.ends_with("-timer"))
}

/// A runtime with `n` workers, panicking on a build error.
pub(crate) fn runtime(workers: usize) -> pitcrew::Runtime {
    pitcrew::Runtime::builder()
        .workers(workers)
        .build()
        .expect("build a runtime")
}

/// Waits for `handle` on a helper thread (a `JoinHandle` is an ordinary future, so no runtime is
/// needed to await it), failing the test if it has not resolved within [`TIMEOUT`].
#[track_caller]
pub(crate) fn join<T: Send + 'static>(
    what: &str,
    handle: pitcrew::task::JoinHandle<T>,
) -> Result<T, pitcrew::task::JoinError> {
    within(what, TIMEOUT, move || {
        futures_lite::future::block_on(handle)
    })
}

/// Spins on `task::Builder::spawn_on` until the runtime refuses with `SpawnError::Shutdown`,
/// which proves its shutdown has begun. Each probe spawned before that is built by `probe`;
/// returns how many were accepted.
#[track_caller]
pub(crate) fn wait_for_shutdown_to_begin<F>(
    handle: &pitcrew::Handle,
    mut probe: impl FnMut() -> F,
) -> usize
where
    F: Future<Output = ()> + Send + 'static,
{
    let deadline = Instant::now() + TIMEOUT;
    let mut accepted = 0;
    loop {
        match pitcrew::task::Builder::new().spawn_on(probe(), handle) {
            Ok(_) => accepted += 1,
            Err(pitcrew::task::SpawnError::Shutdown) => return accepted,
            Err(e) => panic!("unexpected spawn error {e:?}"),
        }
        assert!(Instant::now() < deadline, "shutdown never began");
        std::thread::sleep(Duration::from_millis(1));
    }
}
