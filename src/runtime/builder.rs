//! `Builder`: the runtime's settings and their validation.

use std::fmt;
use std::time::Duration;

use crate::loom::DataArc;
use crate::runtime::{Hook, Runtime};

/// Configures and builds a [`Runtime`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let rt = pitcrew::Runtime::builder()
///     .workers(2)
///     .thread_name("app-worker")
///     .max_blocking_threads(64)
///     .blocking_keep_alive(Duration::from_secs(5))
///     .slow_poll_threshold(Duration::from_millis(50))
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 40 + 2 }), 42);
/// ```
pub struct Builder {
    pub(crate) workers: Option<usize>,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) max_blocking_threads: usize,
    pub(crate) blocking_keep_alive: Duration,
    pub(crate) on_thread_start: Option<Hook>,
    pub(crate) on_thread_stop: Option<Hook>,
    pub(crate) slow_poll_threshold: Option<Duration>,
    pub(crate) track_poll_time: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: None,
            thread_name: "pitcrew-worker".to_string(),
            stack_size: None,
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            on_thread_start: None,
            on_thread_stop: None,
            slow_poll_threshold: None,
            track_poll_time: false,
        }
    }
}

impl Builder {
    /// A builder with the defaults: one worker per CPU, 512 blocking threads at most.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Builder::new().build().unwrap();
    /// assert!(rt.metrics().workers >= 1); // one per CPU
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The number of worker threads (default: the number of CPUs). Zero is an error at
    /// [`build`](Builder::build).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(3).build().unwrap();
    /// assert_eq!(rt.metrics().workers, 3);
    /// assert!(pitcrew::Runtime::builder().workers(0).build().is_err());
    /// ```
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// The name prefix of runtime threads: workers are named `"{name}-{index}"`, blocking
    /// threads `"{name}-blocking-{n}"`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(1).thread_name("app").build().unwrap();
    /// let name = rt.block_on(rt.spawn(async {
    ///     std::thread::current().name().map(str::to_owned)
    /// }));
    /// assert_eq!(name.unwrap().as_deref(), Some("app-0"));
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = name.into();
        self
    }

    /// The stack size of every runtime thread, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(1)
    ///     .thread_stack_size(4 * 1024 * 1024)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    /// ```
    pub fn thread_stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// The most threads the blocking pool starts (default 512). Zero is an error.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(1).max_blocking_threads(4).build().unwrap();
    /// let jobs: Vec<_> = (0..8).map(|i| rt.spawn_blocking(move || i * 2)).collect();
    /// let sum: i32 = jobs.into_iter().map(|j| rt.block_on(j).unwrap()).sum();
    /// assert_eq!(sum, 56);
    /// assert!(rt.metrics().blocking_threads <= 4);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Builder {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking thread waits for work before it exits (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Idle blocking threads exit after 1 s instead of 10 s.
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(1)
    ///     .blocking_keep_alive(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.block_on(rt.spawn_blocking(|| "done")).unwrap(), "done");
    /// ```
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Builder {
        self.blocking_keep_alive = keep_alive;
        self
    }

    /// Runs `f` on every runtime thread (workers and blocking threads) when it starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let s = started.clone();
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(2)
    ///     .on_thread_start(move || {
    ///         s.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// drop(rt); // joins the workers
    /// assert!(started.load(Ordering::SeqCst) >= 2);
    /// ```
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Builder {
        self.on_thread_start = Some(DataArc::new(f));
        self
    }

    /// Runs `f` on every runtime thread just before it exits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let stopped = Arc::new(AtomicUsize::new(0));
    /// let s = stopped.clone();
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(2)
    ///     .on_thread_stop(move || {
    ///         s.fetch_add(1, Ordering::SeqCst);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// drop(rt); // joins the workers
    /// assert!(stopped.load(Ordering::SeqCst) >= 2);
    /// ```
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Builder {
        self.on_thread_stop = Some(DataArc::new(f));
        self
    }

    /// A task poll that runs longer than `threshold` emits a tracing warning naming the task and
    /// how long it blocked its worker. Off by default (it costs two clock reads per poll).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(1)
    ///     .slow_poll_threshold(Duration::from_millis(1))
    ///     .build()
    ///     .unwrap();
    /// // This poll blocks its worker for 5 ms: it is counted (and logged with `tracing`).
    /// rt.block_on(rt.spawn(async { std::thread::sleep(Duration::from_millis(5)) })).unwrap();
    /// assert!(rt.metrics().slow_polls >= 1);
    /// ```
    pub fn slow_poll_threshold(mut self, threshold: Duration) -> Builder {
        self.slow_poll_threshold = Some(threshold);
        self
    }

    /// Adds up, per task, the time spent polling it, for [`task::dump`](crate::task::dump)
    /// ([`TaskInfo::poll_time`](crate::task::TaskInfo::poll_time)). Off by default: it reads a
    /// cycle counter twice per poll, which costs a few nanoseconds (about 10 ns on a small VM,
    /// a third of a `yield_now` round trip there).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = pitcrew::Runtime::builder().workers(1).track_poll_time(true).build().unwrap();
    /// let parked = rt.spawn(std::future::pending::<()>());
    /// let tasks = pitcrew::task::dump(rt.handle());
    /// let info = tasks.iter().find(|t| t.id == parked.id()).unwrap();
    /// assert!(info.poll_time.is_some());
    /// ```
    pub fn track_poll_time(mut self, on: bool) -> Builder {
        self.track_poll_time = on;
        self
    }

    /// Starts the runtime's threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = pitcrew::Runtime::builder()
    ///     .workers(2)
    ///     .thread_name("api")
    ///     .max_blocking_threads(8)
    ///     .blocking_keep_alive(Duration::from_secs(1))
    ///     .slow_poll_threshold(Duration::from_millis(20))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.metrics().workers, 2);
    /// ```
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the setting when `workers(0)` or `max_blocking_threads(0)` was
    /// given, or carrying the OS error when a thread could not be started.
    pub fn build(self) -> Result<Runtime, BuildError> {
        if self.workers == Some(0) {
            return Err(BuildError::invalid("workers", "must be at least 1"));
        }
        if self.max_blocking_threads == 0 {
            return Err(BuildError::invalid(
                "max_blocking_threads",
                "must be at least 1",
            ));
        }
        if self.workers.is_some_and(|w| w > 1 << 15) {
            return Err(BuildError::invalid("workers", "must be at most 32768"));
        }
        Runtime::from_builder(self)
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("thread_name", &self.thread_name)
            .field("thread_stack_size", &self.stack_size)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("blocking_keep_alive", &self.blocking_keep_alive)
            .field("slow_poll_threshold", &self.slow_poll_threshold)
            .field("track_poll_time", &self.track_poll_time)
            .finish_non_exhaustive()
    }
}

/// The runtime could not be built.
///
/// # Examples
///
/// ```
/// use pitcrew::BuildError;
///
/// let err = pitcrew::Runtime::builder().workers(0).build().unwrap_err();
/// assert!(matches!(err, BuildError::InvalidSetting { setting: "workers", .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting has a value the runtime cannot work with.
    InvalidSetting {
        /// The builder method, e.g. `"workers"`.
        setting: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// The OS refused to start a runtime thread.
    Spawn(std::io::Error),
    /// The I/O reactor could not be created (e.g. no file descriptors left).
    Io(std::io::Error),
}

impl BuildError {
    fn invalid(setting: &'static str, reason: &'static str) -> BuildError {
        BuildError::InvalidSetting { setting, reason }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::InvalidSetting { setting, reason } => {
                write!(f, "invalid pitcrew runtime setting `{setting}`: {reason}")
            }
            BuildError::Spawn(err) => write!(f, "could not start a pitcrew runtime thread: {err}"),
            BuildError::Io(err) => write!(f, "could not create the pitcrew I/O reactor: {err}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(err) | BuildError::Io(err) => Some(err),
            BuildError::InvalidSetting { .. } => None,
        }
    }
}
