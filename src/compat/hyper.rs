//! Running hyper 1.x on pitcrew (feature `hyper`).
//!
//! - [`HyperIo`] wraps a stream (any `futures_io::AsyncRead + AsyncWrite`, such as
//!   [`TcpStream`]) as hyper's [`Read`] and [`Write`].
//! - [`HyperExecutor`] spawns hyper's background tasks (HTTP/2 streams, client connections) on
//!   the current runtime.
//! - [`HyperTimer`] gives hyper timeouts and keep-alive timers from [`pitcrew::time`](crate::time).
//!
//! # Examples
//!
//! An HTTP/1.1 server and a client on one runtime (with hyper's `server`, `client` and `http1`
//! features, and `http-body-util`):
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::Bytes;
//! use hyper::{Request, Response};
//! use pitcrew::hyper::{HyperIo, HyperTimer};
//! use pitcrew::net::{TcpListener, TcpStream};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     pitcrew::spawn(async move {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         let hello = hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!         });
//!         hyper::server::conn::http1::Builder::new()
//!             .timer(HyperTimer::new())
//!             .serve_connection(HyperIo::new(stream), hello)
//!             .await
//!             .unwrap();
//!     });
//!
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
//!     pitcrew::spawn(conn);
//!     let request = Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new())?;
//!     let response = sender.send_request(request).await?;
//!     let body = response.into_body().collect().await?.to_bytes();
//!     assert_eq!(body, "hello");
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! })
//! .unwrap();
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use ::hyper::rt::{Executor, Read, ReadBufCursor, Sleep, Timer, Write};

#[cfg(unix)]
use crate::net::UnixStream;
use crate::net::{OwnedReadHalf, TcpStream};
use crate::runtime::Handle;

/// A stream as hyper's [`Read`] + [`Write`].
///
/// `T` is any `futures_io` stream. pitcrew's own streams ([`TcpStream`], `UnixStream`) are read
/// straight into hyper's uninitialised buffer; any other `T` reads into a zeroed part of it (at
/// most 16 KiB per read), because a `futures_io::AsyncRead` may legally read the buffer it is
/// handed.
///
/// # Examples
///
/// Writing through hyper's [`Write`] (hyper's connections do this; see the
/// [module documentation](self) for a whole HTTP exchange):
///
/// ```
/// # pitcrew::Runtime::new().unwrap().block_on(async {
/// use std::pin::Pin;
/// use futures_lite::AsyncReadExt;
/// use hyper::rt::Write;
/// use pitcrew::hyper::HyperIo;
/// use pitcrew::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut io = HyperIo::new(TcpStream::connect(listener.local_addr()?).await?);
/// let (mut server, _) = listener.accept().await?;
/// let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"hi")).await?;
/// let mut buf = [0; 2];
/// server.read_exact(&mut buf[..n]).await?;
/// assert_eq!(&buf[..n], &b"hi"[..n]);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct HyperIo<T> {
    inner: T,
}

impl<T> HyperIo<T> {
    /// Wraps `inner`.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::hyper::HyperIo;
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// let io = HyperIo::new(stream); // ready for hyper's `handshake` / `serve_connection`
    /// # drop(io);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn new(inner: T) -> HyperIo<T> {
        HyperIo { inner }
    }

    /// The wrapped stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::hyper::HyperIo;
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let io = HyperIo::new(TcpStream::connect(listener.local_addr()?).await?);
    /// assert_eq!(io.get_ref().peer_addr()?, listener.local_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::hyper::HyperIo;
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let mut io = HyperIo::new(TcpStream::connect(listener.local_addr()?).await?);
    /// io.get_mut().set_nodelay(true)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::hyper::HyperIo;
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let io = HyperIo::new(TcpStream::connect(listener.local_addr()?).await?);
    /// let stream: TcpStream = io.into_inner();
    /// # drop(stream);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HyperIo").field(&self.inner).finish()
    }
}

/// The most a foreign stream is handed per read: that much of hyper's buffer is zeroed first.
const FOREIGN_READ_MAX: usize = 16 * 1024;

/// One read of one of pitcrew's own streams into uninitialised memory, or `None` when `io` is
/// some other type. The `TypeId` comparisons are constants after monomorphisation.
fn poll_read_uninit<T: 'static>(
    io: &T,
    cx: &mut Context<'_>,
    buf: &mut [MaybeUninit<u8>],
) -> Option<Poll<io::Result<usize>>> {
    let io = io as &dyn Any;
    if let Some(s) = io.downcast_ref::<TcpStream>() {
        return Some(s.poll_read_uninit(cx, buf));
    }
    if let Some(s) = io.downcast_ref::<OwnedReadHalf<TcpStream>>() {
        return Some(s.stream().poll_read_uninit(cx, buf));
    }
    #[cfg(unix)]
    {
        if let Some(s) = io.downcast_ref::<UnixStream>() {
            return Some(s.poll_read_uninit(cx, buf));
        }
        if let Some(s) = io.downcast_ref::<OwnedReadHalf<UnixStream>>() {
            return Some(s.stream().poll_read_uninit(cx, buf));
        }
    }
    None
}

