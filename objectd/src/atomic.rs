//! Atomic actions' two-phase commit as pure rules: what a participant does on each message,
//! what a coordinator decides from the votes, and what either does after a restart.
//!
//! An atomic action is everything one thread does inside an `#[atomic]` method (or a call
//! asked to be atomic), on every object and node it reaches. Each node where the action
//! holds objects is a participant: it keeps each object's write lock and the changes the
//! thread made to it (not visible, not durable) until the decision. The node where the
//! atomic method runs is the coordinator. The steps, each a durable fact once passed:
//!
//! 1. `Prepared` (participant): its changes are written as a durable intent, its locks
//!    still held; it voted yes. From here it may not decide alone.
//! 2. `Decided` (coordinator): the decision to commit is durable, in the same store
//!    transaction as the coordinator's own changes. Before it the action aborts, whatever happens (presumed
//!    abort: a coordinator that restarts without a decision answers `Aborted`).
//! 3. `Applied` (participant): it applied its changes and dropped its intent and locks.
//! 4. `Told` (coordinator): every participant acknowledged the commit; the decision record
//!    goes.
//!
//! An action is doomed, and can only abort, once any call inside it failed (even one the
//! method caught): there are no partial rollbacks inside an action.

use protocol::wire::Outcome;
use serde::{Deserialize, Serialize};

/// The named steps, for fault injection and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Coordinator: the prepares were sent, the votes not yet counted.
    VotesAsked,
    /// Participant: its prepared intent is durable, its vote not yet given.
    Preparing,
    Prepared,
    Decided,
    Applied,
    Told,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::VotesAsked => "votes asked",
            Step::Preparing => "preparing",
            Step::Prepared => "prepared",
            Step::Decided => "decided",
            Step::Applied => "applied",
            Step::Told => "told",
        })
    }
}

/// Where a participant's part of an action stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The thread may still be working in it; nothing is durable.
    Active,
    /// Durable, locks held, voted yes: waits for the decision.
    Prepared,
    /// Applied or rolled back (or never known here): the action is over on this node.
    Over,
}

/// What a participant hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The coordinator asks for a vote; `doomed`: a call in this part failed.
    Prepare {
        doomed: Option<String>,
    },
    Commit,
    Abort,
    /// The thread's deadline (and a grace) passed without a decision reaching this node.
    Timeout,
    /// The coordinator's answer to `Decision`.
    Answer(Outcome),
}

/// What the participant does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Write the changes durably, keep the locks, vote yes.
    PrepareAndVoteYes,
    /// Roll back, release, vote no with this reason.
    RollBackAndVoteNo(String),
    /// Apply the changes durably, release.
    Apply,
    /// Roll back, drop the intent if any, release.
    RollBack,
    /// Ask the coordinator what it decided.
    Ask,
    /// Nothing to do; answer that it is done (a repeated message).
    Ack,
    /// Vote no: the action is not known here (this node restarted, or it is over).
    VoteNo(String),
    /// Refuse: a commit of a part that never prepared.
    Refuse(String),
    /// Keep waiting.
    Wait,
}

/// The participant's rule: state and event in, next state and effect out.
pub fn participant(part: Part, event: Event) -> (Part, Effect) {
    use Effect::*;
    match (part, event) {
        (Part::Active, Event::Prepare { doomed: None }) => (Part::Prepared, PrepareAndVoteYes),
        (Part::Active, Event::Prepare { doomed: Some(why) }) => (Part::Over, RollBackAndVoteNo(why)),
        (Part::Active, Event::Commit) => (Part::Active, Refuse("the part was not prepared".into())),
        // Before it voted, a participant may abort alone: the coordinator cannot commit
        // without its vote.
        (Part::Active, Event::Abort | Event::Timeout) => (Part::Over, RollBack),
        (Part::Active, Event::Answer(Outcome::Aborted)) => (Part::Over, RollBack),
        (Part::Active, Event::Answer(_)) => (Part::Active, Wait),
        (Part::Prepared, Event::Prepare { .. }) => (Part::Prepared, Ack),
        (Part::Prepared, Event::Commit | Event::Answer(Outcome::Committed)) => (Part::Over, Apply),
        (Part::Prepared, Event::Abort | Event::Answer(Outcome::Aborted)) => (Part::Over, RollBack),
        // Prepared: only the coordinator decides, however long it takes.
        (Part::Prepared, Event::Timeout) => (Part::Prepared, Ask),
        (Part::Prepared, Event::Answer(Outcome::Pending)) => (Part::Prepared, Wait),
        (Part::Over, Event::Prepare { .. }) => (Part::Over, VoteNo("the action is not known on this node".into())),
        (Part::Over, _) => (Part::Over, Ack),
    }
}

/// A vote as the coordinator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vote {
    Yes,
    No(String),
    /// No answer (the participant could not be reached, or did not answer in time).
    Lost(String),
}

