//! loom models of a runtime whose last worker to park waits in the I/O poller
//! (`loom_api::park_in_poller`; the poller under loom is a mock whose wait blocks on a loom
//! condition variable until it is notified or the model reports an event). The tasks wait on
//! real `pitcrew::io::Async` sources (Unix socket pairs): the real registration, readiness
//! and reactor turn, park, unpark and driver hand-over code runs; only `epoll_wait` is mocked.

#![cfg(loom)]

use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::task::Poll;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use pitcrew::io::Async;
use pitcrew::loom_api::{park_in_poller, poller_stats, report_readable};
use pitcrew::Runtime;
use pitcrew_loom_tests::*;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime builds under loom")
}

/// Registers `reader` with the current runtime's reactor (call on one of its threads).
fn register(reader: UnixStream) -> Async<UnixStream> {
    Async::new(reader).expect("register with the runtime's reactor")
}

/// Reads one byte from `source`, waiting for readability as a task does.
async fn read_one(source: &Async<UnixStream>) -> u8 {
    let mut byte = [0u8; 1];
    source
        .read_with(|s| (&*s).read_exact(&mut byte))
        .await
        .expect("read from the socket pair");
    byte[0]
}

/// Counts across the executions of `a_wake_aimed_at_either_sleeper_arrives`: one where a
/// notification ended a wait in the poller, one where two workers waited in it in turn.
static NOTIFY_WOKE_POLLER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static POLLER_HANDED_OVER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Two workers: when both are idle, the last to park waits in the poller and the other on its
/// condition variable. An I/O event (delivered only by a turn of the poller) and a task
/// injected from outside (its unpark goes to whichever sleeper `idle` picks: the poller's
/// through its notification, or a condition variable) both reach a worker, and runtime
/// shutdown reaches both. Ownership of the poller passes between the workers: each one that
/// leaves it releases it for the next worker to park last.
#[test]
fn a_wake_aimed_at_either_sleeper_arrives() {
    NOTIFY_WOKE_POLLER.store(0, std::sync::atomic::Ordering::Relaxed);
    POLLER_HANDED_OVER.store(0, std::sync::atomic::Ordering::Relaxed);
    // Three threads running the whole scheduler: bounded tighter to stay well under 30 s.
    model_bounded(1, || {
        park_in_poller();
        let rt = runtime(2);
        // Let both workers go idle first (a yield is not a preemption): the last to park
        // waits in the poller, the other on its condition variable. The spawn below then
        // unparks one of them, in whichever state loom has it.
        loom::thread::yield_now();
        let (mut writer, reader) = UnixStream::pair().expect("a socket pair");
        let io_task = rt.spawn(async move { read_one(&register(reader)).await });
        writer.write_all(&[7]).expect("write to the socket pair");
        report_readable(rt.handle());
        assert_eq!(rt.block_on(io_task).unwrap(), 7);
        let stats = poller_stats(rt.handle());
        if stats.notify_wakeups > 0 {
            NOTIFY_WOKE_POLLER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if stats.waiters > 1 {
            POLLER_HANDED_OVER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        drop(rt);
    });
    assert!(
        NOTIFY_WOKE_POLLER.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution woke the worker in the poller by an unpark"
    );
    assert!(
        POLLER_HANDED_OVER.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution handed the poller over to the other worker"
    );
}

/// Records the thread it is dropped on.
struct DropsOn(Arc<loom::sync::Mutex<Vec<loom::thread::ThreadId>>>);

impl Drop for DropsOn {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(loom::thread::current().id());
    }
}

/// Executions of `shutdown_drops_a_task_waiting_on_io_once` whose shutdown ended a wait in
/// the poller.
static SHUTDOWN_WOKE_POLLER: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Runtime shutdown while a task waits on I/O (registered with the reactor; its worker waits
/// in the poller): the future is dropped exactly once, on the worker, which deregisters its
/// source, and the handle resolves to cancelled.
#[test]
fn shutdown_drops_a_task_waiting_on_io_once() {
    SHUTDOWN_WOKE_POLLER.store(0, std::sync::atomic::Ordering::Relaxed);
    model(|| {
        park_in_poller();
        let rt = runtime(1);
        let (_writer, reader) = UnixStream::pair().expect("a socket pair");
        let drops = DropCounter::new();
        let token = drops.token();
        let dropped_on = Arc::new(loom::sync::Mutex::new(Vec::new()));
        let marker = DropsOn(dropped_on.clone());
        let waiting = Arc::new(AtomicUsize::new(0));
        let slot = WakerSlot::new();
        let (w, s) = (waiting.clone(), slot.clone());
        let mut task = rt.spawn(async move {
            let (_t, _m) = (token, marker);
            let source = register(reader);
            let mut read = Box::pin(read_one(&source));
            std::future::poll_fn(|cx| {
                let r = read.as_mut().poll(cx);
                // Registered for readability now: tell the main thread.
                if w.fetch_add(1, Ordering::SeqCst) == 0 {
                    if let Some(waker) = s.take() {
                        waker.wake();
                    }
                }
                r
            })
            .await
        });
        // Wait until the task waits on I/O, so that shutdown finds it there.
        rt.block_on(std::future::poll_fn(|cx| {
            slot.put(cx.waker());
            if waiting.load(Ordering::SeqCst) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        let handle = rt.handle().clone();
        drop(rt);
        assert_eq!(drops.count(), 1, "the future dropped exactly once");
        let on = dropped_on.lock().unwrap().clone();
        assert_eq!(on.len(), 1);
        assert_ne!(on[0], loom::thread::current().id(), "dropped on the worker");
        if poller_stats(&handle).notify_wakeups > 0 {
            SHUTDOWN_WOKE_POLLER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match poll_once(&mut task, std::task::Waker::noop()) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("a task waiting on I/O outlived shutdown: {other:?}"),
        }
    });
    assert!(
        SHUTDOWN_WOKE_POLLER.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "no execution's shutdown found the worker waiting in the poller"
    );
}

/// The notification that wakes the worker blocked in the poller is an edge that any wait can
/// take, and busy workers poll the same poller without blocking between tasks. One of them
/// taking the notification on its way (after the sleeper announced it waits in the poller,
/// before it is in the wait) must not leave the sleeper asleep: the poll sends it again.
#[test]
fn a_notification_taken_by_a_busy_poll_still_wakes_the_sleeper() {
    model(|| {
        let parker = pitcrew::loom_api::Parker::new();
        let unparker = parker.unparker();
        let mut busy = parker.busy_poller();
        let waker = loom::thread::spawn(move || unparker.unpark());
        let poller = loom::thread::spawn(move || busy.poll_now());
        // Returns only once the unpark reached it (loom reports a deadlock otherwise).
        parker.park_in_poller();
        waker.join().unwrap();
        poller.join().unwrap();
    });
}
