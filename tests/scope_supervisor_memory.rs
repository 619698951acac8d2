//! A supervisor's failure history is bounded: a million failing temporary children leave the
//! live heap where it was (counted by this binary's own allocator, so it is a test binary of
//! its own with a single test).

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use pitcrew::scope::{supervisor, SupervisorOptions};

use common::counting_alloc::live_bytes;
use common::within;

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

const FAILURES: usize = 1_000_000;
const BATCH: usize = 1_000;

#[test]
fn a_million_failing_temporary_children_leave_memory_flat() {
    within("a million failures", Duration::from_secs(300), || {
        let rt = pitcrew::Runtime::builder()
            .workers(2)
            .build()
            .expect("runtime");
        let (before, after, recent) = rt
            .block_on(supervisor(SupervisorOptions::new(), |sup| async move {
                let mut before = 0;
                for batch in 0..FAILURES / BATCH {
                    let handles: Vec<_> = (0..BATCH)
                        .map(|i| sup.spawn(async move { Err::<(), _>(format!("failure {i}")) }))
                        .collect();
                    for h in handles {
                        assert!(h.await.unwrap_err().is_failed());
                    }
                    // The first batches fill the history and the runtime's caches.
                    if batch == 50 {
                        before = live_bytes();
                    }
                }
                let after = live_bytes();
                (before, after, sup.recent_failures())
            }))
            .expect("the supervisor failed");
        assert_eq!(recent.len(), 32, "the history keeps the last 32 failures");
        assert!(
            recent.iter().all(|f| f.error.starts_with("failure ")),
            "the history holds the children's errors: {recent:?}"
        );
        let growth = after - before;
        assert!(
            growth < 64 * 1024,
            "the live heap grew by {growth} bytes over {} failures",
            FAILURES - 51 * BATCH
        );
    });
}
