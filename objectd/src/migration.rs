//! The migration protocol as a pure state machine: where a move of one object from its
//! node S (the source) to a node T (the target) stands, and what the source does next.
//!
//! The steps, in order, each a durable fact once passed (the intent in S's store records
//! the last one, so a restart resumes or aborts from it):
//!
//! 1. `IntentWritten`: S recorded that the move began.
//! 2. `TargetAccepted`: T said it can take the object (it has the class and this format
//!    version of its state); a refusal ends the move with T's reason, the object served at
//!    S throughout.
//! 3. `Copied(round)`: precopy rounds copy the pages while the object keeps serving; pages
//!    that commits dirtied meanwhile are copied again in the next round.
//! 4. `Frozen`: S holds the object's write lock (running methods finished first; new calls
//!    wait) and copies what is left: the dirty pages, the call records, the record.
//! 5. `TargetCommitted`: T installed the record and made it durable: T is the owner from
//!    this moment. Before it S is, and S serves nothing while frozen.
//! 6. `SourceForwarded`: S turned its record into a forwarding entry to T; calls waiting at
//!    S go on to T.
//! 7. `HomeUpdated`: the object's home (the node its id names) points to T.
//! 8. `PullDone` (lazy only): T pulled every page it left on S and released them; S drops
//!    them. Until then S keeps them, through restarts, and answers T's fetches.
//!
//! A lazy move sends the list of page keys instead of the pages (while the object serves),
//! freezes, sends the call records and the keys of pages written meanwhile, and commits:
//! T serves from then on, fetching a page from S the first time a method touches it
//! (`engine::pages`).
//!
//! Recovery after a crash of S follows [`recover`]: before the commit was asked of T, abort
//! (S is still the owner); once it was asked, ask T to resolve (T either committed, or
//! refuses any later commit and discards what it got) and finish accordingly; once T
//! committed, finish the forwarding and the home update.

pub use protocol::migration::{Resolution, Strategy};
use serde::{Deserialize, Serialize};

/// The named steps of the protocol, as the source's intent records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    IntentWritten,
    TargetAccepted,
    Copied(u32),
    Frozen,
    /// The commit was asked of T: from here on S no longer knows alone who owns the object.
    CommitAsked,
    TargetCommitted,
    SourceForwarded,
    HomeUpdated,
    PullDone,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::IntentWritten => f.write_str("intent written"),
            Step::TargetAccepted => f.write_str("target accepted"),
            Step::Copied(round) => write!(f, "copy round {round}"),
            Step::Frozen => f.write_str("frozen"),
            Step::CommitAsked => f.write_str("commit asked"),
            Step::TargetCommitted => f.write_str("target committed"),
            Step::SourceForwarded => f.write_str("source forwarded"),
            Step::HomeUpdated => f.write_str("home updated"),
            Step::PullDone => f.write_str("lazy pull done"),
        }
    }
}

/// When precopy stops copying while the object serves.
#[derive(Clone, Copy, Debug)]
pub struct Precopy {
    /// Freeze once a round leaves at most this many dirty pages.
    pub small_dirty: usize,
    /// Freeze after this many rounds whatever is dirty: a hot object converges no further.
    pub max_rounds: u32,
}

impl Default for Precopy {
    fn default() -> Precopy {
        Precopy { small_dirty: 16, max_rounds: 6 }
    }
}

/// What the source does after a copy round that left `dirty` pages to copy again.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterRound {
    /// Copy the dirty pages once more while serving.
    Again,
    /// Freeze and copy the rest.
    Freeze,
}

/// The precopy rule: another round, or the freeze.
pub fn after_round(strategy: Strategy, policy: Precopy, round: u32, dirty: usize) -> AfterRound {
    match strategy {
        Strategy::Eager | Strategy::Lazy => AfterRound::Freeze,
        Strategy::Precopy if dirty <= policy.small_dirty || round >= policy.max_rounds => AfterRound::Freeze,
        Strategy::Precopy => AfterRound::Again,
    }
}

