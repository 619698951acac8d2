//! I/O readiness: [`Async<T>`] wraps any file descriptor so tasks can wait for it.
//!
//! Sockets with a friendlier API are in [`net`](crate::net); `Async` is the building block for
//! everything else (pipes, terminals, raw sockets).

// Design notes
// ============
//
// One poller per runtime (epoll on Linux, `polling` elsewhere), sources registered
// edge-triggered, so no re-arm syscall follows an event. Every source has a readiness word and
// a reader and a writer waker (`scheduled_io.rs`); the table of registrations hands out
// generation-checked keys (`reactor.rs`).
//
// Who waits in the poller: an idle worker. When a worker runs out of work it tries to take the
// driver; the one that gets it blocks in `epoll_wait` instead of on its condition variable, and
// the others park as usual (at most one worker is in the poller). Tasks that the events wake
// are queued on that worker, which runs them itself: a readiness event costs no hop between
// threads. Unparking that worker writes the poller's eventfd instead of signalling a condvar.
// While every worker is busy, each polls the reactor without blocking every `EVENT_INTERVAL`
// ticks (when any source is registered), so I/O is not starved by CPU work.

mod async_fd;
pub(crate) mod reactor;
pub(crate) mod scheduled_io;
pub(crate) mod sys;

pub use async_fd::Async;
