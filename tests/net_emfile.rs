//! Accept when the process is out of file descriptors (`EMFILE`): the error reaches the caller
//! at once, a loop that retries does not spin, and the listener works again once descriptors
//! are freed.
//!
//! This lowers `RLIMIT_NOFILE` for the whole process, so it is a test binary of its own with a
//! single test.
#![cfg(target_os = "linux")]
// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{runtime, within, TIMEOUT};
use futures_lite::AsyncWriteExt;
use pitcrew::net::TcpListener;
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

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    limit
}

fn set_nofile_limit(limit: libc::rlimit) {
    // SAFETY: `limit` is a valid `rlimit`; lowering the soft limit needs no privilege.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// User plus system CPU time of the whole process (every thread).
fn process_cpu_time() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid `rusage` for getrusage to fill.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The highest descriptor number open in this process.
fn highest_open_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .expect("some descriptor is open")
}

fn is_emfile(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EMFILE)
}

#[test]
fn accept_under_fd_exhaustion_returns_emfile_without_spinning_and_recovers() {
    const CLIENTS: usize = 3;
    let rt = runtime(2);
    let listener = Arc::new(block(&rt, "bind", TcpListener::bind("127.0.0.1:0")).unwrap());
    let addr = listener.local_addr().unwrap();
    // Start the timer machinery before descriptors run out, as a long-running server would.
    block(&rt, "warm the timer", async {
        pitcrew::time::sleep(Duration::from_millis(1)).await
    });

    // Connections complete in the kernel's backlog; accepting them needs a descriptor each.
    let mut clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();

    // Run out of descriptors: lower the soft limit to just above what is open, then fill it.
    let original = nofile_limit();
    set_nofile_limit(libc::rlimit {
        rlim_cur: highest_open_fd() + 1 + 16,
        rlim_max: original.rlim_max,
    });
    let mut fillers = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(err) if is_emfile(&err) => break,
            Err(err) => panic!("unexpected error filling descriptors: {err}"),
        }
        assert!(fillers.len() < 10_000, "the lowered limit did not take");
    }

    // 1. The error reaches the caller at once.
    let l = listener.clone();
    let (first, took) = block(&rt, "accept under EMFILE", async move {
        let start = Instant::now();
        let result = l.accept().await.map(drop);
        (result, start.elapsed())
    });
    let err = first.expect_err("accept should fail while no descriptor is free");
    assert!(is_emfile(&err), "expected EMFILE, got {err:?}");
    assert!(took < Duration::from_secs(2), "the error took {took:?}");

    // 2. A loop that logs and retries does not spin: the listener backs off between attempts.
    let window = Duration::from_millis(600);
    let cpu_before = process_cpu_time();
    let wall_before = Instant::now();
    let l = listener.clone();
    let attempts = block(&rt, "retry loop under EMFILE", async move {
        let mut attempts = 0u32;
        while wall_before.elapsed() < window {
            match l.accept().await {
                Err(err) if is_emfile(&err) => attempts += 1,
                other => panic!("expected EMFILE, got {:?}", other.map(drop)),
            }
        }
        attempts
    });
    let wall = wall_before.elapsed();
    let cpu = process_cpu_time() - cpu_before;
    assert!(attempts >= 2, "accept was retried only {attempts} times");
    assert!(
        attempts < 100,
        "accept was retried {attempts} times in {wall:?}: a busy loop"
    );
    assert!(
        cpu < wall / 10,
        "the retry loop used {cpu:?} of CPU in {wall:?} (more than 10%)"
    );

    // 3. Once descriptors are free again, every queued connection is accepted and works.
    drop(fillers);
    let l = listener.clone();
    let served = block(&rt, "accept after freeing descriptors", async move {
        let mut served = Vec::new();
        for _ in 0..CLIENTS {
            let (mut stream, peer) = l.accept().await?;
            stream.write_all(b"welcome").await?;
            served.push((stream, peer));
        }
        io::Result::Ok(served)
    })
    .expect("accept works again");
    assert_eq!(served.len(), CLIENTS);
    for client in &mut clients {
        client.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut greeting = [0u8; 7];
        client.read_exact(&mut greeting).expect("read the greeting");
        assert_eq!(&greeting, b"welcome");
        client.write_all(b"bye").unwrap();
    }
    set_nofile_limit(original);
}
