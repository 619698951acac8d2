//! TCP over loopback: echo, many concurrent connections, split halves, the OS errors passed on
//! unchanged (refused, address in use, reset, half-close), and writers to a peer that never
//! reads waiting instead of spinning.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{runtime, wait_until, within, TIMEOUT};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use pitcrew::net::{TcpListener, TcpStream};
use pitcrew::Runtime;

/// Runs `fut` on `rt` from a helper thread, failing the test if it takes longer than
/// [`TIMEOUT`].
#[track_caller]
fn block<F>(rt: &Runtime, what: &str, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = rt.handle().clone();
    within(what, TIMEOUT, move || handle.block_on(fut))
}

/// Accepts connections forever, echoing each on its own task until the peer closes.
fn spawn_echo_server(listener: TcpListener) {
    pitcrew::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            pitcrew::spawn(async move {
                let (mut reader, mut writer) = (&stream, &stream);
                futures_lite::io::copy(&mut reader, &mut writer)
                    .await
                    .expect("echo");
                stream.shutdown(Shutdown::Write).expect("shutdown");
            });
        }
    });
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (capped by the hard limit).
fn raise_nofile_soft_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit");
    if limit.rlim_cur < want {
        limit.rlim_cur = want.min(limit.rlim_max);
        // SAFETY: `limit` is a valid `rlimit`; raising the soft limit up to the hard one needs
        // no privilege.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit");
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn echo_server_and_client() {
    let rt = runtime(2);
    block(&rt, "echo", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        spawn_echo_server(listener);

        let mut client = TcpStream::connect(addr).await?;
        assert_eq!(client.peer_addr()?, addr);
        for round in 0..50u32 {
            let msg = format!("message number {round}");
            client.write_all(msg.as_bytes()).await?;
            let mut back = vec![0; msg.len()];
            client.read_exact(&mut back).await?;
            assert_eq!(back, msg.as_bytes());
        }
        // Half-close: the server sees end-of-file, closes its side, and we see ours.
        client.close().await?;
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await?, 0);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn five_hundred_connections_each_echo_one_hundred_messages() {
    const CONNECTIONS: usize = 500;
    const MESSAGES: usize = 100;
    const LEN: usize = 64;
    // Both ends of 500 connections: make sure a small default soft limit (1024) is not the
    // thing being tested.
    raise_nofile_soft_limit(4 * CONNECTIONS as u64);
    let rt = runtime(2);
    let checked = block(&rt, "500 echo connections", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        spawn_echo_server(listener);

        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|conn| {
                pitcrew::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let mut checked = 0usize;
                    for msg in 0..MESSAGES {
                        // Every byte depends on the connection, the message and its position,
                        // so a byte delivered to the wrong connection or out of order shows.
                        let out: Vec<u8> =
                            (0..LEN).map(|i| (conn * 7 + msg * 13 + i) as u8).collect();
                        stream.write_all(&out).await?;
                        let mut back = [0u8; LEN];
                        stream.read_exact(&mut back).await?;
                        assert_eq!(&back[..], &out[..], "connection {conn}, message {msg}");
                        checked += LEN;
                    }
                    io::Result::Ok(checked)
                })
            })
            .collect();
        let mut total = 0;
        for client in clients {
            total += client.await.expect("client task")?;
        }
        io::Result::Ok(total)
    })
    .unwrap();
    assert_eq!(checked, CONNECTIONS * MESSAGES * LEN);
}

