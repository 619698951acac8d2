//! The task cell: one allocation holding the header, the scheduler, the future (then its
//! output) and the join waker, and the type-erased handles that point at it.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::loom::{Counter, DataArc, UnsafeCell};
use crate::scope::tree::Scope;
use crate::task::harness::Harness;
use crate::task::state::State;
use crate::task::{Id, JoinError};

/// How a task reaches its scheduler. Implemented by the worker pool and the blocking pool.
pub(crate) trait Schedule: Send + Sync + Sized + 'static {
    /// A waker or an abort made the task runnable.
    fn schedule(&self, task: Notified);

    /// The task was woken while it was running (it yielded): run it again after the others.
    fn yield_now(&self, task: Notified) {
        self.schedule(task);
    }

    /// The task completed: take it out of the owned-task list. True when it was there, in which
    /// case the list's reference is the caller's to drop.
    fn release(&self, task: &Header) -> bool;

    /// A poll longer than this is reported through tracing.
    fn slow_poll_threshold(&self) -> Option<Duration> {
        None
    }

    /// Called after a poll longer than the threshold.
    fn on_slow_poll(&self) {}

    /// Called when a task's future is dropped before it completed (abort, scope
    /// cancellation, shutdown).
    fn on_cancelled(&self) {}

    /// Whether polls are timed for the task's poll-time total.
    fn tracks_poll_time(&self) -> bool {
        false
    }
}

/// The part of every task that does not depend on its future's type.
///
/// `repr(C)`: a pointer to the header is a pointer to the whole [`Cell`].
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    pub(crate) vtable: &'static Vtable,
    pub(crate) id: Id,
    /// Index in the owned-task list shard. Read and written only under that shard's lock.
    pub(crate) owned_index: UnsafeCell<usize>,
    /// The scope the task belongs to; `None`: the runtime's root scope.
    pub(crate) scope: Option<DataArc<Scope>>,
    name: Option<DataArc<str>>,
    /// The tracing span, boxed apart and only when a subscriber wants it: the header stays 40
    /// bytes smaller for every other task.
    span: Option<Box<tracing::Span>>,
    /// Polls so far (statistics for dumps; written by the poller only).
    pub(crate) polls: Counter,
    /// Time spent in those polls, in `poll_time` ticks, when the scheduler tracks it (written
    /// by the poller only).
    pub(crate) poll_ticks: Counter,
    /// When it was spawned, from a clock the workers refresh now and then (dumps only).
    pub(crate) born: std::time::Instant,
}

/// The span of a task that has none.
static NO_SPAN: tracing::Span = tracing::Span::none();

impl Header {
    /// The task's name.
    pub(crate) fn name(&self) -> Option<&DataArc<str>> {
        self.name.as_ref()
    }

    /// Enters the task's span, if it has one (a branch, not a call, for the others).
    #[inline]
    pub(crate) fn enter_span(&self) -> Option<tracing::span::Entered<'_>> {
        self.span.as_deref().map(tracing::Span::enter)
    }

    /// The task's `runtime.spawn` span (disabled when no subscriber wants it).
    pub(crate) fn span(&self) -> &tracing::Span {
        self.span.as_deref().unwrap_or(&NO_SPAN)
    }
}

/// The type-specific operations of a task.
pub(crate) struct Vtable {
    /// Run the task (poll, or cancel when aborted). Consumes one `Notified` reference.
    pub(crate) poll: unsafe fn(NonNull<Header>),
    /// Hand a `Notified` to the scheduler. Consumes one reference.
    pub(crate) schedule: unsafe fn(NonNull<Header>),
    /// Free the allocation. Called once, when the last reference goes.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
    /// `JoinHandle::poll`: write `Poll<Result<T, JoinError>>` to the pointer when complete,
    /// else register the waker.
    pub(crate) try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// The `JoinHandle` is dropped and the fast path failed.
    pub(crate) drop_join_handle_slow: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: drop the future here if nobody runs it. Consumes one reference.
    pub(crate) shutdown: unsafe fn(NonNull<Header>),
}

/// The future, then its output.
pub(crate) enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

/// The whole task allocation.
#[repr(C)]
pub(crate) struct Cell<F: Future, S> {
    pub(crate) header: Header,
    pub(crate) scheduler: S,
    /// Touched only by the thread holding RUNNING, or by the `JoinHandle` once COMPLETE.
    pub(crate) stage: UnsafeCell<Stage<F>>,
    /// Written by the `JoinHandle` while JOIN_WAKER is clear; read by the runtime while it is
    /// set (see `task/mod.rs`).
    pub(crate) join_waker: UnsafeCell<Option<Waker>>,
}

/// A type-erased pointer to a task. Does not own a reference by itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

// SAFETY: a task is shared between threads only through its atomic state word; the cell's other
// fields are guarded by the rules in `task/mod.rs`, and futures and outputs are `Send`.
unsafe impl Send for RawTask {}
// SAFETY: as above; every method that touches non-atomic fields checks the state first.
unsafe impl Sync for RawTask {}

