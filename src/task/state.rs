//! The task state word: lifecycle bits and the reference count in one atomic.
//!
//! Every transition is a single read-modify-write on [`State`] and returns a `#[must_use]` enum
//! that tells the caller what it now owns. The rules for who may touch which part of the task
//! are in the essay of `task/mod.rs`.

use crate::loom::{AtomicUsize, Ordering};

/// The task is being polled (or its future dropped) by the thread that set this bit. Only that
/// thread may touch the future.
const RUNNING: usize = 1 << 0;
/// The future is gone and the output (or the error) is stored. Set once, never cleared.
const COMPLETE: usize = 1 << 1;
/// The task is in a run queue, or is running and must be run again. One queue reference goes
/// with it.
const NOTIFIED: usize = 1 << 2;
/// The task was aborted or shut down: its next transition to running drops it instead.
const CANCELLED: usize = 1 << 3;
/// The `JoinHandle` exists. Cleared when it is dropped.
const JOIN_INTEREST: usize = 1 << 4;
/// A join waker is stored. While set, only the runtime may read the waker; while clear, only the
/// `JoinHandle` may write it.
const JOIN_WAKER: usize = 1 << 5;

const LIFECYCLE: usize = RUNNING | COMPLETE;
const REF_SHIFT: usize = 6;
const REF_ONE: usize = 1 << REF_SHIFT;

/// A new task holds three references: the `JoinHandle`, the owned-task list and the first
/// `Notified` that schedules it.
const INITIAL: usize = (REF_ONE * 3) | JOIN_INTEREST | NOTIFIED;

/// The atomic state word of a task.
pub(crate) struct State {
    word: AtomicUsize,
}

/// A copy of the state word, for reading bits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn is_idle(self) -> bool {
        self.0 & LIFECYCLE == 0
    }
    /// Where the task is, for dumps.
    pub(crate) fn describe(self) -> crate::task::TaskState {
        use crate::task::TaskState;
        if self.is_complete() {
            TaskState::Complete
        } else if self.is_running() {
            TaskState::Running
        } else if self.is_notified() {
            TaskState::Scheduled
        } else {
            TaskState::Idle
        }
    }

    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// What a worker holding a `Notified` may do with the task.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToRunning {
    /// Poll it.
    Success,
    /// Drop its future: it was aborted.
    Cancelled,
    /// Someone else runs it or it is complete: just drop the queue reference.
    Failed,
    /// As `Failed`, and that was the last reference.
    FailedDealloc,
}

/// What happens after a poll returned `Pending`.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToIdle {
    /// The task is idle; the poller's reference was dropped.
    Ok,
    /// As `Ok`, and that was the last reference.
    OkDealloc,
    /// It was woken during the poll: the poller's reference becomes the queue reference.
    OkNotified,
    /// It was aborted during the poll: drop the future now.
    Cancelled,
}

/// What a waker must do.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotified {
    /// Submit a new `Notified` (a reference was added for it).
    Submit,
    /// Nothing to do.
    DoNothing,
}

/// What a by-value wake must do with the reference it carries.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ToNotifiedByVal {
    /// Submit: the waker's reference becomes the queue reference.
    Submit,
    /// Drop the waker's reference.
    DoNothing,
    /// Drop the waker's reference; it was the last one.
    Dealloc,
}

