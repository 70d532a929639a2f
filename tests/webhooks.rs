//! Webhook outbox tests on both databases: signed delivery, per-call override, retries under
//! one webhook-id (backoff on virtual time), and delivery surviving a kill -9 of the server.

mod common;

use std::time::Duration;

use common::process::{free_port, spawn_server, wait_healthy};
use common::receiver::{signature_is_valid, Answer, Receiver};
use common::{Db, TestApp, SECRET};
use time::OffsetDateTime;
use voxbridge::clock::ManualClock;

on_both_databases!(
    call_queued_is_delivered_signed,
    per_call_webhook_url_overrides_the_org,
    failed_deliveries_are_retried_under_the_same_id,
    a_calls_events_arrive_in_order_across_retries,
    outbox_survives_kill_9_between_insert_and_delivery,
);

async fn call_queued_is_delivered_signed(db: Db) {
    let hooks = Receiver::start().await;
    let app = TestApp::start(db, Some(&hooks.url)).await;
    let call = app
        .queue_call(r#"{"to": "+12025550143", "context": {"n": 1}}"#)
        .await;
    let got = hooks.wait_for(1, 10).await;
    let hook = &got[0];
    assert!(
        signature_is_valid(SECRET, hook),
        "signature verifies with an independent HMAC"
    );
    assert!(hook.id.starts_with("msg_"), "{}", hook.id);
    let sent_at: i64 = hook
        .timestamp
        .parse()
        .expect("webhook-timestamp is unix seconds");
    assert!((sent_at - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 30);
    let body = hook.json();
    assert_eq!(body["type"], "call.queued");
    assert_eq!(
        body["data"], call,
        "data is the call as the API returned it"
    );
    time::OffsetDateTime::parse(
        body["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("timestamp is RFC 3339");

    let mut tampered = hook.clone();
    tampered.body = tampered.body.replace("+12025550143", "+12025550144");
    assert!(!signature_is_valid(SECRET, &tampered), "the check can fail");
    app.stop().await;
}

async fn per_call_webhook_url_overrides_the_org(db: Db) {
    let org_hooks = Receiver::start().await;
    let call_hooks = Receiver::start().await;
    let app = TestApp::start(db, Some(&org_hooks.url)).await;
    app.queue_call(&format!(
        r#"{{"to": "+12025550143", "webhook_url": "{}"}}"#,
        call_hooks.url
    ))
    .await;
    app.queue_call(r#"{"to": "+12025550144"}"#).await;
    let to_call = call_hooks.wait_for(1, 10).await;
    let to_org = org_hooks.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((call_hooks.count(), org_hooks.count()), (1, 1));
    assert_eq!(to_call[0].json()["data"]["to"], "+12025550143");
    assert_eq!(to_org[0].json()["data"]["to"], "+12025550144");
    assert!(signature_is_valid(SECRET, &to_call[0]));
    app.stop().await;
}

/// A server on virtual time, posting to `hooks`.
async fn start_virtual(db: Db, hooks: &Receiver) -> (TestApp, ManualClock) {
    let clock = ManualClock::starting_at(common::virtual_start());
    let app = TestApp::start_with_clock(db, Some(&hooks.url), |_| {}, None, clock.clock()).await;
    (app, clock)
}

/// Moves virtual time on in 20 ms ticks until `hooks` got `n` posts; returns when (on the
/// server's clock) it saw the last.
async fn tick_until_received(clock: &ManualClock, hooks: &Receiver, n: usize) -> OffsetDateTime {
    let step = Duration::from_millis(20);
    let what = format!("{n} webhook posts");
    common::tick_until(clock, step, 15, &what, || async {
        (hooks.count() >= n).then(|| clock.now())
    })
    .await
}

async fn failed_deliveries_are_retried_under_the_same_id(db: Db) {
    let hooks = Receiver::start().await;
    hooks.script(&[Answer::Status(500), Answer::Status(503)]);
    let (app, clock) = start_virtual(db, &hooks).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let first = clock.now();
    hooks.wait_for(1, 10).await;
    // first_retry_seconds = 1 in the test config: retries 1 s later, then 2 s (± 10 %).
    let second = tick_until_received(&clock, &hooks, 2).await;
    let third = tick_until_received(&clock, &hooks, 3).await;
    let gaps = [second - first, third - second];
    let seconds = |s: f64| time::Duration::seconds_f64(s);
    assert!(
        gaps[0] >= seconds(0.9) && gaps[0] < seconds(2.0),
        "first retry after {}",
        gaps[0]
    );
    assert!(
        gaps[1] >= seconds(1.8) && gaps[1] < seconds(3.0),
        "second retry after {}",
        gaps[1]
    );
    let got = hooks.received();
    assert_eq!(
        got[0].timestamp,
        first.unix_timestamp().to_string(),
        "signed at the server's time"
    );
    assert!(
        got.iter().all(|h| h.id == got[0].id),
        "one webhook-id across attempts"
    );
    assert!(
        got.iter().all(|h| h.body == got[0].body),
        "the payload is frozen at the event"
    );
    assert!(got.iter().all(|h| signature_is_valid(SECRET, h)));
    let call_id = uuid::Uuid::parse_str(call["id"].as_str().unwrap()).unwrap();
    let events = common::eventually(5, "the delivery to be recorded", || async {
        let events = app.store().call_events(call_id).await.unwrap();
        (events[0].1 == "delivered").then_some(events)
    })
    .await;
    assert_eq!(
        events,
        vec![("call.queued".to_owned(), "delivered".to_owned(), 3)],
        "every attempt is recorded"
    );
    app.stop().await;
}

/// `call.ended` waits while the call's `call.queued` is being retried, instead of overtaking it.
async fn a_calls_events_arrive_in_order_across_retries(db: Db) {
    let hooks = Receiver::start().await;
    hooks.script(&[Answer::Status(500)]);
    let (app, clock) = start_virtual(db, &hooks).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let cancel = format!("/v1/calls/{}/cancel", call["id"].as_str().unwrap());
    let (status, _) = app.post(&cancel, common::ACME_KEY, "").await;
    assert_eq!(status, 200);
    tick_until_received(&clock, &hooks, 3).await;
    let got = hooks.received();
    let kinds: Vec<String> = got
        .iter()
        .map(|h| h.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["call.queued", "call.queued", "call.ended"]);
    app.stop().await;
}

async fn outbox_survives_kill_9_between_insert_and_delivery(db: Db) {
    let hooks = Receiver::start().await;
    // The first delivery is accepted by the receiver and never answered: the server has
    // committed the event but not seen it delivered when it is killed.
    hooks.script(&[Answer::Hang]);
    let (url, _guard) = common::database(db).await;
    let port = free_port();
    let toml = common::config_on_port(&url, Some(&hooks.url), port).replace(
        "first_retry_seconds = 1",
        "first_retry_seconds = 1\ntimeout_seconds = 2",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("voxbridge.toml");
    std::fs::write(&config, toml).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let mut server = spawn_server(&config);
    wait_healthy(&http, &base).await;
    let response = http
        .post(format!("{base}/v1/calls/outbound"))
        .bearer_auth(common::ACME_KEY)
        .body(r#"{"to": "+12025550143"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let call: serde_json::Value = response.json().await.unwrap();
    hooks.wait_for(1, 10).await;
    server.kill_9();

    let _restarted = spawn_server(&config);
    wait_healthy(&http, &base).await;
    let got = hooks.wait_for(2, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = hooks.received();
    assert_eq!(
        got_after.len(),
        2,
        "one hung attempt before the kill, one delivery after: {got:?}"
    );
    assert_eq!(
        got[0].id, got[1].id,
        "the redelivery carries the same webhook-id"
    );
    assert!(signature_is_valid(SECRET, &got[1]));
    assert_eq!(got[1].json()["data"]["id"], call["id"]);
}
