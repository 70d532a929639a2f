//! Inbound call routing in two plain steps (the livekit/sip shape): is the source allowed by a
//! trunk rule, then which org owns the DID and which agent answers. Each refusal is an
//! [`Outcome`] of the one catalog, which says what the caller is answered.

use std::net::IpAddr;

use crate::config::TrunkConfig;
use crate::domain::{Agent, Direction, Org};
use crate::outcome::Outcome;
use crate::phone::PhoneNormalizer;
use crate::store::{Store, StoreError};

/// Step 1: the first trunk whose rules admit `source`.
pub fn match_trunk(source: IpAddr, trunks: &[TrunkConfig]) -> Option<&TrunkConfig> {
    let source = match source {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
        v4 => v4,
    };
    trunks
        .iter()
        .find(|t| t.inbound_cidrs.iter().any(|net| net.contains(&source)))
}

/// The org and agent an admitted INVITE goes to.
#[derive(Debug, Clone)]
pub struct Route {
    pub trunk: String,
    pub did: String,
    pub org: Org,
    pub agent: Agent,
}

pub struct InboundRouter {
    store: Store,
    trunks: Vec<TrunkConfig>,
    phones: PhoneNormalizer,
}

impl InboundRouter {
    pub fn new(store: Store, trunks: Vec<TrunkConfig>, phones: PhoneNormalizer) -> Self {
        Self {
            store,
            trunks,
            phones,
        }
    }

    /// Routes an INVITE from `source` to the Request-URI user `did_user`.
    pub async fn route(&self, source: IpAddr, did_user: &str) -> Result<Route, Outcome> {
        let trunk = match_trunk(source, &self.trunks).ok_or(Outcome::SourceNotAllowed)?;
        let did = self
            .phones
            .normalize(did_user)
            .map_err(|_| Outcome::InvalidNumber)?;
        let org = self
            .store
            .org_by_number(&did)
            .await
            .map_err(internal)?
            .ok_or(Outcome::InvalidNumber)?;
        let agent = self
            .store
            .default_agent(org.id, Direction::Inbound)
            .await
            .map_err(internal)?
            .ok_or(Outcome::NoAgent)?;
        if org.quota_exhausted() {
            return Err(Outcome::QuotaExhausted);
        }
        Ok(Route {
            trunk: trunk.name.clone(),
            did,
            org,
            agent,
        })
    }
}

fn internal(e: StoreError) -> Outcome {
    tracing::error!(error = %e, "routing an inbound call failed");
    Outcome::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;

    fn trunk(name: &str, cidrs: &[&str]) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 5060,
            transport: Transport::Udp,
            username: None,
            password: None,
            inbound_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            from_number: None,
            calls_per_second: None,
            max_concurrent: None,
        }
    }

    #[test]
    fn trunk_rules_match_by_source_cidr() {
        let trunks = [
            trunk("a", &["192.0.2.0/24"]),
            trunk("b", &["127.0.0.0/8", "2001:db8::/32"]),
        ];
        let name = |ip: &str| match_trunk(ip.parse().unwrap(), &trunks).map(|t| t.name.clone());
        assert_eq!(name("192.0.2.7"), Some("a".into()));
        assert_eq!(name("127.0.0.2"), Some("b".into()));
        assert_eq!(
            name("::ffff:127.0.0.1"),
            Some("b".into()),
            "v4-mapped sources match v4 rules"
        );
        assert_eq!(name("2001:db8::5"), Some("b".into()));
        assert_eq!(name("198.51.100.1"), None);
        assert_eq!(
            match_trunk("127.0.0.1".parse().unwrap(), &[trunk("none", &[])]).map(|t| &t.name),
            None
        );
    }
}
