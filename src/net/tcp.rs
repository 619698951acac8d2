//! TCP: [`TcpStream`], a connection (the listener is in `tcp_listener.rs`).

use std::io;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::os::fd::AsFd;
#[cfg(any(feature = "tokio-io", feature = "hyper"))]
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, SockAddr};

use crate::io::Async;
use crate::loom::DataArc;
use crate::net::split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
use crate::net::sys;

/// A TCP connection.
///
/// Read and write it with the `futures_io` traits (bring `futures_lite::AsyncReadExt` /
/// `AsyncWriteExt` or `futures_util`'s for `read_exact`, `write_all` and friends), or with
/// tokio's behind the `tokio-io` feature. `&TcpStream` implements them too, so one task may read
/// while another writes through a shared reference; [`into_split`](TcpStream::into_split) gives
/// owned halves for the same purpose.
///
/// Dropping the stream closes the connection.
///
/// # Examples
///
/// ```
/// # pitcrew::Runtime::new().unwrap().block_on(async {
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use pitcrew::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let mut client = TcpStream::connect(listener.local_addr()?).await?;
/// let (mut server, _) = listener.accept().await?;
/// client.write_all(b"hello").await?;
/// let mut buf = [0; 5];
/// server.read_exact(&mut buf).await?;
/// assert_eq!(&buf, b"hello");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
///
/// See also [`TcpListener`](crate::net::TcpListener).
pub struct TcpStream {
    inner: Async<std::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to in turn.
    ///
    /// The connect does not block a worker: the socket is created non-blocking, the handshake
    /// started, and the task waits for the socket to become writable, then reads the outcome
    /// from `SO_ERROR`.
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried, unchanged (`ConnectionRefused` when nothing
    /// listens there). `InvalidInput` if `addr` resolves to no address.
    ///
    /// # Caveats
    ///
    /// A host name is resolved on the calling thread, as in [`TcpListener::bind`](crate::net::TcpListener::bind).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection attempt and closes its socket.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let stream = TcpStream::connect(listener.local_addr()?).await?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        sys::each_addr(addr, TcpStream::connect_addr).await
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = sys::start_connect(
            &SockAddr::from(addr),
            Domain::for_address(addr),
            Some(Protocol::TCP),
        )?;
        let stream = Async::new(std::net::TcpStream::from(socket))?;
        sys::finish_connect(
            &stream,
            |s| s.peer_addr().map(drop),
            std::net::TcpStream::take_error,
        )
        .await?;
        Ok(TcpStream { inner: stream })
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let std_stream = std::net::TcpStream::connect(listener.local_addr()?)?; // connects at once on loopback
    /// let stream = TcpStream::from_std(std_stream)?;
    /// assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let std_stream: std::net::TcpStream = client.into_std()?;
    /// assert_eq!(std_stream.peer_addr()?, listener.local_addr()?);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.inner.into_inner()
    }

    /// The address of the peer.
    ///
    /// # Errors
    ///
    /// The OS error, e.g. `NotConnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// assert_eq!(client.peer_addr()?, listener.local_addr()?);
    /// assert_eq!(server.peer_addr()?, client.local_addr()?);
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// assert_eq!(server.local_addr()?, listener.local_addr()?);
    /// assert_eq!(client.local_addr()?, server.peer_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`: when true, small writes are sent at once instead of being coalesced
    /// (Nagle's algorithm), which request/response protocols usually want.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::net::{TcpListener, TcpStream};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
    ///     let stream = TcpStream::connect(listener.local_addr()?).await?;
    ///     stream.set_nodelay(true)?; // small request/response messages: no Nagle delay
    ///     assert!(stream.nodelay()?);
    ///     assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// client.set_nodelay(true)?;
    /// assert!(client.nodelay()?);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.get_ref().nodelay()
    }

    /// The socket's `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// println!("TTL: {}", client.ttl()?);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.inner.get_ref().ttl()
    }

    /// Sets the socket's `IP_TTL`.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// client.set_ttl(64)?;
    /// assert_eq!(client.ttl()?, 64);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }

    /// Shuts down the read half, the write half, or both. After `Shutdown::Write` the peer
    /// reads end-of-file once it has read everything sent before.
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (mut server, _) = listener.accept().await?;
    /// client.shutdown(std::net::Shutdown::Write)?;
    /// let mut rest = Vec::new();
    /// assert_eq!(server.read_to_end(&mut rest).await?, 0);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.get_ref().shutdown(how)
    }

    /// Reads into `buf` without removing the data from the socket's receive queue.
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let mut client = client;
    /// let mut server = server;
    /// client.write_all(b"hello").await?;
    /// let mut peeked = [0; 5];
    /// let n = server.peek(&mut peeked).await?; // the data stays queued
    /// let mut read = [0; 5];
    /// server.read_exact(&mut read).await?;
    /// assert_eq!(&read[..n], &peeked[..n]);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.peek(buf)).await
    }

    /// Splits the stream into a read half and a write half that can be moved to different
    /// tasks. Dropping the write half shuts down the write direction (the peer reads
    /// end-of-file); [`OwnedReadHalf::reunite`] puts the halves back together.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use futures_lite::{AsyncReadExt, AsyncWriteExt};
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    ///
    /// let (mut read, mut write) = server.into_split();
    /// let echo = pitcrew::spawn(async move {
    ///     let mut buf = [0; 4];
    ///     read.read_exact(&mut buf).await?;
    ///     write.write_all(&buf).await
    /// });
    /// let (mut rd, mut wr) = client.into_split();
    /// wr.write_all(b"ping").await?;
    /// let mut back = [0; 4];
    /// rd.read_exact(&mut back).await?;
    /// assert_eq!(&back, b"ping");
    /// echo.await??;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>) {
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

impl OwnedReadHalf<TcpStream> {
    /// Puts the halves of [`TcpStream::into_split`] back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, when they came from different streams.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// let client: TcpStream = read.reunite(write).unwrap();
    /// assert_eq!(client.peer_addr()?, listener.local_addr()?);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn reunite(self, other: OwnedWriteHalf<TcpStream>) -> Result<TcpStream, ReuniteError> {
        crate::net::split::reunite(self, other)
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// assert_eq!(read.peer_addr()?, listener.local_addr()?);
    /// # drop((server, write));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream().peer_addr()
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// assert_eq!(read.local_addr()?, server.peer_addr()?);
    /// # drop(write);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream().local_addr()
    }
}

impl OwnedWriteHalf<TcpStream> {
    /// Puts the halves back together, as [`OwnedReadHalf::reunite`].
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] when the halves came from different streams.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// let client: TcpStream = write.reunite(read).unwrap();
    /// assert_eq!(client.local_addr()?, server.peer_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn reunite(self, other: OwnedReadHalf<TcpStream>) -> Result<TcpStream, ReuniteError> {
        crate::net::split::reunite(other, self)
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// assert_eq!(write.peer_addr()?, listener.local_addr()?);
    /// # drop((server, read));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream().peer_addr()
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
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// assert_eq!(write.local_addr()?, server.peer_addr()?);
    /// # drop(read);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream().local_addr()
    }

    /// Sets `TCP_NODELAY`, as [`TcpStream::set_nodelay`].
    ///
    /// # Errors
    ///
    /// The OS error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, _) = listener.accept().await?;
    /// let (read, write) = client.into_split();
    /// write.set_nodelay(true)?;
    /// let client = write.reunite(read).unwrap();
    /// assert!(client.nodelay()?);
    /// # drop(server);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.stream().set_nodelay(nodelay)
    }
}

crate::net::stream_io_impls!(TcpStream);
