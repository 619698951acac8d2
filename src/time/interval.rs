//! `Interval`: ticks at a fixed period, with a policy for missed ticks.

use std::fmt;
use std::future::{poll_fn, Future};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::sleep::{current_timer, Sleep};

/// How late a tick may be polled before it counts as missed (as in tokio): being a little late
/// is normal (timer resolution, scheduling), and should not shift a `Delay` interval.
const MISSED_SLACK: Duration = Duration::from_millis(5);

/// An [`Interval`] that ticks every `period`, the first tick completing at once.
///
/// # Panics
///
/// When `period` is zero, and outside a pitcrew runtime (as [`sleep`](crate::time::sleep)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     let mut interval = pitcrew::time::interval(Duration::from_millis(5));
///     let first = interval.tick().await; // at once
///     let second = interval.tick().await;
///     assert_eq!(second - first, Duration::from_millis(5));
///     assert!(start.elapsed() >= Duration::from_millis(5));
/// });
/// ```
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// An [`Interval`] whose first tick completes at `start`, then every `period`.
///
/// # Panics
///
/// When `period` is zero, and outside a pitcrew runtime (as [`sleep`](crate::time::sleep)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let start = Instant::now() + Duration::from_millis(5);
///     let mut interval = pitcrew::time::interval_at(start, Duration::from_millis(5));
///     assert_eq!(interval.tick().await, start);
/// });
/// ```
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "pitcrew::time::interval: `period` must be non-zero"
    );
    let shared = current_timer("pitcrew::time::interval");
    let sleep = Sleep::with_timer(shared, start, Instant::now());
    Interval {
        sleep,
        period,
        missed_tick_behavior: MissedTickBehavior::default(),
    }
}

/// What an [`Interval`] does when ticks were missed: when [`Interval::tick`] is called more than
/// a few milliseconds after the tick was due (the task was busy, or the worker blocked).
///
/// Examples for a period of 10 ms, ticks due at 0, 10, 20, ... ms, and a task that is late
/// by 25 ms for the tick due at 10 ms (it asks at 35 ms):
///
/// | behaviour | ticks returned (scheduled instants)  | when they complete      |
/// |-----------|---------------------------------------|-------------------------|
/// | `Burst`   | 10, 20, 30, 40, 50 ...                 | 35, 35, 35, 40, 50 ...  |
/// | `Delay`   | 10, 45, 55, 65 ...                     | 35, 45, 55, 65 ...      |
/// | `Skip`    | 10, 40, 50, 60 ...                     | 35, 40, 50, 60 ...      |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::time::{interval, MissedTickBehavior};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut every = interval(Duration::from_millis(1));
///     // A slow consumer: restart the schedule after a late tick rather than catching up.
///     every.set_missed_tick_behavior(MissedTickBehavior::Delay);
///     assert_eq!(every.missed_tick_behavior(), MissedTickBehavior::Delay);
///     every.tick().await;
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Catch up: the missed ticks complete at once, one after the other, until the interval is
    /// back on its original schedule. The default.
    #[default]
    Burst,
    /// Restart the schedule: the next tick is one period after the late one was taken.
    Delay,
    /// Drop the missed ticks: the next tick is the next one on the original schedule that is
    /// still in the future.
    Skip,
}

impl MissedTickBehavior {
    /// The deadline after the tick due at `due`, taken (late) at `now`.
    fn next(self, due: Instant, now: Instant, period: Duration) -> Instant {
        match self {
            MissedTickBehavior::Burst => add(due, period),
            MissedTickBehavior::Delay => add(now, period),
            MissedTickBehavior::Skip => {
                let late = now.saturating_duration_since(due).as_nanos();
                let into_period = (late % period.as_nanos()) as u64;
                add(now, period - Duration::from_nanos(into_period))
            }
        }
    }
}

/// `at + d`, saturating at an instant far in the future.
fn add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(86_400 * 365 * 30))
}

