//! `time::interval`: the first tick, the schedule, the missed-tick behaviours, reset.
//!
//! Missed ticks are caused by a task that blocks its worker; the checks are on the instants the
//! interval returns (its schedule), which are exact, not on how late a wake-up was.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{join, panic_message, runtime};
use futures_lite::future::poll_once;
use pitcrew::time::{interval, interval_at, sleep, timeout, MissedTickBehavior};

const PERIOD: Duration = Duration::from_millis(10);
/// How long the task blocks its worker: three and a half periods.
const BLOCK: Duration = Duration::from_millis(35);

#[test]
fn the_first_tick_completes_at_once() {
    let rt = runtime(1);
    rt.block_on(async {
        let before = Instant::now();
        let mut iv = interval(Duration::from_secs(3600));
        let first = timeout(Duration::from_secs(10), iv.tick())
            .await
            .expect("the first tick waited");
        assert!(first >= before && first <= Instant::now());
    });
}

#[test]
fn ticks_are_one_period_apart_and_never_early() {
    let rt = runtime(2);
    rt.block_on(async {
        let mut iv = interval(Duration::from_millis(5));
        let t0 = iv.tick().await;
        for k in 1..=5u32 {
            let t = iv.tick().await;
            assert_eq!(t, t0 + Duration::from_millis(5) * k);
            assert!(Instant::now() >= t, "tick {k} completed early");
        }
    });
}

#[test]
fn interval_at_starts_at_its_start() {
    let rt = runtime(1);
    rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(10);
        let mut iv = interval_at(start, PERIOD);
        assert_eq!(iv.tick().await, start);
        assert!(Instant::now() >= start);
        assert_eq!(iv.tick().await, start + PERIOD);
    });
}

#[test]
fn burst_catches_up_on_the_original_schedule() {
    let rt = runtime(1);
    let h = rt.spawn(async {
        let mut iv = interval(PERIOD);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
        let t0 = iv.tick().await;
        std::thread::sleep(BLOCK);
        let late: Vec<_> = [iv.tick().await, iv.tick().await, iv.tick().await].into();
        assert_eq!(late, [t0 + PERIOD, t0 + PERIOD * 2, t0 + PERIOD * 3]);
        let next = iv.tick().await;
        assert_eq!(next, t0 + PERIOD * 4);
        assert!(Instant::now() >= next);
    });
    join("the burst task", h).unwrap();
}

#[test]
fn delay_restarts_the_schedule_from_the_late_tick() {
    let rt = runtime(1);
    let h = rt.spawn(async {
        let mut iv = interval(PERIOD);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let t0 = iv.tick().await;
        std::thread::sleep(BLOCK);
        let before = Instant::now();
        assert_eq!(iv.tick().await, t0 + PERIOD);
        let after = Instant::now();
        let next = iv.tick().await;
        assert!(
            next >= before + PERIOD && next <= after + PERIOD,
            "Delay: the next tick is one period after the late one was taken"
        );
        let then = iv.tick().await;
        assert!(then >= next + PERIOD);
    });
    join("the delay task", h).unwrap();
}

#[test]
fn skip_drops_missed_ticks_and_keeps_the_original_grid() {
    let rt = runtime(1);
    let h = rt.spawn(async {
        let mut iv = interval(PERIOD);
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let t0 = iv.tick().await;
        std::thread::sleep(BLOCK);
        let before = Instant::now();
        assert_eq!(iv.tick().await, t0 + PERIOD);
        let after = Instant::now();
        let next = iv.tick().await;
        let offset = next - t0;
        assert_eq!(
            offset.as_nanos() % PERIOD.as_nanos(),
            0,
            "Skip stays on the grid: {offset:?}"
        );
        assert!(offset >= BLOCK, "the missed ticks were skipped: {offset:?}");
        assert!(
            next > before && next <= after + PERIOD,
            "Skip: the next tick is the first one on the grid after the late one was taken"
        );
    });
    join("the skip task", h).unwrap();
}

#[test]
fn reset_restarts_the_schedule_one_period_from_now() {
    let rt = runtime(2);
    rt.block_on(async {
        let mut iv = interval(PERIOD);
        iv.tick().await;
        sleep(Duration::from_millis(3)).await;
        let before = Instant::now();
        iv.reset();
        let after = Instant::now();
        let next = iv.tick().await;
        assert!(next >= before + PERIOD && next <= after + PERIOD);

        let before = Instant::now();
        iv.reset_immediately();
        let now = timeout(Duration::from_secs(10), iv.tick())
            .await
            .expect("reset_immediately waited");
        assert!(now >= before);

        let at = Instant::now() + Duration::from_millis(7);
        iv.reset_at(at);
        assert_eq!(iv.tick().await, at);
        assert_eq!(iv.tick().await, at + PERIOD);

        let before = Instant::now();
        iv.reset_after(Duration::from_millis(4));
        assert!(iv.tick().await >= before + Duration::from_millis(4));
    });
}

#[test]
fn a_dropped_tick_future_loses_no_tick() {
    let rt = runtime(1);
    rt.block_on(async {
        let mut iv = interval(PERIOD);
        let t0 = iv.tick().await;
        assert_eq!(poll_once(iv.tick()).await, None);
        assert_eq!(iv.tick().await, t0 + PERIOD);
    });
}

#[test]
fn accessors_report_the_settings() {
    let rt = runtime(1);
    rt.block_on(async {
        let mut iv = interval(PERIOD);
        assert_eq!(iv.period(), PERIOD);
        iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
        assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Delay);
        assert!(format!("{iv:?}").contains("Interval"));
    });
}

#[test]
fn a_zero_period_panics() {
    let rt = runtime(1);
    let msg = rt.block_on(async {
        let payload = std::panic::catch_unwind(|| interval(Duration::ZERO))
            .expect_err("interval(0) must panic");
        panic_message(&*payload)
    });
    assert!(msg.contains("period"), "{msg}");
}
