//! TCP: [`TcpListener`], accepting connections as [`TcpStream`]s.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use crate::io::Async;
use crate::net::sys::AcceptBackoff;
use crate::net::TcpStream;

/// A TCP socket server, listening for connections.
///
/// # Examples
///
/// An echo server and a client, on one runtime:
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use pitcrew::net::{TcpListener, TcpStream};
///
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     pitcrew::spawn(async move {
///         let (mut conn, _peer) = listener.accept().await?;
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).await?;
///         conn.write_all(&buf).await?;
///         std::io::Result::Ok(())
///     });
///
///     let mut client = TcpStream::connect(addr).await?;
///     client.write_all(b"hello").await?;
///     let mut reply = [0; 5];
///     client.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"hello");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    inner: Async<std::net::TcpListener>,
    backoff: AcceptBackoff,
}

impl TcpListener {
    /// Creates a listener bound to `addr`, trying each address it resolves to in turn, like
    /// [`std::net::TcpListener::bind`] (port 0 picks a free port; see [`local_addr`]).
    ///
    /// [`local_addr`]: TcpListener::local_addr
    ///
    /// # Errors
    ///
    /// The OS error of the last address tried, unchanged: `AddrInUse` for a port that is
    /// taken, `AddrNotAvailable` for an address this host does not have. `InvalidInput` if
    /// `addr` resolves to no address.
    ///
    /// # Caveats
    ///
    /// A host name is resolved on the calling thread, which blocks it; resolve names that may
    /// need the network with [`spawn_blocking`](crate::spawn_blocking) first.
    ///
    /// # Panics
    ///
    /// Outside a pitcrew runtime, as [`spawn`](crate::spawn) does.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0").await?;
    /// assert_ne!(listener.local_addr()?.port(), 0);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        // bind(2) and listen(2) never block: std's bind is fine on a worker.
        let listener = std::net::TcpListener::bind(addr)?;
        TcpListener::from_std(listener)
    }

    /// Wraps a listener created with the standard library (or inherited from a parent process),
    /// putting it in non-blocking mode.
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
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = pitcrew::net::TcpListener::from_std(std_listener)?;
    /// # let _ = listener; std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
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
    /// let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// let std_listener: std::net::TcpListener = listener.into_std()?;
    /// assert_eq!(std_listener.local_addr()?, addr);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.inner.into_inner()
    }

    /// Waits for a connection and returns it with the peer's address.
    ///
    /// # Errors
    ///
    /// The OS error, unchanged. When the process has run out of file descriptors (`EMFILE`,
    /// `ENFILE`) the error is returned at once and the connection stays queued; the listener
    /// keeps working, and the next `accept` first waits a short back-off (1 ms, doubling up to
    /// 100 ms while the failures go on) so that a loop which logs and retries does not spin.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is taken from the queue only by the call that returns it.
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (server, peer) = listener.accept().await?;
    /// assert_eq!(peer, client.local_addr()?);
    /// assert_eq!(server.peer_addr()?, client.local_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.backoff.wait().await;
        let accepted = self.inner.read_with(|listener| listener.accept()).await;
        self.backoff.record(&accepted);
        let (stream, peer) = accepted?;
        Ok((TcpStream::from_std(stream)?, peer))
    }

    /// Polls for a connection: the poll form of [`accept`](TcpListener::accept), for hand-written
    /// futures and accept loops that cannot hold the `accept` future. It applies no back-off.
    ///
    /// # Errors
    ///
    /// As [`accept`](TcpListener::accept).
    ///
    /// # Examples
    ///
    /// ```
    /// # pitcrew::Runtime::new().unwrap().block_on(async {
    /// use pitcrew::net::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").await?;
    /// let client = TcpStream::connect(listener.local_addr()?).await?;
    /// let (_server, peer) = std::future::poll_fn(|cx| listener.poll_accept(cx)).await?;
    /// assert_eq!(peer, client.local_addr()?);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let accepted = std::task::ready!(self.inner.poll_read_with(cx, |l| l.accept()));
        self.backoff.record(&accepted);
        let (stream, peer) = accepted?;
        Poll::Ready(Ok((TcpStream::from_std(stream)?, peer)))
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
    /// let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let addr = listener.local_addr()?;
    /// assert!(addr.ip().is_loopback());
    /// assert_ne!(addr.port(), 0); // the port the OS picked
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
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
    /// let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0").await?;
    /// println!("TTL: {}", listener.ttl()?);
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
    /// let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0").await?;
    /// listener.set_ttl(100)?;
    /// assert_eq!(listener.ttl()?, 100);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.inner.get_ref().set_ttl(ttl)
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.get_ref().as_raw_fd()
    }
}
