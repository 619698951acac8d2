//! Thread-local context: which runtime this thread belongs to, what kind of thread it is, and
//! which task it is polling.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use crate::loom::{Arc, DataArc};
use crate::runtime::Handle;
use crate::scheduler::{with_current_worker, Shared};
use crate::scope::tree::Scope;
use crate::task::raw::Header;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ThreadKind {
    /// Not a runtime thread (or a thread outside `block_on`).
    Other,
    /// A worker thread.
    Worker,
    /// A blocking-pool thread.
    Blocking,
    /// A thread inside `block_on`.
    BlockOn,
}

struct Context {
    handle: RefCell<Option<Handle>>,
    kind: Cell<ThreadKind>,
}

crate::loom::thread_local! {
    static CONTEXT: Context = const {
        Context {
            handle: RefCell::new(None),
            kind: Cell::new(ThreadKind::Other),
        }
    };
}

// The task being polled, and a scope entered inline by the code being polled (nursery body,
// shield, move_on_after). Kept apart from `CONTEXT` because they are read on every poll and
// spawn: a thread-local without `Drop` is a plain offset from the thread pointer, with no
// registration check.
crate::loom::thread_local! {
    static TASK: Cell<Option<NonNull<Header>>> = const { Cell::new(None) };
}
crate::loom::thread_local! {
    static SCOPE: Cell<*const DataArc<Scope>> = const { Cell::new(std::ptr::null()) };
}

/// Restores the previous runtime context when dropped.
pub(crate) struct EnterGuard {
    previous: Option<(Option<Handle>, ThreadKind)>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if let Some((handle, kind)) = self.previous.take() {
            // During thread teardown the thread-local may be gone; nothing to restore then.
            let _ = CONTEXT.try_with(|c| {
                *c.handle.borrow_mut() = handle;
                c.kind.set(kind);
            });
        }
    }
}

impl std::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

fn enter(handle: Handle, kind: ThreadKind) -> EnterGuard {
    CONTEXT.with(|c| {
        let previous_handle = c.handle.replace(Some(handle));
        let previous_kind = c.kind.replace(kind);
        EnterGuard {
            previous: Some((previous_handle, previous_kind)),
        }
    })
}

pub(crate) fn enter_worker(handle: Handle) -> EnterGuard {
    enter(handle, ThreadKind::Worker)
}

pub(crate) fn enter_blocking_thread(handle: Handle) -> EnterGuard {
    enter(handle, ThreadKind::Blocking)
}

/// Enters `handle`'s runtime for a `block_on`.
///
/// # Panics
///
/// On a worker thread or inside another `block_on`: blocking there would stall the runtime.
#[track_caller]
pub(crate) fn enter_block_on(handle: Handle) -> EnterGuard {
    let kind = CONTEXT.with(|c| c.kind.get());
    if matches!(kind, ThreadKind::Worker | ThreadKind::BlockOn) {
        panic!("cannot block_on inside a pitcrew runtime thread; .await instead");
    }
    enter(handle, ThreadKind::BlockOn)
}

/// The runtime this thread belongs to, if any.
pub(crate) fn current_handle() -> Option<Handle> {
    with_current_worker(|w| {
        w.map(|w| Handle {
            shared: w.shared.clone(),
        })
    })
    .or_else(|| {
        CONTEXT
            .try_with(|c| c.handle.borrow().clone())
            .ok()
            .flatten()
    })
}

/// Runs `f` with the current runtime's scheduler, without cloning it on a worker thread.
#[inline]
pub(crate) fn with_scheduler<R>(f: impl FnOnce(Option<&Arc<Shared>>) -> R) -> R {
    with_current_worker(|w| match w {
        Some(w) => f(Some(&w.shared)),
        None => {
            let handle = CONTEXT
                .try_with(|c| c.handle.borrow().clone())
                .ok()
                .flatten();
            f(handle.as_ref().map(|h| &h.shared))
        }
    })
}

