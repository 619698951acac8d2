//! The structured-concurrency rows: pitcrew nurseries against tokio `JoinSet`s and, for
//! async-executor, a vector of tasks joined (or cancelled) in turn.
//!
//! * `nursery_fanout`: one nursery (one `JoinSet`) spawning 10,000 empty children and joining
//!   them; ns per child.
//! * `nested_nursery`: a tree of nurseries of depth 9 and fan-out 3 (29,524 scopes, each a
//!   task), the same tree built with `JoinSet`s; ns per node.
//! * `cancel_fanout`: 10,000 children parked forever; the time from the cancel to the
//!   nursery's return (`JoinSet::abort_all` and draining it for tokio, cancelling each task for
//!   async-executor); ns per child. The children park on a never-ready future rather than a
//!   sleep, so the row measures the runtimes' cancellation, not their timers.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use super::{AsyncExecutorRt, PitcrewRt, Rt, Sample, TokioRt};

/// One runtime's way of running a group of children to completion.
pub(super) trait ScopeRt: Rt {
    /// Spawns `n` empty children in one group and joins them all; returns `n`.
    fn fanout(s: Self::Spawner, n: usize) -> impl Future<Output = usize> + Send;
    /// A tree of groups, `depth` levels, `fanout` children per node; returns the nodes.
    fn tree(
        s: Self::Spawner,
        depth: u32,
        fanout: usize,
    ) -> Pin<Box<dyn Future<Output = usize> + Send>>;
    /// Spawns `n` children that never finish, then cancels the group; returns the time from
    /// the cancel until every child is gone.
    fn cancel(s: Self::Spawner, n: usize) -> impl Future<Output = std::time::Duration> + Send;
}

fn nodes(depth: u32, fanout: usize) -> usize {
    (0..=depth).map(|d| fanout.pow(d)).sum()
}

impl ScopeRt for PitcrewRt {
    async fn fanout(_s: Self::Spawner, n: usize) -> usize {
        pitcrew::scope::nursery(move |nursery| async move {
            for _ in 0..n {
                nursery.spawn(async { Ok::<(), ()>(()) });
            }
            Ok::<_, ()>(n)
        })
        .await
        .expect("the fan-out nursery failed")
    }

    fn tree(
        s: Self::Spawner,
        depth: u32,
        fanout: usize,
    ) -> Pin<Box<dyn Future<Output = usize> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                return 1;
            }
            pitcrew::scope::nursery(move |nursery| async move {
                let handles: Vec<_> = (0..fanout)
                    .map(|_| {
                        let s = s.clone();
                        nursery.spawn(
                            async move { Ok::<_, ()>(Self::tree(s, depth - 1, fanout).await) },
                        )
                    })
                    .collect();
                let mut total = 1;
                for h in handles {
                    total += h.await.expect("a subtree failed");
                }
                Ok::<_, ()>(total)
            })
            .await
            .expect("a tree nursery failed")
        })
    }

    async fn cancel(_s: Self::Spawner, n: usize) -> std::time::Duration {
        let mut started = None;
        let started_ref = &mut started;
        let _ = pitcrew::scope::nursery(move |nursery| async move {
            for _ in 0..n {
                nursery.spawn(async {
                    std::future::pending::<()>().await;
                    Ok::<(), ()>(())
                });
            }
            // Let every child get its first poll, as the others' children do.
            pitcrew::yield_now().await;
            *started_ref = Some(Instant::now());
            nursery.cancel();
            std::future::pending::<()>().await;
            Ok::<(), ()>(())
        })
        .await;
        started.expect("the nursery was cancelled").elapsed()
    }
}

impl ScopeRt for TokioRt {
    async fn fanout(_s: Self::Spawner, n: usize) -> usize {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(async {});
        }
        while let Some(r) = set.join_next().await {
            r.expect("a child failed");
        }
        n
    }

    fn tree(
        s: Self::Spawner,
        depth: u32,
        fanout: usize,
    ) -> Pin<Box<dyn Future<Output = usize> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                return 1;
            }
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..fanout {
                set.spawn(Self::tree(s.clone(), depth - 1, fanout));
            }
            let mut total = 1;
            while let Some(r) = set.join_next().await {
                total += r.expect("a subtree failed");
            }
            total
        })
    }

    async fn cancel(_s: Self::Spawner, n: usize) -> std::time::Duration {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(std::future::pending::<()>());
        }
        tokio::task::yield_now().await;
        let started = Instant::now();
        set.abort_all();
        while set.join_next().await.is_some() {}
        started.elapsed()
    }
}

