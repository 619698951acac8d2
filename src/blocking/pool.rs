//! The blocking pool's queue, threads and shutdown.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::loom::{thread, Arc, Condvar, Mutex};
use crate::runtime::{context, Handle, Hook};
use crate::scheduler::Shared;
use crate::task::raw::{Header, Notified, RawTask, Schedule};
use crate::task::{Id, JoinHandle};

/// Settings taken from the runtime builder.
#[derive(Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_start: Option<Hook>,
    pub(crate) on_stop: Option<Hook>,
}

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<PoolState>,
    condvar: Condvar,
    config: PoolConfig,
}

struct PoolState {
    queue: VecDeque<Notified>,
    num_threads: usize,
    num_idle: usize,
    /// Wake-ups sent to idle threads and not yet taken.
    num_notify: usize,
    shutdown: bool,
    threads: HashMap<usize, thread::JoinHandle<()>>,
    /// A retired thread, joined by the next one to retire or by shutdown.
    last_exiting: Option<thread::JoinHandle<()>>,
    next_thread_id: usize,
}

/// Blocking tasks are never woken (their one poll always completes) and are not in the owned
/// list: shutdown reaches them through the pool's queue.
struct BlockingSchedule;

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        // Only an abort of a queued or finished job gets here, and those never ask to be
        // queued; drop the reference rather than leak it.
        drop(task);
    }

    fn release(&self, _task: &Header) -> bool {
        false
    }
}

/// A closure as a future that runs it on its first poll.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F: FnOnce() -> R, R> Future for BlockingTask<F> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self
            .0
            .take()
            .expect("blocking task polled after it completed");
        Poll::Ready(f())
    }
}

impl BlockingPool {
    pub(crate) fn new(config: PoolConfig) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    num_threads: 0,
                    num_idle: 0,
                    num_notify: 0,
                    shutdown: false,
                    threads: HashMap::new(),
                    last_exiting: None,
                    next_thread_id: 0,
                }),
                condvar: Condvar::new(),
                config,
            }),
        }
    }

    /// Queues `f` and returns its handle. After shutdown the handle resolves to a cancelled
    /// error at once.
    pub(crate) fn spawn<F, R>(
        &self,
        f: F,
        runtime: &Arc<Shared>,
        location: &'static Location<'static>,
    ) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let id = Id::next();
        let span = crate::runtime::task_span("blocking", id, None, location);
        let raw = RawTask::new(
            BlockingTask(Some(f)),
            BlockingSchedule,
            id,
            None,
            None,
            span,
            crate::scheduler::coarse_now(),
        );
        // SAFETY: `RawTask::new` gives three references: one for the handle, one for the queue
        // entry, and the owned-list one, which blocking tasks do not use and drop here.
        let (join, task) = unsafe { (JoinHandle::new(raw), Notified::from_raw(raw)) };
        raw.drop_reference();

        let mut state = self.inner.state.lock();
        if state.shutdown {
            drop(state);
            task.shutdown();
            return join;
        }
        state.queue.push_back(task);
        if state.num_idle > state.num_notify {
            state.num_notify += 1;
            drop(state);
            self.inner.condvar.notify_one();
        } else if state.num_threads < self.inner.config.max_threads {
            let thread_id = state.next_thread_id;
            state.next_thread_id += 1;
            state.num_threads += 1;
            match self.start_thread(thread_id, runtime.clone()) {
                Ok(handle) => {
                    state.threads.insert(thread_id, handle);
                }
                Err(err) => {
                    state.num_threads -= 1;
                    tracing::error!(error = %err, "pitcrew: could not start a blocking thread");
                    // The job waits in the queue for a thread that exists; with none, run it
                    // nowhere: fail its handle rather than hang it forever.
                    if state.num_threads == 0 {
                        if let Some(task) = state.queue.pop_back() {
                            drop(state);
                            task.shutdown();
                        }
                    }
                }
            }
        }
        join
    }

    fn start_thread(
        &self,
        thread_id: usize,
        runtime: Arc<Shared>,
    ) -> std::io::Result<thread::JoinHandle<()>> {
        let inner = self.inner.clone();
        let mut builder = thread::Builder::new()
            .name(format!("{}-blocking-{thread_id}", inner.config.thread_name));
        if let Some(size) = inner.config.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(move || {
            let _enter = context::enter_blocking_thread(Handle { shared: runtime });
            crate::runtime::run_hook(inner.config.on_start.as_ref(), "on_thread_start");
            inner.run(thread_id);
            crate::runtime::run_hook(inner.config.on_stop.as_ref(), "on_thread_stop");
        })
    }

    /// Threads started and not yet retired.
    pub(crate) fn num_threads(&self) -> usize {
        self.inner.state.lock().num_threads
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queue_depth(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// Cancels queued jobs, waits for running ones and joins every pool thread.
    pub(crate) fn shutdown(&self) {
        let mut state = self.inner.state.lock();
        if state.shutdown && state.threads.is_empty() && state.last_exiting.is_none() {
            return;
        }
        state.shutdown = true;
        let queued: Vec<Notified> = state.queue.drain(..).collect();
        let threads: Vec<_> = state.threads.drain().map(|(_, h)| h).collect();
        let last = state.last_exiting.take();
        drop(state);
        self.inner.condvar.notify_all();
        for task in queued {
            task.shutdown();
        }
        let me = thread::current().id();
        for handle in threads.into_iter().chain(last) {
            // A blocking job that drops the runtime cannot join its own thread.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

impl Inner {
    fn run(&self, thread_id: usize) {
        let mut state = self.state.lock();
        'outer: loop {
            while let Some(task) = state.queue.pop_front() {
                drop(state);
                task.run();
                state = self.state.lock();
            }
            if state.shutdown {
                break;
            }
            state.num_idle += 1;
            loop {
                let (guard, timed_out) = self.condvar.wait_timeout(state, self.config.keep_alive);
                state = guard;
                if state.num_notify > 0 {
                    state.num_notify -= 1;
                    state.num_idle -= 1;
                    continue 'outer;
                }
                if state.shutdown {
                    state.num_idle -= 1;
                    break 'outer;
                }
                if timed_out {
                    state.num_idle -= 1;
                    state.num_threads -= 1;
                    // Retire: hand our join handle to whoever comes next.
                    if let Some(me) = state.threads.remove(&thread_id) {
                        let previous = state.last_exiting.replace(me);
                        drop(state);
                        if let Some(previous) = previous {
                            let _ = previous.join();
                        }
                    }
                    return;
                }
                // Spurious wake-up: wait again.
            }
        }
        // Shutdown: jobs queued after the drain still get cancelled.
        let rest: Vec<Notified> = state.queue.drain(..).collect();
        state.num_threads -= 1;
        drop(state);
        for task in rest {
            task.shutdown();
        }
    }
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("BlockingPool")
            .field("threads", &state.num_threads)
            .field("idle", &state.num_idle)
            .field("queued", &state.queue.len())
            .finish()
    }
}
