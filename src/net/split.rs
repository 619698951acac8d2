//! Owned read and write halves of a stream ([`TcpStream`] or `UnixStream`), for two tasks.
//!
//! Both halves hold the same `Arc` of the stream. That is enough because the stream's reader
//! and writer wait on separate wakers in the reactor: reading through `&S` in one task and
//! writing through `&S` in another never steal each other's wake-ups.

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::loom::DataArc;
use crate::net::TcpStream;

/// The read half of a stream, from [`TcpStream::into_split`] (or `UnixStream::into_split`).
///
/// Reads with `futures_io::AsyncRead` (and `tokio::io::AsyncRead` behind the `tokio-io`
/// feature). The stream closes when both halves are dropped.
///
/// # Examples
///
/// ```
/// # pitcrew::Runtime::new().unwrap().block_on(async {
/// use futures_lite::AsyncReadExt;
/// use pitcrew::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let client = TcpStream::connect(listener.local_addr()?).await?;
/// let (server, _) = listener.accept().await?;
/// let (mut read, write) = server.into_split();
/// drop(client); // the peer closes: the read half sees end-of-file
/// let mut rest = Vec::new();
/// assert_eq!(read.read_to_end(&mut rest).await?, 0);
/// # drop(write);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct OwnedReadHalf<S = TcpStream> {
    stream: DataArc<S>,
}

/// The write half of a stream, from [`TcpStream::into_split`] (or `UnixStream::into_split`).
///
/// Writes with `futures_io::AsyncWrite` (and `tokio::io::AsyncWrite` behind the `tokio-io`
/// feature). Dropping it shuts down the write direction, so the peer reads end-of-file even
/// while the read half lives on; `poll_close` does the same earlier.
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
/// let (_read, mut write) = server.into_split();
/// write.write_all(b"bye").await?;
/// drop(write); // shuts down the write direction
/// let mut got = Vec::new();
/// let mut client = client;
/// client.read_to_end(&mut got).await?;
/// assert_eq!(got, b"bye");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct OwnedWriteHalf<S = TcpStream> {
    stream: DataArc<S>,
    shutdown_write: fn(&S) -> io::Result<()>,
    shutdown_on_drop: bool,
}

/// The halves given to `reunite` came from different streams; here they are back.
///
/// # Examples
///
/// ```
/// # pitcrew::Runtime::new().unwrap().block_on(async {
/// use pitcrew::net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let a = TcpStream::connect(listener.local_addr()?).await?;
/// let b = TcpStream::connect(listener.local_addr()?).await?;
/// let (a_read, _a_write) = a.into_split();
/// let (_b_read, b_write) = b.into_split();
/// // Halves of different streams: both come back in the error.
/// let err = a_read.reunite(b_write).unwrap_err();
/// let (a_read, _b_write) = (err.0, err.1);
/// # drop(a_read);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct ReuniteError<S = TcpStream>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

/// Splits `stream` into halves; `shutdown_write` is what dropping the write half does.
pub(crate) fn split<S>(
    stream: DataArc<S>,
    shutdown_write: fn(&S) -> io::Result<()>,
) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let read = OwnedReadHalf {
        stream: DataArc::clone(&stream),
    };
    let write = OwnedWriteHalf {
        stream,
        shutdown_write,
        shutdown_on_drop: true,
    };
    (read, write)
}

/// Puts two halves of the same stream back together.
pub(crate) fn reunite<S>(
    read: OwnedReadHalf<S>,
    mut write: OwnedWriteHalf<S>,
) -> Result<S, ReuniteError<S>> {
    if !DataArc::ptr_eq(&read.stream, &write.stream) {
        return Err(ReuniteError(read, write));
    }
    write.shutdown_on_drop = false;
    drop(write);
    // The two halves held the only references, and the write half's is gone.
    match DataArc::try_unwrap(read.stream) {
        Ok(stream) => Ok(stream),
        Err(_) => unreachable!("a split stream is shared by its two halves only"),
    }
}

impl<S> OwnedReadHalf<S> {
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }
}

impl<S> OwnedWriteHalf<S> {
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }
}

impl<S> AsRef<S> for OwnedReadHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S> AsRef<S> for OwnedWriteHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // The peer may be gone already (`NotConnected`); there is nobody to tell.
            let _ = (self.shutdown_write)(&self.stream);
        }
    }
}

impl<S> AsyncRead for OwnedReadHalf<S>
where
    for<'a> &'a S: AsyncRead,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read_vectored(cx, bufs)
    }
}

impl<S> AsyncWrite for OwnedWriteHalf<S>
where
    for<'a> &'a S: AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let closed = Pin::new(&mut &*self.stream).poll_close(cx);
        if let Poll::Ready(Ok(())) = closed {
            self.shutdown_on_drop = false;
        }
        closed
    }
}

impl<S: fmt::Debug> fmt::Debug for OwnedReadHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OwnedReadHalf").field(&*self.stream).finish()
    }
}

impl<S: fmt::Debug> fmt::Debug for OwnedWriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("stream", &*self.stream)
            .field("shutdown_on_drop", &self.shutdown_on_drop)
            .finish()
    }
}

impl<S> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError").finish_non_exhaustive()
    }
}

impl<S> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}
