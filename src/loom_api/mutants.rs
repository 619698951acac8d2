//! Deliberately broken variants of the protocols, to check that the models that should catch
//! them do (a model whose mutant passes has lost its teeth). Built only with
//! `--cfg loom --cfg loom_mutants`; one build serves every mutant: `PITCREW_LOOM_MUTANT` names
//! the one switched on in this process (read once), and none is on when it is unset or empty.
//! `ci/loom-mutants` runs each mutant's catching models in their own processes.

/// A deliberately broken variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// A wake of an already-notified task returns after a plain load instead of a release
    /// read-modify-write, so the waker's writes are not published to the next poll
    /// (`task::state`, RELIABILITY.md "Design for test" 5).
    LoadOnlyWake,
    /// A scope child leaves its scope (decrementing the live count and waking the owner)
    /// when its future completes, before that future has been dropped (`scope::child`).
    DecrementBeforeDrop,
    /// A parking worker is listed twice in the idle set (`scheduler::idle`).
    DoubleIdleRegistration,
    /// An unpark of a worker blocked on its condition variable marks it notified but does
    /// not signal the condition variable (`scheduler::park`).
    MissingUnpark,
    /// An unpark of a worker waiting in the I/O poller marks it notified but does not
    /// interrupt the poller (`scheduler::park`).
    MissingPollerNotify,
    /// A non-blocking poll of the reactor that takes the notification meant for the worker
    /// blocking in the poller does not send it again (`io::reactor::Reactor::poll_now`).
    SwallowedPollerNotify,
    /// Only the last searcher to park looks at the queues once more; a worker that parks
    /// without having searched does not (`scheduler::worker`, rule 4 of
    /// `scheduler::idle`).
    RecheckOnlyLastSearcher,
}

impl Mutant {
    /// Every mutant, with the name `PITCREW_LOOM_MUTANT` selects it by.
    pub const ALL: [(Mutant, &'static str); 7] = [
        (Mutant::LoadOnlyWake, "load_only_wake"),
        (Mutant::DecrementBeforeDrop, "decrement_before_drop"),
        (Mutant::DoubleIdleRegistration, "double_idle_registration"),
        (Mutant::MissingUnpark, "missing_unpark"),
        (Mutant::MissingPollerNotify, "missing_poller_notify"),
        (Mutant::SwallowedPollerNotify, "swallowed_poller_notify"),
        (
            Mutant::RecheckOnlyLastSearcher,
            "recheck_only_last_searcher",
        ),
    ];
}

/// The mutant switched on in this process, if any. Panics on an unknown name, so that a
/// typo in the script cannot make every mutant "survive" silently.
pub fn selected() -> Option<Mutant> {
    static SELECTED: std::sync::OnceLock<Option<Mutant>> = std::sync::OnceLock::new();
    *SELECTED.get_or_init(|| {
        let name = std::env::var("PITCREW_LOOM_MUTANT").ok()?;
        if name.is_empty() {
            return None;
        }
        let found = Mutant::ALL.iter().find(|(_, n)| *n == name);
        Some(
            found
                .unwrap_or_else(|| panic!("unknown PITCREW_LOOM_MUTANT {name:?}"))
                .0,
        )
    })
}

/// True when `mutant` is the one switched on.
#[inline]
pub(crate) fn active(mutant: Mutant) -> bool {
    selected() == Some(mutant)
}
