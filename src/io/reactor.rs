//! The reactor: one poller per runtime, the registration table, and the turn that turns OS
//! events into task wake-ups.
//!
//! Keys are generation-checked: a key is a slot index plus the slot's generation, and a slot's
//! generation changes when its source is deregistered, so an event that was already in flight
//! for a closed (and possibly reused) descriptor is ignored.
//!
//! Only one thread turns the reactor at a time (`try_lock_driver`); the others park on their
//! condition variables (see `scheduler/park.rs`).

use std::io;
use std::os::fd::RawFd;
use std::task::Waker;
use std::time::Duration;

use crate::io::scheduled_io::ScheduledIo;
use crate::io::sys::{Events, Poller, Readiness};
use crate::loom::{Arc, AtomicUsize, Mutex, MutexGuard, Ordering};

const INDEX_BITS: u32 = 32;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

pub(crate) struct Reactor {
    poller: Poller,
    table: Mutex<Table>,
    /// The right to wait on the poller, with its event buffer.
    driver: Mutex<Driver>,
    /// Registered sources; when zero, busy workers skip polling for events.
    sources: AtomicUsize,
}

struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

struct Slot {
    generation: u32,
    io: Option<Arc<ScheduledIo>>,
}

/// An event buffer and the wakers collected from it: whoever turns the reactor needs one.
pub(crate) struct Driver {
    events: Events,
    wake: Vec<Waker>,
}

impl Table {
    /// Applies one event to its source; an event whose key's generation is stale (the source
    /// was deregistered, and its slot maybe reused, since) is ignored.
    fn dispatch(&self, key: u64, readiness: Readiness, wake: &mut Vec<Waker>) {
        let index = (key & INDEX_MASK) as usize;
        let generation = (key >> INDEX_BITS) as u32;
        if let Some(Slot {
            generation: g,
            io: Some(io),
        }) = self.slots.get(index)
        {
            if *g == generation {
                io.set_readiness(readiness, wake);
            }
        }
    }
}

impl Driver {
    pub(crate) fn new() -> Driver {
        Driver {
            events: Events::with_capacity(256),
            wake: Vec::with_capacity(64),
        }
    }
}

