//! What a supervisor is told: its options, its children's specifications, and what it reports.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::loom::DataArc;
use crate::scope::Cancelled;
use crate::task;

/// How a supervisor restarts children when one fails (Erlang/OTP's strategies).
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the supervisor's scope.
    pub fn name(mut self, name: impl Into<DataArc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// More than `max_restarts` restarts within `period` stops every child and fails the
    /// supervisor with [`SupervisorError::IntensityExceeded`].
    pub fn intensity(mut self, max_restarts: usize, period: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Delay before restarting a child: `min`, doubling with each consecutive restart of the
    /// same child, at most `max`.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max.max(min);
        self
    }

    /// Time a stopping child gets to finish after it is asked to, before it is dropped.
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
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Its own shutdown grace, instead of the supervisor's.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub(crate) usize);

/// Where a supervised child is in its life.
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
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FailureRecord {
    /// The child's name (`"temporary"` for a temporary child).
    pub child: DataArc<str>,
    /// Its error, or its panic message.
    pub error: String,
}

/// Why a supervisor gave up.
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
