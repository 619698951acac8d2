//! `tokio::io::{AsyncRead, AsyncWrite}` for the net streams and their halves (feature
//! `tokio-io`).
//!
//! Reads fill the unfilled part of tokio's `ReadBuf` without zeroing it (see the design notes
//! in `compat/mod.rs`); writes and shutdown go through the streams' `futures_io` impls.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(unix)]
use crate::net::UnixStream;
use crate::net::{OwnedReadHalf, OwnedWriteHalf, TcpStream};

/// Runs one uninitialised-buffer read into the unfilled part of `buf` and marks what it read
/// as filled.
fn fill_uninit(
    buf: &mut ReadBuf<'_>,
    read: impl FnOnce(&mut [MaybeUninit<u8>]) -> Poll<io::Result<usize>>,
) -> Poll<io::Result<()>> {
    // SAFETY: `unfilled_mut` asks us never to de-initialise bytes through the slice; `read`
    // (a `read(2)` into it, `net::sys::read_uninit`) only ever writes bytes the kernel produced.
    let unfilled = unsafe { buf.unfilled_mut() };
    let len = unfilled.len();
    let n = ready!(read(unfilled))?;
    debug_assert!(n <= len, "read reported more bytes than the buffer holds");
    // SAFETY: the read wrote `n <= len` bytes at the start of the unfilled part.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        fill_uninit(buf, |b| self.poll_read_uninit(cx, b))
    }
}

impl AsyncRead for OwnedReadHalf<TcpStream> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        fill_uninit(buf, |b| self.stream().poll_read_uninit(cx, b))
    }
}

#[cfg(unix)]
impl AsyncRead for UnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        fill_uninit(buf, |b| self.poll_read_uninit(cx, b))
    }
}

#[cfg(unix)]
impl AsyncRead for OwnedReadHalf<UnixStream> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        fill_uninit(buf, |b| self.stream().poll_read_uninit(cx, b))
    }
}

/// tokio's `AsyncWrite` for a stream whose `futures_io` writes and `shutdown` it forwards to
/// (writes go straight to the socket, so there is nothing to flush).
macro_rules! tokio_async_write {
    ($stream:ty) => {
        impl AsyncWrite for $stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                futures_io::AsyncWrite::poll_write(self, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Shuts down the write direction.
            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    };
}

tokio_async_write!(TcpStream);

#[cfg(unix)]
tokio_async_write!(UnixStream);

impl<S> AsyncWrite for OwnedWriteHalf<S>
where
    for<'a> &'a S: futures_io::AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }

    /// Shuts down the write direction; dropping the half afterwards does nothing more.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}