impl RawTask {
    /// Allocates a task holding three references (join handle, owned list, first `Notified`).
    #[inline]
    pub(crate) fn new<F, S>(
        future: F,
        scheduler: S,
        id: Id,
        name: Option<DataArc<str>>,
        scope: Option<DataArc<Scope>>,
        span: tracing::Span,
        born: std::time::Instant,
    ) -> RawTask
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        let span = (!span.is_disabled()).then(|| Box::new(span));
        let cell = Box::new(Cell {
            header: Header {
                state: State::new(),
                vtable: vtable::<F, S>(),
                id,
                owned_index: UnsafeCell::new(usize::MAX),
                name,
                scope,
                span,
                polls: Counter::new(0),
                poll_ticks: Counter::new(0),
                born,
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
            join_waker: UnsafeCell::new(None),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        RawTask { ptr }
    }

    /// # Safety
    ///
    /// `ptr` must point to a live task header.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: every `RawTask` in use is backed by a reference that keeps the allocation alive.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn id(&self) -> Id {
        self.header().id
    }

    /// Runtime shutdown on a task taken from the owned list, whose reference this consumes.
    pub(crate) fn shutdown(self) {
        // SAFETY: the caller gives up one reference, which `shutdown` consumes.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    pub(crate) fn try_read_output<T>(self, dst: &mut Poll<Result<T, JoinError>>, waker: &Waker) {
        // SAFETY: the join handle's `T` is the task's output type, which the vtable casts back.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst as *mut _ as *mut (), waker) }
    }

    pub(crate) fn drop_join_handle(self) {
        if self.header().state.drop_join_handle_fast().is_ok() {
            return;
        }
        // SAFETY: called once, by the join handle's drop, which owns a reference.
        unsafe { (self.header().vtable.drop_join_handle_slow)(self.ptr) }
    }

    /// Drops one reference, freeing the task when it was the last.
    pub(crate) fn drop_reference(self) {
        if self.header().state.ref_dec() {
            // SAFETY: that was the last reference: nobody else can reach the task.
            unsafe { (self.header().vtable.dealloc)(self.ptr) }
        }
    }

    /// Cancels the task here and now when nobody is polling it (its future is dropped on this
    /// thread before this returns); a task being polled elsewhere is flagged and dropped by its
    /// poller right after that poll.
    pub(crate) fn cancel_now(self) {
        self.header().state.ref_inc();
        // SAFETY: `shutdown` consumes the reference just added.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// Abort from a `JoinHandle` or `AbortHandle`.
    pub(crate) fn remote_abort(self) {
        use crate::task::state::ToNotified;
        if self.header().state.transition_to_notified_and_cancel() == ToNotified::Submit {
            // SAFETY: the transition added the reference that `schedule` consumes.
            unsafe { (self.header().vtable.schedule)(self.ptr) }
        }
    }
}

impl std::fmt::Debug for RawTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("state", &self.header().state)
            .finish()
    }
}

/// A task that is runnable: it owns the reference that the queue entry stands for.
pub(crate) struct Notified(RawTask);

impl Notified {
    /// # Safety
    ///
    /// The caller transfers one reference, counted with NOTIFIED set, to the new value.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        Notified(raw)
    }

    /// Polls the task (or cancels it when aborted), consuming the queue reference.
    pub(crate) fn run(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: the reference owned by `this` is handed to `poll`, which consumes it.
        unsafe { (this.0.header().vtable.poll)(this.0.ptr) }
    }

    /// Shutdown on a queued task: drop its future here unless another thread runs it.
    pub(crate) fn shutdown(self) {
        let this = ManuallyDrop::new(self);
        this.0.shutdown();
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        self.0.drop_reference();
    }
}

impl std::fmt::Debug for Notified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Notified").field(&self.0).finish()
    }
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle_slow: drop_join_handle_slow::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

unsafe fn poll<F: Future + Send + 'static, S: Schedule>(ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    // SAFETY: the vtable of a `Cell<F, S>` is only reached through that cell's header.
    unsafe { Harness::<F, S>::from_raw(ptr) }.poll();
}

unsafe fn schedule<F: Future + Send + 'static, S: Schedule>(ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    // SAFETY: as in `poll`; the caller hands over one reference counted with NOTIFIED.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    // SAFETY: see above.
    let task = unsafe { Notified::from_raw(RawTask::from_raw(ptr)) };
    harness.scheduler().schedule(task);
}

unsafe fn dealloc<F: Future + Send + 'static, S: Schedule>(ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    // SAFETY: as in `poll`; the last reference is gone.
    unsafe { Harness::<F, S>::from_raw(ptr) }.dealloc();
}

unsafe fn try_read_output<F: Future + Send + 'static, S: Schedule>(
    ptr: NonNull<Header>,
    dst: *mut (),
    waker: &Waker,
) where
    F::Output: Send + 'static,
{
    // SAFETY: `RawTask::try_read_output` passes a `Poll<Result<F::Output, JoinError>>`.
    let dst = unsafe { &mut *(dst as *mut Poll<Result<F::Output, JoinError>>) };
    // SAFETY: as in `poll`.
    unsafe { Harness::<F, S>::from_raw(ptr) }.try_read_output(dst, waker);
}

unsafe fn drop_join_handle_slow<F: Future + Send + 'static, S: Schedule>(ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    // SAFETY: as in `poll`.
    unsafe { Harness::<F, S>::from_raw(ptr) }.drop_join_handle_slow();
}

unsafe fn shutdown<F: Future + Send + 'static, S: Schedule>(ptr: NonNull<Header>)
where
    F::Output: Send + 'static,
{
    // SAFETY: as in `poll`.
    unsafe { Harness::<F, S>::from_raw(ptr) }.shutdown();
}
