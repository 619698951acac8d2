//! `task::dump`: what every live task of a runtime is doing.

use std::time::Duration;

use crate::loom::DataArc;
use crate::runtime::Handle;
use crate::task::{poll_time, Id};

/// Where a task is in its life.
///
/// # Examples
///
/// ```
/// use pitcrew::task::TaskState;
///
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let parked = rt.spawn(std::future::pending::<()>());
/// let state = || {
///     let tasks = pitcrew::task::dump(rt.handle());
///     tasks.into_iter().find(|t| t.id == parked.id()).unwrap().state
/// };
/// // Once it has been polled, it waits for a wake-up that never comes.
/// while state() != TaskState::Idle {
///     std::thread::yield_now();
/// }
/// ```
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
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let handle = rt.block_on(async {
///     pitcrew::task::Builder::new()
///         .name("poller")
///         .spawn(std::future::pending::<()>())
///         .unwrap()
/// });
/// for task in pitcrew::task::dump(rt.handle()) {
///     println!("{} {:?} {:?} polled {} times", task.id, task.name, task.state, task.polls);
/// }
/// let info = pitcrew::task::dump(rt.handle()).into_iter().find(|t| t.id == handle.id()).unwrap();
/// assert_eq!(info.name.as_deref(), Some("poller"));
/// assert!(info.poll_time.is_none()); // not tracked unless the builder asked for it
/// ```
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
    /// Time spent inside those polls, all added up (the poll under way, if any, not included);
    /// `None` unless the runtime was built with
    /// [`track_poll_time`](crate::runtime::Builder::track_poll_time).
    pub poll_time: Option<Duration>,
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
    let rate = handle
        .shared
        .config
        .track_poll_time
        .then(poll_time::Rate::get);
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
            name: h.name().cloned(),
            scope_path,
            state: h.state.load().describe(),
            polls: h.polls.get(),
            poll_time: rate.map(|r| r.to_duration(h.poll_ticks.get())),
            age: now.saturating_duration_since(h.born),
        });
    });
    out
}

/// The tasks of a [`dump`], printed by `Display` as an indented tree: scope names as headers,
/// each task below its innermost named scope with its id, name, state, polls, total poll time
/// (when tracked) and age. Tasks
/// outside any named scope come first, under the `runtime` header; within a scope its own tasks
/// come before its child scopes, each group in id order.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let _parked = pitcrew::task::Builder::new()
///     .name("parked")
///     .spawn_on(std::future::pending::<()>(), rt.handle())
///     .unwrap();
/// let tree = pitcrew::task::dump_tree(rt.handle()).to_string();
/// assert!(tree.starts_with("runtime (1 task)"));
/// assert!(tree.contains("\"parked\""));
/// ```
#[derive(Debug, Clone, Default)]
pub struct TaskDump(pub Vec<TaskInfo>);

/// Every live task of the runtime behind `handle`, as a [`TaskDump`] that prints as a scope
/// tree. Same cost and guarantees as [`dump`].
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// let dump = pitcrew::task::dump_tree(rt.handle());
/// assert!(dump.0.is_empty());
/// assert_eq!(dump.to_string(), "runtime (0 tasks)\n");
/// ```
pub fn dump_tree(handle: &Handle) -> TaskDump {
    TaskDump(dump(handle))
}

impl From<Vec<TaskInfo>> for TaskDump {
    fn from(tasks: Vec<TaskInfo>) -> TaskDump {
        TaskDump(tasks)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskState::Idle => "idle",
            TaskState::Scheduled => "scheduled",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
        })
    }
}

impl std::fmt::Display for TaskDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        writeln!(f, "runtime ({n} task{})", if n == 1 { "" } else { "s" })?;
        let mut tasks: Vec<&TaskInfo> = self.0.iter().collect();
        // Sorting by path puts a scope's own tasks before its child scopes (a prefix sorts first).
        tasks.sort_by(|a, b| a.scope_path.cmp(&b.scope_path).then(a.id.cmp(&b.id)));
        let mut open: &[DataArc<str>] = &[];
        for t in tasks {
            let path = &t.scope_path[..];
            if path != open {
                let shared = open.iter().zip(path).take_while(|(a, b)| a == b).count();
                for (depth, scope) in path.iter().enumerate().skip(shared) {
                    writeln!(f, "{:indent$}{scope}", "", indent = 2 * (depth + 1))?;
                }
                open = path;
            }
            let indent = 2 * (path.len() + 1);
            write!(f, "{:indent$}task {}", "", t.id)?;
            if let Some(name) = &t.name {
                write!(f, " {name:?}")?;
            }
            write!(f, " {} polls={}", t.state, t.polls)?;
            if let Some(poll_time) = t.poll_time {
                write!(f, " poll_time={poll_time:?}")?;
            }
            writeln!(f, " age={:?}", t.age)?;
        }
        Ok(())
    }
}
