//! The delivery loop: claim due events, post them concurrently, record every attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::signing::SigningKey;
use super::target::{self, GuardedResolver};
use crate::backoff::Backoff;
use crate::config::WebhooksConfig;
use crate::store::{AttemptRecord, DeliveryResult, OutboxEvent, Store};

/// How long a claimed event stays ours beyond the delivery timeout before another worker (or
/// this node after a crash) may take it again.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Polling interval for events this process was not told about (other nodes, retries).
const POLL: Duration = Duration::from_millis(500);
/// Failed deliveries are retried after waits that double from `first_retry_seconds`, capped
/// at an hour, spread by 10 % either way.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
const RETRY_JITTER: f64 = 0.1;

pub struct DeliveryWorker {
    store: Store,
    client: reqwest::Client,
    config: WebhooksConfig,
    keys: HashMap<Uuid, Option<SigningKey>>,
}

impl DeliveryWorker {
    pub fn new(store: Store, config: WebhooksConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .connect_timeout(Duration::from_secs(config.timeout_seconds.min(5)))
            // A redirect could lead to an address the target check refused.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private_targets,
            }))
            .user_agent(concat!("VoxBridge-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            client,
            config,
            keys: HashMap::new(),
        })
    }

    /// Runs until `shutdown` turns true. In-flight deliveries finish first; anything unrecorded
    /// is simply delivered again after its lease expires (receivers dedupe on `webhook-id`).
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let mut in_flight: JoinSet<AttemptRecord> = JoinSet::new();
        let mut finished = Vec::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = slots.available_permits() as i64;
            let claimed = if free > 0 {
                self.claim(free).await
            } else {
                Vec::new()
            };
            for event in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let key = self.signing_key(event.org_id).await;
                let client = self.client.clone();
                let config = self.config.clone();
                let at = self.store.clock().now_ms();
                in_flight.spawn(async move {
                    let outcome = deliver(&client, &config, key.as_ref(), event, at).await;
                    drop(permit);
                    outcome
                });
            }
            // Record what finished, in one transaction per batch, then wait for more work.
            while let Some(Ok(done)) = in_flight.try_join_next() {
                finished.push(done);
            }
            if !finished.is_empty() {
                self.record(&mut finished).await;
                continue;
            }
            tokio::select! {
                Some(Ok(done)) = in_flight.join_next(), if !in_flight.is_empty() => finished.push(done),
                _ = self.store.outbox_changed() => {}
                _ = self.store.clock().sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
        while let Some(Ok(done)) = in_flight.join_next().await {
            finished.push(done);
        }
        self.record(&mut finished).await;
    }

    async fn claim(&self, limit: i64) -> Vec<OutboxEvent> {
        let now_ms = self.store.clock().now_ms();
        let lease = Duration::from_secs(self.config.timeout_seconds) + LEASE_MARGIN;
        let lease_until = now_ms + lease.as_millis() as i64;
        match self
            .store
            .claim_due_events(now_ms, lease_until, limit.min(256))
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook events failed");
                Vec::new()
            }
        }
    }

    async fn record(&self, finished: &mut Vec<AttemptRecord>) {
        for AttemptRecord { event, result, .. } in finished.iter() {
            let outcome = match result {
                DeliveryResult::Delivered { .. } => "delivered",
                DeliveryResult::Retry { .. } => "retry",
                DeliveryResult::GaveUp { .. } => "gave_up",
            };
            metrics::counter!("voxbridge_webhook_attempts_total", "outcome" => outcome)
                .increment(1);
            if let DeliveryResult::GaveUp { error, .. } = result {
                tracing::warn!(event = %event.id, %error, "webhook delivery gave up");
            }
        }
        if let Err(e) = self.store.record_deliveries(finished).await {
            // The leases expire and the events are delivered again: at-least-once holds.
            tracing::warn!(error = %e, "recording webhook attempts failed");
        }
        finished.clear();
    }

    async fn signing_key(&mut self, org_id: Uuid) -> Option<SigningKey> {
        if let Some(key) = self.keys.get(&org_id) {
            return key.clone();
        }
        let key = match self.store.webhook_secret(org_id).await {
            Ok(secret) => secret.and_then(|s| SigningKey::from_secret(&s).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "reading the webhook secret failed");
                return None;
            }
        };
        self.keys.insert(org_id, key.clone());
        key
    }
}

async fn deliver(
    client: &reqwest::Client,
    config: &WebhooksConfig,
    key: Option<&SigningKey>,
    event: OutboxEvent,
    at: i64,
) -> AttemptRecord {
    let started = Instant::now();
    let outcome = post(client, config, key, &event, at.div_euclid(1000)).await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let result = match outcome {
        Ok(status) if (200..300).contains(&status) => DeliveryResult::Delivered {
            status_code: status,
        },
        Ok(status) => failed(config, &event, at, Some(status), format!("HTTP {status}")),
        Err(error) => failed(config, &event, at, None, error),
    };
    AttemptRecord {
        event,
        at,
        duration_ms,
        result,
    }
}

async fn post(
    client: &reqwest::Client,
    config: &WebhooksConfig,
    key: Option<&SigningKey>,
    event: &OutboxEvent,
    timestamp: i64,
) -> Result<u16, String> {
    let url = target::parse_target(&event.target_url, config.allow_private_targets)
        .map_err(|e| e.to_string())?;
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(key) = key {
        request = request.header(
            "webhook-signature",
            key.sign(&event.id, timestamp, event.payload.as_bytes()),
        );
    }
    let response = request
        .body(event.payload.clone())
        .send()
        .await
        .map_err(describe)?;
    Ok(response.status().as_u16())
}

fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn failed(
    config: &WebhooksConfig,
    event: &OutboxEvent,
    at: i64,
    status: Option<u16>,
    error: String,
) -> DeliveryResult {
    let backoff = Backoff {
        first: Duration::from_secs(config.first_retry_seconds),
        max: MAX_RETRY_DELAY,
        jitter: RETRY_JITTER,
    };
    let delay = backoff.delay(event.attempts + 1, rand::random::<f64>());
    let next = at + delay.as_millis() as i64;
    let give_up_at = event.created_at + (config.retry_for_hours * 3_600_000) as i64;
    if next > give_up_at {
        DeliveryResult::GaveUp {
            status_code: status,
            error,
        }
    } else {
        DeliveryResult::Retry {
            status_code: status,
            error,
            next_attempt_at: next,
        }
    }
}
