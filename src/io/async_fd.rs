//! `Async<T>`: any file descriptor, made non-blocking and driven by the runtime's reactor.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use crate::io::reactor::Registration;
use crate::io::scheduled_io::{Direction, ScheduledIo};
use crate::loom::Arc;
use crate::runtime::Handle;
use crate::scheduler::Shared;
use crate::task::coop;

/// An I/O object (a socket, a pipe, any `AsFd`) registered with the runtime's reactor.
///
/// Operations are attempted at once; when one would block, the task waits for the reactor to
/// report the source ready and tries again. Reads and writes wait separately, so one task may
/// read while another writes through a shared reference.
///
/// # Examples
///
/// ```
/// use pitcrew::io::Async;
/// use std::net::{TcpListener, TcpStream};
///
/// let rt = pitcrew::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     let listener = Async::new(TcpListener::bind("127.0.0.1:0")?)?;
///     let addr = listener.get_ref().local_addr()?;
///     let _client = TcpStream::connect(addr)?;
///     let (_conn, peer) = listener.read_with(|l| l.accept()).await?;
///     assert_eq!(peer.ip(), addr.ip());
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct Async<T: AsFd> {
    io: Option<T>,
    registration: Registration,
    runtime: Arc<Shared>,
}

impl<T: AsFd> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the current runtime's reactor.
    ///
    /// # Errors
    ///
    /// When the descriptor cannot be made non-blocking or registered (the OS error).
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime, as [`spawn`](crate::spawn) does.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, _b) = UnixStream::pair()?;
    /// let a: Async<UnixStream> = Async::new(a)?; // now non-blocking, driven by the reactor
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn new(io: T) -> io::Result<Async<T>> {
        let runtime = Handle::current().shared;
        let fd = io.as_fd().as_raw_fd();
        set_nonblocking(fd)?;
        let registration = runtime.io.register(fd)?;
        Ok(Async {
            io: Some(io),
            registration,
            runtime,
        })
    }

    /// The inner I/O object.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// assert!(a.get_ref().peer_addr()?.is_unnamed());
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("Async used after into_inner")
    }

    /// The inner I/O object, mutably. Do not replace its descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let mut a = Async::new(a)?;
    /// a.get_mut().write_all(b"x")?; // a small write to an empty socket does not block
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("Async used after into_inner")
    }

    /// Deregisters the source and returns it (still in non-blocking mode).
    ///
    /// # Errors
    ///
    /// Never, today; the `Result` leaves room for platforms where deregistration can fail.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let a: UnixStream = a.into_inner()?; // deregistered, still non-blocking
    /// a.set_nonblocking(false)?;
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_inner(mut self) -> io::Result<T> {
        self.runtime.io.deregister(&self.registration);
        Ok(self.io.take().expect("Async used after into_inner"))
    }

    /// Ready once the source is readable (or closed, or failed).
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// (&b).write_all(b"x")?;
    /// std::future::poll_fn(|cx| a.poll_readable(cx)).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registration
            .io
            .poll_ready(cx, Direction::Read)
            .map(|_| Ok(()))
    }

    /// Ready once the source is writable (or failed).
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// std::future::poll_fn(|cx| a.poll_writable(cx)).await?;
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.registration
            .io
            .poll_ready(cx, Direction::Write)
            .map(|_| Ok(()))
    }

    /// Waits until the source is readable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// (&b).write_all(b"x")?;
    /// a.readable().await?;
    /// let mut buf = [0; 1];
    /// assert_eq!((&*a.get_ref()).read(&mut buf)?, 1);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the source is writable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// a.writable().await?;
    /// (&*a.get_ref()).write_all(b"x")?;
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    fn poll_with<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.io.as_ref().expect("Async used after into_inner");
        poll_io(&self.registration.io, cx, dir, || op(io), |_| false)
    }

    /// One attempt at a read-side operation; on `WouldBlock` the task is registered to be woken
    /// when the source becomes readable and `Pending` is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let b = Async::new(b)?;
    /// (&a).write_all(b"hi")?;
    /// let mut buf = [0; 8];
    /// let n = std::future::poll_fn(|cx| b.poll_read_with(cx, |mut s| s.read(&mut buf))).await?;
    /// assert_eq!(&buf[..n], b"hi");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_with(cx, Direction::Read, op)
    }

    /// One attempt at a write-side operation, as [`Async::poll_read_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let n = std::future::poll_fn(|cx| a.poll_write_with(cx, |mut s| s.write(b"hi"))).await?;
    /// assert_eq!(n, 2);
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_with(cx, Direction::Write, op)
    }

    /// [`Async::poll_read_with`] for a stream read of `len` bytes: a read that returns fewer
    /// (but not zero) bytes has drained the socket, so readiness is cleared at once and the
    /// next read waits for the reactor instead of paying a syscall to learn `WouldBlock`.
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_stream(cx, Direction::Read, len, op)
    }

    /// [`Async::poll_write_with`] for a stream write of `len` bytes: a short write has filled
    /// the send buffer, so write readiness is cleared at once.
    pub(crate) fn poll_write_stream(
        &self,
        cx: &mut Context<'_>,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        self.poll_stream(cx, Direction::Write, len, op)
    }

    fn poll_stream(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        mut op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let io = self.io.as_ref().expect("Async used after into_inner");
        // Edge-triggered: new data (or room) after a short transfer is a new event with a
        // newer tick, which the clear leaves alone.
        poll_io(
            &self.registration.io,
            cx,
            dir,
            || op(io),
            |&n| n > 0 && n < len,
        )
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for readability in between.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as long as `op` is: an attempt that succeeded is returned, never dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let b = Async::new(b)?;
    /// (&a).write_all(b"hi")?;
    /// let mut buf = [0; 8];
    /// let n = b.read_with(|mut s| s.read(&mut buf)).await?;
    /// assert_eq!(&buf[..n], b"hi");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(cx, Direction::Read, &mut op)).await
    }

    /// As [`Async::read_with`], with mutable access.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let mut b = Async::new(b)?;
    /// (&a).write_all(b"hi")?;
    /// let mut buf = [0; 8];
    /// let n = b.read_with_mut(|s| s.read(&mut buf)).await?;
    /// assert_eq!(&buf[..n], b"hi");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_with_mut(cx, Direction::Read, &mut op)).await
    }

    /// Runs `op` until it does not fail with `WouldBlock`, waiting for writability in between.
    ///
    /// # Cancel safety
    ///
    /// As [`Async::read_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let a = Async::new(a)?;
    /// let n = a.write_with(|mut s| s.write(b"hi")).await?;
    /// assert_eq!(n, 2);
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(cx, Direction::Write, &mut op)).await
    }

    /// As [`Async::write_with`], with mutable access.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use pitcrew::io::Async;
    /// let (a, b) = UnixStream::pair()?;
    /// let mut a = Async::new(a)?;
    /// let n = a.write_with_mut(|s| s.write(b"hi")).await?;
    /// assert_eq!(n, 2);
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_with_mut(cx, Direction::Write, &mut op)).await
    }

    fn poll_with_mut<R>(
        &mut self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self.io.as_mut().expect("Async used after into_inner");
        poll_io(&self.registration.io, cx, dir, || op(io), |_| false)
    }
}

