//! The network rows: TCP over loopback, both ends of every connection on the runtime under test,
//! `TCP_NODELAY` on both ends, each runtime with its own I/O (pitcrew's `net`, tokio's `net`,
//! async-io's `Async<TcpStream>` for async-executor).
//!
//! * `tcp_echo_lat`: 1 connection x 20,000 round trips of 64 B; ns per round trip. Tells
//!   whether a readiness event costs thread hops.
//! * `tcp_echo_tput`: 50 connections x 2,000 round trips of 64 B, all at once; ns per round
//!   trip.
//! * `tcp_echo_1k`: 50 connections x 1,000 round trips of 1 KiB; ns per round trip.
//! * `tcp_accept_churn`: 5,000 x (connect, accept, one 64 B echo, close), one after another;
//!   ns per connection. The client closes with `SO_LINGER` 0 (a reset), so that tens of
//!   thousands of connections per run leave no `TIME_WAIT` behind to exhaust the ports.
//!
//! Echo rows connect every client before the clock starts. `BENCH_QUICK=1` divides every count
//! by 4.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::{AsyncExecutorRt, PitcrewRt, Rt, Sample, Spawner, TokioRt};

/// `n`, or a quarter of it under `BENCH_QUICK`.
fn scaled(n: usize) -> usize {
    static QUICK: OnceLock<bool> = OnceLock::new();
    let quick = *QUICK
        .get_or_init(|| std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"));
    if quick {
        n / 4
    } else {
        n
    }
}

/// One runtime's TCP types, behind one interface so each workload is written once. Every
/// method runs inside a task of that runtime; failures panic (a benchmark has no one to report
/// to).
pub(super) trait NetRt: Rt {
    type Listener: Send + 'static;
    type Stream: Send + 'static;

    /// A listener on 127.0.0.1 with a free port.
    fn bind() -> impl Future<Output = (Self::Listener, SocketAddr)> + Send;
    fn accept(listener: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    /// Connects and sets `TCP_NODELAY`.
    fn connect(addr: SocketAddr) -> impl Future<Output = Self::Stream> + Send;
    fn set_nodelay(stream: &Self::Stream);
    fn write_all<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = ()> + Send + 'a;
    fn read_exact<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = ()> + Send + 'a;
    /// Closes with a reset (`SO_LINGER` 0), leaving no `TIME_WAIT`.
    fn abort(stream: Self::Stream);
}

impl NetRt for PitcrewRt {
    type Listener = pitcrew::net::TcpListener;
    type Stream = pitcrew::net::TcpStream;

    async fn bind() -> (Self::Listener, SocketAddr) {
        let listener = pitcrew::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        (listener, addr)
    }

    async fn accept(listener: &Self::Listener) -> Self::Stream {
        let (stream, _) = listener.accept().await.expect("accept");
        stream
    }

    async fn connect(addr: SocketAddr) -> Self::Stream {
        let stream = pitcrew::net::TcpStream::connect(addr)
            .await
            .expect("connect");
        Self::set_nodelay(&stream);
        stream
    }

    fn set_nodelay(stream: &Self::Stream) {
        stream.set_nodelay(true).expect("set_nodelay");
    }

    async fn write_all<'a>(stream: &'a mut Self::Stream, buf: &'a [u8]) {
        AsyncWriteExt::write_all(stream, buf).await.expect("write");
    }

    async fn read_exact<'a>(stream: &'a mut Self::Stream, buf: &'a mut [u8]) {
        AsyncReadExt::read_exact(stream, buf).await.expect("read");
    }

    fn abort(stream: Self::Stream) {
        linger_zero(&stream);
    }
}

impl NetRt for TokioRt {
    type Listener = tokio::net::TcpListener;
    type Stream = tokio::net::TcpStream;

    async fn bind() -> (Self::Listener, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        (listener, addr)
    }

    async fn accept(listener: &Self::Listener) -> Self::Stream {
        let (stream, _) = listener.accept().await.expect("accept");
        stream
    }

    async fn connect(addr: SocketAddr) -> Self::Stream {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self::set_nodelay(&stream);
        stream
    }

    fn set_nodelay(stream: &Self::Stream) {
        stream.set_nodelay(true).expect("set_nodelay");
    }

    async fn write_all<'a>(stream: &'a mut Self::Stream, buf: &'a [u8]) {
        tokio::io::AsyncWriteExt::write_all(stream, buf)
            .await
            .expect("write");
    }

    async fn read_exact<'a>(stream: &'a mut Self::Stream, buf: &'a mut [u8]) {
        tokio::io::AsyncReadExt::read_exact(stream, buf)
            .await
            .expect("read");
    }

    fn abort(stream: Self::Stream) {
        linger_zero(&stream);
    }
}

impl NetRt for AsyncExecutorRt {
    type Listener = async_io::Async<std::net::TcpListener>;
    type Stream = async_io::Async<std::net::TcpStream>;