/// What the coordinator decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Abort(String),
}

/// The coordinator's rule: commit only if the action is not doomed and every vote is yes.
pub fn decide(doomed: Option<&str>, votes: &[(String, Vote)]) -> Decision {
    if let Some(why) = doomed {
        return Decision::Abort(format!("a call inside it failed: {why}"));
    }
    for (node, vote) in votes {
        match vote {
            Vote::Yes => {}
            Vote::No(why) => return Decision::Abort(format!("{node} could not prepare: {why}")),
            Vote::Lost(why) => return Decision::Abort(format!("{node} did not vote: {why}")),
        }
    }
    Decision::Commit
}

/// What a coordinator answers a participant that asks about an action: committed if its
/// decision record is there, pending while it still runs, and otherwise aborted (presumed
/// abort: no record means no commit was ever decided, and none will be).
pub fn answer(decided: bool, running: bool) -> Outcome {
    match (decided, running) {
        (true, _) => Outcome::Committed,
        (false, true) => Outcome::Pending,
        (false, false) => Outcome::Aborted,
    }
}

/// What a node that restarts does with an action it finds: a prepared part is held
/// (locks taken again before anything is served) and its coordinator asked; an active part
/// left nothing durable, so there is nothing to do: it aborted with the process.
pub fn restart(prepared: bool) -> Part {
    if prepared {
        Part::Prepared
    } else {
        Part::Over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_participant_table() {
        let no = |s: &str| Event::Prepare { doomed: Some(s.into()) };
        let yes = Event::Prepare { doomed: None };
        let table = [
            (Part::Active, yes.clone(), Part::Prepared, Effect::PrepareAndVoteYes),
            (Part::Active, no("x"), Part::Over, Effect::RollBackAndVoteNo("x".into())),
            (Part::Active, Event::Commit, Part::Active, Effect::Refuse("the part was not prepared".into())),
            (Part::Active, Event::Abort, Part::Over, Effect::RollBack),
            (Part::Active, Event::Timeout, Part::Over, Effect::RollBack),
            (Part::Prepared, yes.clone(), Part::Prepared, Effect::Ack),
            (Part::Prepared, Event::Commit, Part::Over, Effect::Apply),
            (Part::Prepared, Event::Abort, Part::Over, Effect::RollBack),
            (Part::Prepared, Event::Timeout, Part::Prepared, Effect::Ask),
            (Part::Prepared, Event::Answer(Outcome::Committed), Part::Over, Effect::Apply),
            (Part::Prepared, Event::Answer(Outcome::Aborted), Part::Over, Effect::RollBack),
            (Part::Prepared, Event::Answer(Outcome::Pending), Part::Prepared, Effect::Wait),
            (Part::Over, Event::Commit, Part::Over, Effect::Ack),
            (Part::Over, Event::Abort, Part::Over, Effect::Ack),
            (Part::Over, yes, Part::Over, Effect::VoteNo("the action is not known on this node".into())),
        ];
        for (part, event, next, effect) in table {
            assert_eq!(participant(part, event.clone()), (next, effect), "{part:?} on {event:?}");
        }
    }

    #[test]
    fn a_prepared_part_never_decides_alone() {
        let mut part = Part::Prepared;
        for event in [Event::Timeout, Event::Answer(Outcome::Pending), Event::Prepare { doomed: None }] {
            let (next, effect) = participant(part, event);
            assert_eq!(next, Part::Prepared);
            assert!(!matches!(effect, Effect::Apply | Effect::RollBack), "{effect:?}");
            part = next;
        }
    }

    #[test]
    fn the_coordinator_commits_only_on_every_yes() {
        let yes = ("node-2".to_string(), Vote::Yes);
        assert_eq!(decide(None, &[yes.clone(), ("node-3".into(), Vote::Yes)]), Decision::Commit);
        assert_eq!(decide(None, &[]), Decision::Commit);
        let no = decide(None, &[yes.clone(), ("node-3".into(), Vote::No("busy".into()))]);
        assert_eq!(no, Decision::Abort("node-3 could not prepare: busy".into()));
        let lost = decide(None, &[("node-2".into(), Vote::Lost("cut".into())), yes.clone()]);
        assert_eq!(lost, Decision::Abort("node-2 did not vote: cut".into()));
        let doomed = decide(Some("deadlock"), &[yes]);
        assert_eq!(doomed, Decision::Abort("a call inside it failed: deadlock".into()));
    }

    #[test]
    fn presumed_abort_after_a_restart() {
        assert_eq!(answer(true, false), Outcome::Committed);
        assert_eq!(answer(true, true), Outcome::Committed);
        assert_eq!(answer(false, true), Outcome::Pending);
        assert_eq!(answer(false, false), Outcome::Aborted, "no record and not running: it never committed");
        assert_eq!(restart(true), Part::Prepared);
        assert_eq!(restart(false), Part::Over);
    }
}