impl ScopeRt for AsyncExecutorRt {
    async fn fanout(s: Self::Spawner, n: usize) -> usize {
        let ex = s.0;
        let tasks: Vec<_> = (0..n).map(|_| ex.spawn(async {})).collect();
        for t in tasks {
            t.await;
        }
        n
    }

    fn tree(
        s: Self::Spawner,
        depth: u32,
        fanout: usize,
    ) -> Pin<Box<dyn Future<Output = usize> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                return 1;
            }
            let tasks: Vec<_> = (0..fanout)
                .map(|_| s.0.spawn(Self::tree(s.clone(), depth - 1, fanout)))
                .collect();
            let mut total = 1;
            for t in tasks {
                total += t.await;
            }
            total
        })
    }

    async fn cancel(s: Self::Spawner, n: usize) -> std::time::Duration {
        let ex = s.0;
        let tasks: Vec<_> = (0..n)
            .map(|_| ex.spawn(std::future::pending::<()>()))
            .collect();
        futures_lite::future::yield_now().await;
        let started = Instant::now();
        for t in tasks {
            t.cancel().await;
        }
        started.elapsed()
    }
}

fn quick() -> bool {
    static QUICK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *QUICK.get_or_init(|| std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"))
}

fn children() -> usize {
    if quick() {
        2_500
    } else {
        10_000
    }
}

pub(super) fn nursery_fanout<R: ScopeRt>(rt: &R) -> Sample {
    let n = children();
    super::run_inside(rt, move |s| R::fanout(s, n))
}

pub(super) fn nested_nursery<R: ScopeRt>(rt: &R) -> Sample {
    let depth = if quick() { 7 } else { 9 };
    let expected = nodes(depth, 3);
    super::run_inside(rt, move |s| async move {
        let got = R::tree(s, depth, 3).await;
        assert_eq!(got, expected, "the tree lost nodes");
        got
    })
}

pub(super) fn cancel_fanout<R: ScopeRt>(rt: &R) -> Sample {
    let n = children();
    let elapsed = rt.block_on(rt.spawn_remote(R::cancel(rt.spawner(), n)));
    Sample::new(elapsed, n)
}

/// Restarts in `restart_storm`.
fn restarts() -> usize {
    if quick() {
        2_500
    } else {
        10_000
    }
}

/// `restart_storm` on pitcrew: a one-for-one supervisor whose single permanent child fails at
/// once, restarted `restarts()` times with no back-off; ns per restart.
pub(super) fn restart_storm_pitcrew(rt: &PitcrewRt) -> Sample {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use pitcrew::scope::{supervisor, ChildSpec, SupervisorOptions};

    let n = restarts();
    super::run_inside(rt, move |_| async move {
        let starts = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = super::mailbox::<()>();
        let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
        let opts =
            SupervisorOptions::new().intensity(usize::MAX, std::time::Duration::from_secs(3600));
        supervisor(opts, move |sup| async move {
            let starts = starts.clone();
            let done_tx = done_tx.clone();
            sup.add(ChildSpec::new("storm", move || {
                let k = starts.fetch_add(1, Ordering::Relaxed);
                if k == n {
                    if let Some(tx) = done_tx.lock().unwrap().take() {
                        tx.send(());
                    }
                }
                async move {
                    if k >= n {
                        // Restarted enough: stay up until the shutdown.
                        pitcrew::scope::cancelled().await;
                    }
                    Err::<(), &str>("fails at once")
                }
            }));
            done_rx.recv().await;
            sup.shutdown().await;
        })
        .await
        .expect("the storm supervisor failed");
        n
    })
}

/// The reference for `restart_storm` on the other runtimes (they have no supervisor): one
/// spawn + join at a time, `restarts()` times; ns per spawn + join.
pub(super) fn spawn_join_seq<R: Rt>(rt: &R) -> Sample {
    let n = restarts();
    super::run_inside(rt, move |s| async move {
        use super::Spawner;
        for i in 0..n {
            std::hint::black_box(s.spawn(async move { i }).await);
        }
        n
    })
}
