//! What a supervisor is told: its options, its children's specifications, and what it reports.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::loom::DataArc;
use crate::scope::Cancelled;
use crate::task;

/// How a supervisor restarts children when one fails (Erlang/OTP's strategies).
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{Strategy, SupervisorOptions};
///
/// assert_eq!(Strategy::default(), Strategy::OneForOne);
/// // Children that depend on the ones started before them:
/// let opts = SupervisorOptions::new().strategy(Strategy::RestForOne);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Restart only the child that ended.
    #[default]
    OneForOne,
    /// Stop every other child (in reverse start order), then restart them all in start order.
    OneForAll,
    /// Stop the children started after the one that ended (in reverse order), then restart it
    /// and them in start order.
    RestForOne,
}

/// When a restartable child is restarted.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{ChildSpec, Restart};
///
/// assert_eq!(Restart::default(), Restart::Permanent);
/// // A job that is retried until it succeeds once:
/// let spec = ChildSpec::new("migrate", || async { Ok::<(), String>(()) })
///     .restart(Restart::Transient);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always, however it ended.
    #[default]
    Permanent,
    /// Only after a failure (an `Err` or a panic); an `Ok` end is final.
    Transient,
    /// Never.
    Temporary,
}

/// Options of a [`supervisor`](crate::scope::supervisor).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{supervisor, Strategy, SupervisorOptions};
///
/// let opts = SupervisorOptions::new()
///     .name("workers")
///     .strategy(Strategy::OneForAll)
///     .intensity(5, Duration::from_secs(10))
///     .backoff(Duration::from_millis(10), Duration::from_secs(1))
///     .grace(Duration::from_millis(500));
/// let rt = pitcrew::Runtime::new().unwrap();
/// let name = rt.block_on(supervisor(opts, |_sup| async {
///     pitcrew::scope::current().and_then(|s| s.name())
/// }));
/// assert_eq!(name.unwrap().as_deref(), Some("workers"));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SupervisorOptions {
    pub(crate) name: Option<DataArc<str>>,
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: usize,
    pub(crate) period: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) grace: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            name: None,
            strategy: Strategy::OneForOne,
            max_restarts: 3,
            period: Duration::from_secs(5),
            backoff_min: Duration::ZERO,
            backoff_max: Duration::ZERO,
            grace: Duration::from_secs(5),
        }
    }
}

