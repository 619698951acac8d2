//! Which workers are searching for work and which are parked.
//!
//! One atomic word counts the *unparked* workers (high half) and the *searching* ones (low
//! half); the list of parked workers sits under a mutex. The rules:
//!
//! 1. At most half the workers search at once (`transition_worker_to_searching`): more
//!    searchers only contend on the same queues.
//! 2. New work wakes a parked worker only when nobody is searching (`worker_to_notify`): a
//!    searcher will find the work, and waking a thread costs ~15-22 µs here. The woken worker
//!    starts out searching, so a burst of spawns wakes one worker, not one per task.
//! 3. A searcher that finds work and was the last searcher wakes another worker
//!    (`transition_worker_from_searching` returns true), so parallelism ramps up one worker
//!    at a time while there is work.
//! 4. Every worker that parks checks every queue once more after it is counted out (and wakes
//!    a worker, perhaps itself, if it finds work). With rule 2 this closes the race where work
//!    arrives between a worker's last look and its park: either the pusher sees the parking
//!    worker counted out and wakes a parked worker, or the parking worker sees the pushed work.
//!    Both sides use SeqCst read-modify-writes on the same word, so one of them sees the other.
//!    Checking only when the *last searcher* parks is not enough: a worker that was not
//!    searching (rule 1 turned it away) can be on its way to park while the searcher, having
//!    found work, stops searching and notifies; the notifier then sees that worker still awake
//!    and wakes nobody, and work queued behind a task that blocks its worker waits until that
//!    task ends.

use crate::loom::{AtomicUsize, Mutex, Ordering};

const UNPARK_SHIFT: usize = 16;
const UNPARK_ONE: usize = 1 << UNPARK_SHIFT;
const SEARCH_MASK: usize = UNPARK_ONE - 1;

/// What a worker learned when it recorded itself as parked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parked {
    /// No other worker is awake: this one should wait in the I/O poller.
    pub(crate) last_awake: bool,
    /// It was the last searcher (for the mutant that re-checks only then).
    #[cfg(all(loom, loom_mutants))]
    pub(crate) last_searcher_for_mutant: bool,
}

pub(crate) struct Idle {
    state: AtomicUsize,
    num_workers: usize,
    sleepers: Mutex<Vec<usize>>,
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(num_workers << UNPARK_SHIFT),
            num_workers,
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
        }
    }

    fn num_searching(state: usize) -> usize {
        state & SEARCH_MASK
    }

    fn num_unparked(state: usize) -> usize {
        state >> UNPARK_SHIFT
    }

    /// Rule 2: the index of a parked worker to wake for new work, already counted as unparked
    /// and searching; the caller must unpark it. `None` when someone is searching already or
    /// nobody is parked.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.notify_should_wake() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        if !self.notify_should_wake() {
            return None;
        }
        self.state.fetch_add(UNPARK_ONE | 1, Ordering::SeqCst);
        let worker = sleepers.pop();
        debug_assert!(
            worker.is_some(),
            "unparked count below workers with no sleeper"
        );
        worker
    }

    fn notify_should_wake(&self) -> bool {
        // A read-modify-write, not a load: it must be ordered (SeqCst) after the caller's push
        // of the new work, against the parking worker's RMW in `transition_worker_to_parked`.
        let state = self.state.fetch_add(0, Ordering::SeqCst);
        Self::num_searching(state) == 0 && Self::num_unparked(state) < self.num_workers
    }

    /// Rule 1.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * Self::num_searching(state) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Rule 3: true when the caller was the last searcher and must wake another worker.
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(Self::num_searching(prev) > 0);
        Self::num_searching(prev) == 1
    }

    /// Records `worker` as parked (the caller then looks at the queues once more: rule 4).
    /// `last_awake` is true when no other worker is awake: that worker should wait in the I/O
    /// poller (see `io/mod.rs`).
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> Parked {
        let mut sleepers = self.sleepers.lock();
        let dec = UNPARK_ONE + usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        debug_assert!(!sleepers.contains(&worker), "worker {worker} parked twice");
        sleepers.push(worker);
        #[cfg(all(loom, loom_mutants))]
        if crate::loom_api::mutants::active(
            crate::loom_api::mutants::Mutant::DoubleIdleRegistration,
        ) {
            // Mutant: the worker is listed twice (one wake-up leaves it listed, so it takes
            // the wake-up for a spurious one and parks again).
            sleepers.push(worker);
        }
        Parked {
            last_awake: Self::num_unparked(prev) == 1,
            #[cfg(all(loom, loom_mutants))]
            last_searcher_for_mutant: is_searching && Self::num_searching(prev) == 1,
        }
    }

    /// A worker woke up: false when it is still listed as parked (a spurious wake-up), true
    /// when whoever woke it took it off the list.
    pub(crate) fn is_unparked(&self, worker: usize) -> bool {
        !self.sleepers.lock().contains(&worker)
    }

    /// Takes a parked worker off the list without making it a searcher (shutdown). True when
    /// it was parked.
    pub(crate) fn unpark_worker_by_id(&self, worker: usize) -> bool {
        let mut sleepers = self.sleepers.lock();
        if let Some(i) = sleepers.iter().position(|&w| w == worker) {
            sleepers.swap_remove(i);
            self.state.fetch_add(UNPARK_ONE, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

impl Idle {
    /// Workers awake now (a hint: it may change right after).
    pub(crate) fn num_awake(&self) -> usize {
        Self::num_unparked(self.state.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.load(Ordering::Relaxed);
        f.debug_struct("Idle")
            .field("searching", &Self::num_searching(state))
            .field("unparked", &Self::num_unparked(state))
            .field("workers", &self.num_workers)
            .finish()
    }
}
