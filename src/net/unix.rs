//! Unix domain sockets: [`UnixListener`] and [`UnixStream`].

use std::fmt;
use std::io;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::task::{Context, Poll};

use socket2::{Domain, SockAddr};

use crate::io::Async;
use crate::loom::DataArc;
use crate::net::split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
use crate::net::sys::{self, AcceptBackoff};

/// A Unix domain socket server, listening for connections at a path.
///
/// Dropping the listener does not remove the socket file; remove it yourself.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use pitcrew::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let listener = UnixListener::bind(&path).await?;
///     let mut client = UnixStream::connect(&path).await?;
///     let (mut server, _) = listener.accept().await?;
///     client.write_all(b"hi").await?;
///     let mut buf = [0; 2];
///     server.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hi");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    inner: Async<std::os::unix::net::UnixListener>,
    backoff: AcceptBackoff,
}

impl UnixListener {
    /// Creates a listener bound to `path`.
    ///
    /// # Errors
    ///
    /// The OS error, unchanged: `AddrInUse` when the file exists (even if nobody listens on
    /// it any more), `NotFound` when the directory does not exist.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).await?;
    /// let _client = UnixStream::connect(&path).await?;
    /// let (_server, _) = listener.accept().await?;
    /// std::fs::remove_file(&path)?; // not removed on drop
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Wraps a listener created with the standard library, putting it in non-blocking mode.
    ///
    /// # Errors
    ///
    /// When the socket cannot be made non-blocking or registered with the reactor.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    /// let listener = UnixListener::from_std(std_listener)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: Async::new(listener)?,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Deregisters the listener and returns the standard one (left in non-blocking mode).
    ///
    /// # Errors
    ///
    /// When deregistration fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).await?;
    /// let std_listener: std::os::unix::net::UnixListener = listener.into_std()?;
    /// assert_eq!(std_listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.inner.into_inner()
    }

    /// Waits for a connection and returns it with the peer's address (usually unnamed).
    ///
    /// # Errors
    ///
    /// The OS error, unchanged; out of file descriptors, as [`TcpListener::accept`]
    /// describes (the error at once, then a short back-off before the next attempt).
    ///
    /// [`TcpListener::accept`]: crate::net::TcpListener::accept
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).await?;
    /// let _client = UnixStream::connect(&path).await?;
    /// let (server, _peer) = listener.accept().await?;
    /// assert_eq!(server.local_addr()?.as_pathname(), Some(path.as_path()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        self.backoff.wait().await;
        let accepted = self.inner.read_with(|listener| listener.accept()).await;
        self.backoff.record(&accepted);
        let (stream, peer) = accepted?;
        Ok((UnixStream::from_std(stream)?, peer))
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).await?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}

/// A Unix domain stream connection; the Unix counterpart of
/// [`TcpStream`](crate::net::TcpStream), with the same traits and splitting.
///
/// # Examples
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use pitcrew::net::UnixStream;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let (mut a, mut b) = UnixStream::pair()?;
///     a.write_all(b"ping").await?;
///     let mut buf = [0; 4];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixStream {
    inner: Async<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path` without blocking the worker.
    ///
    /// # Errors
    ///
    /// The OS error, unchanged: `NotFound` when there is no such file, `ConnectionRefused`
    /// when nobody listens on it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the attempt and closes the socket.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{UnixListener, UnixStream};
    /// # let dir = std::env::temp_dir().join(format!("pitcrew-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("app.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).await?;
    /// let client = UnixStream::connect(&path).await?;
    /// assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
    /// # drop(listener);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let socket = sys::start_connect(&SockAddr::unix(path)?, Domain::UNIX, None)?;
        let stream = Async::new(std::os::unix::net::UnixStream::from(OwnedFd::from(socket)))?;
        sys::finish_connect(
            &stream,
            |s| s.peer_addr().map(drop),
            std::os::unix::net::UnixStream::take_error,
        )
        .await?;
        Ok(UnixStream { inner: stream })
    }

    /// A pair of connected streams (`socketpair(2)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use pitcrew::net::UnixStream;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let (mut a, mut b) = UnixStream::pair()?;
    ///     a.write_all(b"hi").await?;
    ///     let mut buf = [0; 2];
    ///     b.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"hi");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The OS error, e.g. `EMFILE`.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a connected stream created with the standard library, putting it in non-blocking
    /// mode.
    ///
    /// # Errors
    ///
    /// When the socket cannot be made non-blocking or registered with the reactor.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let a = UnixStream::from_std(a)?;
    /// # drop((a, b));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            inner: Async::new(stream)?,
        })
    }

    /// Deregisters the stream and returns the standard one (left in non-blocking mode).
    ///
    /// # Errors
    ///
    /// When deregistration fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// let a: std::os::unix::net::UnixStream = a.into_std()?;
    /// # drop((a, b));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.inner.into_inner()
    }

    /// The address of the peer.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// assert!(a.peer_addr()?.is_unnamed()); // a socketpair has no path
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address of this end.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// assert!(a.local_addr()?.is_unnamed());
    /// # drop(b);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// # Errors
    ///
    /// The OS error, e.g. `NotConnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use futures_lite::AsyncReadExt;
    /// use pitcrew::net::UnixStream;
    /// let (a, mut b) = UnixStream::pair()?;
    /// a.shutdown(std::net::Shutdown::Write)?;
    /// let mut rest = Vec::new();
    /// assert_eq!(b.read_to_end(&mut rest).await?, 0);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Splits the stream into halves for two tasks, as [`TcpStream::into_split`] does.
    ///
    /// [`TcpStream::into_split`]: crate::net::TcpStream::into_split
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// let (mut read, mut write) = b.into_split();
    /// let echo = pitcrew::spawn(async move {
    ///     let mut buf = [0; 4];
    ///     read.read_exact(&mut buf).await?;
    ///     write.write_all(&buf).await
    /// });
    /// let mut a = a;
    /// a.write_all(b"ping").await?;
    /// let mut back = [0; 4];
    /// a.read_exact(&mut back).await?;
    /// assert_eq!(&back, b"ping");
    /// echo.await??;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        crate::net::split::split(DataArc::new(self), |s| s.shutdown(Shutdown::Write))
    }

    /// The uninitialised-buffer read behind the tokio-io and hyper adapters.
    #[cfg(any(feature = "tokio-io", feature = "hyper"))]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.inner
            .poll_read_stream(cx, len, |s| sys::read_uninit(s.as_fd(), buf))
    }
}

impl OwnedReadHalf<UnixStream> {
    /// Puts the halves of [`UnixStream::into_split`] back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] when the halves came from different streams.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// let (read, write) = a.into_split();
    /// let a: UnixStream = read.reunite(write).unwrap();
    /// # drop((a, b));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn reunite(
        self,
        other: OwnedWriteHalf<UnixStream>,
    ) -> Result<UnixStream, ReuniteError<UnixStream>> {
        crate::net::split::reunite(self, other)
    }
}

impl OwnedWriteHalf<UnixStream> {
    /// Puts the halves of [`UnixStream::into_split`] back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] when the halves came from different streams.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// let (read, write) = a.into_split();
    /// let a: UnixStream = write.reunite(read).unwrap();
    /// # drop((a, b));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn reunite(
        self,
        other: OwnedReadHalf<UnixStream>,
    ) -> Result<UnixStream, ReuniteError<UnixStream>> {
        crate::net::split::reunite(other, self)
    }
}

crate::net::stream_io_impls!(UnixStream);
