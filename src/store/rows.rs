//! Row ↔ record mapping. Columns are TEXT, BIGINT and NULL only, so both databases agree.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{Result, StoreError};
use crate::domain::{
    from_millis, to_millis, Agent, AgentKind, Call, CallStatus, Direction, EndReason, Org,
};

pub const ORG_COLUMNS: &str =
    "id, slug, name, minutes_included, minutes_used, seconds_used, webhook_url, webhook_secret";

pub const AGENT_COLUMNS: &str =
    "id, org_id, slug, name, direction, voice, prompt, kind, url, protocol, greeting, questions, active, is_default, turns";

pub const CALL_COLUMNS: &str = "id, org_id, agent_id, direction, status, to_number, from_number, context, \
     webhook_url, schedule_at, max_attempts, attempts, created_at, ringing_at, answered_at, ended_at, \
     duration_seconds, end_reason, sip_status, transcript, analysis, quality, next_attempt_at";

fn corrupt(what: &'static str, value: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        value: value.into(),
    }
}

pub fn uuid(row: &AnyRow, col: &'static str) -> Result<Uuid> {
    let text: String = row.try_get(col)?;
    Uuid::parse_str(&text).map_err(|_| corrupt(col, text))
}

fn opt_uuid(row: &AnyRow, col: &'static str) -> Result<Option<Uuid>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|_| corrupt(col, t)))
        .transpose()
}

fn wire<T>(row: &AnyRow, col: &'static str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| corrupt(col, text))
}

fn opt_wire<T>(row: &AnyRow, col: &'static str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| parse(&t).ok_or_else(|| corrupt(col, t)))
        .transpose()
}

fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &'static str) -> Result<T> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|_| corrupt(col, text))
}

fn opt_json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &'static str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt(col, t)))
        .transpose()
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing our own plain records cannot fail (no maps with non-string keys, no I/O).
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds an agent's 13 descriptive fields, `slug` … `turns`, in `AGENT_COLUMNS` order.
pub fn bind_agent<'q>(query: AnyQuery<'q>, agent: &'q Agent) -> AnyQuery<'q> {
    query
        .bind(&agent.slug)
        .bind(&agent.name)
        .bind(agent.direction.as_str())
        .bind(&agent.voice)
        .bind(&agent.prompt)
        .bind(agent.kind.as_str())
        .bind(&agent.url)
        .bind(&agent.protocol)
        .bind(&agent.greeting)
        .bind(to_json(&agent.questions))
        .bind(i64::from(agent.active))
        .bind(i64::from(agent.default))
        .bind(to_json(&agent.turns))
}

/// The columns a new call is inserted with, in the order [`bind_new_call`] binds them.
pub const NEW_CALL_COLUMNS: &str =
    "id, org_id, agent_id, direction, status, to_number, from_number, context, \
     webhook_url, schedule_at, max_attempts, attempts, created_at, transcript, next_attempt_at";

pub fn bind_new_call<'q>(query: AnyQuery<'q>, call: &'q Call) -> AnyQuery<'q> {
    query
        .bind(call.id.to_string())
        .bind(call.org_id.to_string())
        .bind(call.agent_id.map(|a| a.to_string()))
        .bind(call.direction.as_str())
        .bind(call.status.as_str())
        .bind(&call.to)
        .bind(&call.from)
        .bind(call.context.as_ref().map(to_json))
        .bind(&call.webhook_url)
        .bind(call.schedule_at.map(to_millis))
        .bind(call.max_attempts)
        .bind(call.attempts)
        .bind(to_millis(call.created_at))
        .bind(to_json(&call.transcript))
        .bind(to_millis(call.next_attempt_at))
}

pub fn org(row: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: uuid(row, "id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        minutes_included: row.try_get("minutes_included")?,
        minutes_used: row.try_get("minutes_used")?,
        seconds_used: row.try_get("seconds_used")?,
        webhook_url: row.try_get("webhook_url")?,
        webhook_secret: row.try_get("webhook_secret")?,
    })
}

pub fn agent(row: &AnyRow) -> Result<Agent> {
    Ok(Agent {
        id: uuid(row, "id")?,
        org_id: uuid(row, "org_id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        direction: wire(row, "direction", Direction::parse)?,
        voice: row.try_get("voice")?,
        prompt: row.try_get("prompt")?,
        kind: wire(row, "kind", AgentKind::parse)?,
        url: row.try_get("url")?,
        protocol: row.try_get("protocol")?,
        greeting: row.try_get("greeting")?,
        questions: json(row, "questions")?,
        turns: opt_json(row, "turns")?.unwrap_or_default(),
        active: row.try_get::<i64, _>("active")? != 0,
        default: row.try_get::<i64, _>("is_default")? != 0,
    })
}

pub fn call(row: &AnyRow) -> Result<Call> {
    let millis = |col: &'static str| -> Result<Option<time::OffsetDateTime>> {
        Ok(row.try_get::<Option<i64>, _>(col)?.map(from_millis))
    };
    Ok(Call {
        id: uuid(row, "id")?,
        org_id: uuid(row, "org_id")?,
        agent_id: opt_uuid(row, "agent_id")?,
        direction: wire(row, "direction", Direction::parse)?,
        status: wire(row, "status", CallStatus::parse)?,
        to: row.try_get("to_number")?,
        from: row.try_get("from_number")?,
        context: opt_json(row, "context")?,
        webhook_url: row.try_get("webhook_url")?,
        schedule_at: millis("schedule_at")?,
        max_attempts: row.try_get("max_attempts")?,
        attempts: row.try_get("attempts")?,
        created_at: from_millis(row.try_get("created_at")?),
        ringing_at: millis("ringing_at")?,
        answered_at: millis("answered_at")?,
        ended_at: millis("ended_at")?,
        duration_seconds: row.try_get("duration_seconds")?,
        end_reason: opt_wire(row, "end_reason", EndReason::parse)?,
        sip_status: row.try_get("sip_status")?,
        transcript: json(row, "transcript")?,
        analysis: opt_json(row, "analysis")?,
        quality: opt_json(row, "quality")?,
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?),
    })
}

/// `$first, …` (n placeholders) for `IN (…)`.
pub fn list_from(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` groups of `width` numbered placeholders for a multi-row VALUES: `($1, $2), ($3, $4)`.
pub fn value_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{list_from, value_rows};

    #[test]
    fn placeholders_number_rows_and_lists() {
        assert_eq!(value_rows(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list_from(1, 3), "$1, $2, $3");
        assert_eq!(list_from(2, 2), "$2, $3");
    }
}
