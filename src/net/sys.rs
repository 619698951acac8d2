//! What the socket types share: address resolution, non-blocking connect, reads into
//! uninitialised memory, and the back-off after an `accept` that ran out of descriptors.

use std::future::Future;
use std::io;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::io::Async;
use crate::loom::{AtomicU32, Ordering};

/// Resolves `addr` and runs `f` on each address in turn until one succeeds, like std's
/// `TcpStream::connect`: the error of the last address is returned when all fail.
pub(crate) async fn each_addr<A, F, Fut, T>(addr: A, mut f: F) -> io::Result<T>
where
    A: ToSocketAddrs,
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    let mut last_err = None;
    for addr in addr.to_socket_addrs()? {
        match f(addr).await {
            Ok(value) => return Ok(value),
            Err(err) => last_err = Some(err),
        }
    }
    Err(last_err.unwrap_or_else(no_addresses))
}

/// The first address `addr` resolves to (what std's `UdpSocket::send_to` uses).
pub(crate) fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(no_addresses)
}

fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}

/// A new non-blocking, close-on-exec stream socket whose connect to `addr` has been started.
pub(crate) fn start_connect(
    addr: &SockAddr,
    domain: Domain,
    protocol: Option<Protocol>,
) -> io::Result<Socket> {
    // One syscall fewer where the socket can be born non-blocking.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), protocol)?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let socket = {
        let socket = Socket::new(domain, Type::STREAM, protocol)?;
        socket.set_nonblocking(true)?;
        socket
    };
    match socket.connect(addr) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
        // A Unix socket whose listener's backlog is full; the writability check that follows
        // reports the outcome either way.
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        Err(err) => return Err(err),
    }
    Ok(socket)
}

/// Waits until the connect started by [`start_connect`] has finished, and returns its outcome:
/// the socket's pending error (`SO_ERROR`, e.g. `ECONNREFUSED`) unchanged, or `Ok`.
///
/// A new registration is assumed writable, so "writable" alone proves nothing: the check runs
/// as a write operation that reports `WouldBlock` while the socket has neither a peer nor an
/// error, which makes the task wait for the reactor's next writability event.
pub(crate) async fn finish_connect<T: AsFd>(
    stream: &Async<T>,
    peer: impl Fn(&T) -> io::Result<()>,
    take_error: impl Fn(&T) -> io::Result<Option<io::Error>>,
) -> io::Result<()> {
    stream
        .write_with(|s| {
            if let Some(err) = take_error(s)? {
                return Err(err);
            }
            match peer(s) {
                Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                other => other,
            }
        })
        .await
}

/// One `read(2)` into memory that need not be initialised.
///
/// This is how the tokio-io and hyper adapters fill a caller's buffer without zeroing it first:
/// the bytes go from the kernel straight into `buf`, and the caller marks the first `n` as
/// initialised. No `&mut [u8]` over uninitialised memory is ever formed.
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
pub(crate) fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call, and
    // `read` writes at most that many bytes into it and never reads from it; `fd` is open for
    // the call because it is borrowed.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The back-off a listener applies after `accept` failed for lack of resources.
///
/// When the process is out of file descriptors (`EMFILE`, `ENFILE`) or the kernel out of
/// memory (`ENOBUFS`, `ENOMEM`), the pending connection stays in the backlog and the listener
/// stays readable, so an accept loop that only logs the error would spin at 100% CPU. The
/// error is returned at once; the *next* accept first sleeps, 1 ms after the first failure,
/// doubling up to [`AcceptBackoff::MAX`], and a successful accept resets it. A loop that logs
/// and retries therefore costs next to nothing while descriptors are short and picks up again
/// within `MAX` once they are freed.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    /// The delay before the next accept, in milliseconds; 0 when the last accept did not fail
    /// for lack of resources.
    delay_ms: AtomicU32,
}

impl AcceptBackoff {
    /// The longest wait before an accept is retried.
    pub(crate) const MAX: Duration = Duration::from_millis(100);

    /// Sleeps for the current delay, if any. Cancel safe: nothing has happened yet.
    pub(crate) async fn wait(&self) {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            crate::time::sleep(Duration::from_millis(u64::from(ms))).await;
        }
    }

    /// Records the outcome of an accept.
    pub(crate) fn record<T>(&self, result: &io::Result<T>) {
        match result {
            Err(err) if is_resource_exhaustion(err) => {
                let ms = self.delay_ms.load(Ordering::Relaxed);
                let next = (ms * 2).clamp(1, Self::MAX.as_millis() as u32);
                self.delay_ms.store(next, Ordering::Relaxed);
            }
            Ok(_) => {
                if self.delay_ms.load(Ordering::Relaxed) != 0 {
                    self.delay_ms.store(0, Ordering::Relaxed);
                }
            }
            // Per-connection errors (ECONNABORTED, ...) say nothing about the process.
            Err(_) => {}
        }
    }
}

fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
