//! The timer rows: each runtime with its own timers (pitcrew's `time`, tokio's `time`, async-io's
//! `Timer` for async-executor).
//!
//! * `timer_register_cancel`: 1,000,000 x (create a sleep 1-300 s out, poll it once, drop it),
//!   from inside one task; ns per timer.
//! * `timer_fire_1m`: 1,000,000 tasks each sleeping 1-10 ms, spawned from inside a task; the time
//!   from the first spawn until the last one has fired and been joined, per task. A second line
//!   prints each runtime's peak RSS growth during the run.
//! * `timeout_ready`: 1,000,000 x `timeout(1 s, ready)`; ns per timeout.
//! * `timer_accuracy`: 1,000 sequential 1 ms sleeps; ns/op is the mean sleep. A second line
//!   prints the mean and 99th-percentile overshoot past 1 ms for each runtime.
//!
//! `BENCH_QUICK=1` divides the counts by 10 (by 5 for `timer_accuracy`).
//!
//! The RSS figure is approximate: it is read from `/proc/self/statm` (resident pages) right
//! before the spawns and again once every task is sleeping, which is when the run holds the
//! most memory; `malloc_trim(0)` first returns what earlier runs freed to the OS, so that one
//! runtime's leftovers do not hide the next one's growth. It is the largest growth over the
//! warm-up and the samples.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use super::{run_inside, AsyncExecutorRt, PitcrewRt, Rt, Sample, Spawner, TokioRt, RUNTIMES};

fn quick() -> bool {
    static QUICK: OnceLock<bool> = OnceLock::new();
    *QUICK.get_or_init(|| std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// `n`, or `n / divisor` under `BENCH_QUICK`.
fn scaled(n: usize, divisor: usize) -> usize {
    if quick() {
        n / divisor
    } else {
        n
    }
}

/// One runtime's timers, behind one interface so each workload is written once. Every method
/// is called inside a task of that runtime.
pub(super) trait TimerRt: Rt {
    /// Index into [`RUNTIMES`], for the extra report lines.
    const INDEX: usize;

    fn sleep(d: Duration) -> impl Future + Send;

    /// `Some(output)`, or `None` when `d` passed first.
    fn timeout<F: Future + Send>(
        d: Duration,
        f: F,
    ) -> impl Future<Output = Option<F::Output>> + Send;
}

impl TimerRt for PitcrewRt {
    const INDEX: usize = 0;

    fn sleep(d: Duration) -> impl Future + Send {
        pitcrew::time::sleep(d)
    }

    fn timeout<F: Future + Send>(
        d: Duration,
        f: F,
    ) -> impl Future<Output = Option<F::Output>> + Send {
        let t = pitcrew::time::timeout(d, f);
        async move { t.await.ok() }
    }
}

impl TimerRt for TokioRt {
    const INDEX: usize = 1;

    fn sleep(d: Duration) -> impl Future + Send {
        tokio::time::sleep(d)
    }

    fn timeout<F: Future + Send>(
        d: Duration,
        f: F,
    ) -> impl Future<Output = Option<F::Output>> + Send {
        let t = tokio::time::timeout(d, f);
        async move { t.await.ok() }
    }
}

impl TimerRt for AsyncExecutorRt {
    const INDEX: usize = 2;

    fn sleep(d: Duration) -> impl Future + Send {
        async_io::Timer::after(d)
    }

    fn timeout<F: Future + Send>(
        d: Duration,
        f: F,
    ) -> impl Future<Output = Option<F::Output>> + Send {
        // async-io's idiom: race the future (polled first) against a timer.
        let timer = async_io::Timer::after(d);
        futures_lite::future::or(async move { Some(f.await) }, async move {
            timer.await;
            None
        })
    }
}

/// Polls `f` once and drops it.
async fn poll_once_and_drop<F: Future>(f: F) {
    let mut f = pin!(f);
    std::future::poll_fn(|cx| {
        black_box(f.as_mut().poll(cx).is_ready());
        Poll::Ready(())
    })
    .await;
}

/// 1,000,000 x (sleep 1-300 s out, poll once, drop); per timer.
pub(super) fn timer_register_cancel<R: TimerRt>(rt: &R) -> Sample {
    let n = scaled(1_000_000, 10);
    run_inside(rt, move |_| async move {
        for i in 0..n {
            let d = Duration::from_secs(1 + (i % 300) as u64);
            poll_once_and_drop(R::sleep(d)).await;
        }
        n
    })
}

/// 1,000,000 tasks each sleeping 1-10 ms; from the first spawn until the last is joined, per
/// task. Records the RSS growth once all are sleeping.
pub(super) fn timer_fire_1m<R: TimerRt>(rt: &R) -> Sample {
    let n = scaled(1_000_000, 10);
    trim_heap();
    let before = rss_bytes();
    run_inside(rt, move |s| async move {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let d = Duration::from_millis(1 + (i % 10) as u64);
            handles.push(s.spawn(async move {
                R::sleep(d).await;
            }));
        }
        // Every task is spawned and most are sleeping: the most memory the run holds.
        record_rss(R::INDEX, rss_bytes().saturating_sub(before));
        for handle in handles {
            handle.await;
        }
        n
    })
}

/// 1,000,000 x `timeout(1 s, ready)`; per timeout.
pub(super) fn timeout_ready<R: TimerRt>(rt: &R) -> Sample {
    let n = scaled(1_000_000, 10);
    run_inside(rt, move |_| async move {
        let mut sum = 0usize;
        for i in 0..n {
            let out = R::timeout(Duration::from_secs(1), std::future::ready(i)).await;
            sum = sum.wrapping_add(out.expect("a ready future never times out"));
        }
        black_box(sum);
        n
    })
}

/// 1,000 sequential 1 ms sleeps; ns/op is the mean sleep. Records each overshoot past 1 ms.
pub(super) fn timer_accuracy<R: TimerRt>(rt: &R) -> Sample {
    let n = scaled(1_000, 5);
    run_inside(rt, move |_| async move {
        let mut overshoots = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            R::sleep(Duration::from_millis(1)).await;
            let slept = start.elapsed();
            assert!(
                slept >= Duration::from_millis(1),
                "a 1 ms sleep ended early"
            );
            overshoots.push(slept - Duration::from_millis(1));
        }
        record_overshoots(R::INDEX, &overshoots);
        n
    })
}

