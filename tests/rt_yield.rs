//! `yield_now` hands the worker to other ready tasks.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::{Arc, Mutex};

use common::{join, runtime};

#[test]
fn yield_now_lets_another_task_run_on_a_single_worker() {
    const ROUNDS: usize = 10;
    let rt = runtime(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    // Spawned from a task on the only worker, so both are queued before either runs.
    let spawner = {
        let log = log.clone();
        rt.spawn(async move {
            let mut handles = Vec::new();
            for letter in ['a', 'b'] {
                let log = log.clone();
                handles.push(pitcrew::spawn(async move {
                    for _ in 0..ROUNDS {
                        log.lock().unwrap().push(letter);
                        pitcrew::yield_now().await;
                    }
                }));
            }
            handles
        })
    };
    let handles = join("the spawner", spawner).unwrap();
    for h in handles {
        join("a yielding task", h).unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 2 * ROUNDS);
    assert!(
        log.windows(2).all(|w| w[0] != w[1]),
        "a task resumed after yield_now while the other was ready: {log:?}"
    );
}

#[test]
fn yield_now_returns_and_the_task_completes() {
    let rt = runtime(1);
    let h = rt.spawn(async {
        for _ in 0..1_000 {
            pitcrew::yield_now().await;
        }
        "done"
    });
    assert_eq!(join("a task yielding 1,000 times", h).unwrap(), "done");
}

#[test]
fn yield_now_inside_block_on_completes() {
    let rt = runtime(1);
    let v = common::within("block_on with yield_now", common::TIMEOUT, move || {
        rt.block_on(async {
            pitcrew::yield_now().await;
            3
        })
    });
    assert_eq!(v, 3);
}
