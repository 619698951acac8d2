//! `Sleep`: a future that completes at a deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::loom::Arc;
use crate::runtime::context;
use crate::task::coop;
use crate::time::driver::TimeShared;
use crate::time::entry::{Registration, NEVER};

/// What `deadline()` reports for a sleep that never ends (about 30 years from its creation).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// Waits until `duration` has elapsed.
///
/// The sleep is tied to the current runtime's timer when it is created. It completes no earlier
/// than `duration` after this call, at millisecond resolution: the timer rounds deadlines up to
/// the next millisecond. A zero duration completes on the first poll; [`Duration::MAX`] (or any
/// deadline too far away to represent) never completes and never overflows.
///
/// # Panics
///
/// Outside a pitcrew runtime (a worker, a blocking thread, or inside `block_on`), with a message
/// naming [`Handle::try_current`](crate::Handle::try_current), as [`spawn`](crate::spawn) does.
///
/// # Cancel safety
///
/// Dropping the `Sleep` cancels its timer and frees it; nothing else is lost.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     pitcrew::time::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    let shared = current_timer("pitcrew::time::sleep");
    let now = Instant::now();
    // The tick from `now` and `duration` directly, and the deadline only if asked for: one
    // `Instant` operation instead of two on this hot path.
    let tick = shared.after_to_tick(now, duration);
    Sleep {
        shared,
        base: now,
        after: duration,
        tick,
        elapsed: duration.is_zero(),
        registration: Registration::new(),
    }
}

/// Waits until `deadline`.
///
/// A deadline that has already passed completes on the first poll, without involving the timer
/// thread.
///
/// # Panics
///
/// Outside a pitcrew runtime, as [`sleep`] does.
///
/// # Cancel safety
///
/// Dropping the `Sleep` cancels its timer; nothing else is lost.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     pitcrew::time::sleep_until(deadline).await;
///     assert!(Instant::now() >= deadline);
/// });
/// ```
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    let shared = current_timer("pitcrew::time::sleep_until");
    let passed = deadline <= Instant::now();
    Sleep::new(shared, deadline, passed)
}

/// The timer of the current runtime.
#[track_caller]
pub(crate) fn current_timer(what: &str) -> Arc<TimeShared> {
    context::with_scheduler(|shared| match shared {
        Some(shared) => shared.time.clone(),
        None => context::no_runtime_panic(what),
    })
}

/// A future that completes at a deadline; made by [`sleep`] and [`sleep_until`].
///
/// `Sleep` is `Send + Sync + Unpin`. It registers with the runtime's timer thread on its first
/// pending poll (a sleep that is never polled, or whose deadline has passed by then, costs the
/// timer nothing) and spends one unit of the task's cooperative budget each time it is polled
/// ready, like other pitcrew leaf futures.
///
/// # Panics
///
/// Polling it after its runtime has shut down panics: the timer can never fire. (A sleep still
/// pending at that moment is woken so that its poller learns this rather than hangs.)
///
/// # Examples
///
/// Moving a deadline:
///
/// ```
/// use std::pin::pin;
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     let mut sleep = pin!(pitcrew::time::sleep(Duration::from_secs(3600)));
///     sleep.as_mut().reset(start + Duration::from_millis(5));
///     sleep.as_mut().await;
///     assert!(sleep.is_elapsed());
///     assert!(start.elapsed() < Duration::from_secs(3600));
/// });
/// ```
pub struct Sleep {
    shared: Arc<TimeShared>,
    /// The deadline is `base + after` (`after` is zero unless made by `sleep`).
    base: Instant,
    after: Duration,
    /// The deadline on the timer's clock; [`NEVER`] when it cannot be reached.
    tick: u64,
    elapsed: bool,
    registration: Registration,
}

const _: () = {
    const fn assert_send_sync_unpin<T: Send + Sync + Unpin>() {}
    assert_send_sync_unpin::<Sleep>();
};

