//! hyper 1.x on pitcrew (feature `hyper`): HTTP/1 and HTTP/2 (prior knowledge) servers and
//! clients both on pitcrew, a stream that is not pitcrew's behind `HyperIo`, and `HyperTimer`.
#![cfg(feature = "hyper")]
// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{runtime, within, TIMEOUT};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::Timer;
use hyper::service::service_fn;
use hyper::{Request, Response};
use pitcrew::hyper::{HyperExecutor, HyperIo, HyperTimer};
use pitcrew::net::{TcpListener, TcpStream};
use pitcrew::Runtime;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The end of an HTTP/2 connection that closes second may find the peer's socket already gone
/// while its own last frames (a GOAWAY, a SETTINGS ack) are on the way out: a reset or a broken
/// pipe there is the connection ending, not a failure. Anything else is returned.
fn allow_reset_at_close(result: Result<(), BoxError>) -> Result<(), BoxError> {
    let Err(e) = result else { return Ok(()) };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) {
                return Ok(());
            }
        }
        cause = c.source();
    }
    Err(e)
}

#[track_caller]
fn block<F>(rt: &Runtime, what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = rt.handle().clone();
    within(what, TIMEOUT, move || handle.block_on(fut))
}

/// Answers every request with "hello, {path}" and the protocol version it came in on.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello, {} over {:?}", req.uri().path(), req.version());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn get<B>(sender: &mut B, path: &str) -> Result<(hyper::StatusCode, String), BoxError>
where
    B: SendRequest,
{
    let request = Request::get(format!("http://localhost{path}"))
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())?;
    let response = sender.send(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// The `send_request` of hyper's HTTP/1 and HTTP/2 client senders, under one name.
trait SendRequest {
    fn send(
        &mut self,
        req: Request<Empty<Bytes>>,
    ) -> impl Future<Output = hyper::Result<Response<Incoming>>> + Send;
}

impl SendRequest for hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    async fn send(&mut self, req: Request<Empty<Bytes>>) -> hyper::Result<Response<Incoming>> {
        // HTTP/1 carries one request at a time: wait until the previous one is done.
        self.ready().await?;
        self.send_request(req).await
    }
}

impl SendRequest for hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    fn send(
        &mut self,
        req: Request<Empty<Bytes>>,
    ) -> impl Future<Output = hyper::Result<Response<Incoming>>> + Send {
        self.send_request(req)
    }
}

#[test]
fn http1_hello_world_served_and_fetched_on_pitcrew() {
    let rt = runtime(2);
    block(&rt, "http/1", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = pitcrew::spawn(async move {
            let (stream, _) = listener.accept().await?;
            hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(HyperIo::new(stream), service_fn(hello))
                .await?;
            Ok::<_, BoxError>(())
        });

        let stream = TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
        let conn = pitcrew::spawn(conn);
        for i in 0..20 {
            let (status, body) = get(&mut sender, &format!("/{i}")).await?;
            assert_eq!(status, 200);
            assert_eq!(body, format!("hello, /{i} over HTTP/1.1"));
        }
        drop(sender);
        conn.await??;
        server.await??;
        Ok::<_, BoxError>(())
    })
    .unwrap();
}

#[test]
fn http2_prior_knowledge_served_and_fetched_on_pitcrew() {
    let rt = runtime(2);
    block(&rt, "http/2", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = pitcrew::spawn(async move {
            let (stream, _) = listener.accept().await?;
            hyper::server::conn::http2::Builder::new(HyperExecutor::new())
                .timer(HyperTimer::new())
                .serve_connection(HyperIo::new(stream), service_fn(hello))
                .await?;
            Ok::<_, BoxError>(())
        });

        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer::new())
            .handshake(HyperIo::new(stream))
            .await?;
        let conn = pitcrew::spawn(conn);
        // Concurrent requests, multiplexed on one connection.
        let requests: Vec<_> = (0..20)
            .map(|i| {
                let mut sender = sender.clone();
                pitcrew::spawn(async move { get(&mut sender, &format!("/{i}")).await })
            })
            .collect();
        for (i, request) in requests.into_iter().enumerate() {
            let (status, body) = request.await??;
            assert_eq!(status, 200);
            assert_eq!(body, format!("hello, /{i} over HTTP/2.0"));
        }
        drop(sender);
        allow_reset_at_close(conn.await?.map_err(Into::into))?;
        allow_reset_at_close(server.await?)?;
        Ok::<_, BoxError>(())
    })
    .unwrap();
}

/// A stream type pitcrew does not know: `HyperIo` must hand it zeroed buffers.
struct Foreign(TcpStream);

impl futures_io::AsyncRead for Foreign {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl futures_io::AsyncWrite for Foreign {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[test]
fn hyper_io_serves_a_foreign_stream_with_a_large_body() {
    let rt = runtime(2);
    block(&rt, "foreign stream", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let big = Bytes::from(vec![b'z'; 300_000]);
        let body = big.clone();
        let server = pitcrew::spawn(async move {
            let (stream, _) = listener.accept().await?;
            let service = service_fn(move |_req: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(HyperIo::new(Foreign(stream)), service)
                .await?;
            Ok::<_, BoxError>(())
        });
        let stream = Foreign(TcpStream::connect(addr).await?);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
        let conn = pitcrew::spawn(conn);
        let request = Request::get("/big")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let got = response.into_body().collect().await?.to_bytes();
        assert_eq!(got, big);
        drop(sender);
        conn.await??;
        server.await??;
        Ok::<_, BoxError>(())
    })
    .unwrap();
}

#[test]
fn hyper_timer_sleeps_and_resets() {
    let rt = runtime(2);
    block(&rt, "hyper timer", async {
        let timer = HyperTimer::default();
        let start = Instant::now();
        timer.sleep(Duration::from_millis(20)).await;
        assert!(start.elapsed() >= Duration::from_millis(20));

        // Reset a far-away sleep to a near deadline: it fires at the new one.
        let mut sleep = timer.sleep_until(Instant::now() + Duration::from_secs(3600));
        let near = Instant::now() + Duration::from_millis(10);
        timer.reset(&mut sleep, near);
        sleep.await;
        assert!(Instant::now() >= near);
    });
}
