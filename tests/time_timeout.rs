//! `time::timeout` / `timeout_at`: elapsing drops the inner future, finishing first wins, the
//! inner future is polled first, bad input.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{panic_message, runtime, DropCounter};
use pitcrew::time::{sleep, timeout, timeout_at, Elapsed, Timeout};

fn assert_error<T: std::error::Error + Send + Sync + PartialEq + Clone + 'static>() {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn elapsed_is_a_comparable_cloneable_error() {
    assert_error::<Elapsed>();
    assert_send_sync::<Timeout<pitcrew::time::Sleep>>();
}

/// Pending until dropped; counts its drops.
struct Forever(#[allow(dead_code)] DropCounter);

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn timeout_returns_elapsed_and_drops_the_inner_future() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let result = rt.block_on(timeout_in(
        Duration::from_millis(20),
        Forever(DropCounter(drops.clone())),
    ));
    let err = result.expect_err("the inner future never finishes");
    assert_eq!(err.clone(), err);
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "elapsed early"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1, "inner future dropped once");
}

/// `timeout` made inside the runtime (the timer is picked at creation).
async fn timeout_in<F: Future>(d: Duration, f: F) -> Result<F::Output, Elapsed> {
    timeout(d, f).await
}

#[test]
fn timeout_returns_ok_when_the_inner_future_finishes_first() {
    let rt = runtime(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let token = DropCounter(drops.clone());
    let start = Instant::now();
    let out = rt.block_on(async move {
        timeout(Duration::from_secs(10), async move {
            let _token = token;
            sleep(Duration::from_millis(5)).await;
            42
        })
        .await
    });
    assert_eq!(out, Ok(42));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_ready_inner_future_registers_no_timer() {
    let rt = runtime(1);
    rt.block_on(async {
        for i in 0..1_000 {
            assert_eq!(timeout(Duration::from_secs(3600), async { i }).await, Ok(i));
        }
    });
    // A registered timer would count until the timer thread's next turn.
    assert_eq!(rt.metrics().timers, 0);
}

#[test]
fn the_inner_future_is_polled_before_a_past_deadline_is_checked() {
    let rt = runtime(1);
    rt.block_on(async {
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        assert_eq!(timeout_at(past, async { 1 }).await, Ok(1));
        assert_eq!(timeout(Duration::ZERO, async { 2 }).await, Ok(2));
        assert!(timeout_at(past, std::future::pending::<()>())
            .await
            .is_err());
        assert!(timeout(Duration::ZERO, std::future::pending::<()>())
            .await
            .is_err());
    });
}

#[test]
fn timeout_at_elapses_at_its_deadline() {
    let rt = runtime(2);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_millis(15);
        let t = timeout_at(deadline, std::future::pending::<()>());
        assert_eq!(t.deadline(), deadline);
        assert!(t.await.is_err());
        assert!(Instant::now() >= deadline, "elapsed early");
    });
}

#[test]
fn duration_max_never_times_out() {
    let rt = runtime(2);
    rt.block_on(async {
        let out = timeout(Duration::MAX, async {
            sleep(Duration::from_millis(10)).await;
            "done"
        })
        .await;
        assert_eq!(out, Ok("done"));
    });
}

/// Wakes itself and stays pending on every poll: spends its task's whole budget.
struct Spin;

impl Future for Spin {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_busy_inner_future_still_times_out() {
    let rt = runtime(1);
    let out = rt.block_on(async { timeout(Duration::from_millis(10), Spin).await });
    assert!(out.is_err());
}

#[test]
fn a_timeout_made_outside_a_runtime_works_inside_one() {
    // The deadline is fixed at creation; the timer is looked up on the first pending poll.
    let t = timeout(Duration::from_millis(10), std::future::pending::<()>());
    let start = Instant::now();
    let rt = runtime(1);
    assert!(rt.block_on(t).is_err());
    assert!(start.elapsed() >= Duration::from_millis(10));
}

#[test]
fn a_ready_timeout_needs_no_runtime_at_all() {
    let out = futures_lite::future::block_on(timeout(Duration::from_secs(1), async { 3 }));
    assert_eq!(out, Ok(3));
}

#[test]
fn a_pending_timeout_polled_outside_a_runtime_panics_naming_pitcrew() {
    let t = timeout(Duration::from_secs(1), std::future::pending::<()>());
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures_lite::future::block_on(futures_lite::future::poll_once(t))
    }))
    .expect_err("a pending timeout polled outside a runtime must panic");
    let msg = panic_message(&*payload);
    assert!(msg.contains("pitcrew"), "{msg}");
    assert!(msg.contains("Handle::try_current"), "{msg}");
}

#[test]
fn into_inner_gives_the_future_back() {
    let rt = runtime(1);
    rt.block_on(async {
        let t = timeout(Duration::from_millis(1), async { 5 });
        assert_eq!(t.into_inner().await, 5);
    });
}

#[test]
fn elapsed_converts_to_a_timed_out_io_error() {
    let rt = runtime(1);
    let err = rt
        .block_on(timeout_in(Duration::ZERO, std::future::pending::<()>()))
        .unwrap_err();
    assert_eq!(err.to_string(), "deadline has elapsed");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}
