//! Out of file descriptors (RELIABILITY.md, "Faults", EMFILE), in a child process: the test
//! re-executes its own binary with a lowered `RLIMIT_NOFILE`, takes every descriptor left, and
//! checks there that building a runtime is an error, that accept surfaces `EMFILE` without
//! spinning (CPU time read from `/proc/self/stat`), and that the listener serves the queued
//! connections once descriptors are free. The limit never touches the test harness's process.
#![cfg(target_os = "linux")]
// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::panic::catch_unwind;
use std::sync::Arc;
use std::time::Duration;

use common::{panic_message, TIMEOUT};

/// Set in the child process of [`accept_and_build_under_a_lowered_fd_limit_in_a_subprocess`].
const EMFILE_CHILD: &str = "PITCREW_TEST_EMFILE_CHILD";
const EMFILE_CHILD_OK: &str = "emfile child: all checks passed";

/// This process's user plus system CPU time, read from an already open `/proc/self/stat` (no
/// descriptor is free to open it when it is needed).
fn cpu_time_from_proc_stat(stat: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    stat.rewind().expect("rewind /proc/self/stat");
    let mut text = String::new();
    stat.read_to_string(&mut text)
        .expect("read /proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after its closing paren do not.
    let after_comm = &text[text.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1_000 / per_sec)
}

/// The child's checks; panics on a failure.
fn emfile_child() {
    use std::io::{Read, Write};
    const CLIENTS: usize = 3;
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let listener = Arc::new(
        rt.block_on(pitcrew::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap(),
    );
    let addr = listener.local_addr().unwrap();
    rt.block_on(async { pitcrew::time::sleep(Duration::from_millis(1)).await });
    let mut clients: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut stat = std::fs::File::open("/proc/self/stat").expect("open /proc/self/stat");

    // Lower the limit, then take every descriptor left.
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid `rlimit` for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0);
    limit.rlim_cur = (highest + 1 + 8).max(64);
    // SAFETY: a valid `rlimit`; lowering the soft limit needs no privilege.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0);
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("filling descriptors: {e}"),
        }
        assert!(fillers.len() < 100_000, "the lowered limit did not take");
    }

    // Building a runtime needs descriptors (its poller): an error, not a panic.
    let built = catch_unwind(|| pitcrew::Runtime::builder().workers(1).build());
    match built {
        Ok(Err(e)) => eprintln!("emfile child: build with no descriptors: {e}"),
        Ok(Ok(_)) => panic!("a runtime was built with no descriptor free"),
        Err(p) => panic!(
            "building with no descriptors panicked: {}",
            panic_message(&*p)
        ),
    }

    // Accept surfaces EMFILE.
    let l = listener.clone();
    let first = handle.block_on(async move { l.accept().await.map(drop) });
    let err = first.expect_err("accept with no descriptor free");
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err:?}");

    // A loop that retries does not spin: under 10% of one CPU over a second.
    let window = Duration::from_secs(1);
    let cpu_before = cpu_time_from_proc_stat(&mut stat);
    let began = std::time::Instant::now();
    let l = listener.clone();
    let attempts = handle.block_on(async move {
        let mut attempts = 0u32;
        while began.elapsed() < window {
            match l.accept().await {
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => attempts += 1,
                other => panic!("expected EMFILE, got {:?}", other.map(drop)),
            }
        }
        attempts
    });
    let wall = began.elapsed();
    let cpu = cpu_time_from_proc_stat(&mut stat) - cpu_before;
    eprintln!("emfile child: {attempts} attempts, {cpu:?} of CPU in {wall:?}");
    assert!(attempts >= 2, "accept was retried only {attempts} times");
    assert!(
        cpu < wall / 10,
        "retrying accept under EMFILE used {cpu:?} of CPU in {wall:?}"
    );

    // Descriptors freed: every queued connection is accepted and served.
    drop(fillers);
    let l = listener.clone();
    let served = handle.block_on(async move {
        use futures_lite::AsyncWriteExt;
        let mut served = Vec::new();
        for _ in 0..CLIENTS {
            let (mut s, _) = l.accept().await?;
            s.write_all(b"hi").await?;
            served.push(s);
        }
        std::io::Result::Ok(served)
    });
    let served = served.expect("accept works again once descriptors are free");
    for c in &mut clients {
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        c.write_all(b".").unwrap();
    }
    drop(served);
    println!("{EMFILE_CHILD_OK}");
}

#[test]
fn accept_and_build_under_a_lowered_fd_limit_in_a_subprocess() {
    if std::env::var_os(EMFILE_CHILD).is_some() {
        emfile_child();
        return;
    }
    // The limit is lowered for the child process only, so nothing else here runs short.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "accept_and_build_under_a_lowered_fd_limit_in_a_subprocess",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let deadline = std::time::Instant::now() + TIMEOUT * 2;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the EMFILE child did not finish within {:?}", TIMEOUT * 2);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success() && stdout.contains(EMFILE_CHILD_OK),
        "the EMFILE child failed ({status}):\n{stdout}\n{stderr}"
    );
}
