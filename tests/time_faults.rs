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

/// The first time it is woken, reports it and blocks the waking thread (the timer thread)
/// until `release` opens.
struct StallingWaker {
    stalled: Arc<Latch>,
    release: Arc<Latch>,
    once: AtomicBool,
}

impl Wake for StallingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.once.swap(true, Ordering::SeqCst) {
            self.stalled.open();
            assert!(self.release.wait(TIMEOUT), "the stall was never released");
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

/// A sleep polled with a [`RecordingWaker`]; resolves to the instant it completed. Reports its
/// first (registering) poll on `registered`.
struct Recorded {
    sleep: Pin<Box<Sleep>>,
    waker: Option<(Arc<RecordingWaker>, Waker)>,
    index: usize,
    log: Arc<Mutex<Vec<usize>>>,
    registered: Option<std::sync::mpsc::Sender<usize>>,
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
        let polled = this
            .sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .map(|()| Instant::now());
        if let Some(tx) = this.registered.take() {
            tx.send(this.index).unwrap();
        }
        polled
    }
}

/// Spawns a task on `rt` that sleeps until `deadline` through a [`Recorded`]; returns once the
/// sleep is registered.
fn spawn_recorded(
    rt: &pitcrew::Runtime,
    index: usize,
    deadline: Instant,
    log: &Arc<Mutex<Vec<usize>>>,
) -> pitcrew::task::JoinHandle<Instant> {
    let (tx, rx) = std::sync::mpsc::channel();
    let log = log.clone();
    let h = rt.spawn(async move {
        Recorded {
            sleep: Box::pin(sleep_until(deadline)),
            waker: None,
            index,
            log,
            registered: Some(tx),
        }
        .await
    });
    common::recv("a timer to be registered", &rx, TIMEOUT);
    h
}

#[test]
fn timers_overdue_after_a_one_second_timer_thread_stall_fire_once_in_order() {
    // Timers due 50-240 ms from now: the even ones registered before the timer thread stalls
    // (linked in its wheel), the odd ones while it is stalled (still in its registration
    // stack). The stall lasts a second, past every deadline; then all are overdue at once.
    // Regression: the registrations taken after the stall fired before the wheel's overdue
    // timers, newest first.
    const TIMERS: usize = 20;
    let rt = runtime(1);
    let base = Instant::now() + Duration::from_millis(50);
    let deadlines: Vec<Instant> = (0..TIMERS)
        .map(|i| base + Duration::from_millis(10 * i as u64))
        .collect();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut handles: Vec<Option<pitcrew::task::JoinHandle<Instant>>> =
        (0..TIMERS).map(|_| None).collect();
    for i in (0..TIMERS).step_by(2) {
        handles[i] = Some(spawn_recorded(&rt, i, deadlines[i], &log));
    }

    // The stall: a sleep due in 5 ms, polled with a waker that blocks the timer thread.
    let (stalled, release) = (Latch::new(), Latch::new());
    let staller = Waker::from(Arc::new(StallingWaker {
        stalled: stalled.clone(),
        release: release.clone(),
        once: AtomicBool::new(false),
    }));
    let (mut first,) = rt.block_on(async { (Box::pin(sleep(Duration::from_millis(5))),) });
    assert!(first
        .as_mut()
        .poll(&mut Context::from_waker(&staller))
        .is_pending());
    assert!(stalled.wait(TIMEOUT), "the timer thread never stalled");
    let stall_began = Instant::now();
    for i in (1..TIMERS).step_by(2) {
        handles[i] = Some(spawn_recorded(&rt, i, deadlines[i], &log));
    }
    while stall_began.elapsed() < Duration::from_secs(1) || Instant::now() <= deadlines[TIMERS - 1]
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        log.lock().unwrap().is_empty(),
        "a timer fired during the stall"
    );
    release.open();

    for (i, h) in handles.into_iter().enumerate() {
        let fired = join("an overdue timer", h.unwrap()).unwrap();
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
