//! The hierarchical timing wheel, owned by the timer thread.
//!
//! Six levels of 64 slots. A slot of level `l` spans `64^l` ticks (milliseconds), so level 0
//! holds the next 64 ms one tick per slot, level 1 the next 4 s in 64 ms slots, and level 5
//! about 2.2 years in 12.7-day slots. An entry goes to the lowest level whose slot boundaries
//! separate its deadline from the wheel's current time (`elapsed`): the highest bit in which
//! `when` and `elapsed` differ picks the level, and `when`'s 6 bits at that level pick the slot.
//! When a slot of level `l > 0` comes due, its entries are relinked one level (or more) lower;
//! when a slot of level 0 comes due, its entries fire. Inserting, removing and finding the next
//! deadline are O(1) (a 64-bit occupancy mask per level).
//!
//! Deadlines more than 2^36 ticks ahead go to the top level's slot for their bits, which comes
//! round once every 2^36 ticks; when it does and the deadline is still ahead, the entry is
//! simply relinked. (Deadlines past `entry::MAX_TICK`, ~8,900 years, never register at all.)
//!
//! A slot is a vector of entry pointers; each entry records its slot and index (`links`), so a
//! cancelled entry is removed in O(1) (`swap_remove`, fixing the index of the entry moved into
//! its place). Vectors rather than intrusive lists because walking a slot of 100,000 entries
//! then overlaps their cache misses instead of chasing one pointer after another, and linking
//! an entry touches no other entry. Only the timer thread touches the wheel or the links.

use crate::time::entry::{Entry, Links};

const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Ticks covered by the whole wheel.
const WHEEL_SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);

struct Level {
    occupied: u64,
    /// `SLOTS` vectors (on the heap: the wheel is moved to its thread).
    slots: Box<[Vec<*mut Entry>]>,
}

/// A slot that has come due.
#[derive(Debug, Clone, Copy)]
struct Expiration {
    level: usize,
    slot: usize,
    deadline: u64,
}

/// The timing wheel. Timer thread only.
pub(crate) struct Wheel {
    /// The tick up to which every slot has been processed.
    elapsed: u64,
    /// `LEVELS` levels.
    levels: Box<[Level]>,
    len: usize,
    /// An empty vector with capacity, swapped in for a slot that is taken.
    spare: Vec<*mut Entry>,
}

// SAFETY: the wheel holds pointers to entries that the timer thread owns a reference to; it is
// moved to the timer thread once and used there only.
unsafe impl Send for Wheel {}

fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    if masked >= WHEEL_SPAN {
        return LEVELS - 1;
    }
    (63 - masked.leading_zeros()) as usize / SLOT_BITS as usize
}

fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (level as u32 * SLOT_BITS)) & (SLOTS as u64 - 1)) as usize
}

impl Wheel {
    pub(crate) fn new() -> Wheel {
        Wheel {
            elapsed: 0,
            levels: (0..LEVELS)
                .map(|_| Level {
                    occupied: 0,
                    slots: (0..SLOTS).map(|_| Vec::new()).collect(),
                })
                .collect(),
            len: 0,
            spare: Vec::new(),
        }
    }

    /// Entries linked now.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The wheel's current tick.
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Links `entry` to fire at `when`, which must be later than [`Wheel::elapsed`].
    ///
    /// # Safety
    ///
    /// The timer thread holds the entry's reference and the entry is not linked.
    pub(crate) unsafe fn insert(&mut self, entry: *mut Entry, when: u64) {
        debug_assert!(when > self.elapsed, "insert at {when} <= {}", self.elapsed);
        let level = level_for(self.elapsed, when);
        let slot = slot_for(when, level);
        let vec = &mut self.levels[level].slots[slot];
        // SAFETY: the caller holds the entry.
        unsafe {
            Entry::with_links(entry, |l| {
                debug_assert_eq!(l.slot, Links::UNLINKED);
                l.slot = (level * SLOTS + slot) as u16;
                l.index = vec.len() as u32;
            });
        }
        vec.push(entry);
        self.levels[level].occupied |= 1 << slot;
        self.len += 1;
    }

