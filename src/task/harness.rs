//! What a worker does with a task: poll it, cancel it, complete it, and the join-handle side of
//! the output hand-off. Every function here follows the rules in `task/mod.rs`.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::runtime::context;
use crate::task::raw::{Cell, Header, Notified, RawTask, Schedule, Stage};
use crate::task::state::{ToIdle, ToRunning};
use crate::task::{coop, poll_time, waker, JoinError};

/// A typed view of a task cell.
pub(crate) struct Harness<F: Future, S> {
    cell: NonNull<Cell<F, S>>,
}

impl<F, S> Harness<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// # Safety
    ///
    /// `ptr` must be the header of a live `Cell<F, S>`.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        Harness { cell: ptr.cast() }
    }

    fn cell(&self) -> &Cell<F, S> {
        // SAFETY: `from_raw`'s contract: the cell is alive while a reference is held.
        unsafe { self.cell.as_ref() }
    }

    fn header(&self) -> &Header {
        &self.cell().header
    }

    pub(crate) fn scheduler(&self) -> &S {
        &self.cell().scheduler
    }

    fn raw(&self) -> RawTask {
        // SAFETY: the header of a live cell.
        unsafe { RawTask::from_raw(self.cell.cast()) }
    }

    /// Replaces the stage, dropping what was there.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the stage: it holds RUNNING, or it is the join handle
    /// and the task is COMPLETE.
    unsafe fn set_stage(&self, stage: Stage<F>) {
        // SAFETY: exclusive access per the function contract.
        self.cell().stage.with_mut(|ptr| unsafe { *ptr = stage });
    }

    /// # Safety
    ///
    /// As for [`Self::set_stage`].
    unsafe fn take_output(&self) -> Result<F::Output, JoinError> {
        self.cell().stage.with_mut(|ptr| {
            // SAFETY: exclusive access per the function contract.
            let stage = unsafe { &mut *ptr };
            match std::mem::replace(stage, Stage::Consumed) {
                Stage::Finished(output) => output,
                _ => panic!("JoinHandle polled after it returned its output"),
            }
        })
    }

    /// Runs the task: polls it, or drops its future when it was aborted.
    pub(crate) fn poll(self) {
        match self.header().state.transition_to_running() {
            ToRunning::Success => {
                let header = self.header();
                // Only the thread holding RUNNING writes these statistics (plain load-and-store
                // adds); the state transitions after the poll publish them to the next poller.
                header.polls.add_local(1);
                let _task = context::enter_task(header);
                match self.poll_future() {
                    Poll::Ready(output) => {
                        let output = self.drop_future(output);
                        self.complete(output);
                    }
                    Poll::Pending => match self.header().state.transition_to_idle() {
                        ToIdle::Ok => {}
                        ToIdle::OkDealloc => self.dealloc(),
                        ToIdle::OkNotified => {
                            // SAFETY: the poller's reference becomes the queue reference.
                            let task = unsafe { Notified::from_raw(self.raw()) };
                            self.scheduler().yield_now(task);
                        }
                        ToIdle::Cancelled => {
                            let output = self.cancel_future();
                            self.complete(output);
                        }
                    },
                }
            }
            ToRunning::Cancelled => {
                let _task = context::enter_task(self.header());
                let output = self.cancel_future();
                self.complete(output);
            }
            ToRunning::Failed => {}
            ToRunning::FailedDealloc => self.dealloc(),
        }
    }

    /// Shutdown: claim the task and drop its future here, or leave it to whoever runs it.
    /// Consumes one reference.
    pub(crate) fn shutdown(self) {
        if !self.header().state.transition_to_shutdown() {
            self.raw().drop_reference();
            return;
        }
        let _task = context::enter_task(self.header());
        let output = self.cancel_future();
        self.complete(output);
    }

    fn poll_future(&self) -> Poll<Result<F::Output, JoinError>> {
        let header = self.header();
        let _span = header.enter_span();
        // SAFETY: the waker borrows this task for the duration of the poll, during which the
        // poller's reference keeps it alive; it is never dropped (it owns no reference).
        let waker = ManuallyDrop::new(unsafe { waker::waker_ref(self.cell.cast()) });
        let mut cx = Context::from_waker(&waker);
        let started = self
            .scheduler()
            .slow_poll_threshold()
            .map(|t| (t, Instant::now()));
        let timed = self.scheduler().tracks_poll_time();
        let ticks = if timed { poll_time::now() } else { 0 };
        let _budget = coop::with_budget();
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.cell().stage.with_mut(|ptr| {
                // SAFETY: we hold RUNNING, so the stage is ours.
                let stage = unsafe { &mut *ptr };
                match stage {
                    Stage::Running(future) => {
                        // SAFETY: the future lives in the heap cell and never moves until it
                        // is dropped in place.
                        let future = unsafe { Pin::new_unchecked(future) };
                        future.poll(&mut cx)
                    }
                    _ => unreachable!("task polled without a future"),
                }
            })
        }));
        if timed {
            let took = poll_time::elapsed(ticks, poll_time::now());
            header.poll_ticks.add_local(took);
        }
        if let Some((threshold, started)) = started {
            let elapsed = started.elapsed();
            if elapsed > threshold {
                self.scheduler().on_slow_poll();
                tracing::warn!(
                    task.id = header.id.as_u64(),
                    task.name = header.name().map(|n| &**n).unwrap_or(""),
                    poll_duration_us = elapsed.as_micros() as u64,
                    "slow poll: task {} ({}) blocked its worker thread for {:?}",
                    header.id,
                    header.name().map(|n| &**n).unwrap_or("unnamed"),
                    elapsed,
                );
            }
        }
        match result {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(JoinError::panic(header.id, payload))),
        }
    }

    /// Drops the future after it returned (or panicked). A panic in its `Drop` turns the result
    /// into that panic.
    fn drop_future(&self, output: Result<F::Output, JoinError>) -> Result<F::Output, JoinError> {
        let _span = self.header().enter_span();
        // SAFETY: we hold RUNNING.
        match catch_unwind(AssertUnwindSafe(|| unsafe {
            self.set_stage(Stage::Consumed)
        })) {
            Ok(()) => output,
            Err(payload) => {
                let _ = catch_unwind(AssertUnwindSafe(move || drop(output)));
                Err(JoinError::panic(self.header().id, payload))
            }
        }
    }

    /// Drops the future of a cancelled task. A panic in its `Drop` is reported as the result.
    fn cancel_future(&self) -> Result<F::Output, JoinError> {
        self.scheduler().on_cancelled();
        let _span = self.header().enter_span();
        // SAFETY: we hold RUNNING.
        match catch_unwind(AssertUnwindSafe(|| unsafe {
            self.set_stage(Stage::Consumed)
        })) {
            Ok(()) => Err(JoinError::cancelled(self.header().id)),
            Err(payload) => Err(JoinError::panic(self.header().id, payload)),
        }
    }

    /// Stores the output, sets COMPLETE, tells the join handle, and lets go of the task.
    fn complete(self, output: Result<F::Output, JoinError>) {
        // SAFETY: we hold RUNNING; the future is already gone.
        unsafe { self.set_stage(Stage::Finished(output)) };
        let snapshot = self.header().state.transition_to_complete();
        if !snapshot.is_join_interested() {
            // Nobody will read the output: drop it here, containing a panicking `Drop`.
            // SAFETY: COMPLETE is set and there is no join handle: the stage is ours.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                self.set_stage(Stage::Consumed)
            }));
        } else if snapshot.is_join_waker_set() {
            self.cell().join_waker.with(|ptr| {
                // SAFETY: JOIN_WAKER is set, so the join handle does not touch the slot.
                let slot = unsafe { &*ptr };
                if let Some(waker) = slot {
                    let _ = catch_unwind(AssertUnwindSafe(|| waker.wake_by_ref()));
                }
            });
            let snapshot = self.header().state.unset_join_waker_after_complete();
            if !snapshot.is_join_interested() {
                // The handle was dropped meanwhile and left the waker to us.
                // SAFETY: JOIN_WAKER is clear and the handle is gone: the slot is ours.
                let _ = catch_unwind(AssertUnwindSafe(|| unsafe { self.set_join_waker(None) }));
            }
        }
        let mut refs = 1;
        if self.scheduler().release(self.header()) {
            refs += 1;
        }
        if self.header().state.ref_dec_n(refs) {
            self.dealloc();
        }
    }

    /// # Safety
    ///
    /// The caller has exclusive access to the join-waker slot (see `task/mod.rs`).
    unsafe fn set_join_waker(&self, waker: Option<Waker>) {
        // SAFETY: exclusive access per the function contract.
        self.cell()
            .join_waker
            .with_mut(|ptr| unsafe { *ptr = waker });
    }

    /// `JoinHandle::poll`.
    pub(crate) fn try_read_output(
        &self,
        dst: &mut Poll<Result<F::Output, JoinError>>,
        waker: &Waker,
    ) {
        if self.can_read_output(waker) {
            // SAFETY: COMPLETE is set and we are the join handle: the stage is ours.
            *dst = Poll::Ready(unsafe { self.take_output() });
        }
    }

    fn can_read_output(&self, waker: &Waker) -> bool {
        let state = &self.header().state;
        let snapshot = state.load();
        if snapshot.is_complete() {
            return true;
        }
        let result = if snapshot.is_join_waker_set() {
            let same = self.cell().join_waker.with(|ptr| {
                // SAFETY: JOIN_WAKER is set: the runtime may read the slot too, never write it.
                let slot = unsafe { &*ptr };
                slot.as_ref().is_some_and(|w| w.will_wake(waker))
            });
            if same {
                return false;
            }
            state
                .unset_join_waker()
                .and_then(|_| self.store_join_waker(waker))
        } else {
            self.store_join_waker(waker)
        };
        match result {
            Ok(_) => false,
            Err(snapshot) => {
                debug_assert!(snapshot.is_complete());
                true
            }
        }
    }

    fn store_join_waker(
        &self,
        waker: &Waker,
    ) -> Result<crate::task::state::Snapshot, crate::task::state::Snapshot> {
        // SAFETY: JOIN_WAKER is clear and we are the join handle: the slot is ours.
        unsafe { self.set_join_waker(Some(waker.clone())) };
        let result = self.header().state.set_join_waker();
        if result.is_err() {
            // SAFETY: the transition failed, so JOIN_WAKER is still clear: the slot is ours.
            unsafe { self.set_join_waker(None) };
        }
        result
    }

    pub(crate) fn drop_join_handle_slow(&self) {
        let transition = self.header().state.transition_to_join_handle_dropped();
        let mut panic = None;
        if transition.drop_output {
            let _task = context::enter_task(self.header());
            // SAFETY: COMPLETE is set and the handle is going: the stage is ours.
            let drop_output = || unsafe { self.set_stage(Stage::Consumed) };
            if let Err(p) = catch_unwind(AssertUnwindSafe(drop_output)) {
                panic = Some(p);
            }
        }
        if transition.drop_waker {
            // SAFETY: JOIN_WAKER is clear and the handle is going: the slot is ours.
            unsafe { self.set_join_waker(None) };
        }
        self.raw().drop_reference();
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }

    /// Frees the cell. Called once, after the last reference was dropped.
    pub(crate) fn dealloc(self) {
        // SAFETY: the cell came from `Box::leak` in `RawTask::new` and nobody refers to it now.
        let cell = unsafe { Box::from_raw(self.cell.as_ptr()) };
        debug_assert!(cell.header.state.load().ref_count() == 0);
        let _ = catch_unwind(AssertUnwindSafe(move || drop(cell)));
    }
}
