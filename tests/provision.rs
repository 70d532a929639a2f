//! Provisioning from config is idempotent across restarts, on both databases.

mod common;

use common::{Db, ACME_KEY, GLOBEX_KEY};
use voxbridge::clock::Clock;
use voxbridge::server::Server;

on_both_databases!(restarts_keep_usage_and_api_agents_and_revoke_removed_keys);

/// GET `url` as the acme org and parse the JSON body.
async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http
        .get(url)
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .expect("request");
    response.json().await.expect("JSON body")
}

async fn restarts_keep_usage_and_api_agents_and_revoke_removed_keys(db: Db) {
    let (url, _guard) = common::database(db).await;
    let config = common::parse_config(&common::base_config_toml(&url, None));
    let http = reqwest::Client::new();

    let server = Server::start(config.clone(), None, Clock::system())
        .await
        .expect("first start");
    let base = format!("http://{}", server.http_addr);
    let org = get_json(&http, &format!("{base}/v1/org")).await;
    let org_id = uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap();
    server.store.charge_minutes(org_id, 7).await.unwrap();
    let created = http
        .post(format!("{base}/v1/agents"))
        .bearer_auth(ACME_KEY)
        .body(r#"{"slug": "api-made", "name": "API Agent", "direction": "outbound"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    server.shutdown().await;

    // Same config again, but globex's key is gone from it.
    let mut second = config.clone();
    second.orgs[1].api_keys.clear();
    for round in 0..2 {
        let server = Server::start(second.clone(), None, Clock::system())
            .await
            .expect("restart");
        let base = format!("http://{}", server.http_addr);
        let org = get_json(&http, &format!("{base}/v1/org")).await;
        assert_eq!(org["id"], org_id.to_string(), "round {round}: same org id");
        assert_eq!(
            org["minutes_used"], 7,
            "round {round}: usage survives provisioning"
        );
        let agents = get_json(&http, &format!("{base}/v1/agents")).await;
        let slugs: Vec<&str> = agents["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["slug"].as_str().unwrap())
            .collect();
        assert_eq!(
            slugs,
            ["welcome", "retired", "inbound-support", "api-made"],
            "round {round}: no duplicates"
        );
        let revoked = http
            .get(format!("{base}/v1/org"))
            .bearer_auth(GLOBEX_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(
            revoked.status(),
            401,
            "round {round}: a key removed from the config is revoked"
        );
        server.shutdown().await;
    }
}
