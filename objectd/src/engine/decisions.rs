//! The decisions this node made on its own, the most recent ones: a bounded log that
//! `clouds why` and `clouds decisions` read (`RequestBody::Decisions`). Kept in memory: a
//! restart starts it empty (the objects' locations are durable; the reasons are not).

use clouds::{NodeId, ObjectId};
use protocol::decision::{Decision, DecisionKind};
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many decisions a node keeps.
const KEEP: usize = 2_000;

#[derive(Default)]
pub struct Log {
    /// std `Mutex`: one push or one copy at a time.
    entries: Mutex<VecDeque<Decision>>,
}

/// What a decision is about, without the time and node the log adds.
pub struct Entry<'a> {
    pub kind: DecisionKind,
    pub object: Option<ObjectId>,
    pub class: &'a str,
    pub from: Option<NodeId>,
    pub to: Option<NodeId>,
    pub reason: String,
}

impl Log {
    pub fn record(&self, node: NodeId, e: Entry<'_>) {
        let at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let decision = Decision {
            at_ms,
            node,
            kind: e.kind,
            object: e.object,
            class: e.class.to_string(),
            from: e.from,
            to: e.to,
            reason: e.reason,
        };
        tracing::info!(%decision, "decided");
        let mut entries = self.entries.lock().expect("decisions mutex");
        if entries.len() >= KEEP {
            entries.pop_front();
        }
        entries.push_back(decision);
    }

    /// The decisions kept, oldest first; about `object` only, if named.
    pub fn list(&self, object: Option<ObjectId>) -> Vec<Decision> {
        let entries = self.entries.lock().expect("decisions mutex");
        entries.iter().filter(|d| object.is_none() || d.object == object).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_filters_by_object() {
        let log = Log::default();
        let (a, b) = (ObjectId::new(NodeId(1)), ObjectId::new(NodeId(1)));
        for i in 0..KEEP + 5 {
            let object = Some(if i % 2 == 0 { a } else { b });
            let reason = format!("{i}");
            log.record(
                NodeId(1),
                Entry { kind: DecisionKind::Placed, object, class: "C", from: None, to: None, reason },
            );
        }
        let all = log.list(None);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].reason, "5", "the oldest go first");
        assert!(log.list(Some(a)).iter().all(|d| d.object == Some(a)));
        assert_eq!(log.list(Some(ObjectId::new(NodeId(2)))), Vec::new());
    }
}
