//! The OS poller: epoll on Linux, the `polling` crate elsewhere.
//!
//! On Linux we talk to epoll directly. `polling` 3.x re-arms a timerfd and issues an extra
//! `epoll_ctl` on every `wait` (two more syscalls per wait), which on the hot path of a
//! single-connection echo costs more than the loopback round trip itself. The interface is the
//! same either way: sources are registered edge-triggered under a `u64` key, `wait` fills an
//! event buffer, `notify` interrupts a wait from another thread.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Readiness reported for one source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) read_closed: bool,
    pub(crate) error: bool,
}

#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) use epoll::{Events, Poller};

#[cfg(all(not(target_os = "linux"), not(loom)))]
pub(crate) use portable::{Events, Poller};

#[cfg(loom)]
pub(crate) use model::{Events, Poller};

#[cfg(all(target_os = "linux", not(loom)))]
mod epoll {
    use super::*;

    /// The key of the notification eventfd; never a registration's key.
    const NOTIFY_KEY: u64 = u64::MAX;

    pub(crate) struct Poller {
        epfd: RawFd,
        eventfd: RawFd,
    }

    /// The event buffer of one `wait`.
    pub(crate) struct Events {
        list: Vec<libc::epoll_event>,
        len: usize,
    }

    impl Events {
        pub(crate) fn with_capacity(n: usize) -> Events {
            Events {
                list: vec![libc::epoll_event { events: 0, u64: 0 }; n],
                len: 0,
            }
        }

        /// Whether the last wait took a notification (see `Reactor::poll_now`).
        pub(crate) fn took_notification(&self) -> bool {
            self.list[..self.len].iter().any(|e| {
                let key = e.u64;
                key == NOTIFY_KEY
            })
        }

        /// The events of the last wait, without the notification event.
        pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
            self.list[..self.len].iter().filter_map(|e| {
                let key = e.u64;
                if key == NOTIFY_KEY {
                    return None;
                }
                let flags = e.events as libc::c_int;
                Some((
                    key,
                    Readiness {
                        readable: flags & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                        writable: flags & libc::EPOLLOUT != 0,
                        read_closed: flags & (libc::EPOLLHUP | libc::EPOLLRDHUP) != 0,
                        error: flags & libc::EPOLLERR != 0,
                    },
                ))
            })
        }
    }

    fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            // SAFETY: plain syscalls with constant arguments; the fds are owned by the result.
            let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
            // SAFETY: as above.
            let eventfd =
                match cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) }) {
                    Ok(fd) => fd,
                    Err(e) => {
                        // SAFETY: `epfd` was just opened by us and is closed once.
                        unsafe { libc::close(epfd) };
                        return Err(e);
                    }
                };
            let poller = Poller { epfd, eventfd };
            poller.ctl(
                libc::EPOLL_CTL_ADD,
                eventfd,
                libc::EPOLLIN | libc::EPOLLET,
                NOTIFY_KEY,
            )?;
            Ok(poller)
        }

        fn ctl(&self, op: libc::c_int, fd: RawFd, flags: libc::c_int, key: u64) -> io::Result<()> {
            let mut ev = libc::epoll_event {
                events: flags as u32,
                u64: key,
            };
            // SAFETY: `ev` is a valid epoll_event for the duration of the call.
            cvt(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) })?;
            Ok(())
        }

        /// Registers `fd`, edge-triggered, for reads and writes.
        pub(crate) fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
            let flags = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
            self.ctl(libc::EPOLL_CTL_ADD, fd, flags, key)
        }

        pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
        }

        /// Waits for events; `None` waits until an event or a notification.
        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            let ms = match timeout {
                None => -1,
                // Round up so a short positive timeout does not become a busy poll.
                Some(t) => t
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(libc::c_int::MAX as u128) as libc::c_int,
            };
            // SAFETY: the buffer is valid for `list.len()` events.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd,
                    events.list.as_mut_ptr(),
                    events.list.len() as libc::c_int,
                    ms,
                )
            };
            if n < 0 {
                events.len = 0;
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    return Ok(());
                }
                return Err(err);
            }
            events.len = n as usize;
            Ok(())
        }

        /// Interrupts the current or next `wait`.
        pub(crate) fn notify(&self) -> io::Result<()> {
            let one: u64 = 1;
            loop {
                // SAFETY: writes 8 bytes from a live u64 to our eventfd.
                let r = unsafe { libc::write(self.eventfd, (&one as *const u64).cast(), 8) };
                if r >= 0 {
                    return Ok(());
                }
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        // The counter is full: drain it (the edge is already pending).
                        let mut buf = 0u64;
                        // SAFETY: reads 8 bytes into a live u64 from our eventfd.
                        unsafe { libc::read(self.eventfd, (&mut buf as *mut u64).cast(), 8) };
                    }
                    _ => return Err(err),
                }
            }
        }
    }

    impl Drop for Poller {
        fn drop(&mut self) {
            // SAFETY: both fds were opened by `new` and are closed exactly once, here.
            unsafe {
                libc::close(self.eventfd);
                libc::close(self.epfd);
            }
        }
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
mod portable {
    use super::*;
    use std::os::fd::BorrowedFd;

    pub(crate) struct Poller(polling::Poller);

    pub(crate) struct Events(polling::Events);

    impl Events {
        pub(crate) fn with_capacity(n: usize) -> Events {
            Events(polling::Events::with_capacity(
                std::num::NonZeroUsize::new(n.max(1)).expect("non-zero"),
            ))
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
            self.0.iter().map(|e| {
                (
                    e.key as u64,
                    Readiness {
                        readable: e.readable,
                        writable: e.writable,
                        read_closed: false,
                        error: false,
                    },
                )
            })
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            polling::Poller::new().map(Poller)
        }

        pub(crate) fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
            let mode = if self.0.supports_edge() {
                polling::PollMode::Edge
            } else {
                polling::PollMode::Level
            };
            // SAFETY: the source is deleted (by `Registration`'s drop) before its fd closes.
            unsafe {
                self.0
                    .add_with_mode(fd, polling::Event::all(key as usize), mode)
            }
        }

        pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
            // SAFETY: the fd is open: it is closed only after deregistration.
            self.0.delete(unsafe { BorrowedFd::borrow_raw(fd) })
        }

        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            events.0.clear();
            self.0.wait(&mut events.0, timeout).map(|_| ())
        }

        pub(crate) fn notify(&self) -> io::Result<()> {
            self.0.notify()
        }
    }
}