/// Attempts an operation while the source is ready in `dir`; `WouldBlock` clears the readiness
/// that was seen and waits for more. `drained` says when a successful result also shows the
/// readiness is used up (a short stream transfer), saving the syscall that would learn it.
fn poll_io<R>(
    source: &ScheduledIo,
    cx: &mut Context<'_>,
    dir: Direction,
    mut attempt: impl FnMut() -> io::Result<R>,
    drained: impl Fn(&R) -> bool,
) -> Poll<io::Result<R>> {
    ready!(coop::poll_proceed(cx));
    loop {
        let ev = match source.poll_ready(cx, dir) {
            Poll::Ready(ev) => ev,
            Poll::Pending => {
                coop::refund();
                return Poll::Pending;
            }
        };
        match attempt() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => source.clear_readiness(ev),
            Ok(r) => {
                if drained(&r) {
                    source.clear_readiness(ev);
                }
                return Poll::Ready(Ok(r));
            }
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        if self.io.is_some() {
            // Deregister while the fd is still open; then `T` closes it, exactly once.
            self.runtime.io.deregister(&self.registration);
            self.io = None;
        }
    }
}

fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller keeps open; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl<T: AsFd + fmt::Debug> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async")
            .field("io", &self.io)
            .field("readiness", &self.registration.io)
            .finish()
    }
}

impl<T: AsFd> futures_io::AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.poll_read_stream(cx, len, |mut io| io.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, |mut io| io.read_vectored(bufs))
    }
}

impl<T: AsFd> futures_io::AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.poll_write_stream(cx, len, |mut io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |mut io| io.write_vectored(bufs))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write_with(cx, |mut io| io.flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
