//! The run queues: each worker's deque, the global injector, and the stealers.
//!
//! Normal builds use `crossbeam_deque`. Under loom they are replaced by mutex-backed stand-ins
//! with the same API (crossbeam is not loom-aware), so the models exercise our protocol around
//! the queues with every interleaving; the local capacity shrinks to 4 (or what a model sets
//! with `loom_api::set_local_capacity`) so that the overflow and steal-half paths are reachable
//! in small models.

/// A worker's queue holds at most this many tasks; past it, half moves to the injector.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) const fn local_capacity() -> usize {
    256
}

/// Under loom: 4, unless the model lowered it (`loom_api::set_local_capacity`).
#[cfg(loom)]
pub(crate) fn local_capacity() -> usize {
    crate::loom_api::local_capacity()
}

#[cfg(not(loom))]
pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker as Local};

#[cfg(loom)]
pub(crate) use stand_in::{Injector, Local, Steal, Stealer};

#[cfg(loom)]
mod stand_in {
    use std::collections::VecDeque;

    use crate::loom::{Arc, Mutex};

    /// The outcome of a steal, as in crossbeam.
    #[derive(Debug)]
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        Retry,
    }

    #[derive(Debug)]
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, t: T) {
            self.0.lock().push_back(t);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.0.lock().pop_front() {
                Some(t) => Steal::Success(t),
                None => Steal::Empty,
            }
        }
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            let mut q = self.0.lock();
            let Some(first) = q.pop_front() else {
                return Steal::Empty;
            };
            let n = (q.len() / 2).min(super::local_capacity() / 2);
            let mut d = dest.0.lock();
            for _ in 0..n {
                if let Some(t) = q.pop_front() {
                    d.push_back(t);
                }
            }
            Steal::Success(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().len()
        }
    }

    #[derive(Debug)]
    pub(crate) struct Local<T>(Arc<Mutex<VecDeque<T>>>);

    impl<T> Local<T> {
        pub(crate) fn new_fifo() -> Self {
            Self(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn push(&self, t: T) {
            self.0.lock().push_back(t);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().len()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
    }

    #[derive(Debug)]
    pub(crate) struct Stealer<T>(Arc<Mutex<VecDeque<T>>>);

    impl<T> Stealer<T> {
        /// Takes half of the victim's tasks (at least one), returning the first.
        pub(crate) fn steal_batch_and_pop(&self, dest: &Local<T>) -> Steal<T> {
            let mut q = match self.0.try_lock() {
                Some(q) => q,
                None => {
                    // The caller retries at once: let the holder run first, or loom would see
                    // a spin that never ends.
                    crate::loom::spin_hint();
                    return Steal::Retry;
                }
            };
            let Some(first) = q.pop_front() else {
                return Steal::Empty;
            };
            let n = q.len() / 2;
            let moved: Vec<T> = (0..n).filter_map(|_| q.pop_front()).collect();
            drop(q);
            let mut d = dest.0.lock();
            d.extend(moved);
            Steal::Success(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().len()
        }
    }
}
