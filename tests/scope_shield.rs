//! Cancel scopes around one future: shield, shield_for, move_on_after, fail_after, and the
//! scope queries.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use pitcrew::scope::{self, nursery_with, CancelReason, ScopeOptions};
use pitcrew::Runtime;

use common::{within, TIMEOUT};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().expect("runtime")
}

#[test]
fn shield_defers_an_outer_cancellation_until_it_ends() {
    within("shield", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(nursery_with(
            ScopeOptions::new().grace(Duration::from_secs(10)),
            |n| async move {
                n.cancel();
                assert!(scope::is_cancelled());
                let inside = scope::shield(async { scope::is_cancelled() }).await;
                assert!(!inside, "the shield let the outer cancellation in");
                assert!(
                    scope::is_cancelled(),
                    "the outer cancellation is back after the shield"
                );
                Ok::<_, String>(())
            },
        ));
        assert!(out.is_ok());
    });
}

#[test]
fn shield_for_drops_the_future_when_its_bound_passes() {
    within("shield_for", TIMEOUT, || {
        let rt = rt();
        let started = Instant::now();
        let out = rt.block_on(scope::shield_for(
            Duration::from_millis(10),
            std::future::pending::<()>(),
        ));
        assert!(out.is_none());
        assert!(started.elapsed() >= Duration::from_millis(10));
        let done = rt.block_on(scope::shield_for(Duration::from_secs(10), async { 5 }));
        assert_eq!(done, Some(5));
    });
}

#[test]
fn move_on_after_gives_up_at_its_deadline() {
    within("move_on_after", TIMEOUT, || {
        let rt = rt();
        let started = Instant::now();
        let out = rt.block_on(scope::move_on_after(
            Duration::from_millis(10),
            std::future::pending::<()>(),
        ));
        assert!(out.is_none());
        assert!(started.elapsed() >= Duration::from_millis(10));
        assert_eq!(
            rt.block_on(scope::move_on_after(Duration::from_secs(5), async { 1 })),
            Some(1)
        );
    });
}

#[test]
fn move_on_after_does_not_absorb_an_outer_cancellation() {
    within("no absorb", TIMEOUT, || {
        let rt = rt();
        rt.block_on(nursery_with(
            ScopeOptions::new().grace(Duration::from_secs(10)),
            |n| async move {
                n.cancel();
                let reason = scope::move_on_after(Duration::from_secs(10), async {
                    scope::cancelled().await.reason
                })
                .await;
                assert_eq!(reason, Some(CancelReason::Explicit));
                assert!(
                    scope::is_cancelled(),
                    "move_on_after swallowed the outer cancel"
                );
                Ok::<_, String>(())
            },
        ))
        .unwrap();
    });
}

#[test]
fn fail_after_returns_elapsed() {
    within("fail_after", TIMEOUT, || {
        let rt = rt();
        let out = rt.block_on(scope::fail_after(
            Duration::from_millis(5),
            std::future::pending::<()>(),
        ));
        assert!(out.is_err());
        assert_eq!(
            rt.block_on(scope::fail_after(Duration::from_secs(5), async { 2 })),
            Ok(2)
        );
    });
}

#[test]
fn current_scope_reports_name_parent_and_deadline() {
    within("current", TIMEOUT, || {
        let rt = rt();
        let deadline = Instant::now() + Duration::from_secs(60);
        rt.block_on(nursery_with(
            ScopeOptions::new().name("fetchers").deadline(deadline),
            |_n| async move {
                let s = scope::current().expect("inside a runtime");
                assert_eq!(s.name().as_deref(), Some("fetchers"));
                assert_eq!(s.deadline(), Some(deadline));
                assert!(s.parent().is_some());
                assert_eq!(s.cancelling(), 0);
                Ok::<_, String>(())
            },
        ))
        .unwrap();
        assert!(scope::current().is_none(), "no scope outside a runtime");
    });
}

#[test]
fn shutdown_cancels_the_root_scope_during_the_grace_period() {
    within("shutdown", TIMEOUT, || {
        let rt = rt();
        let (tx, rx) = std::sync::mpsc::channel();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = started_tx.send(());
            let c = scope::cancelled().await;
            let _ = tx.send(c.reason);
        });
        started_rx.recv_timeout(TIMEOUT).expect("task started");
        let report = rt.shutdown(Duration::from_secs(10));
        assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), CancelReason::Shutdown);
        assert_eq!(report.completed_in_grace, 1);
        assert_eq!(report.dropped, 0);
    });
}
