//! A TCP echo server on pitcrew: every connection gets back what it sends.
//!
//! Run with `cargo run --release --example echo -- 8080` (the port is the first argument,
//! default 8080), then try `nc 127.0.0.1 8080`.

use std::net::Shutdown;

use pitcrew::net::{TcpListener, TcpStream};

/// Copies everything the peer sends back to it, then closes our side.
async fn echo(stream: TcpStream) -> std::io::Result<u64> {
    // `&TcpStream` reads and writes, so one stream serves as both ends of the copy.
    let (mut reader, mut writer) = (&stream, &stream);
    let bytes = futures_lite::io::copy(&mut reader, &mut writer).await?;
    stream.shutdown(Shutdown::Write)?;
    Ok(bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a port number: {arg}"))?,
        None => 8080,
    };
    let rt = pitcrew::Runtime::new()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("echoing on {}", listener.local_addr()?);
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    stream.set_nodelay(true)?;
                    pitcrew::spawn(async move {
                        match echo(stream).await {
                            Ok(bytes) => println!("{peer}: echoed {bytes} bytes"),
                            Err(err) => eprintln!("{peer}: {err}"),
                        }
                    });
                }
                // Out of descriptors, or a peer that gave up while queued: the listener is
                // fine (and backs off by itself after EMFILE), so keep serving.
                Err(err) => eprintln!("accept: {err}"),
            }
        }
    })
}