/// Whether this thread may poll `shared`'s tasks inline: one of its workers, or a thread inside
/// its `block_on` (not a blocking-pool thread, not another runtime's thread).
pub(crate) fn is_polling_thread_of(shared: &Shared) -> bool {
    with_current_worker(|w| match w {
        Some(w) => std::ptr::eq(&*w.shared, shared),
        None => CONTEXT
            .try_with(|c| {
                c.kind.get() == ThreadKind::BlockOn
                    && c.handle
                        .borrow()
                        .as_ref()
                        .is_some_and(|h| std::ptr::eq(&*h.shared, shared))
            })
            .unwrap_or(false),
    })
}

/// The panic for runtime functions called outside any runtime.
#[track_caller]
pub(crate) fn no_runtime_panic(what: &str) -> ! {
    panic!(
        "{what} called outside a pitcrew runtime: this thread has no current pitcrew runtime \
         (use pitcrew::Handle::try_current() to check, or run inside Runtime::block_on or a task)"
    )
}

/// Marks the task being polled on this thread until the guard drops.
pub(crate) struct TaskGuard {
    previous: Option<NonNull<Header>>,
}

pub(crate) fn enter_task(header: &Header) -> TaskGuard {
    let previous = TASK
        .try_with(|t| t.replace(Some(NonNull::from(header))))
        .ok()
        .flatten();
    TaskGuard { previous }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        let _ = TASK.try_with(|t| t.set(previous));
    }
}

/// Runs `f` with the header of the task being polled on this thread.
pub(crate) fn with_current_task<R>(f: impl FnOnce(Option<&Header>) -> R) -> R {
    let ptr = TASK.try_with(|t| t.get()).ok().flatten();
    // SAFETY: the pointer is set by `enter_task` while the task is being polled (or dropped)
    // on this thread, which holds a reference to it; the guard clears it afterwards.
    f(ptr.map(|p| unsafe { p.as_ref() }))
}

/// Marks a scope entered inline until the guard drops.
pub(crate) struct ScopeGuard {
    previous: *const DataArc<Scope>,
}

/// Enters `scope` for the code polled until the guard drops. The caller keeps `scope` alive
/// and in place (a pinned future's field) for that time.
pub(crate) fn enter_scope(scope: &DataArc<Scope>) -> ScopeGuard {
    let previous = SCOPE
        .try_with(|c| c.replace(scope as *const _))
        .unwrap_or(std::ptr::null());
    ScopeGuard { previous }
}

/// Leaves the scope entered inline, if any, until the guard drops: code polled meanwhile sees
/// its task's own scope.
pub(crate) fn leave_scope() -> ScopeGuard {
    let previous = SCOPE
        .try_with(|c| c.replace(std::ptr::null()))
        .unwrap_or(std::ptr::null());
    ScopeGuard { previous }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let previous = self.previous;
        let _ = SCOPE.try_with(|c| c.set(previous));
    }
}

/// The scope entered inline, else the running task's scope; `None` means the root scope.
pub(crate) fn with_nonroot_scope<R>(f: impl FnOnce(Option<&DataArc<Scope>>) -> R) -> R {
    let entered = SCOPE.try_with(Cell::get).unwrap_or(std::ptr::null());
    let task = TASK.try_with(Cell::get).ok().flatten();
    if !entered.is_null() {
        // SAFETY: `enter_scope`'s caller keeps the scope in place until its guard drops, and the
        // guard restores the previous pointer before then.
        return f(Some(unsafe { &*entered }));
    }
    // SAFETY: as in `with_current_task`: the task is being polled on this thread.
    let header = task.map(|p| unsafe { p.as_ref() });
    f(header.and_then(|h| h.scope.as_ref()))
}

/// The current scope, the runtime's root scope included; `None` outside a runtime.
pub(crate) fn with_current_scope<R>(f: impl FnOnce(Option<&DataArc<Scope>>) -> R) -> R {
    let mut f = Some(f);
    let out = with_nonroot_scope(|s| s.map(|s| (f.take().expect("called once"))(Some(s))));
    match out {
        Some(r) => r,
        None => {
            let f = f.take().expect("called once");
            with_scheduler(|shared| f(shared.map(|s| &s.root)))
        }
    }
}
