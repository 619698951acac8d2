//! Shared helpers for the loom models in `tests/`. Build with `RUSTFLAGS="--cfg loom"`.

#![cfg(loom)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};

/// Counts drops of the values it marks.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Bumps its counter when dropped.
pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A slot where a future leaves its waker for another thread.
#[derive(Clone, Default)]
pub struct WakerSlot(Arc<Mutex<Option<Waker>>>);

impl WakerSlot {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&self, waker: &Waker) {
        *self.0.lock().unwrap() = Some(waker.clone());
    }
    /// Takes the waker, if one is there.
    pub fn take(&self) -> Option<Waker> {
        self.0.lock().unwrap().take()
    }
    /// Spins (yielding to loom) until a waker is there, and takes it.
    pub fn take_spin(&self) -> Waker {
        loop {
            if let Some(w) = self.0.lock().unwrap().take() {
                return w;
            }
            loom::thread::yield_now();
        }
    }
}

/// Pending until polled `n` times; leaves its waker in the slot on every pending poll; holds a
/// drop token.
pub struct PendingN {
    pub left: usize,
    pub polls: Arc<AtomicUsize>,
    pub slot: WakerSlot,
    pub _token: DropToken,
}

impl Future for PendingN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        self.slot.put(cx.waker());
        Poll::Pending
    }
}

/// A waker that records that it was woken.
pub struct FlagWaker(pub AtomicBool);

impl Wake for FlagWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A waker and its flag.
pub fn flag_waker() -> (Waker, std::sync::Arc<FlagWaker>) {
    let flag = std::sync::Arc::new(FlagWaker(AtomicBool::new(false)));
    (Waker::from(flag.clone()), flag)
}

/// Polls `f` once with `waker`.
pub fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Builds a loom model with the preemption bound from the environment (default 2).
pub fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// As [`model`], with a preemption bound of at most `bound` (for whole-runtime models whose
/// state space is large).
pub fn model_bounded(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(bound, |b| b.min(bound)));
    builder.check(f);
}
