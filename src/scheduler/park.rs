//! Parking a worker thread until there is work.
//!
//! A [`Parker`] belongs to one worker; its [`Unparker`] can be used from any thread. An unpark
//! that arrives before the park is not lost: the state word remembers it and the next park
//! returns at once.
//!
//! A worker parks either on its condition variable or, when it holds the I/O driver, in the
//! poller (`PARKED_DRIVER`); the unparker then interrupts the poller instead. The state word
//! says which, so an unpark always reaches the worker wherever it sleeps.

use std::time::Duration;

use crate::io::reactor::{Driver, Reactor};
use crate::loom::{Arc, AtomicUsize, Condvar, Mutex, Ordering};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;
const PARKED_DRIVER: usize = 3;

struct Inner {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

/// Blocks the owning thread in [`Parker::park`].
pub(crate) struct Parker {
    inner: Arc<Inner>,
}

/// Wakes the owner of a [`Parker`].
#[derive(Clone)]
pub(crate) struct Unparker {
    inner: Arc<Inner>,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(EMPTY),
                lock: Mutex::new(()),
                cvar: Condvar::new(),
            }),
        }
    }

    pub(crate) fn unparker(&self) -> Unparker {
        Unparker {
            inner: self.inner.clone(),
        }
    }

    /// Blocks until [`Unparker::unpark`] is called (or was called since the last park).
    pub(crate) fn park(&self) {
        let inner = &*self.inner;
        // A pending notification: consume it without touching the lock.
        if inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
        let mut guard = inner.lock.lock();
        match inner
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // Notified between the fast path and taking the lock.
                inner.state.swap(EMPTY, Ordering::AcqRel);
                return;
            }
            Err(actual) => unreachable!("parker in state {actual} while its owner parks"),
        }
        loop {
            guard = inner.cvar.wait(guard);
            if inner
                .state
                .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
            // Spurious wake-up: still PARKED.
        }
    }
}

impl Parker {
    /// Parks in the poller: turns the reactor until an event or an unpark arrives. The tasks the
    /// events wake are queued on this thread. Returns how many were woken.
    pub(crate) fn park_in_driver(&self, reactor: &Reactor, driver: &mut Driver) -> usize {
        let state = &self.inner.state;
        if state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return 0;
        }
        if state
            .compare_exchange(EMPTY, PARKED_DRIVER, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Notified in between.
            state.swap(EMPTY, Ordering::AcqRel);
            return 0;
        }
        // An unpark from here on writes the poller's eventfd, which ends (or pre-empts) the wait.
        let woken = reactor.turn(driver, None::<Duration>);
        state.swap(EMPTY, Ordering::AcqRel);
        woken
    }
}

impl Unparker {
    /// Wakes the parked owner, or makes its next park return at once. `reactor` is the
    /// runtime's, in case the owner sleeps in the poller.
    pub(crate) fn unpark(&self, reactor: &Reactor) {
        let inner = &*self.inner;
        match inner.state.swap(NOTIFIED, Ordering::AcqRel) {
            EMPTY | NOTIFIED => {}
            PARKED_DRIVER => {
                #[cfg(all(loom, loom_mutants))]
                if crate::loom_api::mutants::active(
                    crate::loom_api::mutants::Mutant::MissingPollerNotify,
                ) {
                    // Mutant: the sleeper in the poller is marked notified but the poller is
                    // never interrupted.
                    return;
                }
                reactor.notify();
            }
            PARKED => {
                // Taking the lock orders us after the owner's `wait` started, so the
                // notification cannot slip in before it and be lost.
                drop(inner.lock.lock());
                #[cfg(all(loom, loom_mutants))]
                if crate::loom_api::mutants::active(crate::loom_api::mutants::Mutant::MissingUnpark)
                {
                    // Mutant: the sleeper is marked notified but never signalled.
                    return;
                }
                inner.cvar.notify_one();
            }
            actual => unreachable!("parker in unknown state {actual}"),
        }
    }
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker")
            .field("state", &self.inner.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unparker").finish_non_exhaustive()
    }
}
