//! A dialling node killed (-9) mid-call, on both databases: after a restart each call it held
//! is resolved once its lease has run out (retried if it has attempts left, failed if not),
//! and the carrier, SIPp in a process of its own, sees one INVITE per attempt.

mod common;

use std::time::{Duration, Instant};

use common::process::{free_port, spawn_server, wait_healthy};
use common::{Db, ACME_KEY};
use serde_json::Value;
use voxbridge::clock::Clock;
use voxbridge::store::Store;

on_both_databases!(a_killed_nodes_calls_are_retried_after_the_lease_and_dialled_once_per_attempt);

/// Answers every number but this one, which rings until canceled.
const RINGING: &str = "+12025550198";
const LEASE_SECONDS: u64 = 3;

fn carrier_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(48_000);
    NEXT.fetch_add(2, std::sync::atomic::Ordering::Relaxed)
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, id: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/calls/{id}", self.base))
            .bearer_auth(ACME_KEY)
            .send()
            .await
            .expect("the server answers");
        response.json().await.expect("a call")
    }

    async fn queue(&self, body: &str) -> String {
        let response = self
            .http
            .post(format!("{}/v1/calls/outbound", self.base))
            .bearer_auth(ACME_KEY)
            .body(body.to_owned())
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 201);
        let call: Value = response.json().await.expect("a call");
        call["id"].as_str().expect("an id").to_owned()
    }

    /// Waits until `check` holds for the call, and returns it.
    async fn until(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        common::eventually(30, what, || async {
            let call = self.call(id).await;
            check(&call).then_some(call)
        })
        .await
    }
}

async fn a_killed_nodes_calls_are_retried_after_the_lease_and_dialled_once_per_attempt(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let port = carrier_port();
    let scenario =
        include_str!("sipp/carrier_answer_or_ring.xml").replace("@RING@", r"\+12025550198");
    let (_carrier, trace) = common::sipp::carrier_tracing(port, &scenario, dir.path());
    let (url, _guard) = common::database(db).await;
    let http_port = free_port();
    let toml = common::config_on_port(&url, None, http_port)
        + &format!(
            r#"
[telephony]
enabled = true
outbound_trunk = "carrier"
lease_seconds = {LEASE_SECONDS}
ring_timeout_seconds = 120
[telephony.retry]
trunk_error_seconds = 0

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {port}
inbound_cidrs = ["127.0.0.1/32"]
from_number = "+12025550100"
"#
        );
    let config = dir.path().join("voxbridge.toml");
    std::fs::write(&config, toml).unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{http_port}"),
    };

    let mut server = spawn_server(&config);
    wait_healthy(&api.http, &api.base).await;
    let talking = api.queue(r#"{"to": "+12025550199"}"#).await;
    let ringing = api.queue(&format!(r#"{{"to": "{RINGING}"}}"#)).await;
    let last_try = api
        .queue(r#"{"to": "+12025550197", "max_attempts": 1}"#)
        .await;
    api.until(&talking, "the call to talk", |c| {
        c["status"] == "in_progress"
    })
    .await;
    api.until(&last_try, "the call to talk", |c| {
        c["status"] == "in_progress"
    })
    .await;
    api.until(&ringing, "the phone to ring", |c| {
        c["ringing_at"].is_string()
    })
    .await;
    server.kill_9();
    let killed = Instant::now();
    let before = common::sipp::invites_per_call(&trace);
    for id in [&talking, &ringing, &last_try] {
        assert_eq!(
            before.get(id.as_str()),
            Some(&1),
            "one INVITE each before the kill: {before:?}"
        );
    }

    let _restarted = spawn_server(&config);
    wait_healthy(&api.http, &api.base).await;
    let failed = api
        .until(&last_try, "the last attempt to fail", |c| {
            c["status"] == "failed"
        })
        .await;
    assert_eq!(failed["end_reason"], "error");
    let talking_again = api
        .until(&talking, "the retry to talk", |c| {
            c["attempts"] == 2 && c["status"] == "in_progress"
        })
        .await;
    api.until(&ringing, "the retry to ring", |c| {
        c["attempts"] == 2 && c["ringing_at"].is_string()
    })
    .await;
    let resolved = killed.elapsed();
    assert!(
        resolved < Duration::from_secs(LEASE_SECONDS + 10),
        "resolved {resolved:?} after the kill (lease {LEASE_SECONDS} s)"
    );
    assert_eq!(talking_again["duration_seconds"], Value::Null);

    // Anything extra would have been sent by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = common::sipp::invites_per_call(&trace);
    assert_eq!(after.get(&talking), Some(&2), "{after:?}");
    assert_eq!(after.get(&ringing), Some(&2), "{after:?}");
    assert_eq!(after.get(&last_try), Some(&1), "{after:?}");

    let store = Store::connect(&url, 1, Clock::system()).await.unwrap();
    let id = uuid::Uuid::parse_str(&talking).unwrap();
    let events: Vec<String> = store
        .call_events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        events,
        [
            "call.queued",
            "call.calling",
            "call.answered",
            "call.queued",
            "call.calling",
            "call.answered"
        ]
    );
    store.close().await;
}
