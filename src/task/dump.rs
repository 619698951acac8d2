//! `task::dump`: what every live task of a runtime is doing.

use std::time::Duration;

use crate::loom::DataArc;
use crate::runtime::Handle;
use crate::task::Id;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Waiting for a wake-up (a timer, a socket, a channel, another task).
    Idle,
    /// Queued to run.
    Scheduled,
    /// Being polled now.
    Running,
    /// Ended; its output waits for its join handle.
    Complete,
}

/// One live task, as [`dump`] sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskInfo {
    /// Its id.
    pub id: Id,
    /// Its name, if it was given one.
    pub name: Option<DataArc<str>>,
    /// The names of the scopes it runs in, outermost first (unnamed scopes and the runtime's
    /// root scope are left out).
    pub scope_path: Vec<DataArc<str>>,
    /// Where it is.
    pub state: TaskState,
    /// Times it was polled.
    pub polls: u64,
    /// Time since it was spawned (to within a worker's coarse clock, a few microseconds on a
    /// busy worker).
    pub age: Duration,
}

/// Every live task of the runtime behind `handle`. Safe to call while the runtime is busy: it
/// locks one shard of the task list at a time, never the whole runtime.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let parked = rt.spawn(std::future::pending::<()>());
/// let tasks = pitcrew::task::dump(rt.handle());
/// assert!(tasks.iter().any(|t| t.id == parked.id()));
/// ```
pub fn dump(handle: &Handle) -> Vec<TaskInfo> {
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    handle.shared.owned.for_each(|h| {
        let mut scope_path = Vec::new();
        let mut scope = h.scope.as_deref();
        while let Some(s) = scope {
            if let (Some(name), Some(_)) = (&s.name, &s.parent) {
                scope_path.push(name.clone());
            }
            scope = s.parent.as_deref();
        }
        scope_path.reverse();
        out.push(TaskInfo {
            id: h.id,
            name: h.name.clone(),
            scope_path,
            state: h.state.load().describe(),
            polls: h.polls.get(),
            age: now.saturating_duration_since(h.born),
        });
    });
    out
}
