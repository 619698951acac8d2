//! Unix domain sockets: listener and stream round trip, `pair`, split halves, and the OS
//! errors passed on unchanged.
#![cfg(unix)]
// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::path::PathBuf;

use common::{runtime, within, TIMEOUT};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use pitcrew::net::{UnixListener, UnixStream};
use pitcrew::Runtime;

#[track_caller]
fn block<F>(rt: &Runtime, what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = rt.handle().clone();
    within(what, TIMEOUT, move || handle.block_on(fut))
}

/// A fresh directory for one test's socket files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("pitcrew-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn listener_and_stream_round_trip() {
    let dir = TempDir::new("unix-round-trip");
    let path = dir.path("echo.sock");
    let rt = runtime(2);
    block(&rt, "unix echo", async move {
        let listener = UnixListener::bind(&path).await?;
        assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
        let server = pitcrew::spawn(async move {
            for _ in 0..3 {
                let (stream, _) = listener.accept().await?;
                pitcrew::spawn(async move {
                    let (mut r, mut w) = (&stream, &stream);
                    futures_lite::io::copy(&mut r, &mut w).await?;
                    stream.shutdown(Shutdown::Write)
                });
            }
            io::Result::Ok(())
        });
        for conn in 0..3u8 {
            let mut client = UnixStream::connect(&path).await?;
            assert_eq!(client.peer_addr()?.as_pathname(), Some(path.as_path()));
            let msg = vec![conn; 10_000];
            client.write_all(&msg).await?;
            client.close().await?;
            let mut back = Vec::new();
            client.read_to_end(&mut back).await?;
            assert_eq!(back, msg);
        }
        server.await?
    })
    .unwrap();
}

#[test]
fn pair_and_split_halves_in_two_tasks() {
    let rt = runtime(2);
    block(&rt, "unix pair", async {
        let (a, mut b) = UnixStream::pair()?;
        let (mut read, mut write) = a.into_split();
        let writer = pitcrew::spawn(async move {
            for i in 0..500u32 {
                write.write_all(&i.to_be_bytes()).await?;
            }
            io::Result::Ok(write)
        });
        let echo = pitcrew::spawn(async move {
            let mut buf = [0u8; 4];
            for _ in 0..500 {
                b.read_exact(&mut buf).await?;
                b.write_all(&buf).await?;
            }
            io::Result::Ok(())
        });
        let mut buf = [0u8; 4];
        for i in 0..500u32 {
            read.read_exact(&mut buf).await?;
            assert_eq!(u32::from_be_bytes(buf), i);
        }
        echo.await??;
        let write = writer.await??;
        let _stream = write.reunite(read).expect("same stream");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn connect_to_a_missing_path_is_not_found() {
    let dir = TempDir::new("unix-missing");
    let path = dir.path("nobody.sock");
    let rt = runtime(1);
    let err = block(&rt, "connect to nothing", async move {
        UnixStream::connect(&path).await
    })
    .expect_err("no such socket");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
}

#[test]
fn connect_to_a_socket_nobody_listens_on_is_refused() {
    let dir = TempDir::new("unix-refused");
    let path = dir.path("gone.sock");
    let rt = runtime(1);
    let err = block(&rt, "connect to a dead socket", async move {
        drop(UnixListener::bind(&path).await?);
        UnixStream::connect(&path).await
    })
    .expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
}

#[test]
fn bind_to_an_existing_path_is_addr_in_use() {
    let dir = TempDir::new("unix-in-use");
    let path = dir.path("taken.sock");
    let rt = runtime(1);
    let err = block(&rt, "bind twice", async move {
        let _first = UnixListener::bind(&path).await?;
        UnixListener::bind(&path).await
    })
    .expect_err("the path is taken");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
}
