//! loom models of the timer: a handle's poll, reset and drop racing with the timer thread's
//! turns, its sleep and its shutdown. The clock is manual: the models call `turn(now)` with
//! ticks. Every entry carries a `loom::alloc::Track` and every waker is a loom `Arc`, so an
//! entry or waker that is leaked (or a waker dropped twice) fails the model.

#![cfg(loom)]

use std::task::{Poll, RawWaker, RawWakerVTable, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use pitcrew::loom_api::{timer, TimerEntry};
use pitcrew_loom_tests::model;

/// Counts the wakes of a waker whose data is a loom `Arc`.
struct WakeLog {
    wakes: AtomicUsize,
}

impl WakeLog {
    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

const VTABLE: RawWakerVTable = RawWakerVTable::new(clone_raw, wake_raw, wake_by_ref_raw, drop_raw);

unsafe fn clone_raw(data: *const ()) -> RawWaker {
    unsafe { Arc::increment_strong_count(data as *const WakeLog) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake_raw(data: *const ()) {
    unsafe { wake_by_ref_raw(data) };
    unsafe { drop_raw(data) };
}

unsafe fn wake_by_ref_raw(data: *const ()) {
    let log = unsafe { &*(data as *const WakeLog) };
    log.wakes.fetch_add(1, Ordering::SeqCst);
}

unsafe fn drop_raw(data: *const ()) {
    drop(unsafe { Arc::from_raw(data as *const WakeLog) });
}

/// A waker and its log.
fn counting_waker() -> (Waker, Arc<WakeLog>) {
    let log = Arc::new(WakeLog {
        wakes: AtomicUsize::new(0),
    });
    let data = Arc::into_raw(log.clone()) as *const ();
    // SAFETY: the vtable keeps the Arc's count: one reference per waker.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
    (waker, log)
}

/// Dropping a timer while the thread takes its registration and fires it at once: the waker
/// is called at most once, the entry is freed exactly once, nothing leaks.
#[test]
fn drop_racing_with_fire_on_registration() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 1);
        assert!(entry.poll(&waker).is_pending());
        let thread = thread::spawn(move || {
            driver.turn(1);
            driver
        });
        drop(entry);
        let mut driver = thread.join().unwrap();
        driver.turn(2);
        assert!(log.wakes() <= 1);
        assert_eq!(handle.live_timers(), 0);
        assert_eq!(driver.wheel_len(), 0);
    });
}

/// Dropping a timer linked in the wheel while its slot comes due: the waker is called at most
/// once; the cancellation the handle pushes (if it won) is taken and the entry freed once.
#[test]
fn drop_racing_with_fire_from_the_wheel() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 1);
        assert!(entry.poll(&waker).is_pending());
        driver.turn(0);
        assert_eq!(driver.wheel_len(), 1);
        let thread = thread::spawn(move || {
            driver.turn(1);
            driver
        });
        drop(entry);
        let mut driver = thread.join().unwrap();
        driver.turn(2);
        assert!(log.wakes() <= 1);
        assert_eq!(handle.live_timers(), 0);
        assert_eq!(driver.wheel_len(), 0);
    });
}

/// A poll that updates the waker while the slot comes due: either the poll sees the timer
/// fired, or the new waker is the one woken; never both wakers, never neither.
#[test]
fn waker_update_racing_with_fire() {
    model(|| {
        let (mut driver, handle) = timer();
        let (first, first_log) = counting_waker();
        let (second, second_log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 1);
        assert!(entry.poll(&first).is_pending());
        driver.turn(0);
        let thread = thread::spawn(move || {
            driver.turn(1);
            driver
        });
        let ready = entry.poll(&second).is_ready();
        let driver = thread.join().unwrap();
        let woken = first_log.wakes() + second_log.wakes();
        assert!(woken <= 1);
        if !ready {
            assert_eq!(
                second_log.wakes(),
                1,
                "pending poll, and its waker was not woken"
            );
            assert!(entry.poll(&second).is_ready());
        }
        drop(entry);
        drop(driver);
    });
}

/// Moving the deadline later while the old one comes due: a poll after the reset is never
/// ready before the new deadline, and the timer fires at the new one.
#[test]
fn reset_later_racing_with_fire() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 1);
        assert!(entry.poll(&waker).is_pending());
        driver.turn(0);
        let thread = thread::spawn(move || {
            driver.turn(1);
            driver
        });
        entry.reset(3);
        assert!(
            entry.poll(&waker).is_pending(),
            "ready before its new deadline"
        );
        let mut driver = thread.join().unwrap();
        driver.turn(2);
        assert!(
            entry.poll(&waker).is_pending(),
            "ready before its new deadline"
        );
        let before = log.wakes();
        driver.turn(3);
        assert_eq!(log.wakes(), before + 1, "not woken at the new deadline");
        assert!(entry.poll(&waker).is_ready());
        drop(entry);
        assert_eq!(handle.live_timers(), 0);
    });
}

