//! UDP over loopback: round trips, connected sockets, a receiver waiting for a datagram, and
//! the OS errors passed on unchanged.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::io::{self, ErrorKind};
use std::sync::Arc;

use common::{runtime, within, TIMEOUT};
use pitcrew::net::UdpSocket;
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

#[test]
fn send_to_and_recv_from_round_trip() {
    let rt = runtime(2);
    block(&rt, "udp round trip", async {
        let server = UdpSocket::bind("127.0.0.1:0").await?;
        let client = UdpSocket::bind("127.0.0.1:0").await?;
        let server_addr = server.local_addr()?;
        let echo = pitcrew::spawn(async move {
            let mut buf = [0u8; 1500];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).await?;
                server.send_to(&buf[..n], from).await?;
            }
            io::Result::Ok(())
        });
        for i in 0..100u32 {
            let msg = format!("datagram {i}");
            assert_eq!(
                client.send_to(msg.as_bytes(), server_addr).await?,
                msg.len()
            );
            let mut buf = [0u8; 1500];
            let (n, from) = client.recv_from(&mut buf).await?;
            assert_eq!(from, server_addr);
            assert_eq!(&buf[..n], msg.as_bytes());
        }
        echo.await?
    })
    .unwrap();
}

#[test]
fn connected_sockets_send_and_recv() {
    let rt = runtime(2);
    block(&rt, "connected udp", async {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let b = UdpSocket::bind("127.0.0.1:0").await?;
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        assert_eq!(a.peer_addr()?, b.local_addr()?);
        a.send(b"from a").await?;
        let mut buf = [0u8; 64];
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"from a");
        b.send(b"from b").await?;
        let n = a.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"from b");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn a_receiver_waits_for_a_datagram_sent_by_another_task() {
    let rt = runtime(2);
    block(&rt, "waiting receiver", async {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = socket.local_addr()?;
        let receiver = {
            let socket = socket.clone();
            pitcrew::spawn(async move {
                let mut buf = [0u8; 16];
                let (n, _) = socket.recv_from(&mut buf).await?;
                io::Result::Ok(buf[..n].to_vec())
            })
        };
        // Let the receiver park on the empty socket before anything is sent.
        for _ in 0..10 {
            pitcrew::yield_now().await;
        }
        let sender = UdpSocket::bind("127.0.0.1:0").await?;
        sender.send_to(b"late", addr).await?;
        assert_eq!(receiver.await??, b"late");
        io::Result::Ok(())
    })
    .unwrap();
}

#[test]
fn a_connected_socket_sees_connection_refused_from_a_closed_port() {
    let rt = runtime(2);
    let err = block(&rt, "icmp unreachable", async {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(closed).await?;
        socket.send(b"anyone?").await?;
        // The ICMP port-unreachable arrives as a socket error that wakes the receiver.
        let mut buf = [0u8; 16];
        socket.recv(&mut buf).await
    })
    .expect_err("nobody listens on the port");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
}

#[test]
fn bind_to_a_used_port_is_addr_in_use() {
    let rt = runtime(1);
    let err = block(&rt, "bind twice", async {
        let first = UdpSocket::bind("127.0.0.1:0").await?;
        let second = UdpSocket::bind(first.local_addr()?).await;
        drop(first);
        second
    })
    .expect_err("the port is taken");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err:?}");
}
