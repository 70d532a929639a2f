//! Calls: creation (quota-checked, idempotent), reads, cancellation and state transitions.

use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::insert_event;
use super::rows::{self, CALL_COLUMNS, NEW_CALL_COLUMNS};
use super::{Result, Store};
use crate::config::Rounding;
use crate::domain::{to_millis, Call, CallStatus, Direction, EndReason, EventType};

/// The response a first request with an `Idempotency-Key` produced, kept so retries replay it.
pub struct IdempotencyRecord {
    pub key: String,
    pub request_hash: String,
    pub status_code: u16,
    pub body: String,
}

pub enum CreateOutcome {
    Created,
    /// `minutes_used >= minutes_included` at the moment of insertion.
    QuotaExhausted,
    /// The key was used before with the same request: replay its response.
    Replay {
        status_code: u16,
        body: String,
    },
    /// The key was used before with a different request.
    KeyReused,
}

pub enum CancelOutcome {
    Canceled(Box<Call>),
    NotFound,
    NotCancelable(CallStatus),
}

#[derive(Debug, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub direction: Option<Direction>,
    /// Exclusive: calls created before this id (ids are time-ordered).
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A state change of a call and what it announces, applied only if the call is still in
/// `from` (and, for a dispatcher, still leased by `lease_owner`).
pub struct Transition<'a> {
    pub call: &'a Call,
    pub from: CallStatus,
    pub lease_owner: Option<&'a str>,
    pub events: &'a [EventType],
    /// Minutes drawn from the org's pool in the same transaction.
    pub charge_seconds: i64,
}

impl Store {
    /// Inserts a queued call and its `call.queued` event in one transaction. The quota test is
    /// part of the INSERT itself, so no request slips past an allowance another has exhausted.
    pub async fn create_call(
        &self,
        call: &Call,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome> {
        if idempotency.is_none() {
            if let Some(created) = self.create_call_batched(call).await {
                return Ok(if created {
                    CreateOutcome::Created
                } else {
                    CreateOutcome::QuotaExhausted
                });
            }
        }
        let mut tx = self.write().begin().await?;
        if let Some(record) = idempotency {
            if let Some(outcome) =
                claim_idempotency_key(&mut tx, call.org_id, record, call.created_at).await?
            {
                tx.rollback().await?;
                return Ok(outcome);
            }
        }
        let sql = format!(
            "INSERT INTO calls ({NEW_CALL_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 \
             WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2 AND minutes_used < minutes_included)"
        );
        let inserted = rows::bind_new_call(sqlx::query(&sql), call)
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(CreateOutcome::QuotaExhausted);
        }
        let outbox = insert_event(&mut tx, call, EventType::Queued, call.created_at).await?;
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        self.notify_dispatch();
        Ok(CreateOutcome::Created)
    }

