//! Call events and the webhook outbox they feed. The payload is frozen when the event is
//! written, so a retried delivery shows the call as it was when the event happened.

use sqlx::{Any, Row, Transaction};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rows::{self, list_from, value_rows};
use super::{Result, Store};
use crate::domain::{to_millis, Call, EventType};

/// An event claimed for delivery.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: String,
    pub org_id: Uuid,
    pub target_url: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub created_at: i64,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone)]
pub enum DeliveryResult {
    Delivered {
        status_code: u16,
    },
    /// Failed; try again at `next_attempt_at` (unix ms).
    Retry {
        status_code: Option<u16>,
        error: String,
        next_attempt_at: i64,
    },
    /// Failed and out of retry time.
    GaveUp {
        status_code: Option<u16>,
        error: String,
    },
}

/// One delivery attempt of an event, as the worker made it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub event: OutboxEvent,
    /// When it started (unix ms).
    pub at: i64,
    pub duration_ms: i64,
    pub result: DeliveryResult,
}

impl DeliveryResult {
    fn status_code(&self) -> Option<u16> {
        match self {
            DeliveryResult::Delivered { status_code } => Some(*status_code),
            DeliveryResult::Retry { status_code, .. }
            | DeliveryResult::GaveUp { status_code, .. } => *status_code,
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            DeliveryResult::Delivered { .. } => None,
            DeliveryResult::Retry { error, .. } | DeliveryResult::GaveUp { error, .. } => {
                Some(error)
            }
        }
    }
}

/// A new event's webhook-id, its frozen webhook body, and its time (unix ms).
pub(super) fn event_envelope(
    call: &Call,
    event: EventType,
    at: OffsetDateTime,
) -> (String, String, i64) {
    let envelope = serde_json::json!({
        "type": event.as_str(),
        "timestamp": at.format(&Rfc3339).unwrap_or_default(),
        "data": call,
    });
    (
        format!("msg_{}", Uuid::now_v7().simple()),
        rows::to_json(&envelope),
        to_millis(at),
    )
}

/// Writes the event row; it enters the outbox when the call or its org has a webhook URL.
/// Returns whether it did (only then is the delivery worker worth waking).
pub(super) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    call: &Call,
    event: EventType,
    at: OffsetDateTime,
) -> Result<bool> {
    let (id, payload, at) = event_envelope(call, event, at);
    let row = sqlx::query(
        "INSERT INTO events (id, org_id, call_id, type, payload, created_at, target_url, delivery_status, \
         next_attempt_at) \
         SELECT $1, $2, $3, $4, $5, $6, t.url, CASE WHEN t.url IS NULL THEN 'none' ELSE 'pending' END, $6 \
         FROM (SELECT COALESCE($7, (SELECT webhook_url FROM orgs WHERE id = $2)) AS url) t \
         RETURNING delivery_status",
    )
    .bind(id)
    .bind(call.org_id.to_string())
    .bind(call.id.to_string())
    .bind(event.as_str())
    .bind(payload)
    .bind(at)
    .bind(&call.webhook_url)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<String, _>("delivery_status")? == "pending")
}

