//! Task identity: `task::Builder` names, `task::id()` / `try_id()` / `name()`, and the
//! uniqueness of ids.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::collections::HashSet;
use std::sync::mpsc;

use common::{join, recv, runtime, within, TIMEOUT};
use pitcrew::task;

#[test]
fn builder_named_task_sees_its_name() {
    let rt = runtime(2);
    let name = within("block_on", TIMEOUT, move || {
        rt.block_on(async {
            task::Builder::new()
                .name("conn-17")
                .spawn(async { task::name() })
                .expect("the runtime is running")
                .await
                .unwrap()
        })
    });
    assert_eq!(name.as_deref(), Some("conn-17"));
}

#[test]
fn unnamed_task_has_no_name() {
    let rt = runtime(1);
    let h = rt.spawn(async { task::name() });
    assert_eq!(join("task", h).unwrap(), None);
}

#[test]
fn name_and_try_id_are_none_outside_a_task() {
    assert_eq!(task::name(), None);
    assert_eq!(task::try_id(), None);
}

#[test]
fn task_id_outside_a_task_panics() {
    assert!(std::panic::catch_unwind(task::id).is_err());
}

#[test]
fn builder_spawn_on_a_handle_from_a_non_runtime_thread_runs() {
    let rt = runtime(2);
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel();
    let id = std::thread::spawn(move || {
        let h = task::Builder::new()
            .name("remote")
            .spawn_on(
                async move {
                    tx.send((task::name(), task::try_id())).unwrap();
                },
                &handle,
            )
            .expect("the runtime is running");
        h.id()
    })
    .join()
    .unwrap();
    let (name, seen) = recv("the Builder-spawned task", &rx, TIMEOUT);
    assert_eq!(name.as_deref(), Some("remote"));
    assert_eq!(seen, Some(id));
}

#[test]
fn task_id_inside_a_task_equals_its_join_handle_id() {
    let rt = runtime(2);
    let h = rt.spawn(async { (task::id(), task::try_id()) });
    let id = h.id();
    let (inside, try_inside) = join("task", h).unwrap();
    assert_eq!(inside, id);
    assert_eq!(try_inside, Some(id));
}

#[test]
fn task_id_is_the_task_of_the_current_poll_not_the_spawner() {
    let rt = runtime(2);
    let outer = rt.spawn(async {
        let before = task::id();
        let inner = pitcrew::spawn(async { task::id() });
        let inner_id = inner.id();
        let seen = inner.await.unwrap();
        (before, task::id(), inner_id, seen)
    });
    let outer_id = outer.id();
    let (before, after, inner_id, seen) = join("outer task", outer).unwrap();
    assert_eq!(before, outer_id);
    assert_eq!(after, outer_id, "the id changed across an await");
    assert_eq!(seen, inner_id);
    assert_ne!(inner_id, outer_id);
}

#[test]
fn task_ids_are_unique_across_ten_thousand_tasks() {
    const N: usize = 10_000;
    let rt = runtime(2);
    let handles: Vec<_> = (0..N).map(|_| rt.spawn(async { task::id() })).collect();
    let from_handles: HashSet<_> = handles.iter().map(|h| h.id()).collect();
    assert_eq!(from_handles.len(), N, "JoinHandle ids repeat");
    let from_inside = within("10,000 tasks", TIMEOUT, move || {
        futures_lite::future::block_on(async move {
            let mut ids = HashSet::new();
            for h in handles {
                ids.insert(h.await.unwrap());
            }
            ids
        })
    });
    assert_eq!(from_inside, from_handles);
}

#[test]
fn task_id_display_and_debug_are_not_empty() {
    let rt = runtime(1);
    let h = rt.spawn(async {});
    let id = h.id();
    assert!(!id.to_string().is_empty());
    assert!(!format!("{id:?}").is_empty());
    join("task", h).unwrap();
}
