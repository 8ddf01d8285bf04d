//! Fault injection for protocol tests: a test arms a step of a protocol on a node, and
//! when the node reaches it (the step made durable) it stops there for good, as if the
//! process had died at that instant, and tells the test. The test then crashes the node
//! (or another) and checks what recovery makes of it. A test may instead arm a *pause*:
//! the node waits at the step until the test lets it go on, so that the other end of the
//! protocol can overtake it (a race made certain). Only in builds with the `faults`
//! feature (the tests crate enables it); elsewhere `fault` does nothing.
//!
//! A node process of such a build (the tests' `testnode`) arms the point named by the
//! environment variable `CLOUDS_FAULT` at start (`source:frozen`, `coordinator:decided`,
//! ...: a role and a step as [`parse_point`] reads them), so that a test can kill -9 the real
//! process at that step: the node logs `stopping at an armed fault point` when it gets there.

use super::Engine;
use crate::migration::Step;

/// Which end of a protocol a fault point belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
    Home,
    /// Of an atomic action: the node where its atomic method runs.
    Coordinator,
    /// Of an atomic action: a node where it holds objects.
    Participant,
    /// Of a drain's handover: the drained node.
    Drained,
    /// Of a drain's handover: the node that keeps the drained node's home records.
    Keeper,
}

/// The steps of a drain's handover of home records (`engine::drain`), each durable when
/// reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// The keeper stored a batch of home records and that it keeps them (before it answers).
    Adopted,
    /// The drained node recorded to whom it handed them (before the drain is reported done).
    Handed,
}

impl Handover {
    pub fn as_str(&self) -> &'static str {
        match self {
            Handover::Adopted => "adopted",
            Handover::Handed => "handed",
        }
    }
}