// ---------------------------------------------------------------------------------------------
// The extra report lines.
// ---------------------------------------------------------------------------------------------

/// Per runtime: the largest RSS growth seen in `timer_fire_1m`, and every overshoot of
/// `timer_accuracy`.
struct Extras {
    rss_growth: [usize; 3],
    overshoots: [Vec<Duration>; 3],
}

fn extras() -> &'static Mutex<Extras> {
    static EXTRAS: OnceLock<Mutex<Extras>> = OnceLock::new();
    EXTRAS.get_or_init(|| {
        Mutex::new(Extras {
            rss_growth: [0; 3],
            overshoots: Default::default(),
        })
    })
}

fn record_rss(runtime: usize, growth: usize) {
    let mut extras = extras().lock().unwrap();
    extras.rss_growth[runtime] = extras.rss_growth[runtime].max(growth);
}

fn record_overshoots(runtime: usize, overshoots: &[Duration]) {
    extras().lock().unwrap().overshoots[runtime].extend_from_slice(overshoots);
}

/// Lines to print under the row `name` (empty for rows without extras).
pub(super) fn notes(name: &str) -> Vec<String> {
    let extras = extras().lock().unwrap();
    match name {
        "timer_fire_1m" => {
            let cells: Vec<String> = RUNTIMES
                .iter()
                .zip(extras.rss_growth)
                .map(|(rt, bytes)| format!("{rt} {:.1} MiB", bytes as f64 / (1 << 20) as f64))
                .collect();
            vec![format!(
                "  peak RSS growth (approx., /proc/self/statm): {}",
                cells.join(", ")
            )]
        }
        "timer_accuracy" => {
            let cells: Vec<String> = RUNTIMES
                .iter()
                .zip(&extras.overshoots)
                .map(|(rt, overshoots)| {
                    let mut sorted = overshoots.clone();
                    sorted.sort();
                    let mean = sorted.iter().sum::<Duration>() / sorted.len().max(1) as u32;
                    let p99 = sorted
                        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or_default();
                    format!(
                        "{rt} mean {:.3} ms p99 {:.3} ms",
                        mean.as_secs_f64() * 1e3,
                        p99.as_secs_f64() * 1e3
                    )
                })
                .collect();
            vec![format!("  overshoot past 1 ms: {}", cells.join(", "))]
        }
        _ => Vec::new(),
    }
}

/// Resident memory of this process, in bytes (`/proc/self/statm`, field 2, in pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

extern "C" {
    /// glibc: returns free heap memory (of every arena) to the OS.
    fn malloc_trim(pad: usize) -> i32;
}

/// Returns what earlier runs freed to the OS, so that RSS growth measures this run.
fn trim_heap() {
    // SAFETY: `malloc_trim` only walks glibc's own allocator state; it has no preconditions.
    unsafe {
        malloc_trim(0);
    }
}