#[test]
fn split_halves_work_from_two_tasks() {
    const MESSAGES: usize = 1_000;
    let rt = runtime(2);
    block(&rt, "split halves", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        spawn_echo_server(listener);

        let (mut reader, mut writer) = TcpStream::connect(addr).await?.into_split();
        assert_eq!(reader.peer_addr()?, addr);
        assert_eq!(writer.local_addr()?, reader.local_addr()?);
        let write_task = pitcrew::spawn(async move {
            for i in 0..MESSAGES as u32 {
                writer.write_all(&i.to_le_bytes()).await?;
            }
            io::Result::Ok(writer)
        });
        let read_task = pitcrew::spawn(async move {
            let mut word = [0u8; 4];
            for i in 0..MESSAGES as u32 {
                reader.read_exact(&mut word).await?;
                assert_eq!(u32::from_le_bytes(word), i);
            }
            io::Result::Ok(reader)
        });
        let writer = write_task.await??;
        let reader = read_task.await??;
        let stream = reader.reunite(writer).expect("halves of one stream");
        assert_eq!(stream.peer_addr()?, addr);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn reunite_refuses_halves_of_different_streams_and_dropping_the_writer_sends_eof() {
    let rt = runtime(2);
    block(&rt, "reunite", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (read_a, write_a) = TcpStream::connect(addr).await?.into_split();
        let (mut server_a, _) = listener.accept().await?;
        let (read_b, write_b) = TcpStream::connect(addr).await?.into_split();
        let err = read_a.reunite(write_b).expect_err("halves of two streams");
        assert!(err.to_string().contains("not from the same stream"));
        let pitcrew::net::ReuniteError(read_a, write_b) = err;
        drop((read_b, write_b));

        // Dropping the write half shuts down the write direction: the server reads EOF
        // while the read half is still alive.
        drop(write_a);
        let mut rest = Vec::new();
        assert_eq!(server_a.read_to_end(&mut rest).await?, 0);
        server_a.write_all(b"still open").await?;
        let mut back = [0; 10];
        let mut read_a = read_a;
        read_a.read_exact(&mut back).await?;
        assert_eq!(&back, b"still open");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn connect_to_a_closed_port_is_connection_refused() {
    let rt = runtime(2);
    let addr = closed_port();
    let err = block(&rt, "refused connect", async move {
        TcpStream::connect(addr).await
    })
    .expect_err("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
}

#[test]
fn connect_tries_each_address_in_turn() {
    let rt = runtime(2);
    block(&rt, "connect to the second address", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let good = listener.local_addr()?;
        let addrs = [closed_port(), good];
        let stream = TcpStream::connect(&addrs[..]).await?;
        assert_eq!(stream.peer_addr()?, good);

        let none: &[SocketAddr] = &[];
        let err = TcpStream::connect(none).await.expect_err("no address");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn bind_to_a_used_port_is_addr_in_use() {
    let rt = runtime(1);
    let err = block(&rt, "bind twice", async {
        let first = TcpListener::bind("127.0.0.1:0").await?;
        let second = TcpListener::bind(first.local_addr()?).await;
        drop(first);
        second
    })
    .expect_err("the port is taken");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
}

#[test]
fn a_reset_connection_reads_connection_reset() {
    let rt = runtime(2);
    let err = block(&rt, "reset", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2::SockRef::from(&server).set_linger(Some(Duration::ZERO))?;
        drop(server);
        let mut buf = [0; 16];
        client.read(&mut buf).await
    })
    .expect_err("the peer reset the connection");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
}

#[test]
fn half_close_delivers_eof_and_the_other_direction_stays_open() {
    let rt = runtime(2);
    block(&rt, "half-close", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (mut server, _) = listener.accept().await?;
        client.write_all(b"request").await?;
        client.shutdown(Shutdown::Write)?;
        let mut request = Vec::new();
        server.read_to_end(&mut request).await?;
        assert_eq!(request, b"request");
        server.write_all(b"response").await?;
        drop(server);
        let mut response = Vec::new();
        client.read_to_end(&mut response).await?;
        assert_eq!(response, b"response");
        // Writing after our own shutdown is the OS error (EPIPE).
        let err = client
            .write_all(b"more")
            .await
            .expect_err("write after shutdown");
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err:?}");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn a_writer_to_a_peer_that_never_reads_waits_without_spinning() {
    let rt = runtime(2);
    let (client, mut server) = block(&rt, "connect", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        io::Result::Ok((client, server))
    })
    .unwrap();

    // Poll writes by hand on this (non-runtime) thread until one is pending: the socket
    // buffers are full and the peer does not read.
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let deadline = Instant::now() + TIMEOUT;
    let mut write = loop {
        assert!(Instant::now() < deadline, "writes never blocked");
        let mut write = Box::pin(async { (&client).write(&chunk).await });
        match write.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(n)) => sent += n,
            Poll::Ready(Err(e)) => panic!("write failed: {e}"),
            Poll::Pending => break write,
        }
    };
    assert!(sent > 0);

    // The writer waits: nobody wakes it while the peer reads nothing.
    let woken_before = counter.0.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        woken_before,
        "a blocked writer was woken while the peer read nothing"
    );
    assert!(write.as_mut().poll(&mut cx).is_pending());

    // Once the peer drains its buffer, the writer is woken and completes.
    let drained = block(&rt, "drain", async move {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < sent {
            total += server.read(&mut buf).await?;
        }
        io::Result::Ok(total)
    })
    .unwrap();
    assert!(drained >= sent);
    wait_until("the writer is woken", TIMEOUT, || {
        counter.0.load(Ordering::SeqCst) > woken_before
    });
    match write.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(n)) => assert!(n > 0),
        other => panic!("the write did not complete after the peer read: {other:?}"),
    }
}

