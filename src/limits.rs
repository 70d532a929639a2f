//! The node's caps on calls at once, one set for inbound and outbound alike:
//! `[telephony] max_concurrent_calls`, each trunk's `max_concurrent` and each org's
//! `max_concurrent_calls`. A call holds a [`CallSlot`] from its admission (an answered INVITE,
//! a claimed dial) to its end; dropping the slot frees it and wakes the dispatcher.
//!
//! The counts live in this process, so every cap holds exactly on one node; in a cluster each
//! node enforces its own (docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

/// Which cap kept a call out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `[telephony] max_concurrent_calls`.
    Node,
    /// The trunk's `max_concurrent`.
    Trunk,
    /// The org's `max_concurrent_calls`.
    Org,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Node => "node_limit",
            Limit::Trunk => "trunk_limit",
            Limit::Org => "org_limit",
        }
    }
}

#[derive(Clone)]
pub struct CallLimits(Arc<Shared>);

struct Shared {
    node: usize,
    trunks: HashMap<String, usize>,
    orgs: HashMap<Uuid, usize>,
    held: Mutex<Held>,
    freed: Notify,
}

/// Calls holding a slot now, in all and by trunk and org.
#[derive(Default)]
struct Held {
    node: usize,
    trunks: HashMap<String, usize>,
    orgs: HashMap<Uuid, usize>,
}

/// What the dispatcher may claim through one trunk now.
#[derive(Debug, PartialEq, Eq)]
pub struct OutboundRoom {
    /// Calls that may start, by the node's and the trunk's caps.
    pub calls: usize,
    /// The cap that set `calls`, when it is what holds the dispatcher back.
    pub bound: Option<Limit>,
    /// Orgs at their cap: none of their calls may start.
    pub full_orgs: Vec<Uuid>,
    /// The fewest calls any other capped org may still start; claiming no more than that in
    /// one go keeps every org within its cap without knowing whose calls come due.
    pub org_room: Option<usize>,
}

impl CallLimits {
    pub fn new(node: usize, trunks: HashMap<String, usize>, orgs: HashMap<Uuid, usize>) -> Self {
        Self(Arc::new(Shared {
            node,
            trunks,
            orgs,
            held: Mutex::new(Held::default()),
            freed: Notify::new(),
        }))
    }

    /// Takes a slot for a call of `org` through `trunk`, or names the cap that is reached.
    pub fn take(&self, org: Uuid, trunk: &str) -> Result<CallSlot, Limit> {
        let mut held = self.held();
        let shared = &self.0;
        if held.node >= shared.node {
            return Err(Limit::Node);
        }
        let on_trunk = held.trunks.get(trunk).copied().unwrap_or(0);
        if shared.trunks.get(trunk).is_some_and(|cap| on_trunk >= *cap) {
            return Err(Limit::Trunk);
        }
        let of_org = held.orgs.get(&org).copied().unwrap_or(0);
        if shared.orgs.get(&org).is_some_and(|cap| of_org >= *cap) {
            return Err(Limit::Org);
        }
        held.node += 1;
        *held.trunks.entry(trunk.to_owned()).or_default() += 1;
        *held.orgs.entry(org).or_default() += 1;
        Ok(CallSlot {
            limits: self.clone(),
            org,
            trunk: trunk.to_owned(),
        })
    }

    pub fn outbound_room(&self, trunk: &str) -> OutboundRoom {
        let held = self.held();
        let shared = &self.0;
        let node = shared.node.saturating_sub(held.node);
        let on_trunk = held.trunks.get(trunk).copied().unwrap_or(0);
        let trunk_room = shared
            .trunks
            .get(trunk)
            .map_or(usize::MAX, |cap| cap.saturating_sub(on_trunk));
        let (calls, bound) = if trunk_room < node {
            (trunk_room, Limit::Trunk)
        } else {
            (node, Limit::Node)
        };
        let mut full_orgs = Vec::new();
        let mut org_room = None::<usize>;
        for (org, cap) in &shared.orgs {
            let left = cap.saturating_sub(held.orgs.get(org).copied().unwrap_or(0));
            if left == 0 {
                full_orgs.push(*org);
            } else {
                org_room = Some(org_room.map_or(left, |room| room.min(left)));
            }
        }
        full_orgs.sort_unstable();
        OutboundRoom {
            calls,
            bound: (calls == 0).then_some(bound),
            full_orgs,
            org_room,
        }
    }

    /// Calls holding a slot on this node.
    pub fn in_use(&self) -> usize {
        self.held().node
    }

    /// Resolves when a slot is freed (or was freed since the last wait).
    pub async fn freed(&self) {
        self.0.freed.notified().await
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // The counts stay consistent even if a holder panicked: each change is one statement.
        self.0.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A call's place under the caps; dropping it frees the place.
pub struct CallSlot {
    limits: CallLimits,
    org: Uuid,
    trunk: String,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut held = self.limits.held();
        held.node = held.node.saturating_sub(1);
        if let Some(n) = held.trunks.get_mut(&self.trunk) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = held.orgs.get_mut(&self.org) {
            *n = n.saturating_sub(1);
        }
        drop(held);
        self.limits.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn each_cap_holds_and_a_dropped_slot_frees_its_place() {
        let limits = CallLimits::new(
            4,
            HashMap::from([("carrier".to_owned(), 3)]),
            HashMap::from([(org(1), 1)]),
        );
        let first = limits.take(org(1), "carrier").unwrap();
        assert_eq!(limits.take(org(1), "other").err(), Some(Limit::Org));
        let _two = limits.take(org(2), "carrier").unwrap();
        let _three = limits.take(org(2), "carrier").unwrap();
        assert_eq!(limits.take(org(2), "carrier").err(), Some(Limit::Trunk));
        let _four = limits.take(org(2), "other").unwrap();
        assert_eq!(limits.take(org(3), "other").err(), Some(Limit::Node));
        assert_eq!(limits.in_use(), 4);
        drop(first);
        assert_eq!(limits.in_use(), 3);
        assert!(
            limits.take(org(1), "other").is_ok(),
            "the org's place is free again"
        );
    }

    #[test]
    fn outbound_room_names_what_binds_and_which_orgs_are_full() {
        let limits = CallLimits::new(
            10,
            HashMap::from([("carrier".to_owned(), 2)]),
            HashMap::from([(org(1), 1), (org(2), 5)]),
        );
        let room = limits.outbound_room("carrier");
        assert_eq!((room.calls, room.bound), (2, None));
        assert_eq!((room.full_orgs.len(), room.org_room), (0, Some(1)));
        let _a = limits.take(org(1), "carrier").unwrap();
        let _b = limits.take(org(2), "carrier").unwrap();
        let room = limits.outbound_room("carrier");
        assert_eq!(
            room,
            OutboundRoom {
                calls: 0,
                bound: Some(Limit::Trunk),
                full_orgs: vec![org(1)],
                org_room: Some(4),
            }
        );
        let room = limits.outbound_room("elsewhere");
        assert_eq!((room.calls, room.bound), (8, None));
    }
}
