//! Supervisors: restart policies, strategies, intensity, back-off, shutdown and trees.

#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew::scope::{
    self, supervisor, ChildSpec, ChildState, Restart, Strategy, SupervisorError, SupervisorOptions,
};
use pitcrew::Runtime;

use common::{within, TIMEOUT};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().expect("runtime")
}

fn lenient() -> SupervisorOptions {
    SupervisorOptions::new().intensity(100, Duration::from_secs(10))
}

type Log = Arc<Mutex<Vec<String>>>;

fn log(l: &Log, s: impl Into<String>) {
    l.lock().unwrap().push(s.into());
}

/// A child that logs "start NAME", then runs until cancelled and logs "stop NAME".
fn logged(name: &'static str, l: &Log) -> ChildSpec {
    let l = l.clone();
    ChildSpec::new(name, move || {
        let l = l.clone();
        async move {
            log(&l, format!("start {name}"));
            scope::cancelled().await;
            log(&l, format!("stop {name}"));
            Ok::<(), String>(())
        }
    })
}

#[test]
fn temporary_child_failure_leaves_siblings_running() {
    within("temporary", TIMEOUT, || {
        let rt = rt();
        rt.block_on(supervisor(lenient(), |sup| async move {
            let sibling = sup.spawn(async {
                pitcrew::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, String>("sibling finished")
            });
            let failing = sup.spawn(async { Err::<(), _>("temporary failure") });
            assert!(failing.await.unwrap_err().is_failed());
            assert_eq!(sibling.await.unwrap(), "sibling finished");
        }))
        .unwrap();
    });
}

