//! A supervised worker pool: four workers take jobs from a shared counter; one of them crashes
//! now and then (a panic, or an error) and its supervisor restarts it, one for one, with a
//! short back-off. The output shows each crash and restart; at the end the supervisor is shut
//! down and reports every child's restart count.
//!
//! Run with `cargo run --release --example supervised`.

#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pitcrew::scope::{self, supervisor, ChildSpec, Strategy, SupervisorOptions};
use pitcrew::Runtime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder().workers(2).build()?;
    let jobs = Arc::new(AtomicU64::new(0));
    let opts = SupervisorOptions::new()
        .name("pool")
        .strategy(Strategy::OneForOne)
        .intensity(20, Duration::from_secs(1))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .grace(Duration::from_millis(100));

    let jobs_done = jobs.clone();
    let result = rt.block_on(supervisor(opts, move |sup| async move {
        for w in 0..4u64 {
            let jobs = jobs_done.clone();
            sup.add(ChildSpec::new(format!("worker-{w}"), move || {
                let jobs = jobs.clone();
                async move {
                    let mut mine = 0u64;
                    loop {
                        if scope::is_cancelled() {
                            return Ok(());
                        }
                        let job = jobs.fetch_add(1, Ordering::Relaxed);
                        mine += 1;
                        // Worker 3 is the unreliable one: every 40th of its jobs is poisoned.
                        if w == 3 && mine == 40 {
                            println!(
                                "  worker-{w} crashes on job {job}; its supervisor restarts it"
                            );
                            return Err(format!("job {job} was poisoned"));
                        }
                        pitcrew::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }));
        }
        pitcrew::time::sleep(Duration::from_millis(400)).await;
        sup.shutdown().await;
        sup.children()
    }));

    let children = result?;
    println!(
        "pool ran {} jobs; restarts per worker:",
        jobs.load(Ordering::Relaxed)
    );
    for c in children {
        println!(
            "  {:<10} restarts: {:>2}  state: {:?}",
            c.name, c.restarts, c.state
        );
    }
    Ok(())
}