/// What the `JoinHandle`'s drop must clean up.
#[must_use]
#[derive(Debug)]
pub(crate) struct JoinDropped {
    pub(crate) drop_output: bool,
    pub(crate) drop_waker: bool,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicUsize::new(INITIAL),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.word.load(Ordering::Acquire))
    }

    /// Runs `f` on the word until the compare-exchange succeeds. `f` returns the value to hand
    /// back and the new word. The exchange always writes, even when the word is unchanged, so
    /// every transition is a release operation (a load-only fast path lost wake-ups on weak
    /// memory in another runtime).
    fn update<R>(&self, mut f: impl FnMut(Snapshot) -> (R, Snapshot)) -> R {
        let mut current = self.word.load(Ordering::Acquire);
        loop {
            let (result, next) = f(Snapshot(current));
            match self.word.compare_exchange_weak(
                current,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return result,
                Err(actual) => current = actual,
            }
        }
    }

    /// A worker took a `Notified` off a queue and wants to run the task.
    pub(crate) fn transition_to_running(&self) -> ToRunning {
        self.update(|s| {
            debug_assert!(
                s.is_notified(),
                "running a task that is not notified: {s:?}"
            );
            let mut next = s.0;
            if s.0 & LIFECYCLE != 0 {
                // Shut down (and claimed) by someone else since it was queued.
                debug_assert!(s.ref_count() > 0);
                next -= REF_ONE;
                let r = if next >> REF_SHIFT == 0 {
                    ToRunning::FailedDealloc
                } else {
                    ToRunning::Failed
                };
                return (r, Snapshot(next));
            }
            next = (next & !NOTIFIED) | RUNNING;
            let r = if s.is_cancelled() {
                ToRunning::Cancelled
            } else {
                ToRunning::Success
            };
            (r, Snapshot(next))
        })
    }

    /// The poll returned `Pending`.
    pub(crate) fn transition_to_idle(&self) -> ToIdle {
        self.update(|s| {
            debug_assert!(s.is_running() && !s.is_complete(), "{s:?}");
            if s.is_cancelled() {
                return (ToIdle::Cancelled, s);
            }
            let mut next = s.0 & !RUNNING;
            if s.is_notified() {
                return (ToIdle::OkNotified, Snapshot(next));
            }
            debug_assert!(s.ref_count() > 0);
            next -= REF_ONE;
            let r = if next >> REF_SHIFT == 0 {
                ToIdle::OkDealloc
            } else {
                ToIdle::Ok
            };
            (r, Snapshot(next))
        })
    }

    /// The future is gone and the output stored: RUNNING becomes COMPLETE.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        let prev = Snapshot(self.word.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete(), "{prev:?}");
        Snapshot(prev.0 ^ (RUNNING | COMPLETE))
    }

    /// Wake through a reference to a waker.
    pub(crate) fn transition_to_notified_by_ref(&self) -> ToNotified {
        #[cfg(all(loom, loom_mutants))]
        if crate::loom_api::mutants::active(crate::loom_api::mutants::Mutant::LoadOnlyWake) {
            // Mutant: the load-only fast path (no release when already notified).
            let s = self.load();
            if s.is_complete() || s.is_notified() {
                return ToNotified::DoNothing;
            }
        }
        self.update(|s| {
            if s.is_complete() || s.is_notified() {
                return (ToNotified::DoNothing, s);
            }
            if s.is_running() {
                return (ToNotified::DoNothing, Snapshot(s.0 | NOTIFIED));
            }
            (ToNotified::Submit, Snapshot((s.0 | NOTIFIED) + REF_ONE))
        })
    }

    /// Wake through an owned waker, whose reference is consumed.
    pub(crate) fn transition_to_notified_by_val(&self) -> ToNotifiedByVal {
        self.update(|s| {
            if s.is_idle() && !s.is_notified() {
                // The waker's reference becomes the queue's.
                return (ToNotifiedByVal::Submit, Snapshot(s.0 | NOTIFIED));
            }
            let mut next = s.0;
            if s.is_running() {
                next |= NOTIFIED;
            }
            debug_assert!(s.ref_count() > 0);
            next -= REF_ONE;
            let r = if next >> REF_SHIFT == 0 {
                ToNotifiedByVal::Dealloc
            } else {
                ToNotifiedByVal::DoNothing
            };
            (r, Snapshot(next))
        })
    }

    /// Abort from a handle. The future must be dropped on a runtime thread before its next poll.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> ToNotified {
        self.update(|s| {
            if s.is_complete() || s.is_cancelled() {
                return (ToNotified::DoNothing, s);
            }
            if s.is_running() || s.is_notified() {
                // The poller (at `transition_to_idle`) or the queue entry sees the flag.
                return (ToNotified::DoNothing, Snapshot(s.0 | CANCELLED | NOTIFIED));
            }
            (
                ToNotified::Submit,
                Snapshot((s.0 | CANCELLED | NOTIFIED) + REF_ONE),
            )
        })
    }

    /// Runtime shutdown: claim the task to drop its future here. Returns true when the caller
    /// now holds RUNNING and must cancel the task; false when another thread is running it (it
    /// will see CANCELLED) or it is complete.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.update(|s| {
            let mut next = s.0 | CANCELLED;
            let claimed = s.is_idle();
            if claimed {
                next |= RUNNING;
            }
            (claimed, Snapshot(next))
        })
    }

    /// The `JoinHandle` is being dropped.
    pub(crate) fn transition_to_join_handle_dropped(&self) -> JoinDropped {
        self.update(|s| {
            debug_assert!(s.is_join_interested(), "{s:?}");
            let mut next = s.0 & !JOIN_INTEREST;
            let mut t = JoinDropped {
                drop_output: false,
                drop_waker: false,
            };
            if s.is_complete() {
                t.drop_output = true;
            } else {
                // Take back exclusive access to the waker slot.
                next &= !JOIN_WAKER;
            }
            if next & JOIN_WAKER == 0 {
                t.drop_waker = true;
            }
            (t, Snapshot(next))
        })
    }

    /// The `JoinHandle` stored a waker and publishes it. Fails (returning the snapshot) when the
    /// task completed first; the handle then keeps the slot and reads the output.
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set(), "{s:?}");
            if s.is_complete() {
                return (Err(s), s);
            }
            let next = Snapshot(s.0 | JOIN_WAKER);
            (Ok(next), next)
        })
    }

    /// The `JoinHandle` wants to replace its waker: take the slot back. Fails when the task
    /// completed first (the runtime may then have woken the old waker and taken JOIN_WAKER back
    /// already, between the handle's load and this transition).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|s| {
            debug_assert!(s.is_join_interested(), "{s:?}");
            if s.is_complete() {
                return (Err(s), s);
            }
            debug_assert!(s.is_join_waker_set(), "{s:?}");
            let next = Snapshot(s.0 & !JOIN_WAKER);
            (Ok(next), next)
        })
    }

    /// The runtime woke the join waker after completion and hands the slot back.
    pub(crate) fn unset_join_waker_after_complete(&self) -> Snapshot {
        let prev = Snapshot(self.word.fetch_and(!JOIN_WAKER, Ordering::AcqRel));
        debug_assert!(prev.is_complete() && prev.is_join_waker_set(), "{prev:?}");
        Snapshot(prev.0 & !JOIN_WAKER)
    }

    pub(crate) fn ref_inc(&self) {
        let prev = self.word.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference; true when it was the last.
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.word.fetch_sub(REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= 1, "{prev:?}");
        prev.ref_count() == 1
    }

    /// Drops `n` references; true when they were the last.
    pub(crate) fn ref_dec_n(&self, n: usize) -> bool {
        let prev = Snapshot(self.word.fetch_sub(n * REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= n, "{prev:?}");
        prev.ref_count() == n
    }

    /// The `JoinHandle` fast path: a task that never started and has only the initial
    /// references loses its join interest without a loop.
    pub(crate) fn drop_join_handle_fast(&self) -> Result<(), ()> {
        self.word
            .compare_exchange(
                INITIAL,
                (INITIAL - REF_ONE) & !JOIN_INTEREST,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map(|_| ())
            .map_err(|_| ())
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.load().fmt(f)
    }
}
