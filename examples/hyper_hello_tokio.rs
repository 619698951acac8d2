//! The `hyper_hello` server on tokio and hyper-util, for comparison (`benches/hyper_wrk.sh`).
//!
//! Run with `cargo run --release --features hyper --example hyper_hello_tokio -- 3001`. The
//! port is the first argument (default 3000).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    eprintln!("accept: {err}");
                    continue;
                }
            };
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
                if let Err(err) = served {
                    eprintln!("connection: {err}");
                }
            });
        }
    })
}
