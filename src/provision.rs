//! Applies the config's organizations, keys, DIDs, agents and trunks to the store.

use uuid::Uuid;

use crate::api::extract::hash_api_key;
use crate::config::Config;
use crate::phone::{PhoneError, PhoneNormalizer};
use crate::store::{ProvisionOrg, Result, Store, StoreError};

/// Returns the ids of the config's orgs, in its order.
pub async fn provision(store: &Store, config: &Config) -> Result<Vec<Uuid>> {
    let phones = PhoneNormalizer::new(&config.telephony.default_region).map_err(phone_error)?;
    let mut orgs = Vec::with_capacity(config.orgs.len());
    for org in &config.orgs {
        let numbers = org
            .numbers
            .iter()
            .map(|n| phones.normalize(n))
            .collect::<std::result::Result<_, _>>();
        orgs.push(ProvisionOrg {
            config: org,
            key_hashes: org.api_keys.iter().map(|k| hash_api_key(k)).collect(),
            numbers: numbers.map_err(phone_error)?,
        });
    }
    store.provision(&orgs, &config.trunks).await
}

/// Config validation normalizes every number first, so this only fires on an unvalidated config.
fn phone_error(e: PhoneError) -> StoreError {
    StoreError::Corrupt {
        what: "phone number in config",
        value: e.to_string(),
    }
}
