//! The blocking pool: threads for closures that block (file I/O, CPU-heavy work, legacy
//! synchronous APIs), so that they never stall a worker.
//!
//! A blocking closure is wrapped in a one-shot future and allocated as an ordinary task, so its
//! `JoinHandle` behaves like any other. The pool keeps a FIFO queue under a mutex: a new job goes
//! to an idle thread when there is one, else a new thread is started while fewer than
//! `max_blocking_threads` run, else it waits in the queue. A thread that finds no work for
//! `blocking_keep_alive` retires.
//!
//! Shutdown: queued jobs that never started are cancelled (their handles resolve to a cancelled
//! `JoinError`); running jobs cannot be interrupted, so shutdown waits for them and joins every
//! pool thread.

mod pool;

pub(crate) use pool::{BlockingPool, PoolConfig};