/// Moving the deadline earlier while the old one comes due: the old entry is let go (fired or
/// cancelled, freed once) and the new deadline is met.
#[test]
fn reset_earlier_racing_with_fire() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 3);
        assert!(entry.poll(&waker).is_pending());
        driver.turn(0);
        let thread = thread::spawn(move || {
            driver.turn(3);
            driver
        });
        entry.reset(4);
        entry.reset(2);
        let early = entry.poll(&waker);
        let mut driver = thread.join().unwrap();
        if early.is_pending() {
            driver.turn(4);
            assert!(entry.poll(&waker).is_ready());
        }
        assert!(log.wakes() <= 2);
        drop(entry);
        driver.turn(5);
        assert_eq!(handle.live_timers(), 0);
        assert_eq!(driver.wheel_len(), 0);
    });
}

/// A registration earlier than the deadline the thread is going to sleep until (here 10) is
/// not lost: the thread either sees it before it sleeps or is woken. A lost one leaves the
/// thread parked for ever, which loom reports as a deadlock.
#[test]
fn earlier_registration_while_the_thread_goes_to_sleep_is_not_lost() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut far = TimerEntry::new(&handle, 10);
        assert!(far.poll(&waker).is_pending());
        driver.turn(0);
        let thread = thread::spawn(move || {
            driver.sleep_unless_due(5);
            driver.turn(5);
            driver
        });
        let mut near = TimerEntry::new(&handle, 5);
        assert!(near.poll(&waker).is_pending());
        let driver = thread.join().unwrap();
        assert_eq!(log.wakes(), 1);
        assert!(near.poll(&waker).is_ready());
        drop(near);
        drop(far);
        drop(driver);
    });
}

/// Two handles register while the thread goes to sleep until tick 10: one later (15, needs no
/// wake-up) and one earlier (5). The later one must not consume the wake-up the earlier one
/// needs (only a handle that wakes the thread clears the mark).
#[test]
fn a_later_registration_does_not_swallow_the_wake_up_of_an_earlier_one() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut far = TimerEntry::new(&handle, 10);
        assert!(far.poll(&waker).is_pending());
        driver.turn(0);
        // Like the real thread: turn until the near timer fired, sleeping between turns. A
        // lost wake-up leaves it parked for ever.
        let timer_thread = {
            let log = log.clone();
            thread::spawn(move || {
                while log.wakes() == 0 {
                    driver.sleep_unless_due(5);
                    driver.turn(5);
                }
                driver
            })
        };
        let later = {
            let (handle, waker) = (handle.clone(), waker.clone());
            thread::spawn(move || {
                let mut later = TimerEntry::new(&handle, 15);
                assert!(later.poll(&waker).is_pending());
                later
            })
        };
        let mut near = TimerEntry::new(&handle, 5);
        assert!(near.poll(&waker).is_pending());
        let driver = timer_thread.join().unwrap();
        let later = later.join().unwrap();
        assert_eq!(log.wakes(), 1);
        drop((near, later, far, driver));
    });
}

/// The same with nothing in the wheel: the thread goes to sleep for ever.
#[test]
fn registration_while_the_idle_thread_goes_to_sleep_is_not_lost() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let thread = thread::spawn(move || {
            driver.sleep_unless_due(5);
            driver.turn(5);
            driver
        });
        let mut near = TimerEntry::new(&handle, 5);
        assert!(near.poll(&waker).is_pending());
        let driver = thread.join().unwrap();
        assert_eq!(log.wakes(), 1);
        drop(near);
        drop(driver);
    });
}

/// Dropping a linked timer while the thread shuts down: the entry is freed exactly once (by
/// the thread, or by the handle when the stack is already closed), the waker at most once.
#[test]
fn drop_racing_with_shutdown() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let mut entry = TimerEntry::new(&handle, 5);
        assert!(entry.poll(&waker).is_pending());
        driver.turn(0);
        let thread = thread::spawn(move || {
            driver.shutdown();
            driver
        });
        drop(entry);
        drop(thread.join().unwrap());
        assert!(log.wakes() <= 1);
        assert_eq!(handle.live_timers(), 0);
    });
}

/// Registering while the thread shuts down: refused (the poll reports the shutdown), or taken
/// and let go with a wake-up; either way the next poll reports the shutdown, nothing leaks.
#[test]
fn registration_racing_with_shutdown() {
    model(|| {
        let (mut driver, handle) = timer();
        let (waker, log) = counting_waker();
        let thread = thread::spawn(move || {
            driver.shutdown();
            driver
        });
        let mut entry = TimerEntry::new(&handle, 5);
        let first = entry.poll(&waker);
        let driver = thread.join().unwrap();
        match first {
            Poll::Ready(result) => assert!(result.is_err()),
            Poll::Pending => {
                assert_eq!(log.wakes(), 1, "a pending timer was not woken at shutdown");
                assert!(matches!(entry.poll(&waker), Poll::Ready(Err(()))));
            }
        }
        drop(entry);
        drop(driver);
        assert_eq!(handle.live_timers(), 0);
    });
}
