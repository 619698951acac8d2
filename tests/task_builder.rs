//! Task identity and options: `task::Builder` names and eager start (at the root and inside
//! nurseries), `task::id()` / `try_id()` / `name()`, and the uniqueness of ids.

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

#[test]
fn eager_task_that_completes_synchronously_is_finished_when_spawn_returns() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let rt = std::sync::Arc::new(runtime(2));
    let rt2 = rt.clone();
    let (injected_before, injected_after, eager_id, handle_id) =
        within("eager spawn from block_on", TIMEOUT, move || {
            rt2.block_on(async {
                let ran = Arc::new(AtomicBool::new(false));
                let flag = ran.clone();
                let before = rt2.metrics().injected;
                let handle = task::Builder::new()
                    .name("eager")
                    .eager()
                    .spawn(async move {
                        flag.store(true, Ordering::SeqCst);
                        (task::id(), task::name())
                    })
                    .expect("the runtime is running");
                assert!(
                    ran.load(Ordering::SeqCst),
                    "the side effect is visible at once"
                );
                assert!(handle.is_finished(), "the handle is finished at once");
                let after = rt2.metrics().injected;
                assert_eq!(task::try_id(), None, "block_on's own context is restored");
                let handle_id = handle.id();
                let (id, name) = handle.await.unwrap();
                assert_eq!(name.as_deref(), Some("eager"));
                (before, after, id, handle_id)
            })
        });
    assert_eq!(eager_id, handle_id, "task::id() inside is the eager task's");
    assert_eq!(
        injected_after, injected_before,
        "a finished eager task is never queued"
    );
}

#[test]
fn eager_spawn_on_a_worker_restores_the_spawners_task_id() {
    let rt = runtime(2);
    let outer = rt.spawn(async {
        let me = task::id();
        let handle = task::Builder::new()
            .eager()
            .spawn(async { task::id() })
            .expect("the runtime is running");
        assert!(handle.is_finished(), "eager from a worker finishes inline");
        let inner_seen = handle.id();
        let inner = handle.await.unwrap();
        assert_eq!(inner, inner_seen, "task::id() inside is the eager task's");
        assert_ne!(inner, me);
        assert_eq!(
            task::id(),
            me,
            "the spawner's task id is restored afterwards"
        );
    });
    join("the spawner task", outer).unwrap();
}

#[test]
fn eager_task_that_awaits_continues_on_the_runtime() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let rt = runtime(2);
    let out = within("eager task awaiting a channel", TIMEOUT, move || {
        rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
            let started = Arc::new(AtomicBool::new(false));
            let flag = started.clone();
            let handle = task::Builder::new()
                .eager()
                .spawn(async move {
                    flag.store(true, Ordering::SeqCst);
                    let v = rx.await.expect("the sender sends");
                    (v + 1, task::id())
                })
                .expect("the runtime is running");
            assert!(
                started.load(Ordering::SeqCst),
                "the first poll ran before spawn returned"
            );
            assert!(!handle.is_finished(), "it waits for the channel");
            tx.send(41).unwrap();
            let id = handle.id();
            let (v, seen) = handle.await.unwrap();
            assert_eq!(seen, id);
            v
        })
    });
    assert_eq!(out, 42);
}

#[test]
fn eager_task_panicking_on_its_first_poll_is_contained_in_the_join_error() {
    let rt = runtime(2);
    let err = within("eager task that panics", TIMEOUT, move || {
        rt.block_on(async {
            let handle = task::Builder::new()
                .eager()
                .spawn(async {
                    if task::try_id().is_some() {
                        panic!("boom in the first poll");
                    }
                })
                .expect("the spawner survives the panic");
            assert!(handle.is_finished());
            assert_eq!(task::try_id(), None, "the spawner's context is restored");
            handle.await.unwrap_err()
        })
    });
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(
        common::panic_message(&*err.into_panic()),
        "boom in the first poll"
    );
}

#[test]
fn eager_spawn_on_from_a_plain_thread_falls_back_to_a_normal_spawn() {
    let rt = runtime(2);
    let handle = task::Builder::new()
        .eager()
        .spawn_on(async { task::id() }, rt.handle())
        .expect("the runtime is running");
    let id = handle.id();
    assert_eq!(join("the fallback task", handle).unwrap(), id);
}

