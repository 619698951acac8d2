//! Poll timing for task dumps: a cheap tick counter read around every poll, converted to wall
//! time only when a dump asks.
//!
//! Every poll of every task pays for two reads of this clock, so it must cost next to nothing.
//! On x86-64 it is the time-stamp counter (`rdtsc`, a couple of dozen cycles and no call into
//! the vDSO): `Instant::now` costs about as much again per read and would be the larger part of
//! a short poll's overhead. Elsewhere it falls back to `Instant`, counted in nanoseconds.
//!
//! Ticks become time by comparing the counter with `Instant`: the first call to [`start`] (when
//! a runtime is built) records both, and [`Rate`] divides the time elapsed over the next 10 ms by
//! the ticks elapsed over them, once per process, so converted times never go backwards. This
//! assumes an invariant TSC (constant
//! rate, synchronised across cores), which every x86-64 CPU of the last decade and the common
//! hypervisors provide; a poll that migrates between unsynchronised cores is counted as zero
//! rather than as a huge value.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Ticks elapsed between `started` and `ended` (two [`now`] reads), never negative.
#[inline(always)]
pub(crate) fn elapsed(started: u64, ended: u64) -> u64 {
    ended.saturating_sub(started)
}

/// Records the reference point used to convert ticks to time, if nobody has yet.
pub(crate) fn start() {
    let _ = epoch();
}

fn epoch() -> (Instant, u64) {
    static EPOCH: OnceLock<(Instant, u64)> = OnceLock::new();
    *EPOCH.get_or_init(read_both)
}

/// An `Instant` and the tick count at the same moment: the tick read is split around the
/// `Instant` read, and of three tries the tightest is kept, so that a preemption between the
/// reads does not skew it.
fn read_both() -> (Instant, u64) {
    let mut best: Option<(u64, Instant, u64)> = None;
    for _ in 0..3 {
        let before = now();
        let at = Instant::now();
        let after = now();
        let gap = after.saturating_sub(before);
        if best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, at, before + gap / 2));
        }
    }
    let (_, at, ticks) = best.expect("three tries");
    (at, ticks)
}

/// The current tick count.
#[inline(always)]
#[cfg(all(target_arch = "x86_64", not(loom)))]
pub(crate) fn now() -> u64 {
    // SAFETY: `rdtsc` reads a counter register; it has no preconditions and is present on every
    // x86-64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The current tick count: nanoseconds since the epoch on targets without a cycle counter we
/// trust (and under loom, which has no time).
#[inline(always)]
#[cfg(not(all(target_arch = "x86_64", not(loom))))]
pub(crate) fn now() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Converts tick counts to time at the rate measured when it was made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rate {
    nanos: u128,
    ticks: u64,
}

impl Rate {
    /// How long the rate is measured for.
    const SPAN: Duration = Duration::from_millis(10);

    /// The rate, measured once per process over the first [`Self::SPAN`] after [`start`] and
    /// fixed from then on, so that converted times never go backwards. A call within that span
    /// waits for its end; every later call is a load.
    pub(crate) fn get() -> Rate {
        static RATE: OnceLock<Rate> = OnceLock::new();
        *RATE.get_or_init(|| {
            let (at, ticks) = epoch();
            if let Some(rest) = Self::SPAN.checked_sub(at.elapsed()) {
                std::thread::sleep(rest);
            }
            let (now_at, now_ticks) = read_both();
            Rate {
                nanos: now_at.duration_since(at).as_nanos(),
                ticks: now_ticks.saturating_sub(ticks).max(1),
            }
        })
    }

    /// `ticks` as time.
    pub(crate) fn to_duration(self, ticks: u64) -> Duration {
        let nanos = ticks as u128 * self.nanos / self.ticks as u128;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ticks_over_a_sleep_convert_to_about_the_time_slept() {
        start();
        let before = now();
        std::thread::sleep(Duration::from_millis(20));
        let took = Rate::get().to_duration(elapsed(before, now()));
        assert!(
            took >= Duration::from_millis(15) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }

    #[test]
    fn ticks_going_backwards_count_as_nothing() {
        assert_eq!(elapsed(10, 5), 0);
        assert_eq!(Rate::get().to_duration(0), Duration::ZERO);
    }
}