#[test]
fn accept_and_connect_from_many_tasks_with_a_std_listener() {
    let rt = runtime(2);
    block(&rt, "from_std", async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let listener = TcpListener::from_std(std_listener)?;
        let addr = listener.local_addr()?;
        let clients: Vec<_> = (0..20)
            .map(|_| pitcrew::spawn(async move { TcpStream::connect(addr).await }))
            .collect();
        let mut peers = Vec::new();
        for _ in 0..20 {
            let (stream, peer) = listener.accept().await?;
            assert_eq!(stream.peer_addr()?, peer);
            peers.push(peer);
        }
        for client in clients {
            let client = client.await??;
            assert!(peers.contains(&client.local_addr()?));
        }
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn socket_options_and_addresses() {
    let rt = runtime(1);
    block(&rt, "options", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let stream = TcpStream::connect(listener.local_addr()?).await?;
        stream.set_nodelay(true)?;
        assert!(stream.nodelay()?);
        stream.set_nodelay(false)?;
        assert!(!stream.nodelay()?);
        stream.set_ttl(42)?;
        assert_eq!(stream.ttl()?, 42);
        let debug = format!("{stream:?} {listener:?}");
        assert!(debug.contains("TcpStream") && debug.contains("TcpListener"));
        let std_stream = stream.into_std()?;
        assert_eq!(std_stream.peer_addr()?, listener.local_addr()?);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn a_pending_accept_is_cancel_safe() {
    let rt = runtime(2);
    block(&rt, "cancelled accept", async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Poll an accept once (nothing is queued) and drop it.
        {
            let accept = pin!(listener.accept());
            let waker = Waker::from(Arc::new(CountingWaker::default()));
            assert!(accept.poll(&mut Context::from_waker(&waker)).is_pending());
        }
        let client = TcpStream::connect(addr).await?;
        let (server, peer) = listener.accept().await?;
        assert_eq!(peer, client.local_addr()?);
        drop(server);
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn net_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TcpListener>();
    send_sync::<TcpStream>();
    send_sync::<pitcrew::net::OwnedReadHalf>();
    send_sync::<pitcrew::net::OwnedWriteHalf>();
    send_sync::<pitcrew::net::ReuniteError>();
    send_sync::<pitcrew::net::UdpSocket>();
    send_sync::<pitcrew::net::UnixListener>();
    send_sync::<pitcrew::net::UnixStream>();
}
