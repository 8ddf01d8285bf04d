//! Fault injection for protocol tests: a test arms a step of a protocol on a node, and
//! when the node reaches it (the step made durable) it stops there for good, as if the
//! process had died at that instant, and tells the test. The test then crashes the node
//! (or another) and checks what recovery makes of it. Only in builds with the `faults`
//! feature (the tests crate enables it); elsewhere `fault` does nothing.

use super::Engine;
use crate::migration::Step;

/// Which end of a protocol a fault point belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Source,
    Target,
    Home,
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

    /// Arms the fault point `(role, step)`: the node stops for good when it reaches it; the
    /// returned notifier fires then.
    #[cfg(feature = "faults")]
    pub fn arm_fault(&self, role: Role, step: Step) -> std::sync::Arc<tokio::sync::Notify> {
        let hit = std::sync::Arc::new(tokio::sync::Notify::new());
        *self.inner.faults.lock().expect("faults mutex") = Some((role, step, hit.clone()));
        hit
    }
}
