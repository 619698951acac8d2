//! `time::sleep` / `sleep_until` / `Sleep`: ordering, accuracy, bad input, reset, cancellation
//! and reclamation, shutdown.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{join, panic_message, recv, runtime, wait_until, within, DropCounter, TIMEOUT};
use futures_lite::future::poll_once;
use pitcrew::time::{sleep, sleep_until, timeout, Sleep};

fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}

#[test]
fn sleep_is_send_sync_and_unpin() {
    assert_send_sync_unpin::<Sleep>();
}

#[test]
fn sleeps_complete_in_deadline_order_and_never_early() {
    // One worker: tasks woken in one batch run in wake order.
    let rt = runtime(1);
    let done = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    // Spawned latest-deadline first, so spawn order and deadline order disagree.
    let handles: Vec<_> = (1..=8u64)
        .rev()
        .map(|i| {
            let done = done.clone();
            let deadline = start + Duration::from_millis(10 * i);
            rt.spawn(async move {
                sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "sleep {i} completed early");
                done.lock().unwrap().push(i);
            })
        })
        .collect();
    for h in handles {
        join("a sleeping task", h).unwrap();
    }
    assert_eq!(*done.lock().unwrap(), (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_10ms_sleep_is_never_early_and_overshoots_by_less_than_50ms() {
    let rt = runtime(2);
    let mut samples = rt.block_on(async {
        let mut samples = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            sleep(Duration::from_millis(10)).await;
            samples.push(start.elapsed());
        }
        samples
    });
    for s in &samples {
        assert!(*s >= Duration::from_millis(10), "completed early: {s:?}");
    }
    samples.sort();
    // The median, so one descheduling of this test on a loaded 2-core machine is not a failure;
    // a timer that is systematically late is.
    let median = samples[samples.len() / 2];
    assert!(
        median < Duration::from_millis(60),
        "median 10 ms sleep took {median:?}: {samples:?}"
    );
}

#[test]
fn a_hundred_thousand_concurrent_sleeps_across_two_workers_all_fire() {
    const N: usize = 100_000;
    let rt = runtime(2);
    let fired = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let fired = fired.clone();
            rt.spawn(async move {
                let d = Duration::from_millis(1 + (i % 50) as u64);
                let start = Instant::now();
                sleep(d).await;
                assert!(start.elapsed() >= d, "sleep {i} completed early");
                fired.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    within("100,000 sleeps to fire", TIMEOUT, move || {
        futures_lite::future::block_on(async move {
            for h in handles {
                h.await.unwrap();
            }
        })
    });
    assert_eq!(fired.load(Ordering::SeqCst), N);
    assert!(started.elapsed() < TIMEOUT);
    wait_until("the timers to be retired", TIMEOUT, || {
        rt.metrics().timers == 0
    });
}

#[test]
fn duration_max_and_far_future_sleeps_never_fire_and_can_be_dropped() {
    let rt = runtime(2);
    rt.block_on(async {
        let far = [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 4),
            // Beyond the timer's range (~8,900 years): never registers.
            Duration::from_secs(10_000 * 365 * 86_400),
            // Beyond the wheel's span (~2.2 years): registers in the top level.
            Duration::from_secs(5 * 365 * 86_400),
        ];
        for d in far {
            let mut s = sleep(d);
            assert!(s.deadline() > Instant::now() + Duration::from_secs(365 * 86_400));
            assert!(
                timeout(Duration::from_millis(20), &mut s).await.is_err(),
                "sleep({d:?}) fired"
            );
            drop(s);
        }
        let never = Instant::now() + Duration::from_secs(20_000 * 365 * 86_400);
        assert!(timeout(Duration::from_millis(5), sleep_until(never))
            .await
            .is_err());
    });
    wait_until("the far timers to be freed", TIMEOUT, || {
        rt.metrics().timers == 0
    });
}

#[test]
fn a_past_deadline_completes_on_the_first_poll_without_a_timer() {
    let rt = runtime(1);
    rt.block_on(async {
        let past = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
        assert_eq!(poll_once(sleep_until(past)).await, Some(()));
        assert_eq!(poll_once(sleep(Duration::ZERO)).await, Some(()));
        assert_eq!(poll_once(sleep_until(Instant::now())).await, Some(()));
    });
    // Nothing was registered, so the gauge is zero at once (a registered timer would count
    // until the timer thread's next turn).
    assert_eq!(rt.metrics().timers, 0);
}

#[test]
fn reset_moves_the_deadline_earlier_and_later() {
    let rt = runtime(2);
    rt.block_on(async {
        // Earlier: an hour becomes 20 ms, after it was registered.
        let start = Instant::now();
        let mut s = pin!(sleep(Duration::from_secs(3600)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        s.as_mut().reset(start + Duration::from_millis(20));
        assert_eq!(s.deadline(), start + Duration::from_millis(20));
        timeout(Duration::from_secs(5), s.as_mut())
            .await
            .expect("the moved-earlier sleep fired");
        assert!(start.elapsed() >= Duration::from_millis(20));

        // Later: 10 ms becomes 60 ms, after it was registered.
        let start = Instant::now();
        let mut s = pin!(sleep(Duration::from_millis(10)));
        assert_eq!(poll_once(s.as_mut()).await, None);
        s.as_mut().reset(start + Duration::from_millis(60));
        s.as_mut().await;
        assert!(
            start.elapsed() >= Duration::from_millis(60),
            "fired at the old deadline: {:?}",
            start.elapsed()
        );

        // After completing: the same sleep waits again.
        let again = Instant::now() + Duration::from_millis(15);
        s.as_mut().reset(again);
        assert!(!s.is_elapsed());
        s.as_mut().await;
        assert!(Instant::now() >= again);

        // Into the past: completes on the next poll.
        s.as_mut().reset(Instant::now() + Duration::from_secs(3600));
        assert_eq!(poll_once(s.as_mut()).await, None);
        s.as_mut().reset(Instant::now());
        assert_eq!(poll_once(s.as_mut()).await, Some(()));
    });
}

#[test]
fn a_million_register_cancel_cycles_leave_no_timer_alive() {
    let rt = runtime(2);
    let handle = rt.handle().clone();
    let peak = rt.block_on(async move {
        let mut peak = 0;
        for i in 0..1_000_000u64 {
            let mut s = sleep(Duration::from_secs(1 + i % 300));
            assert_eq!(poll_once(&mut s).await, None);
            drop(s);
            if i % 10_000 == 0 {
                peak = peak.max(handle.metrics().timers);
            }
        }
        peak
    });
    // Cancelled entries are freed as the timer thread catches up, not at their deadlines: how
    // far it falls behind depends on how long a loaded machine leaves it unscheduled (about
    // 5,000 here when idle), never on how many timers were cancelled.
    assert!(peak < 250_000, "{peak} cancelled timers were alive at once");
    wait_until("every cancelled timer to be freed", TIMEOUT, || {
        rt.metrics().timers == 0
    });
}

#[test]
fn cancelled_timers_linked_in_the_wheel_are_freed() {
    let rt = runtime(2);
    let handle = rt.handle().clone();
    rt.block_on(async move {
        let mut sleeps: Vec<_> = (0..10_000u64)
            .map(|i| Box::pin(sleep(Duration::from_secs(60 + i))))
            .collect();
        for s in &mut sleeps {
            assert_eq!(poll_once(s.as_mut()).await, None);
        }
        // An earlier deadline wakes the timer thread, which links all of them on the way.
        sleep(Duration::from_millis(2)).await;
        assert_eq!(handle.metrics().timers, 10_000);
        drop(sleeps);
    });
    wait_until("the cancelled timers to be freed", TIMEOUT, || {
        rt.metrics().timers == 0
    });
}

#[test]
fn sleep_outside_a_runtime_panics_naming_pitcrew() {
    let payload = std::panic::catch_unwind(|| sleep(Duration::from_millis(1)))
        .expect_err("sleep outside a runtime must panic");
    let msg = panic_message(&*payload);
    assert!(msg.contains("pitcrew"), "{msg}");
    assert!(msg.contains("Handle::try_current"), "{msg}");
    assert!(msg.contains("pitcrew::time::sleep"), "{msg}");
}

#[test]
fn a_sleep_made_inside_a_runtime_can_be_polled_elsewhere() {
    let rt = runtime(1);
    // Made inside the runtime (wrapped, so that `block_on` returns it rather than awaits it).
    let s = rt
        .block_on(async { Some(sleep(Duration::from_millis(5))) })
        .unwrap();
    within("a sleep polled on a plain thread", TIMEOUT, move || {
        futures_lite::future::block_on(s)
    });
}

#[test]
fn ready_sleeps_spend_the_cooperative_budget() {
    // One worker: the other task can only run if the looping one yields on budget.
    let rt = runtime(1);
    let ran = Arc::new(AtomicBool::new(false));
    let h = rt.spawn({
        let ran = ran.clone();
        async move {
            let flag = ran.clone();
            let other = pitcrew::spawn(async move { flag.store(true, Ordering::SeqCst) });
            for _ in 0..1_000 {
                sleep(Duration::ZERO).await;
            }
            let seen = ran.load(Ordering::SeqCst);
            other.await.unwrap();
            seen
        }
    });
    assert!(
        join("the looping task", h).unwrap(),
        "1,000 ready sleeps never yielded to the other task"
    );
}

#[test]
fn pending_sleeps_are_dropped_at_shutdown_and_the_timer_thread_stops() {
    const TASKS: usize = 100;
    let timer_stops = Arc::new(Mutex::new(Vec::new()));
    let timer_starts = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (stops, starts) = (timer_stops.clone(), timer_starts.clone());
        pitcrew::Runtime::builder()
            .workers(2)
            .thread_name("clock")
            .on_thread_start(move || {
                if std::thread::current().name() == Some("clock-timer") {
                    starts.fetch_add(1, Ordering::SeqCst);
                }
            })
            .on_thread_stop(move || {
                let name = std::thread::current().name().map(str::to_owned);
                stops.lock().unwrap().push(name);
            })
            .build()
            .unwrap()
    };
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..TASKS {
        let token = DropCounter(drops.clone());
        drop(rt.spawn(async move {
            let _token = token;
            sleep(Duration::from_secs(3600)).await;
        }));
    }
    wait_until("every task's sleep to register", TIMEOUT, || {
        rt.metrics().timers == TASKS
    });
    let handle = rt.handle().clone();
    within("runtime drop", TIMEOUT, move || drop(rt));
    assert_eq!(
        drops.load(Ordering::SeqCst),
        TASKS,
        "each task dropped once"
    );
    assert_eq!(handle.metrics().timers, 0, "a timer outlived the runtime");
    assert_eq!(timer_starts.load(Ordering::SeqCst), 1);
    let stops = timer_stops.lock().unwrap();
    assert_eq!(
        stops
            .iter()
            .filter(|n| n.as_deref() == Some("clock-timer"))
            .count(),
        1,
        "the timer thread's stop hook: {stops:?}"
    );
}

#[test]
fn a_sleep_pending_outside_the_runtime_at_shutdown_is_woken_and_panics() {
    let rt = runtime(1);
    let s = rt
        .block_on(async { Some(sleep(Duration::from_secs(3600))) })
        .unwrap();
    let (polled_tx, polled_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut s = s;
        let mut first = true;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            futures_lite::future::block_on(std::future::poll_fn(|cx| {
                let poll = Pin::new(&mut s).poll(cx);
                if first {
                    first = false;
                    polled_tx.send(()).unwrap();
                }
                poll
            }))
        }))
    });
    recv("the sleep to be polled", &polled_rx, TIMEOUT);
    wait_until("the sleep to register", TIMEOUT, || {
        rt.metrics().timers == 1
    });
    within("runtime drop", TIMEOUT, move || drop(rt));
    let result = within("the waiter to learn of the shutdown", TIMEOUT, move || {
        waiter.join().unwrap()
    });
    let payload = result.expect_err("polling a sleep after shutdown must panic, not hang");
    let msg = panic_message(&*payload);
    assert!(msg.contains("shut down"), "{msg}");
}

/// Regression: fifty tasks on two workers that each keep one 30 s sleep registered, re-poll it
/// after yields and replace it every 50 rounds crashed about one run in three (a segfault in
/// `time::entry::Registration::poll`). When the entry pool was full, trimming a chain of retired
/// entries followed the chain's last link (still pointing into the registration stack) and
/// freed live entries; hyper's keep-alive header timers hit it too.
#[test]
fn many_tasks_re_polling_and_replacing_long_sleeps_do_not_crash() {
    let rt = runtime(2);
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                pitcrew::spawn(async {
                    let mut s = Box::pin(sleep(Duration::from_secs(30)));
                    for i in 0..20_000u32 {
                        assert_eq!(
                            poll_once(s.as_mut()).await,
                            None,
                            "a 30 s sleep fired early"
                        );
                        if i % 3 == 0 {
                            pitcrew::yield_now().await;
                        }
                        if i % 50 == 0 {
                            s = Box::pin(sleep(Duration::from_secs(30)));
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}
