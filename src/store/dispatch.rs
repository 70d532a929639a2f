//! Dispatcher leases: claiming due calls, keeping the lease alive, and recovering calls whose
//! node died mid-attempt.

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::insert_event;
use super::rows::{self, CALL_COLUMNS};
use super::{Result, Store};
use crate::domain::{from_millis, to_millis, Call, CallStatus, EventType};

impl Store {
    /// Moves up to `limit` due queued calls, none of the orgs in `skip_orgs`, to `calling`
    /// under this node's lease, counting the attempt and announcing `call.calling`, in one
    /// transaction.
    pub async fn claim_due_calls(
        &self,
        owner: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
        skip_orgs: &[Uuid],
    ) -> Result<Vec<Call>> {
        let skip = if skip_orgs.is_empty() {
            String::new()
        } else {
            format!(
                " AND org_id NOT IN ({})",
                rows::list_from(5, skip_orgs.len())
            )
        };
        // The picked ids are materialized first: as `id IN (SELECT … LIMIT n FOR UPDATE SKIP
        // LOCKED)`, PostgreSQL may run the subquery once per row it scans, each run locking
        // and returning another row, and claim every due call whatever `limit` says (seen: 40
        // claimed at a budget of 1).
        let sql = format!(
            "WITH picked AS MATERIALIZED (SELECT id FROM calls WHERE status = 'queued' AND next_attempt_at <= $3{skip} \
             ORDER BY next_attempt_at, id LIMIT $4{}) \
             UPDATE calls SET status = 'calling', attempts = attempts + 1, lease_owner = $1, lease_until = $2, \
             end_reason = NULL, sip_status = NULL, ringing_at = NULL, answered_at = NULL \
             WHERE status = 'queued' AND id IN (SELECT id FROM picked) RETURNING {CALL_COLUMNS}",
            self.dialect().skip_locked()
        );
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now_ms)
            .bind(limit);
        for org in skip_orgs {
            query = query.bind(org.to_string());
        }
        let mut tx = self.write().begin().await?;
        let rows = query.fetch_all(&mut *tx).await?;
        let calls = rows.iter().map(rows::call).collect::<Result<Vec<_>>>()?;
        let mut outbox = false;
        for call in &calls {
            outbox |= insert_event(&mut tx, call, EventType::Calling, from_millis(now_ms)).await?;
        }
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        Ok(calls)
    }

    /// Hands a claimed call that was never dialled back to the queue, due at `due_ms`: the
    /// attempt is not counted, and `call.queued` says it waits again. False when the call is no
    /// longer this node's to give back (canceled, or its lease expired and was recovered).
    pub async fn release_claim(&self, call: &Call, owner: &str, due_ms: i64) -> Result<bool> {
        let sql = format!(
            "UPDATE calls SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, \
             lease_until = NULL, next_attempt_at = $1 WHERE id = $2 AND lease_owner = $3 \
             AND status = 'calling' RETURNING {CALL_COLUMNS}"
        );
        let mut tx = self.write().begin().await?;
        let row = sqlx::query(&sql)
            .bind(due_ms)
            .bind(call.id.to_string())
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let queued = rows::call(&row)?;
        let outbox = insert_event(&mut tx, &queued, EventType::Queued, self.clock().now()).await?;
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        self.notify_dispatch();
        Ok(true)
    }

    /// Due queued calls by org: what waits for the dispatcher now.
    pub async fn due_calls_by_org(&self, now_ms: i64) -> Result<Vec<(Uuid, i64)>> {
        let rows = sqlx::query(
            "SELECT org_id, COUNT(*) AS due FROM calls WHERE status = 'queued' AND next_attempt_at <= $1 \
             GROUP BY org_id",
        )
        .bind(now_ms)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| Ok((rows::uuid(row, "org_id")?, row.try_get("due")?)))
            .collect()
    }

    /// When the earliest queued call comes due (ms since the epoch; it may be past), so an
    /// idle dispatcher sleeps until then instead of polling.
    pub async fn next_due_ms(&self) -> Result<Option<i64>> {
        let due: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM calls WHERE status = 'queued'")
                .fetch_one(self.read())
                .await?;
        Ok(due)
    }

    /// Extends the lease; false means the call left `calling`/`in_progress` (e.g. canceled) or
    /// the lease was lost, and the attempt must stop.
    pub async fn heartbeat(&self, call_id: Uuid, owner: &str, lease_until: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE calls SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 \
             AND status IN ('calling', 'in_progress')",
        )
        .bind(lease_until)
        .bind(call_id.to_string())
        .bind(owner)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records when the callee's phone started ringing on this node's attempt.
    pub async fn ringing(&self, call_id: Uuid, owner: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query(
            "UPDATE calls SET ringing_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'calling'",
        )
        .bind(to_millis(at))
        .bind(call_id.to_string())
        .bind(owner)
        .execute(self.write())
        .await?;
        Ok(())
    }

    /// Ends the attempts whose lease expired (their node died or lost the database for longer
    /// than the lease) with `end_reason = error`: a call with attempts left goes back to the
    /// queue, due at `retry_ms` (`call.queued`); the others fail (`call.ended`). The lease is
    /// what keeps a call from being dialled twice at once: only once it has run out, and the
    /// dead node's heartbeats with it, is the call anyone's again.
    pub async fn recover_expired_leases(&self, now_ms: i64, retry_ms: i64) -> Result<Vec<Call>> {
        let sql = format!(
            "UPDATE calls SET end_reason = 'error', lease_owner = NULL, lease_until = NULL, \
             status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END, \
             ended_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $1 END, \
             next_attempt_at = CASE WHEN attempts < max_attempts THEN $2 ELSE next_attempt_at END \
             WHERE status IN ('calling', 'in_progress') AND lease_until < $1 \
             RETURNING {CALL_COLUMNS}"
        );
        let mut tx = self.write().begin().await?;
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(retry_ms)
            .fetch_all(&mut *tx)
            .await?;
        let calls = rows.iter().map(rows::call).collect::<Result<Vec<_>>>()?;
        let mut outbox = false;
        for call in &calls {
            let event = match call.status {
                CallStatus::Queued => EventType::Queued,
                _ => EventType::Ended,
            };
            outbox |= insert_event(&mut tx, call, event, from_millis(now_ms)).await?;
        }
        tx.commit().await?;
        if outbox {
            self.notify_outbox();
        }
        if calls.iter().any(|c| c.status == CallStatus::Queued) {
            self.notify_dispatch();
        }
        Ok(calls)
    }
}