    /// Through the group-commit writer; `None` if that batch failed (use the single path).
    async fn create_call_batched(&self, call: &Call) -> Option<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = super::batch::Pending {
            call: call.clone(),
            reply,
        };
        self.inner.batcher.send(pending).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Inserts an inbound call that was just answered (`in_progress`, `answered_at` set) and
    /// its `call.answered` event in one transaction. The quota was checked when routing.
    pub async fn insert_answered_call(&self, call: &Call) -> Result<()> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "INSERT INTO calls ({NEW_CALL_COLUMNS}, answered_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        );
        rows::bind_new_call(sqlx::query(&sql), call)
            .bind(call.answered_at.map(to_millis))
            .execute(&mut *tx)
            .await?;
        let outbox = insert_event(&mut tx, call, EventType::Answered, self.clock().now()).await?;
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        Ok(())
    }

    pub async fn call(&self, org_id: Uuid, id: Uuid) -> Result<Option<Call>> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(org_id.to_string())
            .bind(id.to_string())
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(rows::call).transpose()
    }

    /// Newest first; returns up to `limit` calls and whether more follow.
    pub async fn list_calls(&self, org_id: Uuid, filter: &CallFilter) -> Result<(Vec<Call>, bool)> {
        let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE org_id = $1");
        let mut binds = vec![org_id.to_string()];
        let mut push = |clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&format!(" AND {clause} ${}", binds.len()));
        };
        if let Some(status) = filter.status {
            push("status =", status.as_str().to_owned());
        }
        if let Some(direction) = filter.direction {
            push("direction =", direction.as_str().to_owned());
        }
        if let Some(before) = filter.before {
            push("id <", before.to_string());
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            u64::from(filter.limit) + 1
        ));
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.read()).await?;
        let mut calls = rows.iter().map(rows::call).collect::<Result<Vec<_>>>()?;
        let more = calls.len() > filter.limit as usize;
        calls.truncate(filter.limit as usize);
        Ok((calls, more))
    }

    /// Cancels a `queued` or `calling` call, or an answered outbound call (`in_progress`: its
    /// minutes so far are charged). The dispatcher running its attempt hears of it at once on
    /// this node, at its next lease heartbeat on another, and hangs up (CANCEL or BYE).
    pub async fn cancel_call(
        &self,
        org_id: Uuid,
        id: Uuid,
        rounding: Rounding,
    ) -> Result<CancelOutcome> {
        // A concurrent transition can move the call between the read and the guarded write;
        // re-read and decide again rather than report a stale status.
        for _ in 0..3 {
            let Some(mut call) = self.call(org_id, id).await? else {
                return Ok(CancelOutcome::NotFound);
            };
            let from = call.status;
            let answered_outbound =
                from == CallStatus::InProgress && call.direction == Direction::Outbound;
            if !matches!(from, CallStatus::Queued | CallStatus::Calling) && !answered_outbound {
                return Ok(CancelOutcome::NotCancelable(from));
            }
            let ended_at = self.clock().now();
            call.status = CallStatus::Canceled;
            call.end_reason = Some(EndReason::Canceled);
            call.ended_at = Some(ended_at);
            if let Some(answered_at) = call.answered_at {
                call.duration_seconds = Some(started_seconds(answered_at, ended_at));
            }
            let transition = Transition {
                call: &call,
                from,
                lease_owner: None,
                events: &[EventType::Ended],
                charge_seconds: call.billed_seconds(rounding),
            };
            if self.transition(&transition).await? {
                self.inner.signals.canceled.notify_waiters();
                return Ok(CancelOutcome::Canceled(Box::new(call)));
            }
        }
        match self.call(org_id, id).await? {
            Some(call) => Ok(CancelOutcome::NotCancelable(call.status)),
            None => Ok(CancelOutcome::NotFound),
        }
    }

    /// Stores the conversation of an attempt whose call was canceled while it talked: the
    /// cancel already ended and billed the call; what was said is kept with it.
    pub async fn keep_canceled_conversation(&self, call: &Call) -> Result<()> {
        sqlx::query(
            "UPDATE calls SET transcript = $1, analysis = $2, quality = $3 \
             WHERE id = $4 AND status = 'canceled'",
        )
        .bind(rows::to_json(&call.transcript))
        .bind(call.analysis.as_ref().map(rows::to_json))
        .bind(call.quality.as_ref().map(rows::to_json))
        .bind(call.id.to_string())
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// Persists `t.call`'s new state and its events atomically. Returns false (and writes
    /// nothing) when the call is no longer in `t.from` or no longer leased by `t.lease_owner`.
    pub async fn transition(&self, t: &Transition<'_>) -> Result<bool> {
        let call = t.call;
        let keeps_lease = matches!(call.status, CallStatus::Calling | CallStatus::InProgress);
        let mut tx = self.write().begin().await?;
        let mut sql = String::from(
            "UPDATE calls SET status = $1, agent_id = $2, attempts = $3, answered_at = $4, ended_at = $5, \
             duration_seconds = $6, end_reason = $7, sip_status = $8, transcript = $9, analysis = $10, \
             next_attempt_at = $11, quality = $12, ringing_at = $13",
        );
        if !keeps_lease {
            sql.push_str(", lease_owner = NULL, lease_until = NULL");
        }
        sql.push_str(" WHERE id = $14 AND status = $15");
        if t.lease_owner.is_some() {
            sql.push_str(" AND lease_owner = $16");
        }
        let mut query = sqlx::query(&sql)
            .bind(call.status.as_str())
            .bind(call.agent_id.map(|a| a.to_string()))
            .bind(call.attempts)
            .bind(call.answered_at.map(to_millis))
            .bind(call.ended_at.map(to_millis))
            .bind(call.duration_seconds)
            .bind(call.end_reason.map(|r| r.as_str()))
            .bind(call.sip_status)
            .bind(rows::to_json(&call.transcript))
            .bind(call.analysis.as_ref().map(rows::to_json))
            .bind(to_millis(call.next_attempt_at))
            .bind(call.quality.as_ref().map(rows::to_json))
            .bind(call.ringing_at.map(to_millis))
            .bind(call.id.to_string())
            .bind(t.from.as_str());
        if let Some(owner) = t.lease_owner {
            query = query.bind(owner);
        }
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut outbox = false;
        let at = self.clock().now();
        for event in t.events {
            outbox |= insert_event(&mut tx, call, *event, at).await?;
        }
        if t.charge_seconds > 0 {
            charge_seconds(&mut tx, call.org_id, t.charge_seconds).await?;
        }
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        if call.status == CallStatus::Queued {
            self.notify_dispatch();
        }
        Ok(true)
    }
}

/// Adds used seconds to the org's pool, keeping `minutes_used` the started minutes of
/// `seconds_used` (both expressions read the row as it was, in SQLite and PostgreSQL alike).
pub(super) async fn charge_seconds(
    tx: &mut Transaction<'_, Any>,
    org_id: Uuid,
    seconds: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE orgs SET seconds_used = seconds_used + $1, \
         minutes_used = (seconds_used + $1 + 59) / 60 WHERE id = $2",
    )
    .bind(seconds)
    .bind(org_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records the key; if it exists already, says what to answer instead of creating a call.
async fn claim_idempotency_key(
    tx: &mut Transaction<'_, Any>,
    org_id: Uuid,
    record: &IdempotencyRecord,
    at: OffsetDateTime,
) -> Result<Option<CreateOutcome>> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (org_id, key, request_hash, status_code, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, key) DO NOTHING",
    )
    .bind(org_id.to_string())
    .bind(&record.key)
    .bind(&record.request_hash)
    .bind(i64::from(record.status_code))
    .bind(&record.body)
    .bind(to_millis(at))
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query("SELECT request_hash, status_code, body FROM idempotency_keys WHERE org_id = $1 AND key = $2")
        .bind(org_id.to_string())
        .bind(&record.key)
        .fetch_one(&mut **tx)
        .await?;
    let hash: String = row.try_get("request_hash")?;
    if hash != record.request_hash {
        return Ok(Some(CreateOutcome::KeyReused));
    }
    let status: i64 = row.try_get("status_code")?;
    Ok(Some(CreateOutcome::Replay {
        status_code: u16::try_from(status).unwrap_or(200),
        body: row.try_get("body")?,
    }))
}

/// Whole seconds from `from` to `to`, a started second counting as one (as carriers bill).
pub fn started_seconds(from: OffsetDateTime, to: OffsetDateTime) -> i64 {
    let millis = i64::try_from((to - from).whole_milliseconds().max(0)).unwrap_or(i64::MAX);
    millis.saturating_add(999) / 1000
}