/// The poller under loom, which cannot see a thread blocked in `epoll_wait`: no OS poller, and
/// a wait blocks on a loom condition variable until [`Poller::notify`] or an event the model
/// reports ([`Poller::post`], through `loom_api`). As with the eventfd, one notification ends
/// one wait (the current one, or the next).
#[cfg(loom)]
mod model {
    use super::*;
    use crate::loom::{thread, Condvar, Mutex};

    pub(crate) struct Poller {
        state: Mutex<State>,
        cvar: Condvar,
    }

    #[derive(Default)]
    struct State {
        notified: bool,
        pending: Vec<(u64, Readiness)>,
        /// Threads that have blocked in a wait, in order of first wait (for the models' checks).
        waiters: Vec<thread::ThreadId>,
        /// Blocking waits that a notification ended (events may have arrived too).
        notify_wakeups: usize,
    }

    pub(crate) struct Events {
        list: Vec<(u64, Readiness)>,
        took_notification: bool,
    }

    impl Events {
        pub(crate) fn with_capacity(n: usize) -> Events {
            Events {
                list: Vec::with_capacity(n.min(4)),
                took_notification: false,
            }
        }

        /// Whether the last wait took a notification (see `Reactor::poll_now`).
        pub(crate) fn took_notification(&self) -> bool {
            self.took_notification
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
            self.list.iter().copied()
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            Ok(Poller {
                state: Mutex::new(State::default()),
                cvar: Condvar::new(),
            })
        }

        pub(crate) fn add(&self, _fd: RawFd, _key: u64) -> io::Result<()> {
            Ok(())
        }

        pub(crate) fn delete(&self, _fd: RawFd) -> io::Result<()> {
            Ok(())
        }

        /// `None` blocks until a notification or an event; a timeout (loom has no clock)
        /// returns at once with what is there.
        pub(crate) fn wait(
            &self,
            events: &mut Events,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            let mut state = self.state.lock();
            if timeout.is_none() {
                let me = thread::current().id();
                if !state.waiters.contains(&me) {
                    state.waiters.push(me);
                }
                let mut blocked = false;
                while !state.notified && state.pending.is_empty() {
                    blocked = true;
                    state = self.cvar.wait(state);
                }
                if blocked && state.notified {
                    state.notify_wakeups += 1;
                }
            }
            events.took_notification = std::mem::take(&mut state.notified);
            events.list.clear();
            events.list.append(&mut state.pending);
            Ok(())
        }

        pub(crate) fn notify(&self) -> io::Result<()> {
            self.state.lock().notified = true;
            self.cvar.notify_all();
            Ok(())
        }

        /// The OS reports `readiness` for `key`: the current or next wait returns it.
        pub(crate) fn post(&self, key: u64, readiness: Readiness) {
            self.state.lock().pending.push((key, readiness));
            self.cvar.notify_all();
        }

        /// Distinct threads that have waited in the poller, and blocking waits that a
        /// notification ended.
        pub(crate) fn stats(&self) -> (usize, usize) {
            let state = self.state.lock();
            (state.waiters.len(), state.notify_wakeups)
        }
    }
}
