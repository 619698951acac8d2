//! The runtime: [`Runtime`], its [`Builder`], and the [`Handle`] that reaches it from any
//! thread.

// Design notes
// ============
//
// The runtime: building it, entering it, and the handles users hold.
//
// A [`Runtime`] owns the worker threads (see `scheduler`) and the blocking pool (see
// `blocking`). A [`Handle`] is a cheap, cloneable reference to the same shared state that any
// thread may use to spawn or block on futures. The *context* (`context.rs`) is the
// thread-local record of which runtime a thread belongs to, so that [`spawn`](crate::spawn) and
// [`Handle::current`] work without passing handles around.
//
// Rules:
// 1. Worker threads and blocking threads always have their runtime as the current one;
//    `block_on` makes its runtime current for the duration of the call.
// 2. `block_on` refuses to run on a worker thread or inside another `block_on`: blocking there
//    would stall every task queued behind it.
// 3. User hooks (`on_thread_start`/`on_thread_stop`) run outside every lock of ours, and a
//    panic in one is reported, never allowed to kill the thread before it is accounted for.

pub(crate) mod block_on;
mod builder;
pub(crate) mod context;
mod handle;
mod metrics;
mod rt;

use std::panic::{catch_unwind, AssertUnwindSafe, Location};

pub use builder::{BuildError, Builder};
pub use handle::{Handle, NoRuntime};
pub use metrics::{Metrics, WorkerMetrics};
pub use rt::{Runtime, ShutdownReport};

use crate::loom::DataArc;
use crate::task::Id;

/// A thread start/stop hook.
pub(crate) type Hook = DataArc<dyn Fn() + Send + Sync + 'static>;

/// Runs a user hook, reporting (not propagating) a panic.
pub(crate) fn run_hook(hook: Option<&Hook>, which: &str) {
    if let Some(hook) = hook {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook())) {
            tracing::error!(
                hook = which,
                panic = crate::task::panic_message(&*payload).unwrap_or("<non-string payload>"),
                "pitcrew: a {which} hook panicked"
            );
        }
    }
}

/// The tracing span every task runs in. Its name and fields are the ones tokio-console reads.
pub(crate) fn task_span(
    kind: &'static str,
    id: Id,
    name: Option<&str>,
    location: &'static Location<'static>,
) -> tracing::Span {
    task_span_in(kind, id, name, location, None)
}

/// [`task_span`] with an explicit parent: a task spawned into a scope is shown under the
/// scope's span.
pub(crate) fn task_span_in(
    kind: &'static str,
    id: Id,
    name: Option<&str>,
    location: &'static Location<'static>,
    parent: Option<&tracing::Span>,
) -> tracing::Span {
    match parent {
        None => tracing::trace_span!(
            target: "runtime::spawn",
            "runtime.spawn",
            kind = kind,
            task.id = id.as_u64(),
            task.name = name.unwrap_or(""),
            loc.file = location.file(),
            loc.line = location.line(),
            loc.col = location.column(),
        ),
        Some(parent) => tracing::trace_span!(
            target: "runtime::spawn",
            parent: parent,
            "runtime.spawn",
            kind = kind,
            task.id = id.as_u64(),
            task.name = name.unwrap_or(""),
            loc.file = location.file(),
            loc.line = location.line(),
            loc.col = location.column(),
        ),
    }
}
