-- VoxBridge schema. Times are unix milliseconds; ids are UUIDv7 text (time-ordered).
CREATE TABLE orgs (
    id               TEXT PRIMARY KEY,
    slug             TEXT NOT NULL UNIQUE,
    name             TEXT NOT NULL,
    minutes_included BIGINT NOT NULL,
    minutes_used     BIGINT NOT NULL DEFAULT 0,
    webhook_url      TEXT,
    webhook_secret   TEXT,
    created_at       BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    source     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE phone_numbers (
    number TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id)
);

CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs(id),
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    direction  TEXT NOT NULL,
    voice      TEXT NOT NULL,
    prompt     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    url        TEXT,
    protocol   TEXT,
    greeting   TEXT,
    questions  TEXT NOT NULL,
    active     BIGINT NOT NULL,
    is_default BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, slug)
);

CREATE TABLE trunks (
    name          TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    port          BIGINT NOT NULL,
    transport     TEXT NOT NULL,
    username      TEXT,
    password      TEXT,
    inbound_cidrs TEXT NOT NULL,
    from_number   TEXT
);

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs(id),
    agent_id         TEXT,
    direction        TEXT NOT NULL,
    status           TEXT NOT NULL,
    to_number        TEXT NOT NULL,
    from_number      TEXT,
    context          TEXT,
    webhook_url      TEXT,
    schedule_at      BIGINT,
    max_attempts     BIGINT NOT NULL,
    attempts         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    answered_at      BIGINT,
    ended_at         BIGINT,
    duration_seconds BIGINT,
    end_reason       TEXT,
    sip_status       BIGINT,
    transcript       TEXT NOT NULL,
    analysis         TEXT,
    next_attempt_at  BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_until      BIGINT
);
CREATE INDEX calls_org_id ON calls (org_id, id);
CREATE INDEX calls_due ON calls (status, next_attempt_at);

-- Every call event; rows with a target_url are also the webhook outbox.
CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    target_url      TEXT,
    delivery_status TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX events_call ON events (call_id, created_at);
CREATE INDEX events_due ON events (delivery_status, next_attempt_at);

CREATE TABLE webhook_attempts (
    event_id    TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, attempt)
);

CREATE TABLE idempotency_keys (
    org_id       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code  BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, key)
);
