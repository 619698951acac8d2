//! Timer faults (RELIABILITY.md, "Faults"): a timer thread stalled for a second fires the
//! timers that fell due meanwhile once each, in deadline order and never early; and clock
//! extremes (`Duration::MAX` everywhere a duration is taken, `Duration::ZERO`, deadlines in the
//! past and far in the future) neither panic nor overflow.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::{join, runtime, within, Latch, TIMEOUT};
use pitcrew::scope::{self, nursery_with, ScopeOptions};
use pitcrew::time::{interval, sleep, sleep_until, timeout, timeout_at, MissedTickBehavior, Sleep};

/// Blocks the thread that wakes it (the timer thread) for `stall`, once.
struct StallingWaker {
    stall: Duration,
    stalled: AtomicBool,
    done: Arc<Latch>,
}

impl Wake for StallingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.stalled.swap(true, Ordering::SeqCst) {
            std::thread::sleep(self.stall);
            self.done.open();
        }
    }
}

/// Logs its index each time it is woken, then wakes the task.
struct RecordingWaker {
    index: usize,
    log: Arc<Mutex<Vec<usize>>>,
    task: Mutex<Waker>,
}

impl Wake for RecordingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.log.lock().unwrap().push(self.index);
        self.task.lock().unwrap().wake_by_ref();
    }
}

/// A sleep polled with a [`RecordingWaker`]; resolves to the instant it completed.
struct Recorded {
    sleep: Pin<Box<Sleep>>,
    waker: Option<(Arc<RecordingWaker>, Waker)>,
    index: usize,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Future for Recorded {
    type Output = Instant;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        let this = &mut *self;
        let (rec, waker) = this.waker.get_or_insert_with(|| {
            let rec = Arc::new(RecordingWaker {
                index: this.index,
                log: this.log.clone(),
                task: Mutex::new(cx.waker().clone()),
            });
            let waker = Waker::from(rec.clone());
            (rec, waker)
        });
        *rec.task.lock().unwrap() = cx.waker().clone();
        let waker = waker.clone();
        this.sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .map(|()| Instant::now())
    }
}

#[test]
fn timers_overdue_after_a_one_second_timer_thread_stall_fire_once_in_order() {
    const TIMERS: usize = 20;
    let rt = runtime(1);
    // The stall: a sleep polled with a waker that blocks the timer thread for a second when
    // it fires, 10 ms from now; the timers below fall due during that second.
    let stalled = Latch::new();
    let staller = Waker::from(Arc::new(StallingWaker {
        stall: Duration::from_secs(1),
        stalled: AtomicBool::new(false),
        done: stalled.clone(),
    }));
    let (mut first,) = rt.block_on(async { (Box::pin(sleep(Duration::from_millis(10))),) });
    assert!(first
        .as_mut()
        .poll(&mut Context::from_waker(&staller))
        .is_pending());

    // Due 300 to 490 ms from now: inside the stall, with room for the tasks to register them
    // first even on a loaded machine (a deadline already past at registration fires no timer).
    let start = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let deadlines: Vec<Instant> = (0..TIMERS)
        .map(|i| start + Duration::from_millis(300 + 10 * i as u64))
        .collect();
    let handles: Vec<_> = deadlines
        .iter()
        .enumerate()
        .map(|(index, &deadline)| {
            let log = log.clone();
            rt.spawn(async move {
                Recorded {
                    sleep: Box::pin(sleep_until(deadline)),
                    waker: None,
                    index,
                    log,
                }
                .await
            })
        })
        .collect();
    assert!(stalled.wait(TIMEOUT), "the timer thread never stalled");
    for (i, h) in handles.into_iter().enumerate() {
        let fired = join("an overdue timer", h).unwrap();
        assert!(fired >= deadlines[i], "timer {i} fired early");
    }
    let log = log.lock().unwrap().clone();
    let expected: Vec<usize> = (0..TIMERS).collect();
    assert_eq!(
        log, expected,
        "overdue timers were not woken once each, in deadline order"
    );
}

