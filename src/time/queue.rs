//! The lock-free hand-off from timer handles to the timer thread: a take-all stack of entries.
//!
//! Registrations and cancellations travel on the same stack (the timer thread tells them apart
//! by the entry's state: a cancellation is pushed only for an entry linked in the wheel, a
//! registration only for one that is not). Any thread pushes with one compare-exchange on the
//! head word; the timer thread takes the whole stack with one swap and walks it. Taking
//! everything at once means the consumer never pops a single node while pushers race with it,
//! so there is no ABA problem and no need for hazard pointers: a node's `queue_next` is written
//! only by the thread that pushes it, before the compare-exchange that publishes it, and read
//! only by the timer thread, after the swap that took it.
//!
//! The head word carries three tag bits besides the pointer (entries are 8-aligned):
//! - [`SLEEPING`]: the timer thread is asleep, or about to be, until the tick it published in
//!   `sleeping_until`. Pushes keep the bit. The thread sets it with a compare-exchange that
//!   succeeds only on an empty stack, so a message pushed before that is seen by the thread,
//!   and one pushed after it sees the bit and can decide to wake the thread. Whoever clears it
//!   (the thread taking the stack, or a pusher that wakes it) owns the wake-up.
//! - [`NO_REGISTRATIONS`]: the timer thread is shutting down; registrations fail (the pusher
//!   keeps its entry), cancellations are still taken.
//! - [`CLOSED`]: the timer thread has shut down; every push fails.

use crate::loom::{AtomicUsize, Ordering};
use crate::time::entry::Entry;

/// Tag: the timer thread sleeps (see the module docs).
const SLEEPING: usize = 0b001;
/// Tag: shutting down; no registrations.
const NO_REGISTRATIONS: usize = 0b010;
/// Tag: shut down; nothing can be pushed any more.
const CLOSED: usize = 0b100;
const TAGS: usize = SLEEPING | NO_REGISTRATIONS | CLOSED;

const _: () = assert!(std::mem::align_of::<Entry>() > TAGS);

/// A push found the stack closed to it: the timer thread is shutting down.
#[derive(Debug)]
pub(crate) struct Closed;

/// What a successful push saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// The timer thread sleeps (until the tick it published); the pusher may have to wake it.
    pub(crate) sleeping: bool,
    /// Nothing was waiting before this message.
    pub(crate) was_empty: bool,
}

/// Which message a push carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Register,
    Cancel,
}

/// A multi-producer, single-consumer take-all stack of timer entries.
pub(crate) struct EntryStack {
    head: AtomicUsize,
}

impl EntryStack {
    pub(crate) fn new() -> EntryStack {
        EntryStack {
            head: AtomicUsize::new(0),
        }
    }

    /// Pushes `entry`.
    ///
    /// # Safety
    ///
    /// `entry` is live and the caller owns its `queue_next` field: it is in no stack, and the
    /// timer thread has finished reading its `queue_next` from any earlier push.
    pub(crate) unsafe fn push(
        &self,
        entry: *mut Entry,
        message: Message,
    ) -> Result<Pushed, Closed> {
        let refused = match message {
            Message::Register => NO_REGISTRATIONS | CLOSED,
            Message::Cancel => CLOSED,
        };
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            if head & refused != 0 {
                return Err(Closed);
            }
            let next = (head & !TAGS) as *mut Entry;
            // SAFETY: per this function's contract the field is ours until the exchange below
            // publishes the entry; the Release half of the exchange orders this write before it.
            unsafe { (*entry).set_queue_next(next) };
            let new = entry as usize | (head & TAGS);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Pushed {
                        sleeping: head & SLEEPING != 0,
                        was_empty: next.is_null(),
                    })
                }
                Err(actual) => head = actual,
            }
        }
    }

    /// Takes every entry pushed so far (newest first, linked through `queue_next`) and clears
    /// [`SLEEPING`]. Timer thread only.
    pub(crate) fn take_all(&self) -> *mut Entry {
        let head = self
            .head
            .fetch_and(NO_REGISTRATIONS | CLOSED, Ordering::Acquire);
        (head & !TAGS) as *mut Entry
    }

    /// Refuses registrations from now on and takes what the stack held. Timer thread only.
    pub(crate) fn refuse_registrations(&self) -> *mut Entry {
        let head = self.head.swap(NO_REGISTRATIONS, Ordering::AcqRel);
        (head & !TAGS) as *mut Entry
    }

    /// Closes the stack and takes what it held. Timer thread only.
    pub(crate) fn close(&self) -> *mut Entry {
        // AcqRel: the Acquire half takes the entries; the Release half orders everything the
        // timer thread did before (its last looks at entries) before any push that fails.
        let head = self.head.swap(NO_REGISTRATIONS | CLOSED, Ordering::AcqRel);
        (head & !TAGS) as *mut Entry
    }

    /// Marks the timer thread asleep if the stack is empty; false when something arrived
    /// (the thread must take it before sleeping). Timer thread only.
    pub(crate) fn try_sleep(&self) -> bool {
        // Release: publishes what the thread stored before (`sleeping_until`, its clock).
        self.head
            .compare_exchange(0, SLEEPING, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Clears [`SLEEPING`]; true when this call cleared it, so the caller owns the wake-up.
    pub(crate) fn clear_sleeping(&self) -> bool {
        self.head.fetch_and(!SLEEPING, Ordering::AcqRel) & SLEEPING != 0
    }

    /// Takes what is left without the timer thread (the stack's owner is being dropped).
    pub(crate) fn take_remaining(&mut self) -> *mut Entry {
        let head = self.head.swap(NO_REGISTRATIONS | CLOSED, Ordering::Acquire);
        (head & !TAGS) as *mut Entry
    }
}

impl std::fmt::Debug for EntryStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = self.head.load(Ordering::Relaxed);
        f.debug_struct("EntryStack")
            .field("empty", &(head & !TAGS == 0))
            .field("sleeping", &(head & SLEEPING != 0))
            .field("no_registrations", &(head & NO_REGISTRATIONS != 0))
            .field("closed", &(head & CLOSED != 0))
            .finish()
    }
}