    /// Unlinks `entry` if it is linked; false if it was not.
    ///
    /// # Safety
    ///
    /// The timer thread holds the entry's reference.
    pub(crate) unsafe fn remove(&mut self, entry: *mut Entry) -> bool {
        // SAFETY: the caller holds the entry. Only read when it is not linked: a cancelled entry
        // the thread never linked stays untouched (its cache line shared, not stolen).
        let (slot, index) = unsafe {
            Entry::with_links(entry, |l| {
                if l.slot == Links::UNLINKED {
                    return (Links::UNLINKED, 0);
                }
                let out = (l.slot, l.index as usize);
                l.slot = Links::UNLINKED;
                out
            })
        };
        if slot == Links::UNLINKED {
            return false;
        }
        let (level, slot) = (slot as usize / SLOTS, slot as usize % SLOTS);
        let vec = &mut self.levels[level].slots[slot];
        debug_assert_eq!(vec[index], entry);
        vec.swap_remove(index);
        if let Some(&moved) = vec.get(index) {
            // SAFETY: linked here, so the thread holds it.
            unsafe { Entry::with_links(moved, |l| l.index = index as u32) };
        }
        if vec.is_empty() {
            self.levels[level].occupied &= !(1 << slot);
        }
        self.len -= 1;
        true
    }

