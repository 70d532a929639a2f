//! Agents: who answers or places an org's calls.

use sqlx::{Any, Transaction};
use uuid::Uuid;

use super::rows::{self, AGENT_COLUMNS};
use super::{Result, Store, StoreError};
use crate::domain::{Agent, Direction};

impl Store {
    pub async fn list_agents(&self, org_id: Uuid) -> Result<Vec<Agent>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE org_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(org_id.to_string())
            .fetch_all(self.read())
            .await?;
        rows.iter().map(rows::agent).collect()
    }

    pub async fn agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(org_id.to_string())
            .bind(id.to_string())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::agent).transpose()
    }

    /// The agent that takes the org's calls in `direction` when none is named: the active one
    /// marked default, else the first active one (config order, then creation order).
    pub async fn default_agent(&self, org_id: Uuid, direction: Direction) -> Result<Option<Agent>> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE org_id = $1 AND direction = $2 AND active = 1 \
             ORDER BY is_default DESC, created_at, id LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(org_id.to_string())
            .bind(direction.as_str())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::agent).transpose()
    }

    /// Inserts a new agent; a taken slug is a `Conflict`.
    pub async fn insert_agent(&self, agent: &Agent) -> Result<()> {
        let mut tx = self.write().begin().await?;
        ensure_slug_free(&mut tx, agent).await?;
        let sql = format!(
            "INSERT INTO agents ({AGENT_COLUMNS}, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)"
        );
        let query = sqlx::query(&sql)
            .bind(agent.id.to_string())
            .bind(agent.org_id.to_string());
        rows::bind_agent(query, agent)
            .bind(self.clock().now_ms())
            .execute(&mut *tx)
            .await?;
        if agent.default {
            clear_other_defaults(&mut tx, agent.org_id, agent.id, agent.direction).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes every mutable field of an existing agent (the API merges a PATCH first).
    pub async fn update_agent(&self, agent: &Agent) -> Result<()> {
        let mut tx = self.write().begin().await?;
        ensure_slug_free(&mut tx, agent).await?;
        let query = sqlx::query(
            "UPDATE agents SET slug = $1, name = $2, direction = $3, voice = $4, prompt = $5, kind = $6, url = $7, \
             protocol = $8, greeting = $9, questions = $10, active = $11, is_default = $12, turns = $13, \
             updated_at = $14 WHERE id = $15 AND org_id = $16",
        );
        rows::bind_agent(query, agent)
            .bind(self.clock().now_ms())
            .bind(agent.id.to_string())
            .bind(agent.org_id.to_string())
            .execute(&mut *tx)
            .await?;
        if agent.default {
            clear_other_defaults(&mut tx, agent.org_id, agent.id, agent.direction).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Another agent of the org already using `agent.slug` is a `Conflict` (a new agent's own id
/// is not in the table yet, so one query serves insert and update).
async fn ensure_slug_free(tx: &mut Transaction<'_, Any>, agent: &Agent) -> Result<()> {
    let taken = sqlx::query("SELECT 1 FROM agents WHERE org_id = $1 AND slug = $2 AND id <> $3")
        .bind(agent.org_id.to_string())
        .bind(&agent.slug)
        .bind(agent.id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    match taken {
        Some(_) => Err(StoreError::Conflict(format!("agent slug {:?}", agent.slug))),
        None => Ok(()),
    }
}

/// Keeps at most one default agent per org and direction.
pub(super) async fn clear_other_defaults(
    tx: &mut Transaction<'_, Any>,
    org_id: Uuid,
    keep: Uuid,
    direction: Direction,
) -> Result<()> {
    sqlx::query(
        "UPDATE agents SET is_default = 0 WHERE org_id = $1 AND direction = $2 AND id <> $3",
    )
    .bind(org_id.to_string())
    .bind(direction.as_str())
    .bind(keep.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