/// A fault point a test armed: where, the notifier that fires when the node gets there,
/// and, for a pause, the one that lets it go on.
#[cfg(feature = "faults")]
pub(super) struct Armed {
    role: Role,
    point: Point,
    hit: std::sync::Arc<tokio::sync::Notify>,
    resume: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl Engine {
    /// Stops here for good if a test armed this step of a move.
    pub(super) async fn fault(&self, role: Role, step: Step) {
        self.stop_if_armed(role, Point::Move(step)).await;
    }

    /// Stops here for good if a test armed this step of a handover.
    pub(super) async fn handover_fault(&self, role: Role, step: Handover) {
        self.stop_if_armed(role, Point::Handover(step)).await;
    }

    /// Stops here for good if a test armed this step of an atomic action.
    pub(super) async fn action_fault(&self, role: Role, step: crate::atomic::Step) {
        self.stop_if_armed(role, Point::Action(step)).await;
    }

    async fn stop_if_armed(&self, role: Role, point: Point) {
        #[cfg(feature = "faults")]
        {
            let found = {
                let mut armed = self.inner.faults.lock().expect("faults mutex");
                match armed.as_ref() {
                    // A pause is taken once.
                    Some(a) if a.role == role && a.point == point && a.resume.is_some() => armed.take(),
                    Some(a) if a.role == role && a.point == point => {
                        Some(Armed { role, point, hit: a.hit.clone(), resume: None })
                    }
                    _ => None,
                }
            };
            if let Some(armed) = found {
                armed.hit.notify_one();
                match armed.resume {
                    Some(resume) => {
                        tracing::warn!(?role, ?point, "pausing at an armed fault point");
                        resume.notified().await;
                    }
                    None => {
                        tracing::warn!(?role, ?point, "stopping at an armed fault point");
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
        #[cfg(not(feature = "faults"))]
        let _ = (role, point);
    }

    /// Arms the fault point `(role, step)` of moves: the node stops for good when it
    /// reaches it; the returned notifier fires then.
    #[cfg(feature = "faults")]
    pub fn arm_fault(&self, role: Role, step: Step) -> std::sync::Arc<tokio::sync::Notify> {
        self.arm(role, Point::Move(step))
    }

    /// Arms the fault point `(role, step)` of a drain's handover (see `arm_fault`).
    #[cfg(feature = "faults")]
    pub fn arm_handover_fault(&self, role: Role, step: Handover) -> std::sync::Arc<tokio::sync::Notify> {
        self.arm(role, Point::Handover(step))
    }

    /// Arms the fault point `(role, step)` of atomic actions (see `arm_fault`).
    #[cfg(feature = "faults")]
    pub fn arm_action_fault(&self, role: Role, step: crate::atomic::Step) -> std::sync::Arc<tokio::sync::Notify> {
        self.arm(role, Point::Action(step))
    }

    /// Arms a pause at the step `(role, step)` of moves: the node waits there (once) until
    /// the second notifier is notified; the first fires when it gets there.
    #[cfg(feature = "faults")]
    pub fn arm_pause(
        &self,
        role: Role,
        step: Step,
    ) -> (std::sync::Arc<tokio::sync::Notify>, std::sync::Arc<tokio::sync::Notify>) {
        self.arm_pause_at(role, Point::Move(step))
    }

    /// Arms a pause at the step `(role, step)` of atomic actions (see `arm_pause`).
    #[cfg(feature = "faults")]
    pub fn arm_action_pause(
        &self,
        role: Role,
        step: crate::atomic::Step,
    ) -> (std::sync::Arc<tokio::sync::Notify>, std::sync::Arc<tokio::sync::Notify>) {
        self.arm_pause_at(role, Point::Action(step))
    }

    #[cfg(feature = "faults")]
    fn arm_pause_at(
        &self,
        role: Role,
        point: Point,
    ) -> (std::sync::Arc<tokio::sync::Notify>, std::sync::Arc<tokio::sync::Notify>) {
        let (hit, resume) = (std::sync::Arc::default(), std::sync::Arc::<tokio::sync::Notify>::default());
        let armed = Armed { role, point, hit: std::sync::Arc::clone(&hit), resume: Some(resume.clone()) };
        *self.inner.faults.lock().expect("faults mutex") = Some(armed);
        (hit, resume)
    }

    #[cfg(feature = "faults")]
    fn arm(&self, role: Role, point: Point) -> std::sync::Arc<tokio::sync::Notify> {
        let hit = std::sync::Arc::new(tokio::sync::Notify::new());
        *self.inner.faults.lock().expect("faults mutex") = Some(Armed { role, point, hit: hit.clone(), resume: None });
        hit
    }
}

/// A step of one of the protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    Move(Step),
    Action(crate::atomic::Step),
    Handover(Handover),
}

/// Reads a fault point: `ROLE:STEP`. Roles `source`, `target`, `home` name a move's steps
/// as `migration::Step` prints them with dashes (`intent-written`, `copy-round-1`, ...);
/// roles `coordinator` and `participant` name an atomic action's (`votes-asked`,
/// `preparing`, `prepared`, `decided`, `applied`, `told`); `keeper:adopted` and `drained:handed` a
/// drain's handover.
pub fn parse_point(text: &str) -> Result<(Role, Point), String> {
    let (role, step) = text.split_once(':').ok_or_else(|| format!("`{text}`: expected ROLE:STEP"))?;
    let role = match role {
        "source" => Role::Source,
        "target" => Role::Target,
        "home" => Role::Home,
        "coordinator" => Role::Coordinator,
        "participant" => Role::Participant,
        "drained" => Role::Drained,
        "keeper" => Role::Keeper,
        other => {
            return Err(format!(
                "`{other}` is not a role; expected source, target, home, coordinator, participant, drained or keeper"
            ))
        }
    };
    let named = |s: String| s.replace(' ', "-");
    let points: Vec<Point> = if role == Role::Keeper {
        vec![Point::Handover(Handover::Adopted)]
    } else if role == Role::Drained {
        vec![Point::Handover(Handover::Handed)]
    } else if matches!(role, Role::Coordinator | Role::Participant) {
        use crate::atomic::Step as A;
        [A::VotesAsked, A::Preparing, A::Prepared, A::Decided, A::Applied, A::Told]
            .into_iter()
            .map(Point::Action)
            .collect()
    } else {
        let mut steps = vec![
            Step::IntentWritten,
            Step::TargetAccepted,
            Step::Frozen,
            Step::CommitAsked,
            Step::TargetCommitted,
            Step::SourceForwarded,
            Step::HomeUpdated,
            Step::PullDone,
        ];
        steps.extend((1..=8).map(Step::Copied));
        steps.into_iter().map(Point::Move).collect()
    };
    let name = |p: &Point| match p {
        Point::Move(s) => named(s.to_string()),
        Point::Action(s) => named(s.to_string()),
        Point::Handover(s) => s.as_str().to_string(),
    };
    let found = points.iter().find(|p| name(p) == step).copied();
    let names: Vec<String> = points.iter().map(name).collect();
    found.map(|p| (role, p)).ok_or_else(|| format!("`{step}` is not a step; expected one of {}", names.join(", ")))
}

#[cfg(feature = "faults")]
impl Engine {
    /// Arms the point `CLOUDS_FAULT` names, if set (see the module docs).
    pub(super) fn arm_from_env(&self) -> Result<(), clouds::InvokeError> {
        let Ok(text) = std::env::var("CLOUDS_FAULT") else { return Ok(()) };
        let (role, point) = parse_point(&text).map_err(clouds::InvokeError::invalid)?;
        tracing::warn!(?role, ?point, "CLOUDS_FAULT armed");
        drop(self.arm(role, point));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_points_are_read_from_text() {
        use crate::atomic::Step as A;
        assert_eq!(parse_point("source:frozen"), Ok((Role::Source, Point::Move(Step::Frozen))));
        assert_eq!(parse_point("source:copy-round-1"), Ok((Role::Source, Point::Move(Step::Copied(1)))));
        assert_eq!(parse_point("target:lazy-pull-done"), Ok((Role::Target, Point::Move(Step::PullDone))));
        assert_eq!(parse_point("home:home-updated"), Ok((Role::Home, Point::Move(Step::HomeUpdated))));
        assert_eq!(parse_point("coordinator:votes-asked"), Ok((Role::Coordinator, Point::Action(A::VotesAsked))));
        assert_eq!(parse_point("participant:prepared"), Ok((Role::Participant, Point::Action(A::Prepared))));
        assert_eq!(parse_point("keeper:adopted"), Ok((Role::Keeper, Point::Handover(Handover::Adopted))));
        assert_eq!(parse_point("drained:handed"), Ok((Role::Drained, Point::Handover(Handover::Handed))));
        assert!(parse_point("frozen").unwrap_err().contains("ROLE:STEP"));
        assert!(parse_point("sink:frozen").unwrap_err().contains("not a role"));
        assert!(parse_point("source:melted").unwrap_err().contains("commit-asked"));
        assert!(parse_point("coordinator:frozen").unwrap_err().contains("votes-asked"));
    }
}
