//! Fault injection for protocol tests: a test arms a step of a protocol on a node, and
//! when the node reaches it (the step made durable) it stops there for good, as if the
//! process had died at that instant, and tells the test. The test then crashes the node
//! (or another) and checks what recovery makes of it. Only in builds with the `faults`
//! feature (the tests crate enables it); elsewhere `fault` does nothing.
//!
//! A node process of such a build (the tests' `testnode`) arms the point named by the
//! environment variable `CLOUDS_FAULT` at start (`source:frozen`, `target:target-committed`,
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
}

impl Engine {
    /// Stops here for good if a test armed this point.
    pub(super) async fn fault(&self, role: Role, step: Step) {
        #[cfg(feature = "faults")]
        {
            let hit = {
                let armed = self.inner.faults.lock().expect("faults mutex");
                armed.as_ref().filter(|(r, s, _)| *r == role && *s == step).map(|(_, _, hit)| hit.clone())
            };
            if let Some(hit) = hit {
                tracing::warn!(?role, %step, "stopping at an armed fault point");
                hit.notify_one();
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(feature = "faults"))]
        let _ = (role, step);
    }

    /// Stops here for good if a test armed this point of an atomic action.
    pub(super) async fn action_fault(&self, role: Role, step: crate::atomic::Step) {
        #[cfg(feature = "faults")]
        {
            let hit = {
                let armed = self.inner.action_faults.lock().expect("faults mutex");
                armed.as_ref().filter(|(r, s, _)| *r == role && *s == step).map(|(_, _, hit)| hit.clone())
            };
            if let Some(hit) = hit {
                tracing::warn!(?role, %step, "stopping at an armed fault point");
                hit.notify_one();
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(feature = "faults"))]
        let _ = (role, step);
    }

    /// Arms the fault point `(role, step)` of atomic actions (see `arm_fault`).
    #[cfg(feature = "faults")]
    pub fn arm_action_fault(&self, role: Role, step: crate::atomic::Step) -> std::sync::Arc<tokio::sync::Notify> {
        let hit = std::sync::Arc::new(tokio::sync::Notify::new());
        *self.inner.action_faults.lock().expect("faults mutex") = Some((role, step, hit.clone()));
        hit
    }

    /// Arms the fault point `(role, step)`: the node stops for good when it reaches it; the
    /// returned notifier fires then.
    #[cfg(feature = "faults")]
    pub fn arm_fault(&self, role: Role, step: Step) -> std::sync::Arc<tokio::sync::Notify> {
        let hit = std::sync::Arc::new(tokio::sync::Notify::new());
        *self.inner.faults.lock().expect("faults mutex") = Some((role, step, hit.clone()));
        hit
    }
}

/// Reads a fault point: `ROLE:STEP`, the role `source`, `target` or `home`, the step as
/// `Step` prints it with dashes (`intent-written`, `copy-round-1`, `commit-asked`, ...).
pub fn parse_point(text: &str) -> Result<(Role, Step), String> {
    let (role, step) = text.split_once(':').ok_or_else(|| format!("`{text}`: expected ROLE:STEP"))?;
    let role = match role {
        "source" => Role::Source,
        "target" => Role::Target,
        "home" => Role::Home,
        other => return Err(format!("`{other}` is not a role; expected source, target or home")),
    };
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
    let named = |s: &Step| s.to_string().replace(' ', "-");
    let found = steps.iter().find(|s| named(s) == step).copied();
    let names: Vec<String> = steps.iter().map(named).collect();
    found.map(|s| (role, s)).ok_or_else(|| format!("`{step}` is not a step; expected one of {}", names.join(", ")))
}

#[cfg(feature = "faults")]
impl Engine {
    /// Arms the point `CLOUDS_FAULT` names, if set (see the module docs).
    pub(super) fn arm_from_env(&self) -> Result<(), clouds::InvokeError> {
        let Ok(text) = std::env::var("CLOUDS_FAULT") else { return Ok(()) };
        let (role, step) = parse_point(&text).map_err(clouds::InvokeError::invalid)?;
        tracing::warn!(?role, %step, "CLOUDS_FAULT armed");
        drop(self.arm_fault(role, step));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_points_are_read_from_text() {
        assert_eq!(parse_point("source:frozen"), Ok((Role::Source, Step::Frozen)));
        assert_eq!(parse_point("source:copy-round-1"), Ok((Role::Source, Step::Copied(1))));
        assert_eq!(parse_point("target:lazy-pull-done"), Ok((Role::Target, Step::PullDone)));
        assert_eq!(parse_point("home:home-updated"), Ok((Role::Home, Step::HomeUpdated)));
        assert!(parse_point("frozen").unwrap_err().contains("ROLE:STEP"));
        assert!(parse_point("sink:frozen").unwrap_err().contains("not a role"));
        assert!(parse_point("source:melted").unwrap_err().contains("commit-asked"));
    }
}
