//! `Metrics`: a snapshot of the runtime's counters.

use crate::scheduler::Shared;

/// Counters of a runtime at one moment. Counters only grow; `alive` and the depths are gauges.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(rt.spawn(async {})).unwrap();
/// let m = rt.metrics();
/// assert_eq!(m.workers, 2);
/// assert!(m.spawned >= 1);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Worker threads.
    pub workers: usize,
    /// Tasks spawned since the runtime started (blocking jobs not included). A task is counted
    /// before it is listed as alive, so `alive <= spawned` in every snapshot.
    pub spawned: u64,
    /// Tasks alive now (spawned and not yet ended).
    pub alive: usize,
    /// Tasks that ended on their own (returned or panicked), since the runtime started:
    /// `spawned - alive - cancelled`, exact whenever no task is starting or ending.
    pub completed: u64,
    /// Tasks whose future was dropped before it completed (aborted, cancelled with their
    /// scope, or dropped at shutdown), since the runtime started.
    pub cancelled: u64,
    /// Task polls, all workers.
    pub polls: u64,
    /// Successful steals (each moves a batch), all workers.
    pub steals: u64,
    /// Times a worker parked, all workers.
    pub parks: u64,
    /// Tasks queued through the injector (spawned or woken from outside the workers).
    pub injected: u64,
    /// Tasks waiting in the injector now.
    pub injector_depth: usize,
    /// Blocking-pool threads now.
    pub blocking_threads: usize,
    /// Blocking jobs waiting for a thread now.
    pub blocking_queue_depth: usize,
    /// Polls that ran longer than the slow-poll threshold.
    pub slow_polls: u64,
    /// Timers registered with the timer thread and not yet fired, or cancelled and freed
    /// (a gauge: each is one small allocation).
    pub timers: usize,
    /// I/O sources (sockets, listeners) registered with the reactor now (a gauge).
    pub io_registrations: usize,
    /// The same counters per worker.
    pub per_worker: Vec<WorkerMetrics>,
}

/// Counters of one worker.
///
/// # Examples
///
/// ```
/// let rt = pitcrew::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(rt.spawn(async {})).unwrap();
/// let m = rt.metrics();
/// assert_eq!(m.per_worker.len(), 2);
/// for (i, w) in m.per_worker.iter().enumerate() {
///     println!("worker {i}: {} polls, {} steals, {} queued", w.polls, w.steals, w.local_queue_depth);
/// }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Task polls.
    pub polls: u64,
    /// Successful steals from other workers.
    pub steals: u64,
    /// Times it parked.
    pub parks: u64,
    /// Tasks spawned from tasks running on it.
    pub spawned: u64,
    /// Tasks taken from its LIFO slot.
    pub lifo_hits: u64,
    /// Times its queue overflowed into the injector.
    pub overflows: u64,
    /// Tasks in its queue now.
    pub local_queue_depth: usize,
}

impl Metrics {
    pub(crate) fn collect(shared: &Shared) -> Metrics {
        // Before the spawn counters, which count a task before it is listed: alive <= spawned.
        let alive = shared.owned.len();
        let cancelled = shared.cancelled.get();
        let per_worker: Vec<WorkerMetrics> = shared
            .remotes
            .iter()
            .map(|r| WorkerMetrics {
                polls: r.stats.polls.get(),
                steals: r.stats.steals.get(),
                parks: r.stats.parks.get(),
                spawned: r.stats.spawned.get(),
                lifo_hits: r.stats.lifo_hits.get(),
                overflows: r.stats.overflows.get(),
                local_queue_depth: r.stealer.len(),
            })
            .collect();
        let spawned =
            shared.remote_spawned.get() + per_worker.iter().map(|w| w.spawned).sum::<u64>();
        Metrics {
            workers: shared.config.workers,
            spawned,
            alive,
            completed: spawned.saturating_sub(alive as u64 + cancelled),
            cancelled,
            polls: per_worker.iter().map(|w| w.polls).sum(),
            steals: per_worker.iter().map(|w| w.steals).sum(),
            parks: per_worker.iter().map(|w| w.parks).sum(),
            injected: shared.injected.get(),
            injector_depth: shared.injector.len(),
            blocking_threads: shared.blocking.num_threads(),
            blocking_queue_depth: shared.blocking.queue_depth(),
            slow_polls: shared.slow_polls.get(),
            timers: shared.time.live_timers(),
            io_registrations: shared.io.sources(),
            per_worker,
        }
    }
}