/// Ticks every period; made by [`interval`] and [`interval_at`].
///
/// Each [`tick`](Interval::tick) completes at the next scheduled instant and returns it (the
/// scheduled instant, not the time it actually completed). The timer entry is reused from tick
/// to tick.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::time::{interval, MissedTickBehavior};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let mut every = interval(Duration::from_millis(2));
///     every.set_missed_tick_behavior(MissedTickBehavior::Skip);
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert_eq!(second - first, Duration::from_millis(2)); // scheduled instants
/// });
/// ```
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed_tick_behavior: MissedTickBehavior,
}

impl Interval {
    /// Completes at the next tick and returns its scheduled instant.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: if the future is dropped before it completes, no tick is lost; the next
    /// call waits for the same tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_millis(2));
    ///     let mut last = None;
    ///     for _ in 0..3 {
    ///         let at = interval.tick().await;
    ///         if let Some(last) = last {
    ///             assert_eq!(at - last, Duration::from_millis(2));
    ///         }
    ///         last = Some(at);
    ///     }
    /// });
    /// ```
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick; see [`Interval::tick`]. On `Pending` the waker of `cx` is woken
    /// at the tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_millis(5));
    ///     // The first tick is due at once.
    ///     std::future::poll_fn(|cx| interval.poll_tick(cx)).await;
    /// });
    /// ```
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if std::pin::Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let due = self.sleep.deadline();
        let now = Instant::now();
        let next = if now > add(due, MISSED_SLACK) {
            self.missed_tick_behavior.next(due, now, self.period)
        } else {
            add(due, self.period)
        };
        self.sleep.reset_at(next, now);
        Poll::Ready(due)
    }

    /// Restarts the schedule: the next tick is one period from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_millis(5));
    ///     interval.tick().await;
    ///     let before = Instant::now();
    ///     interval.reset();
    ///     let at = interval.tick().await;
    ///     assert!(at >= before + Duration::from_millis(5));
    /// });
    /// ```
    pub fn reset(&mut self) {
        let now = Instant::now();
        self.sleep.reset_at(add(now, self.period), now);
    }

    /// Restarts the schedule with a tick due now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_secs(3600));
    ///     interval.tick().await; // the first tick, at once
    ///     interval.reset_immediately();
    ///     interval.tick().await; // due now, not in an hour
    /// });
    /// ```
    pub fn reset_immediately(&mut self) {
        let now = Instant::now();
        self.sleep.reset_at(now, now);
    }

    /// Restarts the schedule with the next tick `after` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_secs(3600));
    ///     interval.tick().await;
    ///     let before = Instant::now();
    ///     interval.reset_after(Duration::from_millis(5));
    ///     assert!(interval.tick().await >= before + Duration::from_millis(5));
    /// });
    /// ```
    pub fn reset_after(&mut self, after: Duration) {
        let now = Instant::now();
        self.sleep.reset_at(add(now, after), now);
    }

    /// Restarts the schedule with the next tick at `deadline`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_secs(3600));
    ///     interval.tick().await;
    ///     let at = Instant::now() + Duration::from_millis(5);
    ///     interval.reset_at(at);
    ///     assert_eq!(interval.tick().await, at);
    /// });
    /// ```
    pub fn reset_at(&mut self, deadline: Instant) {
        self.sleep.reset_at(deadline, Instant::now());
    }

    /// The policy for missed ticks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::time::MissedTickBehavior;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let interval = pitcrew::time::interval(Duration::from_millis(5));
    ///     assert_eq!(interval.missed_tick_behavior(), MissedTickBehavior::Burst);
    /// });
    /// ```
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed_tick_behavior
    }

    /// Sets the policy for missed ticks (default [`MissedTickBehavior::Burst`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::time::MissedTickBehavior;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut interval = pitcrew::time::interval(Duration::from_millis(5));
    ///     interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ///     assert_eq!(interval.missed_tick_behavior(), MissedTickBehavior::Skip);
    /// });
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed_tick_behavior = behavior;
    }

    /// The period.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let interval = pitcrew::time::interval(Duration::from_millis(250));
    ///     assert_eq!(interval.period(), Duration::from_millis(250));
    /// });
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("next", &self.sleep.deadline())
            .field("period", &self.period)
            .field("missed_tick_behavior", &self.missed_tick_behavior)
            .finish()
    }
}