impl Sleep {
    fn new(shared: Arc<TimeShared>, deadline: Instant, passed: bool) -> Sleep {
        let tick = shared.deadline_to_tick(deadline);
        Sleep {
            shared,
            base: deadline,
            after: Duration::ZERO,
            tick,
            elapsed: passed,
            registration: Registration::new(),
        }
    }

    /// A sleep until `deadline` on the given timer, `now` being the current time.
    pub(crate) fn with_timer(shared: Arc<TimeShared>, deadline: Instant, now: Instant) -> Sleep {
        Sleep::new(shared, deadline, deadline <= now)
    }

    /// A sleep that never ends.
    pub(crate) fn never(shared: Arc<TimeShared>, now: Instant) -> Sleep {
        Sleep {
            shared,
            base: Sleep::far_future(now),
            after: Duration::ZERO,
            tick: NEVER,
            elapsed: false,
            registration: Registration::new(),
        }
    }

    /// What [`Sleep::deadline`] reports for a sleep that never ends.
    pub(crate) fn far_future(now: Instant) -> Instant {
        now.checked_add(FAR_FUTURE).unwrap_or(now)
    }

    /// The instant at which the sleep completes. For a sleep that never completes, an instant
    /// far in the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let deadline = Instant::now() + Duration::from_secs(1);
    ///     assert_eq!(pitcrew::time::sleep_until(deadline).deadline(), deadline);
    /// });
    /// ```
    pub fn deadline(&self) -> Instant {
        self.base
            .checked_add(self.after)
            .unwrap_or_else(|| Sleep::far_future(self.base))
    }

    /// True once the sleep has completed (been polled ready) and not been reset since.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut nap = Box::pin(pitcrew::time::sleep(Duration::from_millis(1)));
    ///     assert!(!nap.is_elapsed());
    ///     nap.as_mut().await;
    ///     assert!(nap.is_elapsed());
    /// });
    /// ```
    pub fn is_elapsed(&self) -> bool {
        self.elapsed
    }

    /// Moves the deadline, earlier or later, whether or not the sleep has completed; the next
    /// poll waits for the new one. A deadline in the past completes on the next poll.
    ///
    /// Moving it later while the timer is registered is one atomic operation; moving it earlier
    /// registers a new timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut sleep = pin!(pitcrew::time::sleep(Duration::ZERO));
    ///     sleep.as_mut().await;
    ///     let deadline = Instant::now() + Duration::from_millis(5);
    ///     sleep.as_mut().reset(deadline);
    ///     assert!(!sleep.is_elapsed());
    ///     sleep.as_mut().await;
    ///     assert!(Instant::now() >= deadline);
    /// });
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let now = Instant::now();
        self.get_mut().reset_at(deadline, now);
    }

    /// [`Sleep::reset`] with the current time supplied by the caller.
    pub(crate) fn reset_at(&mut self, deadline: Instant, now: Instant) {
        self.base = deadline;
        self.after = Duration::ZERO;
        self.tick = self.shared.deadline_to_tick(deadline);
        self.elapsed = deadline <= now;
        let tick = if self.elapsed { 0 } else { self.tick };
        self.registration.reset(&self.shared, tick);
    }

    /// Polls without spending cooperative budget (for [`Timeout`](crate::time::Timeout), whose
    /// inner future spends its own).
    pub(crate) fn poll_elapsed(&mut self, waker: &Waker) -> Poll<()> {
        if self.elapsed {
            return Poll::Ready(());
        }
        match self.registration.poll(&self.shared, self.tick, waker) {
            Poll::Ready(Ok(())) => {
                self.elapsed = true;
                Poll::Ready(())
            }
            Poll::Ready(Err(_)) => panic!(
                "a pitcrew::time::Sleep was polled after its runtime shut down: it can never fire"
            ),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.poll_elapsed(cx.waker()).is_pending() {
            return Poll::Pending;
        }
        // Ready: spend a unit of budget. With none left this yields (waking the task); the
        // sleep stays elapsed, so the next poll is ready again.
        coop::poll_proceed(cx)
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.registration.cancel(&self.shared);
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline())
            .field("elapsed", &self.elapsed)
            .field("registered", &self.registration.is_registered())
            .finish()
    }
}