impl Store {
    /// Leases up to `limit` due events until `lease_until` so no other worker (or node) takes
    /// them meanwhile; a worker that dies leaves them to be claimed again after the lease.
    ///
    /// A call's events go out in the order they happened: one waits while an earlier event of
    /// its call is still pending (being delivered or retried), so `call.analyzed` never
    /// overtakes `call.ended`. Event ids are time-ordered (UUIDv7), which breaks ties within a
    /// millisecond.
    pub async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>> {
        // Materialized first, as in `claim_due_calls`: else `limit` may not hold.
        let sql = format!(
            "WITH picked AS MATERIALIZED (SELECT id FROM events e \
             WHERE delivery_status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) \
             AND NOT EXISTS (SELECT 1 FROM events earlier WHERE earlier.call_id = e.call_id \
             AND earlier.delivery_status = 'pending' AND (earlier.created_at < e.created_at \
             OR (earlier.created_at = e.created_at AND earlier.id < e.id))) \
             ORDER BY next_attempt_at LIMIT $3{}) \
             UPDATE events SET lease_until = $1 WHERE id IN (SELECT id FROM picked) \
             RETURNING id, org_id, target_url, payload, attempts, created_at",
            self.dialect().skip_locked()
        );
        let rows = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(self.write())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(OutboxEvent {
                    id: row.try_get("id")?,
                    org_id: rows::uuid(row, "org_id")?,
                    target_url: row.try_get("target_url")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Records attempts and their outcomes in one transaction: all attempts in one multi-row
    /// INSERT, all successes in one UPDATE (the common case), failures one by one.
    pub async fn record_deliveries(&self, attempts: &[AttemptRecord]) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().begin().await?;
        for chunk in attempts.chunks(500) {
            let sql = format!(
                "INSERT INTO webhook_attempts (event_id, attempt, at, status_code, error, duration_ms) VALUES {}",
                value_rows(chunk.len(), 6)
            );
            let mut query = sqlx::query(&sql);
            for a in chunk {
                query = query
                    .bind(&a.event.id)
                    .bind(a.event.attempts + 1)
                    .bind(a.at)
                    .bind(a.result.status_code().map(i64::from))
                    .bind(a.result.error())
                    .bind(a.duration_ms);
            }
            query.execute(&mut *tx).await?;
        }
        let delivered: Vec<&AttemptRecord> = attempts
            .iter()
            .filter(|a| matches!(a.result, DeliveryResult::Delivered { .. }))
            .collect();
        for chunk in delivered.chunks(1000) {
            let sql = format!(
                "UPDATE events SET delivery_status = 'delivered', attempts = attempts + 1, next_attempt_at = $1, \
                 delivered_at = $1, last_error = NULL, lease_until = NULL WHERE id IN ({})",
                list_from(2, chunk.len())
            );
            let at = chunk.iter().map(|a| a.at).max().unwrap_or_default();
            let mut query = sqlx::query(&sql).bind(at);
            for a in chunk {
                query = query.bind(&a.event.id);
            }
            query.execute(&mut *tx).await?;
        }
        for a in attempts {
            let (state, next_attempt_at) = match &a.result {
                DeliveryResult::Delivered { .. } => continue,
                DeliveryResult::Retry {
                    next_attempt_at, ..
                } => ("pending", *next_attempt_at),
                DeliveryResult::GaveUp { .. } => ("failed", a.at),
            };
            sqlx::query(
                "UPDATE events SET delivery_status = $1, attempts = $2, next_attempt_at = $3, last_error = $4, \
                 lease_until = NULL WHERE id = $5",
            )
            .bind(state)
            .bind(a.event.attempts + 1)
            .bind(next_attempt_at)
            .bind(a.result.error())
            .bind(&a.event.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The org's webhook signing secret, if it has one.
    pub async fn webhook_secret(&self, org_id: Uuid) -> Result<Option<String>> {
        let row = sqlx::query("SELECT webhook_secret FROM orgs WHERE id = $1")
            .bind(org_id.to_string())
            .fetch_optional(self.read())
            .await?;
        Ok(match row {
            Some(row) => row.try_get("webhook_secret")?,
            None => None,
        })
    }

    /// `(event type, delivery status, attempts)` of a call's events, oldest first.
    pub async fn call_events(&self, call_id: Uuid) -> Result<Vec<(String, String, i64)>> {
        let rows = sqlx::query(
            "SELECT type, delivery_status, attempts FROM events WHERE call_id = $1 ORDER BY created_at, id",
        )
        .bind(call_id.to_string())
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("type")?,
                    r.try_get("delivery_status")?,
                    r.try_get("attempts")?,
                ))
            })
            .collect()
    }
}