#[test]
fn duration_max_is_accepted_wherever_a_duration_is_taken() {
    let rt = pitcrew::Runtime::builder()
        .workers(1)
        .blocking_keep_alive(Duration::MAX)
        .slow_poll_threshold(Duration::MAX)
        .build()
        .expect("Duration::MAX settings build");
    let out = within("Duration::MAX everywhere", TIMEOUT, move || {
        let out = rt.block_on(async {
            // Ready futures under the longest bounds complete.
            assert_eq!(
                scope::move_on_after(Duration::MAX, async { 1 }).await,
                Some(1)
            );
            assert_eq!(scope::fail_after(Duration::MAX, async { 2 }).await, Ok(2));
            assert_eq!(scope::shield_for(Duration::MAX, async { 3 }).await, Some(3));
            assert_eq!(timeout(Duration::MAX, async { 4 }).await, Ok(4));
            let n = nursery_with(
                ScopeOptions::new()
                    .timeout(Duration::MAX)
                    .grace(Duration::MAX),
                |n| async move {
                    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
                    n.set_deadline(far);
                    let child = n.child().grace(Duration::MAX).spawn(async { Ok(5) });
                    Ok::<_, ()>(child.await.unwrap())
                },
            )
            .await
            .unwrap();
            assert_eq!(n, 5);
            // Pending ones under them stay pending.
            let never = pitcrew::task::spawn_after(Duration::MAX, async { unreachable!() });
            let mut iv = interval(Duration::MAX);
            iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
            iv.tick().await;
            let second = timeout(Duration::from_millis(20), iv.tick()).await;
            assert!(
                second.is_err(),
                "a tick of an interval of Duration::MAX came"
            );
            let pending = timeout(
                Duration::from_millis(20),
                scope::move_on_after(Duration::MAX, std::future::pending::<()>()),
            )
            .await;
            assert!(pending.is_err());
            never.abort();
            assert!(never.await.unwrap_err().is_cancelled());
            // The blocking pool with an endless keep-alive still runs jobs.
            pitcrew::spawn_blocking(|| 6).await.unwrap()
        });
        // An endless keep-alive must not hold up the drop, nor an endless grace a shutdown
        // whose tasks end when cancelled.
        drop(rt.spawn(async { scope::cancelled().await }));
        let report = rt.shutdown(Duration::MAX);
        (out, report)
    });
    assert_eq!(out.0, 6);
    assert!(out.1.completed_in_grace >= 1, "{:?}", out.1);
    assert_eq!(out.1.dropped, 0, "{:?}", out.1);
}

#[test]
fn sleep_reset_between_the_extremes_and_zero_durations() {
    let rt = runtime(1);
    let handle = rt.handle().clone();
    within("resets and zero durations", TIMEOUT, move || {
        handle.block_on(async {
            let mut s = Box::pin(sleep(Duration::MAX));
            assert!(futures_lite::future::poll_once(s.as_mut()).await.is_none());
            // To the past: completes.
            let past = Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or_else(Instant::now);
            s.as_mut().reset(past);
            s.as_mut().await;
            // Back to the far future: pending again; then to now.
            s.as_mut()
                .reset(Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
            assert!(futures_lite::future::poll_once(s.as_mut()).await.is_none());
            s.as_mut().reset(Instant::now());
            s.as_mut().await;

            sleep(Duration::ZERO).await;
            sleep_until(past).await;
            assert_eq!(timeout(Duration::ZERO, async { 7 }).await, Ok(7));
            assert!(timeout(Duration::ZERO, std::future::pending::<()>())
                .await
                .is_err());
            assert!(timeout_at(past, std::future::pending::<()>())
                .await
                .is_err());
            assert_eq!(
                scope::move_on_after(Duration::ZERO, std::future::pending::<()>()).await,
                None
            );
        })
    });
}