impl SupervisorOptions {
    /// One-for-one, at most 3 restarts in 5 s, no back-off, 5 s shutdown grace.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let out = rt.block_on(supervisor(SupervisorOptions::new(), |_sup| async { 7 }));
    /// assert_eq!(out.unwrap(), 7);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the supervisor's scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{supervisor, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let opts = SupervisorOptions::new().name("db-pool");
    /// let name = rt.block_on(supervisor(opts, |_sup| async {
    ///     pitcrew::scope::current().and_then(|s| s.name())
    /// }));
    /// assert_eq!(name.unwrap().as_deref(), Some("db-pool"));
    /// ```
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The restart strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use pitcrew::scope::{SupervisorOptions, Strategy};
    ///
    /// let opts = SupervisorOptions::new().strategy(Strategy::OneForAll);
    /// # let _ = opts;
    /// ```
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// More than `max_restarts` restarts within `period` stops every child and fails the
    /// supervisor with [`SupervisorError::IntensityExceeded`]. The supervisor remembers the
    /// times of at most `max_restarts + 1` restarts; `usize::MAX` means no limit, and then it
    /// keeps none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::{supervisor, ChildSpec, SupervisorError, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// // At most 2 restarts per second: a child that always fails makes the supervisor give up.
    /// let opts = SupervisorOptions::new().intensity(2, Duration::from_secs(1));
    /// let out = rt.block_on(supervisor(opts, |sup| async move {
    ///     sup.add(ChildSpec::new("doomed", || async { Err::<(), _>("no database") }));
    /// }));
    /// assert!(matches!(out, Err(SupervisorError::IntensityExceeded { .. })));
    /// ```
    pub fn intensity(mut self, max_restarts: usize, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Delay before restarting a child: `min`, doubling with each consecutive restart of the
    /// same child, at most `max`. A child that runs for at least `max` after a restart has
    /// recovered: when it next ends, the delay starts again from `min`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::SupervisorOptions;
    ///
    /// // Wait 100 ms before the first restart of a child, then 200 ms, 400 ms, ... up to 10 s.
    /// let opts = SupervisorOptions::new()
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(10));
    /// # let _ = opts;
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Time a stopping child gets to finish after it is asked to, before it is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::SupervisorOptions;
    ///
    /// // A child that does not stop within 250 ms of being asked is dropped.
    /// let opts = SupervisorOptions::new().grace(Duration::from_millis(250));
    /// # let _ = opts;
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

pub(crate) type ChildFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub(crate) type Factory = DataArc<dyn Fn() -> ChildFuture + Send + Sync>;

/// A restartable child: a name and a factory called on every (re)start.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{ChildSpec, Restart};
///
/// let spec = ChildSpec::new("cache-refresher", || async {
///     // ... refresh until cancelled ...
///     Ok::<(), std::io::Error>(())
/// })
/// .restart(Restart::Transient);
/// # let _ = spec;
/// ```
#[must_use]
pub struct ChildSpec {
    pub(crate) name: DataArc<str>,
    pub(crate) factory: Factory,
    pub(crate) restart: Restart,
    pub(crate) grace: Option<Duration>,
}

impl ChildSpec {
    /// A permanent child named `name`; `factory` makes its future on every start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use pitcrew::scope::{supervisor, ChildSpec, Restart, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let r = runs.clone();
    /// rt.block_on(supervisor(SupervisorOptions::new(), move |sup| async move {
    ///     // The factory makes a fresh future for every start.
    ///     sup.add(
    ///         ChildSpec::new("once", move || {
    ///             r.fetch_add(1, Ordering::SeqCst);
    ///             async { Ok::<(), String>(()) }
    ///         })
    ///         .restart(Restart::Temporary),
    ///     );
    /// }))
    /// .unwrap();
    /// assert_eq!(runs.load(Ordering::SeqCst), 1);
    /// ```
    pub fn new<F, Fut, E>(name: impl Into<DataArc<str>>, factory: F) -> ChildSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let factory: Factory = DataArc::new(move || {
            let fut = factory();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) }) as ChildFuture
        });
        ChildSpec {
            name: name.into(),
            factory,
            restart: Restart::Permanent,
            grace: None,
        }
    }

    /// When it is restarted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use pitcrew::scope::{supervisor, ChildSpec, Restart, SupervisorOptions};
    ///
    /// let rt = pitcrew::Runtime::new().unwrap();
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let r = runs.clone();
    /// rt.block_on(supervisor(SupervisorOptions::new(), move |sup| async move {
    ///     // Transient: restarted after its first (failed) run, not after its second (Ok) one.
    ///     sup.add(
    ///         ChildSpec::new("retry", move || {
    ///             let n = r.fetch_add(1, Ordering::SeqCst);
    ///             async move { if n == 0 { Err("not yet") } else { Ok(()) } }
    ///         })
    ///         .restart(Restart::Transient),
    ///     );
    /// }))
    /// .unwrap();
    /// assert_eq!(runs.load(Ordering::SeqCst), 2);
    /// ```
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Its own shutdown grace, instead of the supervisor's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pitcrew::scope::ChildSpec;
    ///
    /// // This child flushes a buffer when asked to stop: it gets 2 s for that.
    /// let spec = ChildSpec::new("flusher", || async { Ok::<(), String>(()) })
    ///     .grace(Duration::from_secs(2));
    /// # let _ = spec;
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Identifies a restartable child of a supervisor.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{supervisor, ChildSpec, Restart, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
///     let spec = |name| ChildSpec::new(name, || async { Ok::<(), String>(()) });
///     let a = sup.add(spec("a").restart(Restart::Temporary));
///     let b = sup.add(spec("b").restart(Restart::Temporary));
///     assert_ne!(a, b);
/// }))
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub(crate) usize);

