//! The raw waker of a task: a pointer to its header and one static vtable for every task.
//!
//! A waker owns one task reference. Waking by reference touches no reference count unless the
//! task has to be queued (the queue entry takes a new reference); waking by value hands the
//! waker's reference to the queue when it can.
//!
//! Each vtable function emits a `trace` event with target `runtime::waker`, `op` (one of
//! `waker.wake`, `waker.wake_by_ref`, `waker.clone`, `waker.drop`) and `task.id`, parented to
//! the task's span: tokio-console counts wakes from these. The macro checks the callsite's
//! cached interest first, so with no interested subscriber an event costs one relaxed load and
//! a branch; nothing is computed before it.

use std::ptr::NonNull;
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::task::raw::Header;
use crate::task::state::{ToNotified, ToNotifiedByVal};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake_by_val, wake_by_ref, drop_waker);

/// A waker for the task that does not own a reference: never drop it (wrap it in
/// `ManuallyDrop`); clones of it own their own reference.
///
/// # Safety
///
/// The task must stay alive while the waker is in use.
pub(crate) unsafe fn waker_ref(header: NonNull<Header>) -> Waker {
    // SAFETY: the vtable functions uphold the `RawWaker` contract for task headers.
    unsafe { Waker::from_raw(RawWaker::new(header.as_ptr() as *const (), &VTABLE)) }
}

/// # Safety
///
/// `ptr` is a task header kept alive by the waker being used.
unsafe fn header<'a>(ptr: *const ()) -> &'a Header {
    // SAFETY: per the function contract.
    unsafe { &*(ptr as *const Header) }
}

/// Emits the tokio-console waker event `op` for the task behind `h`.
macro_rules! trace_op {
    ($h:expr, $op:literal) => {
        tracing::trace!(target: "runtime::waker", parent: $h.span(), op = $op, task.id = $h.id.as_u64())
    };
}

unsafe fn clone(ptr: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned keeps the task alive.
    let h = unsafe { header(ptr) };
    trace_op!(h, "waker.clone");
    h.state.ref_inc();
    RawWaker::new(ptr, &VTABLE)
}

unsafe fn wake_by_val(ptr: *const ()) {
    // SAFETY: this waker owns a reference, which keeps the task alive until it is used below.
    let h = unsafe { header(ptr) };
    trace_op!(h, "waker.wake");
    let nn = NonNull::from(h);
    match h.state.transition_to_notified_by_val() {
        // SAFETY: the waker's reference now belongs to the queue entry `schedule` creates.
        ToNotifiedByVal::Submit => unsafe { (h.vtable.schedule)(nn) },
        ToNotifiedByVal::DoNothing => {}
        // SAFETY: that was the last reference.
        ToNotifiedByVal::Dealloc => unsafe { (h.vtable.dealloc)(nn) },
    }
}

unsafe fn wake_by_ref(ptr: *const ()) {
    // SAFETY: the waker being used keeps the task alive.
    let h = unsafe { header(ptr) };
    trace_op!(h, "waker.wake_by_ref");
    if h.state.transition_to_notified_by_ref() == ToNotified::Submit {
        // SAFETY: the transition added the reference that the queue entry takes.
        unsafe { (h.vtable.schedule)(NonNull::from(h)) }
    }
}

unsafe fn drop_waker(ptr: *const ()) {
    // SAFETY: this waker owns a reference.
    let h = unsafe { header(ptr) };
    trace_op!(h, "waker.drop");
    if h.state.ref_dec() {
        // SAFETY: that was the last reference.
        unsafe { (h.vtable.dealloc)(NonNull::from(h)) }
    }
}

/// Wakes `waker` (any waker: possibly user code) on a runtime thread that must survive it: a
/// panic in its `wake` or its `drop` is reported and swallowed. `source` names the caller in
/// the report ("timer", "I/O").
pub(crate) fn wake_contained(waker: Waker, source: &'static str) {
    if let Err(payload) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || waker.wake()))
    {
        tracing::error!(
            source,
            panic = crate::task::panic_message(&*payload).unwrap_or("<non-string payload>"),
            "pitcrew: a waker panicked when woken; the panic was contained"
        );
    }
}
