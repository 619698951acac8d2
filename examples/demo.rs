//! A mixed workload on pitcrew: CPU-bound tasks that yield cooperatively, blocking jobs on the
//! blocking pool, and message-passing tasks, all at once. Prints what it did and how fast.
//!
//! Run with `cargo run --release --example demo`.

// Examples are user code: they use std's threads and channels, which the crate's own loom
// facade rule (clippy.toml) is not meant for.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pitcrew::Runtime;

/// Counts primes in `lo..hi`, yielding to the scheduler every 2,000 numbers.
async fn count_primes(lo: u64, hi: u64) -> u64 {
    let mut count = 0;
    for n in lo..hi {
        if n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0) {
            count += 1;
        }
        if n % 2_000 == 0 {
            pitcrew::yield_now().await;
        }
    }
    count
}

/// A task chain: each stage hands the token to a freshly spawned next stage.
async fn relay(stages: u32) -> u32 {
    let mut hops = 0;
    for _ in 0..stages {
        hops += pitcrew::spawn(async { 1 })
            .await
            .expect("relay stage failed");
    }
    hops
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = Runtime::builder()
        .workers(workers)
        .thread_name("demo-worker")
        .max_blocking_threads(16)
        .slow_poll_threshold(Duration::from_millis(100))
        .build()?;
    println!("pitcrew demo: {workers} workers");

    let started = Instant::now();
    let (primes, blocking_ms, hops) = rt.block_on(async {
        // CPU work: 64 chunks of the first 2 million numbers.
        let chunk = 2_000_000 / 64;
        let cpu: Vec<_> = (0..64)
            .map(|i| pitcrew::spawn(count_primes(i * chunk, (i + 1) * chunk)))
            .collect();

        // Blocking work: 8 jobs that each block their thread for 50 ms (a stand-in for a file
        // read or a legacy client), on the blocking pool so that no worker stalls.
        let blocking: Vec<_> = (0..8)
            .map(|_| {
                pitcrew::spawn_blocking(|| {
                    let t = Instant::now();
                    std::thread::sleep(Duration::from_millis(50));
                    t.elapsed()
                })
            })
            .collect();

        // Message passing: 100 relays of 1,000 spawned stages each.
        let relays: Vec<_> = (0..100).map(|_| pitcrew::spawn(relay(1_000))).collect();

        let mut primes = 0;
        for task in cpu {
            primes += task.await.expect("prime task failed");
        }
        let mut blocked = Duration::ZERO;
        for job in blocking {
            blocked += job.await.expect("blocking job failed");
        }
        let mut hops = 0;
        for r in relays {
            hops += r.await.expect("relay failed");
        }
        (primes, blocked.as_millis(), hops)
    });
    let elapsed = started.elapsed();

    // A task spawned from a plain thread, reported back over a channel.
    let (tx, rx) = mpsc::channel();
    let handle = rt.handle().clone();
    std::thread::spawn(move || {
        let answer = handle.block_on(async { pitcrew::spawn(async { 6 * 7 }).await });
        let _ = tx.send(answer);
    });
    let answer = rx.recv_timeout(Duration::from_secs(10))??;

    let m = rt.metrics();
    println!("primes below 2,000,000:   {primes} (64 tasks)");
    println!("blocking jobs:            8 x 50 ms = {blocking_ms} ms of blocking, off the workers");
    println!("spawned relay hops:       {hops}");
    println!("answer from a plain thread: {answer}");
    println!("wall time:                {elapsed:.2?}");
    println!(
        "runtime: {} tasks spawned, {} polls, {} steals, {} parks, {} injected, {} blocking threads",
        m.spawned, m.polls, m.steals, m.parks, m.injected, m.blocking_threads
    );
    for (i, w) in m.per_worker.iter().enumerate() {
        println!(
            "  worker {i}: {} polls, {} steals, {} parks, {} LIFO hits",
            w.polls, w.steals, w.parks, w.lifo_hits
        );
    }
    let report = rt.shutdown(Duration::from_secs(1));
    println!(
        "shutdown: {} tasks ended in the grace period, {} dropped",
        report.completed_in_grace, report.dropped
    );
    Ok(())
}