#[test]
fn eager_task_inside_a_nursery_runs_inline_in_the_nursery_scope() {
    use pitcrew::scope::{self, nursery_with, ScopeOptions};

    let rt = runtime(2);
    let out = within("eager spawn in a nursery body", TIMEOUT, move || {
        rt.block_on(nursery_with(
            ScopeOptions::new().name("eager-scope"),
            |_n| async move {
                let handle = task::Builder::new()
                    .eager()
                    .spawn(async {
                        let scope = scope::current().and_then(|s| s.name());
                        (task::id(), scope.map(|s| s.to_string()))
                    })
                    .expect("the runtime is running");
                assert!(
                    handle.is_finished(),
                    "it ran to its end before spawn returned"
                );
                assert_eq!(task::try_id(), None, "block_on's own context is restored");
                let body_scope = scope::current().and_then(|s| s.name());
                assert_eq!(body_scope.as_deref(), Some("eager-scope"));
                let id = handle.id();
                let (seen, scope) = handle.await.unwrap();
                assert_eq!(seen, id, "task::id() inside is the eager task's");
                Ok::<_, String>(scope)
            },
        ))
    });
    assert_eq!(out.unwrap().as_deref(), Some("eager-scope"));
}

#[test]
fn eager_task_inside_a_nursery_is_a_member_the_nursery_cancels_and_waits_for() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let rt = runtime(2);
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (flag, drops) = (started.clone(), dropped.clone());
    let handle = within("a nursery with an eager member", TIMEOUT, move || {
        rt.block_on(pitcrew::scope::nursery(|_n| async move {
            let guard = common::DropCounter(drops);
            let handle = task::Builder::new()
                .eager()
                .spawn(async move {
                    let _guard = guard;
                    flag.store(true, Ordering::SeqCst);
                    std::future::pending::<()>().await
                })
                .expect("the runtime is running");
            Ok::<_, String>(handle)
        }))
    })
    .expect("the nursery succeeds");
    assert!(started.load(Ordering::SeqCst), "its first poll ran");
    assert!(
        handle.is_finished(),
        "the nursery ended only after its member"
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the member's future was dropped once"
    );
    assert!(join("the member", handle).unwrap_err().is_cancelled());
}

#[test]
fn eager_task_in_a_cancelled_scope_sees_the_cancellation_on_its_first_poll() {
    use pitcrew::scope::{nursery_with, ScopeOptions};

    let rt = runtime(2);
    let out = within("eager spawn in a cancelled nursery", TIMEOUT, move || {
        rt.block_on(nursery_with(
            ScopeOptions::new().grace(std::time::Duration::from_secs(3600)),
            |n| async move {
                n.cancel();
                let handle = task::Builder::new()
                    .eager()
                    .spawn(async { pitcrew::scope::is_cancelled() })
                    .expect("the runtime is running");
                assert!(handle.is_finished());
                let seen = handle.await.unwrap();
                assert_eq!(n.uncancel(), 0, "the scope carries on");
                Ok::<_, String>(seen)
            },
        ))
    });
    assert!(out.expect("the scope carries on after uncancel"));
}

#[test]
fn eager_and_plain_tasks_in_a_nursery_fail_alike_only_their_own_handle() {
    fn panic_in_a_nursery(rt: &pitcrew::Runtime, eager: bool) -> (bool, bool) {
        rt.block_on(pitcrew::scope::nursery(|_n| async move {
            let builder = task::Builder::new();
            let builder = if eager { builder.eager() } else { builder };
            let handle = builder
                .spawn(async {
                    if task::try_id().is_some() {
                        panic!("a member's panic");
                    }
                })
                .expect("the runtime is running");
            Ok::<_, String>(handle.await.unwrap_err().is_panic())
        }))
        .map_or((false, false), |panicked| (true, panicked))
    }
    let rt = runtime(2);
    let (plain, eager) = within("panicking members", TIMEOUT, move || {
        (
            panic_in_a_nursery(&rt, false),
            panic_in_a_nursery(&rt, true),
        )
    });
    assert_eq!(
        plain,
        (true, true),
        "nursery ok, the handle holds the panic"
    );
    assert_eq!(eager, plain);
}
