//! Per-source readiness and the reader and writer wakers.
//!
//! The readiness word holds the ready bits and a tick that the reactor bumps on every event.
//! An operation that fails with `WouldBlock` clears the bits it saw, but only if the tick has
//! not moved since it read them: readiness that arrived in between is never erased, so an
//! edge-triggered event cannot be lost.
//!
//! Wakers: one slot for the reader and one for the writer, under a mutex. The reactor sets the
//! readiness *before* it takes the wakers; a task registers its waker and *then* reads the
//! readiness again. Either the task sees the new readiness, or the reactor finds its waker.

use std::task::{Context, Poll, Waker};

use crate::io::sys::Readiness;
use crate::loom::{AtomicUsize, Mutex, Ordering};

const READABLE: usize = 1 << 0;
const WRITABLE: usize = 1 << 1;
const READ_CLOSED: usize = 1 << 2;
const ERROR: usize = 1 << 3;
const READY_MASK: usize = READABLE | WRITABLE | READ_CLOSED | ERROR;
/// Readiness that is never cleared once seen.
const STICKY: usize = READ_CLOSED | ERROR;
const TICK_SHIFT: usize = 8;

/// Which half of a source an operation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn mask(self) -> usize {
        match self {
            // A closed or failed source is "ready": the operation reports EOF or the error.
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | ERROR,
        }
    }
}

/// What an operation saw when it found the source ready.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
}

#[derive(Default)]
struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
}

pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

impl ScheduledIo {
    /// A new source is assumed ready both ways: the first operation is simply attempted, and a
    /// `WouldBlock` clears that.
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// The reactor saw an event: add its readiness, bump the tick, and return the wakers to
    /// wake (the caller wakes them outside every lock).
    pub(crate) fn set_readiness(&self, r: Readiness, wake: &mut Vec<Waker>) {
        let mut bits = 0;
        if r.readable {
            bits |= READABLE;
        }
        if r.writable {
            bits |= WRITABLE;
        }
        if r.read_closed {
            bits |= READ_CLOSED;
        }
        if r.error {
            bits |= ERROR;
        }
        self.set_bits(bits, wake);
    }

    fn set_bits(&self, bits: usize, wake: &mut Vec<Waker>) {
        let mut current = self.readiness.load(Ordering::Acquire);
        loop {
            let tick = (current >> TICK_SHIFT).wrapping_add(1);
            let next = (tick << TICK_SHIFT) | (current & READY_MASK) | bits;
            match self.readiness.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let mut waiters = self.waiters.lock();
        if bits & Direction::Read.mask() != 0 {
            if let Some(w) = waiters.reader.take() {
                wake.push(w);
            }
        }
        if bits & Direction::Write.mask() != 0 {
            if let Some(w) = waiters.writer.take() {
                wake.push(w);
            }
        }
    }

    /// Ready (with what was seen) when the source is ready in `dir`; otherwise registers the
    /// task's waker for `dir`.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>, dir: Direction) -> Poll<ReadyEvent> {
        if let Some(ev) = self.ready_now(dir) {
            return Poll::Ready(ev);
        }
        let mut waiters = self.waiters.lock();
        let slot = match dir {
            Direction::Read => &mut waiters.reader,
            Direction::Write => &mut waiters.writer,
        };
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        drop(waiters);
        // The reactor sets readiness before it takes wakers: look again.
        match self.ready_now(dir) {
            Some(ev) => Poll::Ready(ev),
            None => Poll::Pending,
        }
    }

    fn ready_now(&self, dir: Direction) -> Option<ReadyEvent> {
        let current = self.readiness.load(Ordering::Acquire);
        let ready = current & dir.mask();
        (ready != 0).then_some(ReadyEvent {
            tick: current >> TICK_SHIFT,
            ready,
        })
    }

    /// An operation got `WouldBlock` after seeing `ev`: clear what it saw, unless newer
    /// readiness arrived since.
    pub(crate) fn clear_readiness(&self, ev: ReadyEvent) {
        let mut current = self.readiness.load(Ordering::Acquire);
        loop {
            if current >> TICK_SHIFT != ev.tick {
                return;
            }
            let next = current & !(ev.ready & !STICKY);
            if next == current {
                return;
            }
            match self.readiness.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Deregistration: wake both waiters so they see the source is gone (they then get an
    /// error from their next operation on the closed descriptor, or are dropped).
    pub(crate) fn wake_all(&self, wake: &mut Vec<Waker>) {
        let mut waiters = self.waiters.lock();
        wake.extend(waiters.reader.take());
        wake.extend(waiters.writer.take());
    }
}

impl std::fmt::Debug for ScheduledIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.readiness.load(Ordering::Relaxed);
        f.debug_struct("ScheduledIo")
            .field("readable", &(r & READABLE != 0))
            .field("writable", &(r & WRITABLE != 0))
            .field("read_closed", &(r & READ_CLOSED != 0))
            .field("tick", &(r >> TICK_SHIFT))
            .finish()
    }
}