    /// The tick of the next slot to come due: a deadline, or the moment a higher-level slot
    /// must be spread over the lower levels. `None` when the wheel is empty.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.next_expiration().map(|e| e.deadline)
    }

    fn next_expiration(&self) -> Option<Expiration> {
        // A lower level's next slot always comes before any slot of a higher level: the higher
        // level's occupied slots all start after the lower level's current rotation ends.
        (0..LEVELS).find_map(|level| self.level_expiration(level))
    }

    fn level_expiration(&self, level: usize) -> Option<Expiration> {
        let occupied = self.levels[level].occupied;
        if occupied == 0 {
            return None;
        }
        let slot_span = 1u64 << (level as u32 * SLOT_BITS);
        let level_span = slot_span << SLOT_BITS;
        // Below the top level, the slot the current tick is in is never occupied (it was
        // processed when the tick reached it), so the search starts there. At the top level it
        // may hold deadlines of the *next* rotation (more than the wheel's span ahead), which
        // come after every other slot: the search starts after it.
        let now_slot = slot_for(self.elapsed, level);
        let first = if level == LEVELS - 1 {
            (now_slot + 1) % SLOTS
        } else {
            debug_assert!(
                occupied & (1 << now_slot) == 0,
                "level {level} slot {now_slot} occupied at tick {}",
                self.elapsed
            );
            now_slot
        };
        let slot = (occupied.rotate_right(first as u32).trailing_zeros() as usize + first) % SLOTS;
        let level_start = self.elapsed & !(level_span - 1);
        let mut deadline = level_start + slot as u64 * slot_span;
        if deadline <= self.elapsed {
            // Only the top level wraps (deadlines beyond the wheel's span): the slot is in
            // its next rotation.
            debug_assert_eq!(level, LEVELS - 1);
            deadline += level_span;
        }
        Some(Expiration {
            level,
            slot,
            deadline,
        })
    }

    /// Takes the entries of the next slot if it is due at `now`, with the slot's tick, which
    /// becomes the wheel's current tick. The entries are unlinked: the caller relinks or lets go
    /// of each, and gives the vector back with [`Wheel::give_back`].
    pub(crate) fn take_expired(&mut self, now: u64) -> Option<(Vec<*mut Entry>, u64)> {
        let exp = self.next_expiration()?;
        if exp.deadline > now {
            return None;
        }
        self.elapsed = exp.deadline;
        let level = &mut self.levels[exp.level];
        let taken = std::mem::replace(&mut level.slots[exp.slot], std::mem::take(&mut self.spare));
        level.occupied &= !(1 << exp.slot);
        self.len -= taken.len();
        for &entry in &taken {
            // SAFETY: it was linked here, so the thread holds it.
            unsafe { Entry::with_links(entry, |l| l.slot = Links::UNLINKED) };
        }
        Some((taken, exp.deadline))
    }

    /// Returns a vector from [`Wheel::take_expired`], so that its capacity is reused.
    pub(crate) fn give_back(&mut self, mut taken: Vec<*mut Entry>) {
        taken.clear();
        if taken.capacity() > self.spare.capacity() {
            self.spare = taken;
        }
    }

    /// Advances the current tick to `now` once nothing is due at or before it.
    pub(crate) fn advance(&mut self, now: u64) {
        debug_assert!(self.next_deadline().is_none_or(|d| d > now));
        self.elapsed = self.elapsed.max(now);
    }

    /// Unlinks every entry and calls `f` on each (shutdown).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(*mut Entry)) {
        for level in self.levels.iter_mut() {
            for vec in level.slots.iter_mut() {
                for entry in vec.drain(..) {
                    // SAFETY: it was linked here, so the thread holds it.
                    unsafe { Entry::with_links(entry, |l| l.slot = Links::UNLINKED) };
                    f(entry);
                }
            }
            level.occupied = 0;
        }
        self.len = 0;
    }
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::{Wake, Waker};

    use super::*;
    use crate::loom::{Arc, Counter, DataArc as StdArc};
    use crate::time::driver::{Driver, TimeShared};
    use crate::time::entry::Registration;

    #[test]
    fn level_for_picks_the_highest_differing_six_bit_group() {
        assert_eq!(level_for(0, 1), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(60, 70), 1);
        assert_eq!(level_for(0, WHEEL_SPAN - 1), 5);
        assert_eq!(level_for(0, WHEEL_SPAN * 7), 5);
    }

    /// Counts wakes.
    struct Count(Counter);

    impl Wake for Count {
        fn wake(self: StdArc<Self>) {
            self.0.add(1);
        }
    }

    /// Deadlines on every level, across level boundaries and beyond the wheel's span, fire
    /// at their tick exactly (driven by a manual clock), never a tick early.
    #[test]
    fn every_deadline_fires_at_its_tick_through_the_cascade() {
        let shared = Arc::new(TimeShared::new());
        let mut driver = Driver::new(shared.clone());
        let ticks: Vec<u64> = vec![
            1,
            2,
            63,
            64,
            65,
            127,
            128,
            4_095,
            4_096,
            4_097,
            262_143,
            262_144,
            300_007,
            16_777_216,
            16_777_217,
            WHEEL_SPAN - 1,
            WHEEL_SPAN,
            WHEEL_SPAN + 5,
            3 * WHEEL_SPAN + 1,
        ];
        let timers: Vec<_> = ticks
            .iter()
            .map(|&tick| {
                let count = StdArc::new(Count(Counter::new(0)));
                let waker = Waker::from(count.clone());
                let mut registration = Registration::new();
                assert!(registration.poll(&shared, tick, &waker).is_pending());
                (tick, registration, waker, count)
            })
            .collect();
        driver.turn(0);
        // Walk the clock from deadline to deadline (and the tick before each), as a timer
        // thread that wakes at `next_deadline` would, checking nothing fires early.
        let mut now = 0;
        let mut fired = 0;
        while let Some(next) = driver.next_deadline() {
            assert!(next > now, "next deadline {next} not after {now}");
            driver.turn(next - 1);
            for (tick, _, _, count) in &timers {
                if count.0.get() > 0 {
                    assert!(*tick < next, "timer for {tick} fired before {next}");
                }
            }
            driver.turn(next);
            now = next;
            let now_fired = timers.iter().filter(|t| t.3 .0.get() > 0).count();
            assert!(now_fired >= fired);
            fired = now_fired;
            for (tick, _, _, count) in &timers {
                assert_eq!(count.0.get() > 0, *tick <= now, "timer for {tick} at {now}");
            }
        }
        assert_eq!(fired, ticks.len());
        for (tick, mut registration, waker, count) in timers {
            assert_eq!(count.0.get(), 1, "timer for {tick}");
            assert!(registration.poll(&shared, tick, &waker).is_ready());
            registration.cancel(&shared);
        }
        assert_eq!(shared.live_timers(), 0);
    }

    /// Cancelling linked timers unlinks them (the vectors' indices stay right when entries
    /// are moved by `swap_remove`), and moving a deadline later relinks it.
    #[test]
    fn cancel_and_extend_keep_the_slots_consistent() {
        let shared = Arc::new(TimeShared::new());
        let mut driver = Driver::new(shared.clone());
        let count = StdArc::new(Count(Counter::new(0)));
        let waker = Waker::from(count.clone());
        let mut regs: Vec<Registration> = (0..10).map(|_| Registration::new()).collect();
        for r in regs.iter_mut() {
            assert!(r.poll(&shared, 10, &waker).is_pending());
        }
        driver.turn(0);
        assert_eq!(driver.wheel_len_for_tests(), 10);
        for i in [0, 9, 4] {
            regs[i].cancel(&shared);
        }
        regs[5].reset(&shared, 20);
        driver.turn(1);
        assert_eq!(driver.wheel_len_for_tests(), 7);
        driver.turn(10);
        assert_eq!(count.0.get(), 6);
        assert_eq!(driver.wheel_len_for_tests(), 1);
        driver.turn(20);
        assert_eq!(count.0.get(), 7);
        for r in regs.iter_mut() {
            r.cancel(&shared);
        }
        driver.turn(21);
        assert_eq!(shared.live_timers(), 0);
    }
}
