//! The one place that names the synchronisation primitives.
//!
//! Every atomic, `UnsafeCell`, `Arc`, lock, condition variable and thread that pitcrew uses comes
//! from here. In a normal build they are the standard library's (locks from `parking_lot`); under
//! `--cfg loom` they are loom's, so that the loom models in `loom-tests/` explore every
//! interleaving of the real protocols rather than of a copy. `clippy.toml` forbids naming the
//! standard types anywhere else.
//!
//! Two things are deliberately *not* modelled:
//! - [`Counter`]: statistics and id generation. They never decide control flow, and modelling
//!   them would only multiply loom's state space.
//! - The work-stealing deques under loom are small mutex-backed stand-ins (see
//!   `scheduler::queue`), because `crossbeam_deque` is not loom-aware.

#![allow(dead_code, unused_imports, unreachable_pub)]
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

/// Wraps an atomic type so that the rest of the crate never names `std::sync::atomic` (which
/// `clippy.toml` forbids outside this file); every method comes through `Deref`.
macro_rules! atomic_newtype {
    ($name:ident, $inner:ty, $prim:ty) => {
        #[derive(Debug, Default)]
        #[repr(transparent)]
        pub(crate) struct $name($inner);

        impl $name {
            pub(crate) fn new(value: $prim) -> Self {
                Self(<$inner>::new(value))
            }
        }

        impl std::ops::Deref for $name {
            type Target = $inner;

            #[inline(always)]
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}
use atomic_newtype;

/// `thread_local!` with a `const` initialiser, which loom's version (per model thread, since
/// loom runs its threads as coroutines on one OS thread) gets as a plain initialiser.
macro_rules! facade_thread_local {
    (static $name:ident: $t:ty = const { $init:expr };) => {
        #[cfg(not(loom))]
        std::thread_local! { static $name: $t = const { $init }; }
        #[cfg(loom)]
        loom::thread_local! { static $name: $t = $init; }
    };
}
pub(crate) use facade_thread_local as thread_local;

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::fence;
    pub(crate) use std::sync::Arc;

    super::atomic_newtype!(AtomicBool, std::sync::atomic::AtomicBool, bool);
    super::atomic_newtype!(AtomicUsize, std::sync::atomic::AtomicUsize, usize);
    super::atomic_newtype!(AtomicU32, std::sync::atomic::AtomicU32, u32);
    super::atomic_newtype!(AtomicU64, std::sync::atomic::AtomicU64, u64);

    /// `std::cell::UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    #[repr(transparent)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        /// Runs `f` with a shared raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Runs `f` with an exclusive raw pointer to the contents.
        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// A mutex that does not poison: a panic never happens while one of ours is held.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(parking_lot::const_mutex(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }

        #[inline]
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock()
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Self(parking_lot::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Waits at most `timeout`; the flag is true when the wait timed out.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: std::time::Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let timed_out = self.0.wait_for(&mut guard, timeout).timed_out();
            (guard, timed_out)
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) mod thread {
        pub(crate) use std::thread::{current, yield_now, Builder, JoinHandle, Thread};
    }

    /// Spin-loop hint; under loom a yield so the model makes progress.
    #[inline(always)]
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::fence;
    pub(crate) use loom::sync::Arc;

    super::atomic_newtype!(AtomicBool, loom::sync::atomic::AtomicBool, bool);
    super::atomic_newtype!(AtomicUsize, loom::sync::atomic::AtomicUsize, usize);
    super::atomic_newtype!(AtomicU32, loom::sync::atomic::AtomicU32, u32);
    super::atomic_newtype!(AtomicU64, loom::sync::atomic::AtomicU64, u64);

    /// loom's mutex without poisoning, shaped like `parking_lot`'s.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }

        pub(crate) fn into_inner(self) -> T {
            self.0.into_inner().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// loom's condition variable.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
        }

        /// loom has no time: a timed wait is modelled as a spurious wake-up.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            _timeout: std::time::Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            drop(guard);
            unreachable!("timed waits are not used under loom")
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    pub(crate) mod thread {
        pub(crate) use loom::thread::{current, yield_now, Builder, JoinHandle, Thread, ThreadId};
    }

    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }
}

pub(crate) use imp::*;

/// A statistics counter or id source: a plain atomic that loom does not model (see the module
/// docs). Never use it to decide who owns what.
#[derive(Debug, Default)]
pub(crate) struct Counter(std::sync::atomic::AtomicU64);

impl Counter {
    pub(crate) const fn new(start: u64) -> Self {
        Self(std::sync::atomic::AtomicU64::new(start))
    }

    /// Adds `n`, returning the previous value.
    #[inline]
    pub(crate) fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed)
    }

    /// Subtracts `n`, returning the previous value.
    #[inline]
    pub(crate) fn sub(&self, n: u64) -> u64 {
        self.0.fetch_sub(n, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds `n` with a plain load and store: only for counters written by one thread.
    #[inline]
    pub(crate) fn add_local(&self, n: u64) {
        let v = self.0.load(std::sync::atomic::Ordering::Relaxed);
        self.0
            .store(v.wrapping_add(n), std::sync::atomic::Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Atomic orderings are not primitives that loom replaces; re-exported for one import path.
pub(crate) use std::sync::atomic::Ordering;

/// `std::sync::Arc` for user-visible payloads (task names, the public handles' data) that no
/// protocol of ours synchronises through. Kept apart from [`Arc`] so that loom builds keep
/// the public types' shapes.
pub(crate) use std::sync::{Arc as DataArc, Weak as DataWeak};