/// A registered source. Its owner calls [`Reactor::deregister`] before closing the fd.
pub(crate) struct Registration {
    pub(crate) io: Arc<ScheduledIo>,
    pub(crate) key: u64,
    fd: RawFd,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            table: Mutex::new(Table {
                slots: Vec::new(),
                free: Vec::new(),
            }),
            driver: Mutex::new(Driver::new()),
            sources: AtomicUsize::new(0),
        })
    }

    /// Registers `fd` (already non-blocking) for edge-triggered reads and writes.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<Registration> {
        let io = Arc::new(ScheduledIo::new());
        let key = {
            let mut table = self.table.lock();
            let index = match table.free.pop() {
                Some(i) => i,
                None => {
                    let i = u32::try_from(table.slots.len()).map_err(|_| {
                        io::Error::new(io::ErrorKind::OutOfMemory, "too many I/O registrations")
                    })?;
                    table.slots.push(Slot {
                        generation: 0,
                        io: None,
                    });
                    i
                }
            };
            let slot = &mut table.slots[index as usize];
            slot.io = Some(io.clone());
            (u64::from(slot.generation) << INDEX_BITS) | u64::from(index)
        };
        if let Err(e) = self.poller.add(fd, key) {
            self.release_slot(key);
            return Err(e);
        }
        self.sources.fetch_add(1, Ordering::Relaxed);
        Ok(Registration { io, key, fd })
    }

    fn release_slot(&self, key: u64) {
        let mut table = self.table.lock();
        let index = (key & INDEX_MASK) as u32;
        let slot = &mut table.slots[index as usize];
        slot.io = None;
        slot.generation = slot.generation.wrapping_add(1);
        table.free.push(index);
    }

    /// Removes a source from the poller and the table. Its fd must still be open.
    pub(crate) fn deregister(&self, reg: &Registration) {
        // An error here means the fd is already gone from the poller; nothing left to undo.
        let _ = self.poller.delete(reg.fd);
        self.release_slot(reg.key);
        self.sources.fetch_sub(1, Ordering::Relaxed);
        let mut wake = Vec::new();
        reg.io.wake_all(&mut wake);
        wake.into_iter().for_each(Waker::wake);
    }

    /// Sources registered now (a gauge, for `Metrics::io_registrations`).
    pub(crate) fn sources(&self) -> usize {
        self.sources.load(Ordering::Relaxed)
    }

    pub(crate) fn has_sources(&self) -> bool {
        self.sources.load(Ordering::Relaxed) > 0
    }

    /// The right to *block* in the poller, if nobody else holds it. Polls that do not block
    /// ([`Reactor::poll_now`]) need no lock on Linux: epoll hands each edge to one caller, so
    /// they may run beside the blocked one with a buffer of their own.
    pub(crate) fn try_lock_driver(&self) -> Option<MutexGuard<'_, Driver>> {
        self.driver.try_lock()
    }

    /// A busy worker's look at I/O: takes the events that are ready now, without blocking, into
    /// the caller's own buffer, and wakes their tasks. Returns how many tasks were woken.
    ///
    /// The notification that `notify` sends is an edge like any other, and epoll hands it to
    /// whichever wait comes first. When that is this non-blocking poll, the worker it was meant
    /// for (the driver's holder, on its way into `epoll_wait` or in it) would sleep through its
    /// unpark: so a notification taken here is sent again while someone holds the driver. Once
    /// the holder has left its wait, it no longer needs it: a parked worker looks at the idle
    /// list, not at the notification, to learn that it was woken (see `scheduler/worker.rs`).
    pub(crate) fn poll_now(&self, driver: &mut Driver) -> usize {
        #[cfg(all(not(target_os = "linux"), not(loom)))]
        // `polling` clears the notification on every wait and does not say whether there was
        // one: take the driver, so that no wait of ours can run beside a blocking one.
        let Some(_driver) = self.driver.try_lock() else {
            return 0;
        };
        let woken = self.turn(driver, Some(Duration::ZERO));
        #[cfg(any(target_os = "linux", loom))]
        if driver.events.took_notification() && self.holds_driver_elsewhere() {
            #[cfg(all(loom, loom_mutants))]
            if crate::loom_api::mutants::active(
                crate::loom_api::mutants::Mutant::SwallowedPollerNotify,
            ) {
                // Mutant: the notification taken by a non-blocking poll is dropped.
                return woken;
            }
            self.notify();
        }
        woken
    }

    /// Whether another thread holds the driver (it blocks in the poller, or is about to, or
    /// has just left it).
    #[cfg(any(target_os = "linux", loom))]
    fn holds_driver_elsewhere(&self) -> bool {
        self.driver.try_lock().is_none()
    }

    /// Waits for events (at most `timeout`; `None`: until one arrives or `notify`), and wakes
    /// the tasks waiting on them. Returns how many tasks were woken.
    pub(crate) fn turn(&self, driver: &mut Driver, timeout: Option<Duration>) -> usize {
        if let Err(e) = self.poller.wait(&mut driver.events, timeout) {
            tracing::error!(error = %e, "pitcrew: waiting for I/O events failed");
            return 0;
        }
        let Driver { events, wake } = driver;
        {
            let table = self.table.lock();
            for (key, readiness) in events.iter() {
                table.dispatch(key, readiness, wake);
            }
        }
        let woken = wake.len();
        // Wakers may run user code: call them with no lock of ours held (the driver lock is
        // held by our caller, and a waker never takes it), and contain a panic in one, which
        // would otherwise unwind through the worker or the poller thread.
        for waker in wake.drain(..) {
            crate::task::wake_contained(waker, "I/O");
        }
        woken
    }

    /// Delivers one event as `turn` would (for the loom models, which have no real events).
    #[cfg(loom)]
    pub(crate) fn inject_event(&self, key: u64, readiness: Readiness) {
        let mut wake = Vec::new();
        self.table.lock().dispatch(key, readiness, &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }

    /// The loom poller reports a readable event for every registered source (delivered by the
    /// next turn, as the OS would).
    #[cfg(loom)]
    pub(crate) fn post_readable_to_all(&self) {
        let keys: Vec<u64> = {
            let table = self.table.lock();
            table
                .slots
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.io.is_some())
                .map(|(i, slot)| (u64::from(slot.generation) << INDEX_BITS) | i as u64)
                .collect()
        };
        for key in keys {
            self.poller.post(
                key,
                Readiness {
                    readable: true,
                    ..Default::default()
                },
            );
        }
    }

    /// The loom poller's counters: distinct threads that waited in it, and blocking waits a
    /// notification ended.
    #[cfg(loom)]
    pub(crate) fn poller_stats(&self) -> (usize, usize) {
        self.poller.stats()
    }

    /// Interrupts the thread waiting in `turn`, or makes its next wait return at once.
    pub(crate) fn notify(&self) {
        if let Err(e) = self.poller.notify() {
            tracing::error!(error = %e, "pitcrew: could not wake the I/O driver");
        }
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("sources", &self.sources.load(Ordering::Relaxed))
            .finish()
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("io", &self.io)
            .finish()
    }
}
