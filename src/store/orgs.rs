//! Organizations, API keys, DIDs and trunks, and applying the config's provisioning to them.

use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use super::rows::{self, ORG_COLUMNS};
use super::{Result, Store, StoreError};
use crate::config::{AgentConfig, OrgConfig, TrunkConfig};
use crate::domain::{new_id, Org};

impl Store {
    pub async fn org_by_key_hash(&self, key_hash: &str) -> Result<Option<Org>> {
        let sql = format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE id = (SELECT org_id FROM api_keys WHERE key_hash = $1)"
        );
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::org).transpose()
    }

    pub async fn org(&self, id: Uuid) -> Result<Option<Org>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::org).transpose()
    }

    /// The organization a DID (E.164) belongs to.
    pub async fn org_by_number(&self, e164: &str) -> Result<Option<Org>> {
        let sql = format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE id = (SELECT org_id FROM phone_numbers WHERE number = $1)"
        );
        let row = sqlx::query(&sql)
            .bind(e164)
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::org).transpose()
    }

    /// Adds used minutes to the org's pool (atomic; concurrent charges never lose an update).
    pub async fn charge_minutes(&self, org_id: Uuid, minutes: i64) -> Result<()> {
        let mut tx = self.write().begin().await?;
        super::calls::charge_seconds(&mut tx, org_id, minutes.saturating_mul(60)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies the config's orgs, keys, DIDs, agents and trunks in one transaction. Running it
    /// again with the same config changes nothing; usage counters and API-made agents survive.
    /// API keys that came from config and are no longer in it are revoked. Returns the orgs'
    /// ids, in the order given.
    pub async fn provision(
        &self,
        orgs: &[ProvisionOrg<'_>],
        trunks: &[TrunkConfig],
    ) -> Result<Vec<Uuid>> {
        let now_ms = self.clock().now_ms();
        let mut ids = Vec::with_capacity(orgs.len());
        let mut tx = self.write().begin().await?;
        for org in orgs {
            let org_id = upsert_org(&mut tx, org.config, now_ms).await?;
            ids.push(org_id);
            sync_api_keys(&mut tx, org_id, &org.key_hashes, now_ms).await?;
            for number in &org.numbers {
                sqlx::query(
                    "INSERT INTO phone_numbers (number, org_id) VALUES ($1, $2) \
                     ON CONFLICT (number) DO UPDATE SET org_id = excluded.org_id",
                )
                .bind(number)
                .bind(org_id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            for agent in &org.config.agents {
                upsert_agent(&mut tx, org_id, agent, now_ms).await?;
            }
        }
        for trunk in trunks {
            upsert_trunk(&mut tx, trunk).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }
}

/// One org of the config, with what provisioning derives from it ahead of the transaction.
pub struct ProvisionOrg<'a> {
    pub config: &'a OrgConfig,
    pub key_hashes: Vec<String>,
    /// DIDs in E.164.
    pub numbers: Vec<String>,
}

async fn upsert_org(tx: &mut Transaction<'_, Any>, org: &OrgConfig, now_ms: i64) -> Result<Uuid> {
    let row = sqlx::query(
        "INSERT INTO orgs (id, slug, name, minutes_included, minutes_used, webhook_url, webhook_secret, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $6, $7) \
         ON CONFLICT (slug) DO UPDATE SET name = excluded.name, minutes_included = excluded.minutes_included, \
         webhook_url = excluded.webhook_url, webhook_secret = excluded.webhook_secret \
         RETURNING id",
    )
    .bind(new_id().to_string())
    .bind(&org.slug)
    .bind(&org.name)
    .bind(org.minutes_included)
    .bind(&org.webhook_url)
    .bind(&org.webhook_secret)
    .bind(now_ms)
    .fetch_one(&mut **tx)
    .await?;
    rows::uuid(&row, "id")
}

async fn sync_api_keys(
    tx: &mut Transaction<'_, Any>,
    org_id: Uuid,
    hashes: &[String],
    now_ms: i64,
) -> Result<()> {
    let org = org_id.to_string();
    let existing = sqlx::query("SELECT key_hash, org_id, source FROM api_keys")
        .fetch_all(&mut **tx)
        .await?;
    for row in &existing {
        let hash: String = row.try_get("key_hash")?;
        let owner: String = row.try_get("org_id")?;
        let source: String = row.try_get("source")?;
        let wanted = hashes.contains(&hash);
        if wanted && owner != org {
            return Err(StoreError::Conflict(
                "an API key of another organization".into(),
            ));
        }
        if !wanted && owner == org && source == "config" {
            sqlx::query("DELETE FROM api_keys WHERE key_hash = $1")
                .bind(&hash)
                .execute(&mut **tx)
                .await?;
        }
    }
    for hash in hashes {
        sqlx::query(
            "INSERT INTO api_keys (key_hash, org_id, source, created_at) VALUES ($1, $2, 'config', $3) \
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(hash)
        .bind(&org)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn upsert_agent(
    tx: &mut Transaction<'_, Any>,
    org_id: Uuid,
    config: &AgentConfig,
    now_ms: i64,
) -> Result<()> {
    let agent = config.clone().into_agent(new_id(), org_id);
    let query = sqlx::query(
        "INSERT INTO agents (id, org_id, slug, name, direction, voice, prompt, kind, url, protocol, greeting, \
         questions, active, is_default, turns, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
         ON CONFLICT (org_id, slug) DO UPDATE SET name = excluded.name, direction = excluded.direction, \
         voice = excluded.voice, prompt = excluded.prompt, kind = excluded.kind, url = excluded.url, \
         protocol = excluded.protocol, greeting = excluded.greeting, questions = excluded.questions, \
         active = excluded.active, is_default = excluded.is_default, turns = excluded.turns, \
         updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(agent.id.to_string())
    .bind(org_id.to_string());
    let row = rows::bind_agent(query, &agent)
        .bind(now_ms)
        .fetch_one(&mut **tx)
        .await?;
    if agent.default {
        let id = rows::uuid(&row, "id")?;
        super::agents::clear_other_defaults(tx, org_id, id, agent.direction).await?;
    }
    Ok(())
}

async fn upsert_trunk(tx: &mut Transaction<'_, Any>, trunk: &TrunkConfig) -> Result<()> {
    sqlx::query(
        "INSERT INTO trunks (name, host, port, transport, username, password, inbound_cidrs, from_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (name) DO UPDATE SET host = excluded.host, port = excluded.port, \
         transport = excluded.transport, username = excluded.username, password = excluded.password, \
         inbound_cidrs = excluded.inbound_cidrs, from_number = excluded.from_number",
    )
    .bind(&trunk.name)
    .bind(&trunk.host)
    .bind(i64::from(trunk.port))
    .bind(trunk.transport.as_str())
    .bind(&trunk.username)
    .bind(&trunk.password)
    .bind(rows::to_json(&trunk.inbound_cidrs))
    .bind(&trunk.from_number)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