    async fn bind() -> (Self::Listener, SocketAddr) {
        let listener =
            async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("local_addr");
        (listener, addr)
    }

    async fn accept(listener: &Self::Listener) -> Self::Stream {
        let (stream, _) = listener.accept().await.expect("accept");
        stream
    }

    async fn connect(addr: SocketAddr) -> Self::Stream {
        let stream = async_io::Async::<std::net::TcpStream>::connect(addr)
            .await
            .expect("connect");
        Self::set_nodelay(&stream);
        stream
    }

    fn set_nodelay(stream: &Self::Stream) {
        stream.get_ref().set_nodelay(true).expect("set_nodelay");
    }

    async fn write_all<'a>(stream: &'a mut Self::Stream, buf: &'a [u8]) {
        AsyncWriteExt::write_all(stream, buf).await.expect("write");
    }

    async fn read_exact<'a>(stream: &'a mut Self::Stream, buf: &'a mut [u8]) {
        AsyncReadExt::read_exact(stream, buf).await.expect("read");
    }

    fn abort(stream: Self::Stream) {
        linger_zero(&stream);
    }
}

fn linger_zero(stream: &impl std::os::fd::AsFd) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// Runs `body` as one task on the runtime; the body times itself and returns its sample.
fn run_timed<R, F, Fut>(rt: &R, body: F) -> Sample
where
    R: NetRt,
    F: FnOnce(R::Spawner) -> Fut,
    Fut: Future<Output = Sample> + Send + 'static,
{
    let driver = body(rt.spawner());
    rt.block_on(rt.spawn_remote(driver))
}

/// `connections` clients, each doing `trips` round trips of `len` bytes against an echo task
/// per connection; every echoed byte is checked. Times the round trips only.
fn echo<R: NetRt>(rt: &R, connections: usize, trips: usize, len: usize) -> Sample {
    run_timed(rt, move |s| async move {
        let (listener, addr) = R::bind().await;
        let server = {
            let s2 = s.clone();
            s.spawn(async move {
                for _ in 0..connections {
                    let mut stream = R::accept(&listener).await;
                    R::set_nodelay(&stream);
                    s2.spawn_detached(async move {
                        let mut buf = vec![0u8; len];
                        for _ in 0..trips {
                            R::read_exact(&mut stream, &mut buf).await;
                            R::write_all(&mut stream, &buf).await;
                        }
                    });
                }
            })
        };
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            streams.push(R::connect(addr).await);
        }
        server.await;

        let start = Instant::now();
        let clients: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(conn, mut stream)| {
                s.spawn(async move {
                    let mut out = vec![0u8; len];
                    let mut back = vec![0u8; len];
                    for trip in 0..trips {
                        out[0] = conn as u8;
                        out[len - 1] = trip as u8;
                        R::write_all(&mut stream, &out).await;
                        R::read_exact(&mut stream, &mut back).await;
                        assert_eq!(out, back, "echo mismatch");
                    }
                })
            })
            .collect();
        for client in clients {
            client.await;
        }
        Sample::new(start.elapsed(), connections * trips)
    })
}

/// 1 connection x 20,000 round trips x 64 B; per round trip.
pub(super) fn tcp_echo_lat<R: NetRt>(rt: &R) -> Sample {
    echo(rt, 1, scaled(20_000), 64)
}

/// 50 connections x 2,000 round trips x 64 B; per round trip.
pub(super) fn tcp_echo_tput<R: NetRt>(rt: &R) -> Sample {
    echo(rt, 50, scaled(2_000), 64)
}

/// 50 connections x 1,000 round trips x 1 KiB; per round trip.
pub(super) fn tcp_echo_1k<R: NetRt>(rt: &R) -> Sample {
    echo(rt, 50, scaled(1_000), 1024)
}

/// 5,000 x (connect, accept, one 64 B echo, close), one connection at a time, the server
/// spawning a task per connection as servers do; per connection.
pub(super) fn tcp_accept_churn<R: NetRt>(rt: &R) -> Sample {
    let connections = scaled(5_000);
    run_timed(rt, move |s| async move {
        let (listener, addr) = R::bind().await;
        let start = Instant::now();
        let server = {
            let s2 = s.clone();
            s.spawn(async move {
                for _ in 0..connections {
                    let mut stream = R::accept(&listener).await;
                    R::set_nodelay(&stream);
                    s2.spawn_detached(async move {
                        let mut buf = [0u8; 64];
                        R::read_exact(&mut stream, &mut buf).await;
                        R::write_all(&mut stream, &buf).await;
                    });
                }
            })
        };
        for i in 0..connections {
            let mut stream = R::connect(addr).await;
            let out = [i as u8; 64];
            let mut back = [0u8; 64];
            R::write_all(&mut stream, &out).await;
            R::read_exact(&mut stream, &mut back).await;
            assert_eq!(out, back, "echo mismatch");
            R::abort(stream);
        }
        server.await;
        Sample::new(start.elapsed(), connections)
    })
}
