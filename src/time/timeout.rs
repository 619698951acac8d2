//! `Timeout`: a future with a deadline, and the `Elapsed` error.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::time::sleep::{current_timer, Sleep};

/// Runs `future` with a time limit of `duration`.
///
/// The result is `Ok` with the future's output if it finishes first, or `Err(`[`Elapsed`]`)`
/// once the duration has passed; the future is then dropped with the `Timeout`. The future is
/// polled before the deadline is checked, and a future that is ready on its first poll never
/// touches the timer. [`Duration::MAX`] never times out.
///
/// The deadline is fixed here (`duration` from now); the runtime's timer is looked up on the
/// first poll that finds the inner future pending, so a `Timeout` may be created anywhere but
/// must then be polled on a runtime thread (a worker, a blocking thread, or inside `block_on`).
///
/// # Panics
///
/// When polled outside a pitcrew runtime while the inner future is pending, with a message
/// naming [`Handle::try_current`](crate::Handle::try_current).
///
/// # Cancel safety
///
/// Dropping the `Timeout` drops the inner future and cancels the timer; it is as cancel-safe as
/// the inner future.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::time::{sleep, timeout};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     assert_eq!(timeout(Duration::from_secs(1), async { 7 }).await, Ok(7));
///     let slow = sleep(Duration::from_secs(3600));
///     assert!(timeout(Duration::from_millis(5), slow).await.is_err());
/// });
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    let now = Instant::now();
    Timeout {
        value: future.into_future(),
        deadline: now.checked_add(duration),
        passed: duration.is_zero(),
        delay: None,
    }
}

/// Runs `future` until `deadline`; see [`timeout`].
///
/// # Panics
///
/// As [`timeout`].
///
/// # Cancel safety
///
/// As [`timeout`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     let never = std::future::pending::<()>();
///     assert!(pitcrew::time::timeout_at(deadline, never).await.is_err());
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        value: future.into_future(),
        deadline: Some(deadline),
        passed: false,
        delay: None,
    }
}

/// A future with a deadline; made by [`timeout`] and [`timeout_at`].
///
/// Resolves to `Ok(output)` if the inner future finishes first, `Err(Elapsed)` otherwise. The
/// timer does not spend the task's cooperative budget (the inner future spends its own), so an
/// inner future that keeps running out of budget still times out.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(async {
///     let quick = pitcrew::time::timeout(Duration::from_secs(5), async { 3 });
///     assert_eq!(quick.await, Ok(3));
///     let stuck = pitcrew::time::timeout(Duration::from_millis(5), std::future::pending::<()>());
///     let stuck_deadline = stuck.deadline();
///     assert!(stuck.await.is_err());
///     assert!(std::time::Instant::now() >= stuck_deadline);
/// });
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F> {
    value: F,
    /// `None`: never (the deadline overflowed).
    deadline: Option<Instant>,
    /// Known to have passed at creation (a zero duration).
    passed: bool,
    /// The timer, made on the first pending poll.
    delay: Option<Sleep>,
}

impl<F> Timeout<F> {
    /// The inner future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let limited = pitcrew::time::timeout(Duration::from_secs(5), std::future::ready(7));
    ///     let _inner: &std::future::Ready<i32> = limited.get_ref();
    ///     assert_eq!(limited.await, Ok(7));
    /// });
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.value
    }

    /// The inner future, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let mut limited = pitcrew::time::timeout(Duration::from_secs(5), Box::pin(async { 7 }));
    ///     // Poll the inner future directly, bypassing the timer.
    ///     assert_eq!(limited.get_mut().await, 7);
    /// });
    /// ```
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.value
    }

    /// Takes the inner future out, cancelling the timer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let limited = pitcrew::time::timeout(Duration::from_millis(1), async { 7 });
    ///     // Changed our mind: no time limit after all.
    ///     let unlimited = limited.into_inner();
    ///     assert_eq!(unlimited.await, 7);
    /// });
    /// ```
    pub fn into_inner(self) -> F {
        self.value
    }

    /// The instant at which the timeout elapses (for one that never does, an instant far in the
    /// future).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let deadline = Instant::now() + Duration::from_secs(5);
    ///     let limited = pitcrew::time::timeout_at(deadline, async { 7 });
    ///     assert_eq!(limited.deadline(), deadline);
    ///     assert_eq!(limited.await, Ok(7));
    /// });
    /// ```
    pub fn deadline(&self) -> Instant {
        match (&self.delay, self.deadline) {
            (Some(delay), _) => delay.deadline(),
            (None, Some(deadline)) => deadline,
            (None, None) => Sleep::far_future(Instant::now()),
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `value` is structurally pinned: it is never moved out of a pinned `Timeout`
        // (`into_inner` takes `self` by value, which needs `Timeout: Unpin` once pinned, i.e.
        // `F: Unpin`), and `Timeout` has no `Drop` impl. `deadline` is `Unpin` and not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let value = unsafe { Pin::new_unchecked(&mut this.value) };
        if let Poll::Ready(output) = value.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if this.passed {
            return Poll::Ready(Err(Elapsed(())));
        }
        let delay = match &mut this.delay {
            Some(delay) => delay,
            None => {
                let timer = current_timer("pitcrew::time::Timeout (polled while pending)");
                let now = Instant::now();
                let delay = match this.deadline {
                    Some(deadline) => Sleep::with_timer(timer, deadline, now),
                    None => Sleep::never(timer, now),
                };
                this.delay.insert(delay)
            }
        };
        delay.poll_elapsed(cx.waker()).map(|()| Err(Elapsed(())))
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("deadline", &self.deadline())
            .field("registered", &self.delay.is_some())
            .finish_non_exhaustive()
    }
}

/// The error of a [`Timeout`] whose deadline passed first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let err = rt
///     .block_on(async {
///         pitcrew::time::timeout(Duration::ZERO, std::future::pending::<()>()).await
///     })
///     .unwrap_err();
/// assert_eq!(err.to_string(), "deadline has elapsed");
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(err: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, err)
    }
}

/// An `Elapsed` for other deadline-bounded operations of the crate (`scope::fail_after`).
pub(crate) fn elapsed() -> Elapsed {
    Elapsed(())
}