/// What a source that restarts with a migration intent at `step` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The target never got a commit: the source still owns the object. Tell the target
    /// to discard what it has, drop the intent, serve.
    Abort,
    /// The commit was asked: ask the target to resolve (it committed, or it now refuses
    /// the commit for good). Serve nothing until it answers.
    Resolve,
    /// The target owns the object: make sure the source forwards, then the home.
    /// `keep_pages`: a lazy move whose target may still fetch pages from here; they stay
    /// until it releases them.
    Finish { keep_pages: bool },
    /// The target released the pages of a lazy move: drop them, and the intent.
    Done,
}

/// The pure recovery rule.
pub fn recover(strategy: Strategy, step: Step) -> Recovery {
    match step {
        Step::IntentWritten | Step::TargetAccepted | Step::Copied(_) | Step::Frozen => Recovery::Abort,
        Step::CommitAsked => Recovery::Resolve,
        Step::TargetCommitted | Step::SourceForwarded | Step::HomeUpdated => {
            Recovery::Finish { keep_pages: strategy == Strategy::Lazy }
        }
        Step::PullDone => Recovery::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precopy_rounds_until_the_dirty_set_is_small_or_rounds_run_out() {
        let p = Precopy { small_dirty: 4, max_rounds: 3 };
        let table = [
            (Strategy::Eager, 0, 1000, AfterRound::Freeze),
            (Strategy::Precopy, 0, 1000, AfterRound::Again),
            (Strategy::Precopy, 1, 5, AfterRound::Again),
            (Strategy::Precopy, 1, 4, AfterRound::Freeze),
            (Strategy::Precopy, 2, 0, AfterRound::Freeze),
            (Strategy::Precopy, 3, 1000, AfterRound::Freeze),
            (Strategy::Lazy, 0, 1000, AfterRound::Freeze),
        ];
        for (strategy, round, dirty, expected) in table {
            assert_eq!(after_round(strategy, p, round, dirty), expected, "{strategy} round {round}, {dirty} dirty");
        }
    }

    #[test]
    fn a_restart_aborts_before_the_commit_was_asked_and_finishes_after_it_was_done() {
        let finish = Recovery::Finish { keep_pages: false };
        let keep = Recovery::Finish { keep_pages: true };
        let table = [
            (Strategy::Precopy, Step::IntentWritten, Recovery::Abort),
            (Strategy::Precopy, Step::TargetAccepted, Recovery::Abort),
            (Strategy::Precopy, Step::Copied(3), Recovery::Abort),
            (Strategy::Eager, Step::Frozen, Recovery::Abort),
            (Strategy::Lazy, Step::Frozen, Recovery::Abort),
            (Strategy::Precopy, Step::CommitAsked, Recovery::Resolve),
            (Strategy::Lazy, Step::CommitAsked, Recovery::Resolve),
            (Strategy::Precopy, Step::TargetCommitted, finish),
            (Strategy::Eager, Step::SourceForwarded, finish),
            (Strategy::Precopy, Step::HomeUpdated, finish),
            (Strategy::Lazy, Step::TargetCommitted, keep),
            (Strategy::Lazy, Step::SourceForwarded, keep),
            (Strategy::Lazy, Step::HomeUpdated, keep),
            (Strategy::Lazy, Step::PullDone, Recovery::Done),
        ];
        for (strategy, step, expected) in table {
            assert_eq!(recover(strategy, step), expected, "{strategy} {step}");
        }
    }

    #[test]
    fn steps_are_ordered_as_the_protocol_runs_them() {
        assert!(Step::IntentWritten < Step::TargetAccepted);
        assert!(Step::Copied(1) < Step::Copied(2) && Step::Copied(9) < Step::Frozen);
        assert!(Step::CommitAsked < Step::TargetCommitted && Step::SourceForwarded < Step::HomeUpdated);
        assert!(Step::HomeUpdated < Step::PullDone);
        assert_eq!("precopy".parse::<Strategy>(), Ok(Strategy::Precopy));
        assert_eq!("lazy".parse::<Strategy>(), Ok(Strategy::Lazy));
        assert!("later".parse::<Strategy>().unwrap_err().contains("expected `eager`, `precopy` or `lazy`"));
    }
}
