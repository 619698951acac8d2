//! Cooperative scheduling: a per-poll budget so one task cannot hog a worker.
//!
//! Each task poll on a worker starts with [`BUDGET`] units. Leaf futures of pitcrew (join
//! handles, and later timers, I/O and channels) spend one unit each time they are ready; when
//! the budget is spent they return `Pending` and wake the task, which goes to the back of the
//! run queue. Outside a task poll the budget is unconstrained.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Units of work a task may do in one poll.
pub(crate) const BUDGET: u8 = 128;

// `None`: unconstrained.
crate::loom::thread_local! {
    static CURRENT: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Restores the previous budget when dropped.
pub(crate) struct BudgetGuard(Option<u8>);

/// Gives the current thread a fresh budget until the guard drops.
pub(crate) fn with_budget() -> BudgetGuard {
    BudgetGuard(CURRENT.with(|c| c.replace(Some(BUDGET))))
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let prev = self.0;
        CURRENT.with(|c| c.set(prev));
    }
}

/// Spends one unit. When none is left, wakes the task and returns `Pending`.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    CURRENT.with(|c| match c.get() {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            c.set(Some(n - 1));
            Poll::Ready(())
        }
    })
}

/// Gives back the unit spent by [`poll_proceed`] when the operation turned out not ready.
pub(crate) fn refund() {
    CURRENT.with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n.saturating_add(1).min(BUDGET)));
        }
    });
}
