//! Networking: TCP, UDP and Unix domain sockets on the runtime's reactor.
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], and on Unix [`UnixListener`] and
//! [`UnixStream`]. The streams implement `futures_io::AsyncRead + AsyncWrite` (bring
//! `futures_lite::{AsyncReadExt, AsyncWriteExt}` or `futures_util`'s for `read_exact`,
//! `write_all`, lines), and `tokio::io::AsyncRead + AsyncWrite` behind the `tokio-io` feature.
//! A stream splits into [`OwnedReadHalf`] and [`OwnedWriteHalf`] for two tasks.
//!
//! Sockets are created with the runtime of the current thread (a task, or inside `block_on`)
//! and panic outside one, as [`spawn`](crate::spawn) does. Errors are the operating system's,
//! unchanged: a refused connect is `ConnectionRefused`, a taken port `AddrInUse`.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use pitcrew::net::{TcpListener, TcpStream};
//!
//! let rt = pitcrew::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = pitcrew::spawn(async move {
//!         let (mut conn, _) = listener.accept().await?;
//!         let mut line = Vec::new();
//!         conn.read_to_end(&mut line).await?;
//!         conn.write_all(&line).await?;
//!         std::io::Result::Ok(())
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     client.shutdown(std::net::Shutdown::Write)?;
//!     let mut echoed = Vec::new();
//!     client.read_to_end(&mut echoed).await?;
//!     assert_eq!(echoed, b"hello");
//!     server.await?
//! })
//! .unwrap();
//! ```

// Design notes
// ============
//
// Everything here is a thin layer over `io::Async<T>` and the standard library's blocking
// socket types: std does the syscalls, `Async` makes the descriptor non-blocking and waits
// for the reactor when an operation reports `WouldBlock`. What this module adds:
//
// 1. Connecting without blocking a worker (`sys::start_connect` / `sys::finish_connect`):
//    std's `connect` blocks for a whole handshake, so the socket is created non-blocking with
//    socket2, the connect is started (`EINPROGRESS`), and the task waits for writability.
//    A new registration counts as ready, so the outcome is read as a *write operation* that
//    returns `WouldBlock` while the socket has neither a peer nor a pending error; the
//    reactor's next writability event then wakes the task. The error is `SO_ERROR`, passed on
//    unchanged. Several resolved addresses are tried in order, as std does.
// 2. Accept under fd exhaustion (`sys::AcceptBackoff`): `EMFILE` leaves the connection in the
//    backlog, so the listener stays readable and a "log and retry" loop would spin. The error
//    goes to the caller at once; the next accept on that listener first sleeps (1 ms doubling
//    to 100 ms), and a successful accept resets the delay. Readiness is only cleared on
//    `WouldBlock` (see `io::Async`), so no edge is lost while we back off.
// 3. Reads without zero-filling for the tokio-io and hyper adapters
//    (`TcpStream::poll_read_uninit`, `sys::read_uninit`): `read(2)` straight into the
//    caller's `MaybeUninit` bytes; no `&mut [u8]` over uninitialised memory is formed.
// 4. Sharing: `futures_io` traits are implemented for `&TcpStream` and `&UnixStream`, so the
//    owned halves (`split.rs`) are one `Arc` of the stream; reads and writes wait on separate
//    wakers in the reactor and never steal each other's wake-ups. Dropping the write half
//    shuts down the write direction (as tokio does), so the peer sees end-of-file.
// 5. Backpressure: a write that would block returns `Pending` with the writer's waker
//    registered; the task is woken by the next writability edge, never by polling in a loop.
//
// Name resolution of `ToSocketAddrs` runs on the calling thread (as std's does): instant for
// literal addresses, a blocking `getaddrinfo` for host names (documented as a caveat).

mod split;
mod sys;
mod tcp;
mod tcp_listener;
mod udp;
#[cfg(unix)]
mod unix;

pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use tcp::TcpStream;
pub use tcp_listener::TcpListener;
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixListener, UnixStream};

/// The trait impls every stream socket type shares (`Debug`, fd access, and `futures_io` on the
/// type and on a shared reference to it). The type has an `inner: Async<std type>` field and
/// `local_addr`, `peer_addr` and `shutdown` methods.
macro_rules! stream_io_impls {
    ($t:ident) => {
        impl ::std::fmt::Debug for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("local_addr", &self.local_addr().ok())
                    .field("peer_addr", &self.peer_addr().ok())
                    .field("fd", &::std::os::fd::AsRawFd::as_raw_fd(self))
                    .finish()
            }
        }

        impl ::std::os::fd::AsFd for $t {
            fn as_fd(&self) -> ::std::os::fd::BorrowedFd<'_> {
                self.inner.get_ref().as_fd()
            }
        }

        impl ::std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> ::std::os::fd::RawFd {
                self.inner.get_ref().as_raw_fd()
            }
        }

        impl futures_io::AsyncRead for &$t {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                let len = buf.len();
                self.inner
                    .poll_read_stream(cx, len, |mut s| ::std::io::Read::read(&mut s, buf))
            }

            fn poll_read_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.inner
                    .poll_read_with(cx, |mut s| ::std::io::Read::read_vectored(&mut s, bufs))
            }
        }

        impl futures_io::AsyncWrite for &$t {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                let len = buf.len();
                self.inner
                    .poll_write_stream(cx, len, |mut s| ::std::io::Write::write(&mut s, buf))
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                self.inner
                    .poll_write_with(cx, |mut s| ::std::io::Write::write_vectored(&mut s, bufs))
            }

            /// Nothing is buffered in user space: always ready.
            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::task::Poll::Ready(Ok(()))
            }

            /// Shuts down the write direction (`shutdown(Write)`).
            fn poll_close(
                self: ::std::pin::Pin<&mut Self>,
                _cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::task::Poll::Ready(self.shutdown(::std::net::Shutdown::Write))
            }
        }

        impl futures_io::AsyncRead for $t {
            fn poll_read(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut [u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
            }
        }

        impl futures_io::AsyncWrite for $t {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_close(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut &*self).poll_close(cx)
            }
        }
    };
}
pub(crate) use stream_io_impls;