/// Where a supervised child is in its life.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{self, supervisor, ChildSpec, ChildState, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
///     sup.add(ChildSpec::new("server", || async {
///         scope::cancelled().await; // serve until asked to stop
///         Ok::<(), String>(())
///     }));
///     while sup.children()[0].state != ChildState::Running {
///         pitcrew::yield_now().await;
///     }
///     sup.shutdown().await;
///     assert_eq!(sup.children()[0].state, ChildState::Stopped);
/// }))
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildState {
    /// Being started.
    Starting,
    /// Running.
    Running,
    /// Waiting out its back-off before a restart.
    Restarting,
    /// Asked to stop, within its grace period.
    Stopping,
    /// Ended, and not to be restarted.
    Stopped,
}

/// A supervised child, as [`Supervisor::children`](crate::scope::Supervisor::children) reports it.
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{self, supervisor, ChildSpec, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
///     sup.add(ChildSpec::new("server", || async {
///         scope::cancelled().await;
///         Ok::<(), String>(())
///     }));
///     let info = &sup.children()[0];
///     assert_eq!(&*info.name, "server");
///     assert_eq!(info.restarts, 0);
///     sup.shutdown().await;
/// }))
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// Its name.
    pub name: DataArc<str>,
    /// The task running it now, if any.
    pub task: Option<task::Id>,
    /// How many times it was restarted.
    pub restarts: usize,
    /// Where it is in its life.
    pub state: ChildState,
}

/// One failure in a supervisor's bounded history
/// ([`Supervisor::recent_failures`](crate::scope::Supervisor::recent_failures)).
///
/// # Examples
///
/// ```
/// use pitcrew::scope::{supervisor, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// rt.block_on(supervisor(SupervisorOptions::new(), |sup| async move {
///     let _ = sup.spawn(async { Err::<(), _>("disk full") }).await;
///     let failure = &sup.recent_failures()[0];
///     assert_eq!(&*failure.child, "temporary");
///     assert_eq!(failure.error, "disk full");
/// }))
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FailureRecord {
    /// The child's name (`"temporary"` for a temporary child).
    pub child: DataArc<str>,
    /// Its error, or its panic message.
    pub error: String,
}

/// Why a supervisor gave up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pitcrew::scope::{supervisor, ChildSpec, SupervisorError, SupervisorOptions};
///
/// let rt = pitcrew::Runtime::new().unwrap();
/// let opts = SupervisorOptions::new().intensity(1, Duration::from_secs(1));
/// let out = rt.block_on(supervisor(opts, |sup| async move {
///     sup.add(ChildSpec::new("crasher", || async { Err::<(), _>("boom") }));
/// }));
/// match out {
///     Err(SupervisorError::IntensityExceeded { child, .. }) => assert_eq!(&*child, "crasher"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SupervisorError {
    /// More restarts than the intensity allows: every child was stopped.
    IntensityExceeded {
        /// The child whose restart went over the limit.
        child: DataArc<str>,
        /// Restarts within the period.
        restarts: usize,
    },
    /// The body panicked; every child was stopped. The panic message, when it had one.
    BodyPanicked(Option<String>),
    /// The supervisor's scope was cancelled (by an enclosing scope) and its body dropped.
    Cancelled(Cancelled),
}

impl fmt::Display for SupervisorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SupervisorError::IntensityExceeded { child, restarts } => write!(
                f,
                "supervisor gave up: child {child} needed {restarts} restarts within the intensity period"
            ),
            SupervisorError::BodyPanicked(Some(m)) => write!(f, "supervisor body panicked: {m}"),
            SupervisorError::BodyPanicked(None) => f.write_str("supervisor body panicked"),
            SupervisorError::Cancelled(c) => write!(f, "supervisor {c}"),
        }
    }
}

impl std::error::Error for SupervisorError {}
