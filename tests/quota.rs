//! The minutes quota under concurrency, on both databases.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Db, TestApp, GLOBEX_KEY};

on_both_databases!(
    concurrent_charges_lose_no_minutes,
    no_request_slips_past_an_exhausted_allowance
);

async fn org_id(app: &TestApp) -> uuid::Uuid {
    let (_, org) = app.get("/v1/org", GLOBEX_KEY).await;
    uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap()
}

async fn concurrent_charges_lose_no_minutes(db: Db) {
    let app = TestApp::start(db, None).await;
    let org = org_id(&app).await;
    let charges = (0..100).map(|_| {
        let store = app.store().clone();
        tokio::spawn(async move { store.charge_minutes(org, 1).await.unwrap() })
    });
    futures::future::join_all(charges).await;
    let (_, after) = app.get("/v1/org", GLOBEX_KEY).await;
    assert_eq!(after["minutes_used"], 100);
    app.stop().await;
}

/// Clients hammer the API while the allowance is used up by a concurrent charge: every request
/// that starts after the charge committed must get 402, and every 201 must be a stored call.
async fn no_request_slips_past_an_exhausted_allowance(db: Db) {
    let app = Arc::new(TestApp::start(db, None).await);
    let org = org_id(&app).await;
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut results = Vec::new();
                while Instant::now() < stop_at {
                    let started = Instant::now();
                    let body = format!(r#"{{"to": "+1202555{:04}"}}"#, 1000 + i);
                    let (status, _) = app.post("/v1/calls/outbound", GLOBEX_KEY, &body).await;
                    results.push((started, status));
                }
                results
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.store().charge_minutes(org, 10).await.unwrap();
    let exhausted_at = Instant::now();
    let mut results = Vec::new();
    for client in clients {
        results.extend(client.await.unwrap());
    }
    let before = results
        .iter()
        .filter(|(t, s)| *t < exhausted_at && *s == 201)
        .count();
    let after: Vec<u16> = results
        .iter()
        .filter(|(t, _)| *t > exhausted_at)
        .map(|(_, s)| *s)
        .collect();
    assert!(
        before > 0,
        "calls were accepted before the allowance ran out"
    );
    assert!(
        after.len() > 10,
        "requests kept coming after it ran out ({})",
        after.len()
    );
    assert!(
        after.iter().all(|s| *s == 402),
        "after exhaustion only 402: {after:?}"
    );
    assert!(
        results.iter().all(|(_, s)| *s == 201 || *s == 402),
        "no errors under contention"
    );
    let accepted = results.iter().filter(|(_, s)| *s == 201).count();
    let (_, page) = app.get("/v1/calls?limit=100", GLOBEX_KEY).await;
    let mut stored = page["data"].as_array().unwrap().len();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let (_, page) = app
            .get(&format!("/v1/calls?limit=100&cursor={c}"), GLOBEX_KEY)
            .await;
        stored += page["data"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        stored, accepted,
        "every 201 is a stored call, and nothing else is"
    );
}
