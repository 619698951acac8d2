//! Recycling timer entries, so that a registration costs no `malloc` and a cancellation no
//! `free` on the hot path.
//!
//! Most entries die on the timer thread (cancelled ones are freed there), while they are born on
//! workers. Freeing memory on one thread that another keeps allocating makes both go through the
//! allocator's shared arena (a lock, and every chunk's cache lines crossing cores twice). So:
//! - the timer thread returns the entries it retires to its timer's [`EntryPool`], a take-all
//!   stack with one producer (the timer thread) and many takers, holding at most [`POOL_MAX`];
//! - each thread keeps a small cache of free entries; a registration pops from it, and when it
//!   is empty takes the whole pool of the timer it registers with;
//! - an entry a handle frees itself (fired, then dropped) goes to its thread's cache.
//!
//! Entries hold no reference to any timer, so an entry from one runtime's pool may serve another
//! runtime's timer. The caches are bounded ([`LOCAL_MAX`]) and freed when their thread exits;
//! the pool is freed with its timer. Under loom there is no recycling: every entry is allocated
//! and freed, so that loom sees each one's life.

use std::cell::Cell;
use std::ptr;

use crate::loom::{AtomicUsize, Ordering};
use crate::time::entry::Entry;

/// Entries a timer's pool holds at most (64 bytes each).
pub(crate) const POOL_MAX: usize = 4_096;

/// Entries a thread's cache holds at most, beyond one pool it took.
const LOCAL_MAX: usize = 256;

/// Free entries retired by a timer thread, waiting to be reused.
pub(crate) struct EntryPool {
    head: AtomicUsize,
}

impl EntryPool {
    pub(crate) fn new() -> EntryPool {
        EntryPool {
            head: AtomicUsize::new(0),
        }
    }

    /// Adds a chain of `len` free entries, `first` to `last` linked through `queue_next`, keeping
    /// the pool at [`POOL_MAX`] at most (what does not fit is freed). `pooled` is the timer
    /// thread's count of what it added since it last found the pool empty; returns the new
    /// count. Timer thread only.
    ///
    /// # Safety
    ///
    /// The entries are free: no waker, nobody refers to them.
    pub(crate) unsafe fn put_chain(
        &self,
        first: *mut Entry,
        mut last: *mut Entry,
        mut len: usize,
        pooled: usize,
    ) -> usize {
        let mut head = self.head.load(Ordering::Relaxed);
        let pooled = if head == 0 { 0 } else { pooled };
        let room = POOL_MAX.saturating_sub(pooled);
        if len > room {
            // Free exactly the entries of the chain past `room`: the chain's last link may
            // still point into the registration stack it came from (at live entries), so it
            // is never followed to its end.
            if room == 0 {
                free_n(first, len);
                return pooled;
            }
            last = first;
            for _ in 1..room {
                // SAFETY: a chain of free entries we own.
                last = unsafe { Entry::queue_next(last) };
            }
            // SAFETY: as above.
            free_n(unsafe { Entry::queue_next(last) }, len - room);
            len = room;
        }
        let mut pooled = pooled;
        loop {
            // SAFETY: the chain is ours until the exchange below publishes it.
            unsafe { (*last).set_queue_next(head as *mut Entry) };
            match self.head.compare_exchange_weak(
                head,
                first as usize,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return pooled + len,
                Err(actual) => {
                    head = actual;
                    if head == 0 {
                        pooled = 0;
                    }
                }
            }
        }
    }

    /// Takes every entry in the pool (linked through `queue_next`).
    fn take_all(&self) -> *mut Entry {
        if self.head.load(Ordering::Relaxed) == 0 {
            return ptr::null_mut();
        }
        self.head.swap(0, Ordering::Acquire) as *mut Entry
    }
}

impl Drop for EntryPool {
    fn drop(&mut self) {
        free_list(self.take_all());
    }
}

impl std::fmt::Debug for EntryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryPool")
            .field("empty", &(self.head.load(Ordering::Relaxed) == 0))
            .finish()
    }
}

/// Frees the first `n` entries of a chain linked through `queue_next`.
fn free_n(mut entry: *mut Entry, n: usize) {
    for _ in 0..n {
        // SAFETY: the first `n` entries of the chain are free entries we own.
        unsafe {
            let next = Entry::queue_next(entry);
            Entry::dealloc(entry);
            entry = next;
        }
    }
}

/// Frees a null-terminated list of free entries linked through `queue_next`.
fn free_list(mut entry: *mut Entry) {
    while !entry.is_null() {
        // SAFETY: a free entry of a list we own.
        unsafe {
            let next = Entry::queue_next(entry);
            Entry::dealloc(entry);
            entry = next;
        }
    }
}

/// This thread's free entries.
struct LocalCache {
    head: Cell<*mut Entry>,
    len: Cell<usize>,
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        free_list(self.head.replace(ptr::null_mut()));
    }
}

std::thread_local! {
    static LOCAL: LocalCache = const {
        LocalCache {
            head: Cell::new(ptr::null_mut()),
            len: Cell::new(0),
        }
    };
}

/// A free entry from this thread's cache, refilled from `pool` when empty; `None` when both
/// are empty (allocate one).
pub(crate) fn take(pool: &EntryPool) -> Option<*mut Entry> {
    LOCAL
        .try_with(|cache| {
            let mut head = cache.head.get();
            if head.is_null() {
                head = pool.take_all();
                if head.is_null() {
                    return None;
                }
                // The count only bounds what `give` adds; a refill counts as empty.
                cache.len.set(0);
            }
            // SAFETY: a free entry of our cache, linked through `queue_next`.
            cache.head.set(unsafe { Entry::queue_next(head) });
            cache.len.set(cache.len.get().saturating_sub(1));
            Some(head)
        })
        .ok()
        .flatten()
}

/// Keeps a free entry in this thread's cache, or frees it when the cache is full (or the thread
/// is exiting).
///
/// # Safety
///
/// The entry is free: no waker, nobody refers to it.
pub(crate) unsafe fn give(entry: *mut Entry) {
    let kept = LOCAL.try_with(|cache| {
        if cache.len.get() >= LOCAL_MAX {
            return false;
        }
        // SAFETY: the entry is ours (the caller's contract).
        unsafe { (*entry).set_queue_next(cache.head.get()) };
        cache.head.set(entry);
        cache.len.set(cache.len.get() + 1);
        true
    });
    if kept != Ok(true) {
        // SAFETY: ours, and not kept.
        unsafe { Entry::dealloc(entry) };
    }
}
