//! A hello-world HTTP/1.1 server: hyper 1.x on pitcrew.
//!
//! Run with `cargo run --release --features hyper --example hyper_hello -- 3000`, then
//! `curl http://127.0.0.1:3000/`. The port is the first argument (default 3000).
//! `examples/hyper_hello_tokio.rs` is the same server on tokio, for `benches/hyper_wrk.sh`.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use pitcrew::hyper::{HyperIo, HyperTimer};
use pitcrew::net::TcpListener;

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!\n",
    ))))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a port number: {arg}"))?,
        None => 3000,
    };
    let rt = pitcrew::Runtime::new()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                // Out of file descriptors, or the peer gave up before we accepted: the listener
                // itself is fine (and backs off by itself after EMFILE), so keep serving.
                Err(err) => {
                    eprintln!("accept: {err}");
                    continue;
                }
            };
            stream.set_nodelay(true)?;
            pitcrew::spawn(async move {
                let served = http1::Builder::new()
                    .timer(HyperTimer::new())
                    .serve_connection(HyperIo::new(stream), service_fn(hello))
                    .await;
                if let Err(err) = served {
                    eprintln!("connection: {err}");
                }
            });
        }
    })
}
