//! `tokio::io::{AsyncRead, AsyncWrite}` on the net streams (feature `tokio-io`): echo through
//! tokio's extension traits, reads into uninitialised spare capacity, split halves and
//! shutdown.
#![cfg(feature = "tokio-io")]
// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::io;

use common::{runtime, within, TIMEOUT};
use pitcrew::net::{TcpListener, TcpStream, UnixStream};
use pitcrew::Runtime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[track_caller]
fn block<F>(rt: &Runtime, what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = rt.handle().clone();
    within(what, TIMEOUT, move || handle.block_on(fut))
}

/// Accepts one connection and echoes it line by line with tokio's traits until the peer
/// closes.
async fn serve_lines(listener: TcpListener) -> io::Result<usize> {
    let (stream, _) = listener.accept().await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut count = 0;
    while let Some(line) = lines.next_line().await? {
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
        count += 1;
    }
    write.shutdown().await?;
    Ok(count)
}

#[test]
fn tokio_traits_echo_lines_over_tcp() {
    let rt = runtime(2);
    block(&rt, "tokio-io echo", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = pitcrew::spawn(serve_lines(listener));

        let mut client = TcpStream::connect(addr).await?;
        let mut expected = Vec::new();
        for i in 0..200 {
            let line = format!("line {i} {}\n", "x".repeat(i));
            client.write_all(line.as_bytes()).await?;
            expected.extend_from_slice(line.as_bytes());
        }
        AsyncWriteExt::shutdown(&mut client).await?;
        // `read_to_end` reads into the Vec's spare capacity: the uninitialised path.
        let mut echoed = Vec::new();
        client.read_to_end(&mut echoed).await?;
        assert_eq!(echoed, expected);
        assert_eq!(server.await??, 200);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn read_buf_fills_uninitialised_capacity_exactly() {
    let rt = runtime(2);
    block(&rt, "read_buf", async {
        let (mut a, mut b) = UnixStream::pair()?;
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sent = payload.clone();
        let writer = pitcrew::spawn(async move {
            a.write_all(&sent).await?;
            AsyncWriteExt::shutdown(&mut a).await
        });
        let mut got = Vec::with_capacity(1024);
        loop {
            if got.capacity() == got.len() {
                got.reserve(4096);
            }
            let before = got.len();
            let n = b.read_buf(&mut got).await?;
            assert_eq!(got.len(), before + n);
            if n == 0 {
                break;
            }
        }
        writer.await??;
        assert_eq!(got, payload);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn split_halves_implement_tokio_traits_in_two_tasks() {
    let rt = runtime(2);
    block(&rt, "tokio-io halves", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let (mut server_read, mut server_write) = server.into_split();
        let echo = pitcrew::spawn(async move {
            tokio::io::copy(&mut server_read, &mut server_write).await?;
            server_write.shutdown().await
        });
        let (mut read, mut write) = client.into_split();
        let sender = pitcrew::spawn(async move {
            for i in 0..1_000u32 {
                write.write_u32(i).await?;
            }
            write.shutdown().await
        });
        for i in 0..1_000u32 {
            assert_eq!(read.read_u32().await?, i);
        }
        let mut rest = Vec::new();
        assert_eq!(read.read_to_end(&mut rest).await?, 0);
        sender.await??;
        echo.await??;
        io::Result::Ok(())
    })
    .unwrap();
}
