//! `Handle`: found from inside the runtime, refused (with a helpful message) outside it, and
//! usable from any thread.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::mpsc;

use common::{join, panic_message, recv, TIMEOUT};
use pitcrew::Handle;

fn assert_clone_send_sync<T: Clone + Send + Sync + std::fmt::Debug>() {}

#[test]
fn handle_is_clone_send_sync_and_debug() {
    assert_clone_send_sync::<Handle>();
}

#[test]
fn handle_current_outside_a_runtime_panics_naming_pitcrew_and_try_current() {
    let err = std::panic::catch_unwind(Handle::current)
        .expect_err("Handle::current outside a runtime must panic");
    let msg = panic_message(&*err);
    assert!(
        msg.contains("pitcrew"),
        "message does not name pitcrew: {msg:?}"
    );
    assert!(
        msg.contains("Handle::try_current"),
        "message does not point at Handle::try_current: {msg:?}"
    );
}

#[test]
fn handle_try_current_outside_a_runtime_is_err() {
    let err = Handle::try_current().expect_err("no runtime on a plain test thread");
    let as_error: &(dyn std::error::Error + Send + Sync) = &err;
    assert!(!as_error.to_string().is_empty());
}

#[test]
fn handle_try_current_inside_a_task_spawns_on_the_same_runtime() {
    let rt = pitcrew::Runtime::builder()
        .workers(2)
        .thread_name("handle-same")
        .build()
        .unwrap();
    let h = rt.spawn(async {
        let handle = Handle::try_current().expect("inside a task");
        handle
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap()
    });
    let name = join("the task", h).unwrap().expect("workers are named");
    assert!(
        name.starts_with("handle-same-"),
        "spawned onto thread {name:?}"
    );
}

#[test]
fn handle_try_current_is_err_again_after_block_on_returns() {
    let rt = common::runtime(1);
    rt.block_on(async { assert!(Handle::try_current().is_ok()) });
    assert!(
        Handle::try_current().is_err(),
        "block_on left the runtime entered"
    );
}

#[test]
fn handle_clone_spawns_from_another_thread_after_the_original_is_dropped() {
    let rt = common::runtime(2);
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let again = handle.clone();
        drop(handle);
        drop(again.spawn(async move { tx.send(5).unwrap() }));
    })
    .join()
    .unwrap();
    assert_eq!(
        recv("the task spawned through a cloned handle", &rx, TIMEOUT),
        5
    );
}
