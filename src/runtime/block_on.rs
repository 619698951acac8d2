//! Driving one future on the calling thread, parking it between polls.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};

use crate::loom::{thread, AtomicBool, DataArc, Ordering};

struct ThreadWaker {
    thread: thread::Thread,
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: DataArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &DataArc<Self>) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// Polls `future` until it is ready, parking the thread while it is pending.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let waker_data = DataArc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(waker_data.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        while !waker_data.notified.swap(false, Ordering::AcqRel) {
            park_thread();
        }
    }
}

#[cfg(not(loom))]
fn park_thread() {
    std::thread::park();
}

#[cfg(loom)]
fn park_thread() {
    loom::thread::park();
}
