//! Hard cancellation through `JoinHandle::abort` and `AbortHandle`: the future is dropped
//! exactly once, never polled again, and the handle resolves to a cancelled `JoinError`, unless
//! the task had already finished, in which case its output is kept.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};

use common::{join, recv, runtime, wait_until, DropCounter, Latch, TIMEOUT};
use pitcrew::task::AbortHandle;

fn assert_clone_send_sync<T: Clone + Send + Sync + std::fmt::Debug>() {}

#[test]
fn abort_handle_is_clone_send_sync() {
    assert_clone_send_sync::<AbortHandle>();
}

/// On its first poll, reports that it is being polled, blocks until told to go on, wakes itself
/// and returns `Pending`. Any later poll is counted, so a poll after `abort` is visible.
struct PausesInFirstPoll {
    polls: Arc<AtomicUsize>,
    in_poll: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
    _drops: DropCounter,
}

impl Future for PausesInFirstPoll {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.in_poll.send(()).unwrap();
            self.go.recv_timeout(TIMEOUT).expect("never told to go on");
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[test]
fn abort_of_a_running_task_drops_the_future_before_its_next_poll() {
    let rt = runtime(2);
    let polls = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let (in_poll_tx, in_poll_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let h = rt.spawn(PausesInFirstPoll {
        polls: polls.clone(),
        in_poll: in_poll_tx,
        go: go_rx,
        _drops: DropCounter(drops.clone()),
    });
    recv("the first poll to start", &in_poll_rx, TIMEOUT);
    // Abort while the poll is in progress; the poll then asks to be polled again.
    h.abort();
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "future dropped while being polled"
    );
    go_tx.send(()).unwrap();
    let err = join("the aborted task", h).expect_err("an aborted task does not complete");
    assert!(err.is_cancelled(), "expected cancelled, got {err:?}");
    wait_until("the future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(polls.load(Ordering::SeqCst), 1, "polled again after abort");
    common::within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn abort_of_an_idle_task_drops_its_future_and_cancels_it() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    // The sender is kept alive here, so the task would wait for ever.
    let (never_tx, never_rx) = tokio::sync::oneshot::channel::<()>();
    let h = {
        let guard = DropCounter(drops.clone());
        rt.spawn(async move {
            let _guard = guard;
            started_tx.send(()).unwrap();
            let _ = never_rx.await;
            unreachable!("the channel never fires");
        })
    };
    recv("the task to start", &started_rx, TIMEOUT);
    h.abort();
    let err = join("the aborted task", h).expect_err("an aborted task does not complete");
    assert!(err.is_cancelled(), "expected cancelled, got {err:?}");
    wait_until("the future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert!(
        never_tx.is_closed(),
        "the receiver inside the future was not dropped"
    );
    common::within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn abort_before_the_first_poll_never_polls_the_future() {
    let rt = runtime(1);
    let release = Latch::new();
    let (blocking_tx, blocking_rx) = mpsc::channel();
    // Occupy the only worker so the next task stays queued.
    let blocker = {
        let release = release.clone();
        rt.spawn(async move {
            blocking_tx.send(()).unwrap();
            assert!(release.wait(TIMEOUT), "never released");
        })
    };
    recv("the worker to be occupied", &blocking_rx, TIMEOUT);
    let polls = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let h = {
        let polls = polls.clone();
        let guard = DropCounter(drops.clone());
        rt.spawn(async move {
            let _guard = guard;
            polls.fetch_add(1, Ordering::SeqCst);
        })
    };
    h.abort();
    release.open();
    join("the blocker", blocker).unwrap();
    let err = join("the aborted task", h).expect_err("aborted before it ran");
    assert!(err.is_cancelled());
    wait_until("the future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(
        polls.load(Ordering::SeqCst),
        0,
        "an aborted task was polled"
    );
    common::within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn abort_after_completion_keeps_the_ok_result() {
    let rt = runtime(2);
    let h = rt.spawn(async { 99 });
    wait_until("the task to finish", TIMEOUT, || h.is_finished());
    h.abort();
    assert_eq!(join("the finished task", h).unwrap(), 99);
}

#[test]
fn abort_handle_from_another_thread_cancels_a_pending_task() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let h = {
        let guard = DropCounter(drops.clone());
        rt.spawn(async move {
            let _guard = guard;
            started_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    let abort = h.abort_handle();
    let clone = abort.clone();
    recv("the task to start", &started_rx, TIMEOUT);
    assert!(!abort.is_finished());
    std::thread::spawn(move || clone.abort()).join().unwrap();
    let err = join("the aborted task", h).expect_err("aborted");
    assert!(err.is_cancelled());
    wait_until("AbortHandle::is_finished after abort", TIMEOUT, || {
        abort.is_finished()
    });
    wait_until("the future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    common::within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn abort_handle_after_completion_keeps_the_ok_result() {
    let rt = runtime(2);
    let h = rt.spawn(async { "kept" });
    let abort = h.abort_handle();
    wait_until("the task to finish", TIMEOUT, || abort.is_finished());
    abort.clone().abort();
    abort.abort();
    assert_eq!(join("the finished task", h).unwrap(), "kept");
}

#[test]
fn abort_handle_cancels_a_detached_task() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (never_tx, never_rx) = tokio::sync::oneshot::channel::<()>();
    let h = {
        let guard = DropCounter(drops.clone());
        rt.spawn(async move {
            let _guard = guard;
            let _ = never_rx.await;
        })
    };
    let abort = h.abort_handle();
    drop(h);
    abort.abort();
    wait_until("the detached task's future to be dropped", TIMEOUT, || {
        drops.load(Ordering::SeqCst) >= 1
    });
    assert!(never_tx.is_closed());
    wait_until("AbortHandle::is_finished", TIMEOUT, || abort.is_finished());
    common::within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn task_aborting_itself_is_cancelled_at_its_next_yield() {
    let rt = runtime(1);
    let resumed = Arc::new(AtomicBool::new(false));
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel::<AbortHandle>();
    let h = {
        let resumed = resumed.clone();
        rt.spawn(async move {
            let me = handle_rx.await.unwrap();
            me.abort();
            pitcrew::yield_now().await;
            resumed.store(true, Ordering::SeqCst);
        })
    };
    handle_tx.send(h.abort_handle()).unwrap();
    let err = join("the self-aborting task", h).expect_err("aborted");
    assert!(err.is_cancelled());
    assert!(
        !resumed.load(Ordering::SeqCst),
        "the task ran on after aborting itself"
    );
}

#[test]
fn aborting_twice_is_harmless() {
    let rt = runtime(1);
    let h = rt.spawn(std::future::pending::<()>());
    let abort = h.abort_handle();
    h.abort();
    abort.abort();
    h.abort();
    assert!(join("the aborted task", h).unwrap_err().is_cancelled());
    let later = rt.spawn(async { 4 });
    assert_eq!(join("a later task", later).unwrap(), 4);
}

#[test]
fn abort_from_another_task_cancels_the_target() {
    let rt = runtime(2);
    let target = rt.spawn(std::future::pending::<()>());
    let abort = target.abort_handle();
    let aborter = rt.spawn(async move { abort.abort() });
    join("the aborting task", aborter).unwrap();
    assert!(join("the target", target).unwrap_err().is_cancelled());
}
