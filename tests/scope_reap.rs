//! A nursery dropped mid-flight (its task hard-cancelled) drops its children before the drop
//! returns, even when those children were already aborted and sit in a run queue.

// clippy.toml routes sync primitives through the runtime's loom facade; tests use std's.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::{within, TIMEOUT};
use pitcrew::scope::{nursery, Nursery};

type Node = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Counts a future alive while it holds one.
struct Alive(Arc<AtomicI64>);

impl Alive {
    fn new(n: &Arc<AtomicI64>) -> Alive {
        n.fetch_add(1, SeqCst);
        Alive(n.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// A nursery of `fanout` children, nested `depth` deep; the leaves sleep for an hour, except
/// the last leaf of the last subtree, which fails and so cancels (grace zero) everything.
fn tree(alive: Arc<AtomicI64>, depth: u32, fanout: u32, fails: bool) -> Node {
    Box::pin(async move {
        let _alive = Alive::new(&alive);
        if depth == 0 {
            if fails {
                pitcrew::yield_now().await;
                return Err("leaf failed".to_string());
            }
            pitcrew::time::sleep(Duration::from_secs(3_600)).await;
            return Ok(());
        }
        nursery(move |n: Nursery<String>| async move {
            for i in 0..fanout {
                n.spawn(tree(
                    alive.clone(),
                    depth - 1,
                    fanout,
                    fails && i == fanout - 1,
                ));
            }
            Ok(())
        })
        .await
        .map_err(|e| format!("{} failures", e.failures().len()))
    })
}

#[test]
fn nested_nurseries_cancelled_together_drop_every_child_without_hanging() {
    // Regression: a nursery dropped while its children's aborts were still queued spun in
    // its drop waiting for a worker to run them; with every worker spinning so, it hung.
    for workers in [1, 2] {
        for round in 0..30 {
            // The whole round, runtime drop included, is bounded: a hung drop fails the test.
            within(
                &format!("a cancelled scope tree, {workers} workers, round {round}"),
                TIMEOUT,
                move || {
                    let rt = common::runtime(workers);
                    let alive = Arc::new(AtomicI64::new(0));
                    let result = rt.block_on(tree(alive.clone(), 3, 3, true));
                    assert!(result.is_err(), "the failing leaf is reported");
                    let left = alive.load(SeqCst);
                    assert_eq!(left, 0, "every node dropped before the root returned");
                    drop(rt);
                },
            );
        }
    }
}