#[test]
fn permanent_child_that_panics_is_restarted() {
    within("permanent", TIMEOUT, || {
        let rt = rt();
        let starts = Arc::new(AtomicUsize::new(0));
        let s = starts.clone();
        rt.block_on(supervisor(lenient(), move |sup| async move {
            let s2 = s.clone();
            sup.add(ChildSpec::new("crasher", move || {
                let n = s2.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 3 {
                        panic!("crash {n}");
                    }
                    scope::cancelled().await;
                    Ok::<(), String>(())
                }
            }));
            while s.load(Ordering::SeqCst) < 4 {
                pitcrew::time::sleep(Duration::from_millis(1)).await;
            }
            let info = &sup.children()[0];
            assert_eq!(info.restarts, 3);
            assert_eq!(&*info.name, "crasher");
            sup.shutdown().await;
        }))
        .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn transient_child_ending_ok_is_not_restarted() {
    within("transient", TIMEOUT, || {
        let rt = rt();
        let starts = Arc::new(AtomicUsize::new(0));
        let s = starts.clone();
        rt.block_on(supervisor(lenient(), move |sup| async move {
            let s2 = s.clone();
            sup.add(
                ChildSpec::new("once", move || {
                    s2.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<(), String>(()) }
                })
                .restart(Restart::Transient),
            );
        }))
        .unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn one_for_all_stops_in_reverse_and_restarts_in_order() {
    within("one for all", TIMEOUT, || {
        let rt = rt();
        let l: Log = Arc::default();
        let l2 = l.clone();
        let fail_once = Arc::new(AtomicUsize::new(0));
        rt.block_on(supervisor(
            lenient()
                .strategy(Strategy::OneForAll)
                .grace(Duration::from_secs(5)),
            move |sup| async move {
                sup.add(logged("a", &l2));
                let f = fail_once.clone();
                let l3 = l2.clone();
                sup.add(ChildSpec::new("b", move || {
                    let first = f.fetch_add(1, Ordering::SeqCst) == 0;
                    let l3 = l3.clone();
                    async move {
                        log(&l3, "start b");
                        if first {
                            // Fail once c is up (children start in order, each after the
                            // previous one's first poll), so the round has two to stop.
                            while !l3.lock().unwrap().iter().any(|e| e == "start c") {
                                pitcrew::time::sleep(Duration::from_millis(1)).await;
                            }
                            log(&l3, "fail b");
                            return Err("b failed".to_string());
                        }
                        scope::cancelled().await;
                        log(&l3, "stop b");
                        Ok(())
                    }
                }));
                sup.add(logged("c", &l2));
                // Wait for the restart round: a, b, c started twice.
                loop {
                    let starts = l2
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|e| e.starts_with("start"))
                        .count();
                    if starts == 6 {
                        break;
                    }
                    pitcrew::time::sleep(Duration::from_millis(1)).await;
                }
                sup.shutdown().await;
            },
        ))
        .unwrap();
        let events = l.lock().unwrap().clone();
        let after_fail: Vec<_> = events
            .iter()
            .skip_while(|e| *e != "fail b")
            .skip(1)
            .take(5)
            .cloned()
            .collect();
        assert_eq!(
            after_fail,
            ["stop c", "stop a", "start a", "start b", "start c"],
            "full log: {events:?}"
        );
    });
}

#[test]
fn rest_for_one_restarts_only_the_later_children() {
    within("rest for one", TIMEOUT, || {
        let rt = rt();
        let l: Log = Arc::default();
        let l2 = l.clone();
        let fail_once = Arc::new(AtomicUsize::new(0));
        rt.block_on(supervisor(
            lenient().strategy(Strategy::RestForOne),
            move |sup| async move {
                sup.add(logged("a", &l2));
                let f = fail_once.clone();
                let l3 = l2.clone();
                sup.add(ChildSpec::new("b", move || {
                    let first = f.fetch_add(1, Ordering::SeqCst) == 0;
                    let l3 = l3.clone();
                    async move {
                        log(&l3, "start b");
                        if first {
                            pitcrew::time::sleep(Duration::from_millis(10)).await;
                            return Err("b failed".to_string());
                        }
                        scope::cancelled().await;
                        Ok(())
                    }
                }));
                sup.add(logged("c", &l2));
                loop {
                    let n = l2
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|e| e.starts_with("start"))
                        .count();
                    if n == 5 {
                        break;
                    }
                    pitcrew::time::sleep(Duration::from_millis(1)).await;
                }
                // Give a wrong restart of `a` a chance to show.
                pitcrew::time::sleep(Duration::from_millis(20)).await;
                sup.shutdown().await;
            },
        ))
        .unwrap();
        let events = l.lock().unwrap().clone();
        let a_starts = events.iter().filter(|e| *e == "start a").count();
        let c_starts = events.iter().filter(|e| *e == "start c").count();
        assert_eq!(
            a_starts, 1,
            "a was started before b: not restarted ({events:?})"
        );
        assert_eq!(c_starts, 2, "c was started after b: restarted ({events:?})");
    });
}

#[test]
fn intensity_exceeded_stops_everything_and_names_the_child() {
    within("intensity", TIMEOUT, || {
        let rt = rt();
        let l: Log = Arc::default();
        let l2 = l.clone();
        let out = rt.block_on(supervisor(
            SupervisorOptions::new().intensity(3, Duration::from_secs(10)),
            move |sup| async move {
                sup.add(logged("steady", &l2));
                sup.add(ChildSpec::new("doomed", || async {
                    Err::<(), _>("always")
                }));
            },
        ));
        match out {
            Err(SupervisorError::IntensityExceeded { child, restarts }) => {
                assert_eq!(&*child, "doomed");
                assert_eq!(restarts, 4);
            }
            other => panic!("expected intensity exceeded, got {other:?}"),
        }
        assert!(
            l.lock().unwrap().contains(&"stop steady".to_string()),
            "the steady child was not stopped"
        );
    });
}

/// Waits until `starts` holds `n` start times (a child's factory records one per start).
async fn until_started(starts: &Mutex<Vec<Instant>>, n: usize) {
    while starts.lock().unwrap().len() < n {
        pitcrew::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The delays between consecutive start times.
fn gaps(starts: &[Instant]) -> Vec<Duration> {
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn backoff_delays_grow_and_are_bounded() {
    within("backoff", TIMEOUT, || {
        let rt = rt();
        let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let t = times.clone();
        rt.block_on(supervisor(
            lenient().backoff(Duration::from_millis(4), Duration::from_millis(16)),
            move |sup| async move {
                let t2 = t.clone();
                sup.add(ChildSpec::new("flaky", move || {
                    t2.lock().unwrap().push(Instant::now());
                    async { Err::<(), _>("again") }
                }));
                until_started(&t, 6).await;
                sup.shutdown().await;
            },
        ))
        .unwrap();
        let times = times.lock().unwrap();
        let gaps = gaps(&times);
        // 4, 8, 16, 16, 16 ms (never shorter; bounded by the maximum, with slack above).
        let expected = [4u64, 8, 16, 16, 16];
        for (gap, want) in gaps.iter().zip(expected) {
            assert!(*gap >= Duration::from_millis(want), "gaps {gaps:?}");
            assert!(*gap < Duration::from_millis(want + 200), "gaps {gaps:?}");
        }
    });
}

#[test]
fn backoff_starts_again_from_the_minimum_after_a_healthy_run() {
    within("backoff reset", TIMEOUT, || {
        let rt = rt();
        let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let healthy_end: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (s, e) = (starts.clone(), healthy_end.clone());
        // 10 ms at first, doubling up to 1 s.
        let (min, max) = (Duration::from_millis(10), Duration::from_secs(1));
        rt.block_on(supervisor(
            lenient().backoff(min, max),
            move |sup| async move {
                let (s2, e2) = (s.clone(), e.clone());
                sup.add(ChildSpec::new("flaky", move || {
                    let started = {
                        let mut s = s2.lock().unwrap();
                        s.push(Instant::now());
                        s.len()
                    };
                    let e2 = e2.clone();
                    async move {
                        // The fifth instance is healthy for longer than the longest delay.
                        if started == 5 {
                            pitcrew::time::sleep(max + Duration::from_millis(50)).await;
                            *e2.lock().unwrap() = Some(Instant::now());
                        }
                        Err::<(), _>("again")
                    }
                }));
                until_started(&s, 6).await;
                sup.shutdown().await;
            },
        ))
        .unwrap();
        let starts = starts.lock().unwrap();
        let gaps = gaps(&starts);
        // 10, 20, 40, 80 ms between the first five starts.
        for (gap, want) in gaps.iter().zip([10u64, 20, 40, 80]) {
            assert!(*gap >= Duration::from_millis(want), "gaps {gaps:?}");
        }
        // After the healthy run, 10 ms again (it would be 160 ms without the reset).
        let healthy_end = healthy_end.lock().unwrap().expect("the fifth instance ran");
        let delay = starts[5] - healthy_end;
        assert!(delay >= min, "{delay:?}");
        assert!(
            delay < Duration::from_millis(150),
            "the delay after a healthy run did not start again from the minimum: {delay:?}"
        );
    });
}

#[test]
fn shutdown_lets_a_cooperative_child_clean_up_and_drops_the_other() {
    within("shutdown grace", TIMEOUT, || {
        let rt = rt();
        let l: Log = Arc::default();
        let l2 = l.clone();
        rt.block_on(supervisor(
            lenient().grace(Duration::from_millis(50)),
            move |sup| async move {
                sup.add(logged("cooperative", &l2));
                let l3 = l2.clone();
                sup.add(ChildSpec::new("stubborn", move || {
                    let l3 = l3.clone();
                    async move {
                        log(&l3, "start stubborn");
                        std::future::pending::<()>().await;
                        log(&l3, "never");
                        Ok::<(), String>(())
                    }
                }));
                // Both up (children start one after the other), so both must be stopped.
                while !["start cooperative", "start stubborn"]
                    .iter()
                    .all(|e| l2.lock().unwrap().iter().any(|x| x == e))
                {
                    pitcrew::time::sleep(Duration::from_millis(1)).await;
                }
                let shutdown_began = Instant::now();
                sup.shutdown().await;
                assert!(
                    shutdown_began.elapsed() >= Duration::from_millis(50),
                    "the stubborn child got no grace"
                );
                let infos = sup.children();
                assert!(
                    infos.iter().all(|c| c.state == ChildState::Stopped),
                    "{infos:?}"
                );
            },
        ))
        .unwrap();
        let events = l.lock().unwrap().clone();
        assert!(
            events.contains(&"stop cooperative".to_string()),
            "{events:?}"
        );
        assert!(!events.contains(&"never".to_string()));
    });
}

#[test]
fn a_nested_supervisor_that_gives_up_is_a_failure_in_its_parent() {
    within("tree", TIMEOUT, || {
        let rt = rt();
        let inner_starts = Arc::new(AtomicUsize::new(0));
        let s = inner_starts.clone();
        let out = rt.block_on(supervisor(
            SupervisorOptions::new().intensity(1, Duration::from_secs(10)),
            move |sup| async move {
                let s = s.clone();
                sup.add(ChildSpec::new("inner-supervisor", move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    async {
                        supervisor(
                            SupervisorOptions::new().intensity(2, Duration::from_secs(10)),
                            |inner| async move {
                                inner.add(ChildSpec::new("worker", || async {
                                    Err::<(), _>("worker crashed")
                                }));
                            },
                        )
                        .await
                        .map_err(|e| e.to_string())
                    }
                }));
            },
        ));
        match out {
            Err(SupervisorError::IntensityExceeded { child, .. }) => {
                assert_eq!(&*child, "inner-supervisor");
            }
            other => panic!("expected escalation, got {other:?}"),
        }
        assert_eq!(
            inner_starts.load(Ordering::SeqCst),
            2,
            "the outer restarted the inner once"
        );
    });
}

#[test]
fn a_child_stopped_for_a_restart_round_comes_back_uncancelled() {
    // A restarted child may reuse its previous instance's scope, which was cancelled to stop
    // it: the new instance must start with a clean one.
    within("restart round", TIMEOUT, || {
        // One worker, running the supervisor too: the stopped instance's task is gone before
        // the round restarts it, so its scope is reused.
        let rt = Runtime::builder().workers(1).build().expect("runtime");
        let seen: Arc<Mutex<Vec<bool>>> = Arc::default();
        let seen2 = seen.clone();
        let b_starts = Arc::new(AtomicUsize::new(0));
        let sup = rt.spawn(supervisor(
            lenient().strategy(Strategy::OneForAll),
            move |sup| async move {
                let s = seen2.clone();
                sup.add(ChildSpec::new("a", move || {
                    let s = s.clone();
                    async move {
                        s.lock().unwrap().push(scope::is_cancelled());
                        scope::cancelled().await;
                        Ok::<(), String>(())
                    }
                }));
                let starts = b_starts.clone();
                let s = seen2.clone();
                sup.add(ChildSpec::new("b", move || {
                    let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
                    let s = s.clone();
                    async move {
                        if first {
                            // Fail once "a" is up, so the round has to stop it.
                            while s.lock().unwrap().is_empty() {
                                pitcrew::time::sleep(Duration::from_millis(1)).await;
                            }
                            return Err("b failed".to_string());
                        }
                        scope::cancelled().await;
                        Ok(())
                    }
                }));
                // Wait for the second instance of "a" (the round restarted it).
                while seen2.lock().unwrap().len() < 2 {
                    pitcrew::time::sleep(Duration::from_millis(1)).await;
                }
                // It is still running: nothing cancelled it.
                pitcrew::time::sleep(Duration::from_millis(20)).await;
                let a = &sup.children()[0];
                assert_eq!(a.state, ChildState::Running, "{a:?}");
                sup.shutdown().await;
            },
        ));
        rt.block_on(sup).unwrap().unwrap();
        assert_eq!(*seen.lock().unwrap(), [false, false]);
    });
}
