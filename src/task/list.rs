//! The owned-task list: every live task of a runtime, so that shutdown can reach tasks that sit
//! in no queue (waiting on a timer, a socket or a channel) and `metrics`/`dump` can count them.
//!
//! The list is sharded by task id; each shard is a slab under a mutex. A task's slot index lives
//! in its header and is only touched under the shard's lock. The list holds one reference to
//! each task; `remove` and `drain_shard` hand that reference to the caller.
//!
//! Closing the list happens under every shard's lock, so a concurrent `bind` either lands before
//! the close (and shutdown will find it) or sees the list closed and fails.

use crossbeam_utils::CachePadded;

use crate::loom::{AtomicBool, Mutex, Ordering};
use crate::task::raw::{Header, RawTask};

pub(crate) struct OwnedTasks {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    mask: usize,
    closed: AtomicBool,
}

struct Shard {
    entries: Vec<Entry>,
    /// Head of the vacant-slot chain; `usize::MAX` when there is none.
    next_free: usize,
    len: usize,
    closed: bool,
}

enum Entry {
    Occupied(RawTask),
    Vacant(usize),
}

impl OwnedTasks {
    pub(crate) fn new(workers: usize) -> OwnedTasks {
        // One shard under loom: the shard is picked by task id, which comes from a process-wide
        // counter, and a model must take the same path in every iteration.
        let n = if cfg!(loom) {
            1
        } else {
            (workers * 4).next_power_of_two().clamp(4, 64)
        };
        let shards = (0..n)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard {
                    entries: Vec::new(),
                    next_free: usize::MAX,
                    len: 0,
                    closed: false,
                }))
            })
            .collect();
        OwnedTasks {
            shards,
            mask: n - 1,
            closed: AtomicBool::new(false),
        }
    }

    fn shard_of(&self, header: &Header) -> &Mutex<Shard> {
        &self.shards[header.id.as_u64() as usize & self.mask]
    }

    /// Adds a task, taking over its list reference. Fails when the list is closed; the caller
    /// then still holds that reference.
    pub(crate) fn bind(&self, task: RawTask) -> Result<(), ()> {
        let mut shard = self.shard_of(task.header()).lock();
        if shard.closed {
            return Err(());
        }
        let index = if shard.next_free != usize::MAX {
            let index = shard.next_free;
            shard.next_free = match shard.entries[index] {
                Entry::Vacant(next) => next,
                Entry::Occupied(_) => unreachable!("owned-task free list points at a live task"),
            };
            shard.entries[index] = Entry::Occupied(task);
            index
        } else {
            shard.entries.push(Entry::Occupied(task));
            shard.entries.len() - 1
        };
        shard.len += 1;
        // SAFETY: the slot index is only accessed under this shard's lock, which we hold.
        task.header()
            .owned_index
            .with_mut(|p| unsafe { *p = index });
        Ok(())
    }

    /// Removes a completed task. True when it was in the list: the list's reference is then the
    /// caller's to drop. False when shutdown already took it out.
    pub(crate) fn remove(&self, header: &Header) -> bool {
        let mut shard = self.shard_of(header).lock();
        // SAFETY: the slot index is only accessed under this shard's lock, which we hold.
        let index = header.owned_index.with(|p| unsafe { *p });
        match shard.entries.get(index) {
            Some(Entry::Occupied(t)) if std::ptr::eq(t.header(), header) => {
                let free = shard.next_free;
                shard.entries[index] = Entry::Vacant(free);
                shard.next_free = index;
                shard.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// Refuses new tasks from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            shard.lock().closed = true;
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Takes every task out of one shard; the caller owns their list references.
    pub(crate) fn drain_shard(&self, index: usize) -> Vec<RawTask> {
        let mut shard = self.shards[index].lock();
        let entries = std::mem::take(&mut shard.entries);
        shard.next_free = usize::MAX;
        shard.len = 0;
        drop(shard);
        entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Occupied(t) => Some(t),
                Entry::Vacant(_) => None,
            })
            .collect()
    }

    /// Calls `f` on every live task, one shard locked at a time (never the whole list).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for entry in &shard.entries {
                if let Entry::Occupied(t) = entry {
                    f(t.header());
                }
            }
        }
    }

    /// Live tasks.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }
}

impl std::fmt::Debug for OwnedTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedTasks")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