/// Whether `T` is one of pitcrew's streams, whose vectored writes are real `writev` calls.
fn is_pitcrew_stream<T: 'static>() -> bool {
    let t = TypeId::of::<T>();
    if t == TypeId::of::<TcpStream>() {
        return true;
    }
    #[cfg(unix)]
    if t == TypeId::of::<UnixStream>() {
        return true;
    }
    false
}

impl<T> Read for HyperIo<T>
where
    T: futures_io::AsyncRead + Unpin + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `as_mut` asks us never to de-initialise bytes through the slice. Our own
        // streams only let the kernel write into it; the foreign path writes zeroes.
        let unfilled = unsafe { buf.as_mut() };
        let n = match poll_read_uninit(&this.inner, cx, unfilled) {
            Some(read) => ready!(read)?,
            None => {
                let len = unfilled.len().min(FOREIGN_READ_MAX);
                let part = &mut unfilled[..len];
                for byte in part.iter_mut() {
                    byte.write(0);
                }
                // SAFETY: every byte of `part` was initialised just above, and `MaybeUninit<u8>`
                // has the layout of `u8`.
                let part = unsafe { &mut *(part as *mut [MaybeUninit<u8>] as *mut [u8]) };
                ready!(Pin::new(&mut this.inner).poll_read(cx, part))?
            }
        };
        // SAFETY: the read initialised the first `n` bytes of the cursor (the kernel wrote them,
        // or they were zeroed before the foreign read).
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T> Write for HyperIo<T>
where
    T: futures_io::AsyncWrite + Unpin + 'static,
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Closes the write direction (`poll_close`: a `shutdown(Write)` on pitcrew's streams).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn is_write_vectored(&self) -> bool {
        is_pitcrew_stream::<T>()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// hyper's [`Executor`]: spawns on the runtime given to [`HyperExecutor::with_handle`], or else
/// on the runtime of the thread that calls it (hyper calls it from the task driving a
/// connection, which runs on that runtime).
///
/// # Panics
///
/// Without a handle, executing outside a pitcrew runtime panics, as [`spawn`](crate::spawn)
/// does.
///
/// # Examples
///
/// An HTTP/2 server connection needs one:
///
/// ```
/// use pitcrew::hyper::{HyperExecutor, HyperTimer};
///
/// let mut builder = hyper::server::conn::http2::Builder::new(HyperExecutor::new());
/// builder.timer(HyperTimer::new());
/// # let _ = builder;
/// ```
#[derive(Clone, Default, Debug)]
pub struct HyperExecutor {
    handle: Option<Handle>,
}

impl HyperExecutor {
    /// An executor for the current runtime, whichever it is when a task is spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// use hyper::rt::Executor;
    /// use pitcrew::hyper::HyperExecutor;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// rt.block_on(async move {
    ///     // hyper calls this for its connection-driving tasks.
    ///     HyperExecutor::new().execute(async move { tx.send("ran").unwrap() });
    /// });
    /// assert_eq!(rx.recv().unwrap(), "ran");
    /// ```
    pub fn new() -> HyperExecutor {
        HyperExecutor { handle: None }
    }

    /// An executor that always spawns on `handle`'s runtime, from any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use hyper::rt::Executor;
    /// use pitcrew::hyper::HyperExecutor;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let exec = HyperExecutor::with_handle(rt.handle().clone());
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// exec.execute(async move { tx.send("ran on the runtime").unwrap() }); // from a plain thread
    /// assert_eq!(rx.recv().unwrap(), "ran on the runtime");
    /// ```
    pub fn with_handle(handle: Handle) -> HyperExecutor {
        HyperExecutor {
            handle: Some(handle),
        }
    }
}

impl<F> Executor<F> for HyperExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[track_caller]
    fn execute(&self, fut: F) {
        // Detached: hyper drives these tasks to their end and never joins them.
        match &self.handle {
            Some(handle) => drop(handle.spawn(fut)),
            None => drop(crate::spawn(fut)),
        }
    }
}

/// hyper's [`Timer`] on [`pitcrew::time`](crate::time): header-read timeouts, keep-alive and
/// HTTP/2 ping timers.
///
/// # Panics
///
/// hyper asks for sleeps from the tasks that drive its connections; asking outside a pitcrew
/// runtime panics, as [`time::sleep`](crate::time::sleep) does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::hyper::HyperTimer;
///
/// let mut builder = hyper::server::conn::http1::Builder::new();
/// builder.timer(HyperTimer::new()).header_read_timeout(Duration::from_secs(5));
/// ```
#[derive(Clone, Default, Debug)]
pub struct HyperTimer {
    _private: (),
}

impl HyperTimer {
    /// A timer on the current runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hyper::rt::Timer;
    /// use pitcrew::hyper::HyperTimer;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     HyperTimer::new().sleep(Duration::from_millis(1)).await;
    /// });
    /// ```
    pub fn new() -> HyperTimer {
        HyperTimer { _private: () }
    }
}

impl Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            // Moving the deadline of a registered timer later is one atomic operation.
            Some(ours) => Pin::new(&mut ours.get_mut().0).reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A pitcrew `Sleep` as hyper's `Sleep`. `time::Sleep` is `Unpin` (and `Send + Sync`), so the
/// one box hyper asks for is the only allocation besides the timer entry itself.
struct HyperSleep(crate::time::Sleep);

impl Future for HyperSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl Sleep for HyperSleep {}
