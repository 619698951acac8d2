//! `Runtime::builder()` settings: validation, worker names, thread hooks and stack size.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use common::{join, within, Rendezvous, TIMEOUT};
use pitcrew::{BuildError, Runtime};

fn assert_error_send_sync<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn build_error_is_a_send_sync_error() {
    assert_error_send_sync::<BuildError>();
}

#[test]
fn zero_workers_is_a_build_error_naming_the_setting() {
    let err = Runtime::builder()
        .workers(0)
        .build()
        .expect_err("workers(0) must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("workers"),
        "BuildError does not name the setting: {msg:?}"
    );
}

#[test]
fn zero_max_blocking_threads_is_a_build_error_naming_the_setting() {
    let err = Runtime::builder()
        .workers(1)
        .max_blocking_threads(0)
        .build()
        .expect_err("max_blocking_threads(0) must be rejected");
    let msg = err.to_string();
    assert!(
        msg.contains("max_blocking_threads"),
        "BuildError does not name the setting: {msg:?}"
    );
}

#[test]
fn runtime_new_has_one_worker_per_cpu() {
    let rt = Runtime::new().expect("default runtime");
    assert_eq!(rt.metrics().workers, num_cpus::get());
    assert_eq!(join("a task", rt.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn workers_are_named_thread_name_dash_index() {
    const WORKERS: usize = 3;
    let hook_names = Arc::new(Mutex::new(Vec::new()));
    let rt = {
        let hook_names = hook_names.clone();
        Runtime::builder()
            .workers(WORKERS)
            .thread_name("crew")
            .on_thread_start(move || {
                let name = std::thread::current().name().map(str::to_owned);
                hook_names.lock().unwrap().push(name);
            })
            .build()
            .unwrap()
    };
    // Three tasks that can only finish together must occupy all three workers at once.
    let meet = Rendezvous::new(WORKERS);
    let handles: Vec<_> = (0..WORKERS)
        .map(|_| {
            let meet = meet.clone();
            rt.spawn(async move {
                assert!(
                    meet.wait(TIMEOUT),
                    "the tasks never ran on all workers at once"
                );
                std::thread::current().name().map(str::to_owned)
            })
        })
        .collect();
    let from_tasks: HashSet<String> = handles
        .into_iter()
        .map(|h| join("a task", h).unwrap().expect("workers are named"))
        .collect();
    let mut expected: HashSet<String> = (0..WORKERS).map(|i| format!("crew-{i}")).collect();
    assert_eq!(from_tasks, expected);
    within("drop", TIMEOUT, move || drop(rt));
    let from_hooks: HashSet<String> = hook_names
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.clone().expect("runtime threads are named"))
        .collect();
    // The hooks also run on the timer thread.
    expected.insert("crew-timer".to_string());
    assert_eq!(from_hooks, expected);
}

#[test]
fn on_thread_start_and_stop_run_once_on_each_runtime_thread() {
    let starts: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let stops: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let rt = {
        let (starts, stops) = (starts.clone(), stops.clone());
        Runtime::builder()
            .workers(2)
            .on_thread_start(move || starts.lock().unwrap().push(std::thread::current().id()))
            .on_thread_stop(move || stops.lock().unwrap().push(std::thread::current().id()))
            .build()
            .unwrap()
    };
    // Use the blocking pool too, so its threads are counted.
    let job = rt.spawn_blocking(|| std::thread::current().id());
    let blocking_thread = join("a blocking job", job).unwrap();
    within("drop", TIMEOUT, move || drop(rt));

    let starts = starts.lock().unwrap().clone();
    let stops = stops.lock().unwrap().clone();
    let unique_starts: HashSet<_> = starts.iter().copied().collect();
    let unique_stops: HashSet<_> = stops.iter().copied().collect();
    assert_eq!(
        unique_starts.len(),
        starts.len(),
        "on_thread_start ran twice on a thread"
    );
    assert_eq!(
        unique_stops.len(),
        stops.len(),
        "on_thread_stop ran twice on a thread"
    );
    assert_eq!(
        unique_starts, unique_stops,
        "every started thread stops, before drop returns, and only those"
    );
    assert!(
        starts.len() >= 3,
        "two workers and a blocking thread: {starts:?}"
    );
    assert!(unique_starts.contains(&blocking_thread));
}

thread_local! {
    static STARTED_HERE: Cell<bool> = const { Cell::new(false) };
}

#[test]
fn on_thread_start_runs_on_the_worker_before_its_first_task() {
    let rt = Runtime::builder()
        .workers(2)
        .on_thread_start(|| STARTED_HERE.with(|s| s.set(true)))
        .build()
        .unwrap();
    let handles: Vec<_> = (0..50)
        .map(|_| rt.spawn(async { STARTED_HERE.with(Cell::get) }))
        .collect();
    for h in handles {
        assert!(
            join("a task", h).unwrap(),
            "a task ran before on_thread_start on its thread"
        );
    }
}

#[test]
fn dropping_the_runtime_stops_every_thread_it_started() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let rt = {
        let (started, stopped) = (started.clone(), stopped.clone());
        Runtime::builder()
            .workers(4)
            .on_thread_start(move || {
                started.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let h = rt.spawn(async { pitcrew::spawn_blocking(|| 1).await.unwrap() });
    assert_eq!(join("a task", h).unwrap(), 1);
    within("drop", TIMEOUT, move || drop(rt));
    assert!(started.load(Ordering::SeqCst) >= 5);
    assert_eq!(
        started.load(Ordering::SeqCst),
        stopped.load(Ordering::SeqCst)
    );
}

/// Touches `N` bytes of stack in one frame.
#[inline(never)]
fn use_stack<const N: usize>() -> u8 {
    let mut buf = [0u8; N];
    std::hint::black_box(&mut buf);
    buf[N - 1] = 1;
    std::hint::black_box(&buf)[N - 1]
}

#[test]
fn thread_stack_size_is_applied_to_workers() {
    // 8 MiB in one frame overflows the 2 MiB default stack of Rust threads; with 32 MiB it fits.
    let rt = Runtime::builder()
        .workers(1)
        .thread_stack_size(32 << 20)
        .build()
        .unwrap();
    let h = rt.spawn(async { use_stack::<{ 8 << 20 }>() });
    assert_eq!(join("a task using 8 MiB of stack", h).unwrap(), 1);
}

#[test]
fn every_setting_is_accepted_together() {
    let rt = Runtime::builder()
        .workers(2)
        .thread_name("all-settings")
        .thread_stack_size(4 << 20)
        .max_blocking_threads(8)
        .blocking_keep_alive(Duration::from_millis(200))
        .on_thread_start(|| {})
        .on_thread_stop(|| {})
        .slow_poll_threshold(Duration::from_millis(100))
        .build()
        .expect("valid settings");
    let h = rt.spawn(async { pitcrew::spawn_blocking(|| 2).await.unwrap() });
    assert_eq!(join("a task", h).unwrap(), 2);
}
