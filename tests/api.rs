//! API contract tests, each run on SQLite and on a real PostgreSQL.

mod common;

use common::{Db, TestApp, ACME_KEY, GLOBEX_KEY};
use serde_json::{json, Value};

on_both_databases!(
    queued_call_is_normalized_persisted_and_readable,
    bad_input_gets_a_problem_naming_the_field_and_writes_nothing,
    authentication_is_required_and_scoped_to_the_org,
    idempotency_key_replays_the_first_response,
    listing_paginates_newest_first_with_filters,
    cancel_only_queued_or_calling_calls,
    agents_are_provisioned_listed_created_and_patched,
    quota_exhausted_is_402,
    operational_endpoints_answer,
    calls_stay_queued_when_telephony_is_off,
    unknown_voices_are_422_naming_the_field,
    the_default_agent_is_the_marked_one_else_the_first_active,
    a_context_key_the_script_needs_is_required,
);

async fn queued_call_is_normalized_persisted_and_readable(db: Db) {
    let app = TestApp::start(db, None).await;
    let body = json!({"to": "(202) 555-0143", "context": {"customer": "Ann", "plan": "pro"}, "max_attempts": 5});
    let response = app
        .http
        .post(format!("{}/v1/calls/outbound", app.base))
        .bearer_auth(ACME_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let call: Value = response.json().await.unwrap();
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["to"], "+12025550143");
    assert_eq!(call["max_attempts"], 5);
    assert_eq!(call["attempts"], 0);
    assert_eq!(call["context"]["customer"], "Ann");
    assert_eq!(call["transcript"], json!([]));
    assert_eq!(
        location,
        format!("/v1/calls/{}", call["id"].as_str().unwrap())
    );

    let (_, agents) = app.get("/v1/agents", ACME_KEY).await;
    let welcome = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "welcome")
        .unwrap();
    assert_eq!(
        call["agent_id"], welcome["id"],
        "the default outbound agent is used"
    );

    let (status, fetched) = app.get(&location, ACME_KEY).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, call, "GET returns what POST returned");

    // A past schedule_at means "dial now"; it is kept as given.
    let past = app
        .queue_call(r#"{"to": "+442079460958", "schedule_at": "2020-01-01T00:00:00Z"}"#)
        .await;
    assert_eq!(past["schedule_at"], "2020-01-01T00:00:00Z");
    assert_eq!(past["to"], "+442079460958");
    app.stop().await;
}

async fn bad_input_gets_a_problem_naming_the_field_and_writes_nothing(db: Db) {
    let app = TestApp::start(db, None).await;
    let (_, agents) = app.get("/v1/agents", ACME_KEY).await;
    let agent_id = |slug: &str| {
        agents["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["slug"] == slug)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let retired = agent_id("retired");
    let inbound = agent_id("inbound-support");
    let unknown = "01900000-0000-7000-8000-000000000000";
    let big = format!(
        r#"{{"to": "+12025550143", "context": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let cases: Vec<(String, u16, &str)> = vec![
        (r#"{"to": "+12025550143""#.into(), 400, ""),
        ("not json".into(), 400, ""),
        (r#"{"to": 12025550143}"#.into(), 422, "to"),
        (
            r#"{"to": "+12025550143", "max_attempts": "3"}"#.into(),
            422,
            "max_attempts",
        ),
        (
            r#"{"to": "+12025550143", "colour": "red"}"#.into(),
            422,
            "colour",
        ),
        (r#"{}"#.into(), 422, "to"),
        (big, 413, ""),
        (
            r#"{"to": "+12025550143", "schedule_at": "2030-01-01T09:00:00+02:00"}"#.into(),
            422,
            "schedule_at",
        ),
        (
            r#"{"to": "+12025550143", "schedule_at": "tomorrow"}"#.into(),
            422,
            "schedule_at",
        ),
        (
            r#"{"to": "+12025550143", "schedule_at": "2030-01-01 09:00"}"#.into(),
            422,
            "schedule_at",
        ),
        (
            r#"{"to": "+12025550143", "max_attempts": 0}"#.into(),
            422,
            "max_attempts",
        ),
        (
            r#"{"to": "+12025550143", "max_attempts": 11}"#.into(),
            422,
            "max_attempts",
        ),
        (
            format!(r#"{{"to": "+12025550143", "agent_id": "{unknown}"}}"#),
            422,
            "agent_id",
        ),
        (
            r#"{"to": "+12025550143", "agent_id": "welcome"}"#.into(),
            422,
            "agent_id",
        ),
        (
            format!(r#"{{"to": "+12025550143", "agent_id": "{retired}"}}"#),
            422,
            "agent_id",
        ),
        (
            format!(r#"{{"to": "+12025550143", "agent_id": "{inbound}"}}"#),
            422,
            "agent_id",
        ),
        (r#"{"to": "1-800-FLOWERS"}"#.into(), 422, "to"),
        (r#"{"to": "555"}"#.into(), 422, "to"),
        (r#"{"to": "020 7946 0958"}"#.into(), 422, "to"),
        (
            r#"{"to": "+12025550143", "webhook_url": "ftp://example.com/x"}"#.into(),
            422,
            "webhook_url",
        ),
    ];
    for (body, status, field) in &cases {
        let (got, problem) = app.post("/v1/calls/outbound", ACME_KEY, body).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(got, *status, "{shown}: {problem}");
        assert_eq!(problem["status"], *status, "{shown}");
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:voxbridge:problem:"),
            "{problem}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{problem}");
        if !field.is_empty() {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(
                fields.contains(field),
                "{shown}: expected field {field} in {problem}"
            );
        }
    }
    // Several bad fields are reported together.
    let (_, problem) = app
        .post(
            "/v1/calls/outbound",
            ACME_KEY,
            r#"{"to": "abc", "max_attempts": 99, "schedule_at": "x"}"#,
        )
        .await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3, "{problem}");

    let (_, page) = app.get("/v1/calls", ACME_KEY).await;
    assert_eq!(page["data"], json!([]), "no bad request left a call behind");
    app.stop().await;
}

async fn authentication_is_required_and_scoped_to_the_org(db: Db) {
    let app = TestApp::start(db, None).await;
    let (status, problem) = app
        .send(app.http.get(format!("{}/v1/calls", app.base)))
        .await;
    assert_eq!(status, 401, "{problem}");
    for key in ["vbk_wrong_0123456789abcdef", ""] {
        let (status, _) = app.get("/v1/calls", key).await;
        assert_eq!(status, 401);
    }
    let (status, _) = app
        .send(
            app.http
                .get(format!("{}/v1/org", app.base))
                .header("authorization", format!("Basic {ACME_KEY}")),
        )
        .await;
    assert_eq!(status, 401);

    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let path = format!("/v1/calls/{}", call["id"].as_str().unwrap());
    assert_eq!(
        app.get(&path, GLOBEX_KEY).await.0,
        404,
        "another org's call is not found"
    );
    assert_eq!(
        app.post(&format!("{path}/cancel"), GLOBEX_KEY, "").await.0,
        404
    );
    let (_, page) = app.get("/v1/calls", GLOBEX_KEY).await;
    assert_eq!(page["data"], json!([]));
    assert_eq!(app.get("/v1/calls/not-a-uuid", ACME_KEY).await.0, 404);
    let (_, org) = app.get("/v1/org", GLOBEX_KEY).await;
    assert_eq!(org["slug"], "globex");
    app.stop().await;
}

async fn idempotency_key_replays_the_first_response(db: Db) {
    let app = TestApp::start(db, None).await;
    let send = |key: &'static str, body: &'static str| {
        app.send(
            app.http
                .post(format!("{}/v1/calls/outbound", app.base))
                .bearer_auth(ACME_KEY)
                .header("Idempotency-Key", key)
                .body(body),
        )
    };
    let (s1, first) = send("batch-42", r#"{"to": "+12025550143"}"#).await;
    let (s2, second) = send("batch-42", r#"{"to": "+12025550143"}"#).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second, "the replay is the first response");
    let (status, problem) = send("batch-42", r#"{"to": "+12025550144"}"#).await;
    assert_eq!(
        status, 422,
        "a reused key with another body is refused: {problem}"
    );
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // Concurrent first requests with one key still create one call.
    let tasks: Vec<_> = (0..8)
        .map(|_| send("race", r#"{"to": "+12025550145"}"#))
        .collect();
    let results = futures::future::join_all(tasks).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|(s, c)| {
            assert_eq!(*s, 201, "{c}");
            c["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    let (_, page) = app.get("/v1/calls?limit=100", ACME_KEY).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn listing_paginates_newest_first_with_filters(db: Db) {
    let app = TestApp::start(db, None).await;
    let mut created = Vec::new();
    for i in 0..25 {
        let call = app
            .queue_call(&format!(r#"{{"to": "+1202555{:04}"}}"#, 200 + i))
            .await;
        created.push(call["id"].as_str().unwrap().to_owned());
    }
    let canceled = created[3].clone();
    assert_eq!(
        app.post(&format!("/v1/calls/{canceled}/cancel"), ACME_KEY, "")
            .await
            .0,
        200
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/calls?limit=10&cursor={c}"),
            None => "/v1/calls?limit=10".into(),
        };
        let (status, page) = app.get(&path, ACME_KEY).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every call once, newest first");

    let (_, queued) = app.get("/v1/calls?status=queued&limit=100", ACME_KEY).await;
    assert_eq!(queued["data"].as_array().unwrap().len(), 24);
    let (_, only) = app
        .get("/v1/calls?status=canceled&direction=outbound", ACME_KEY)
        .await;
    assert_eq!(only["data"][0]["id"], canceled.as_str());
    let (_, inbound) = app.get("/v1/calls?direction=inbound", ACME_KEY).await;
    assert_eq!(inbound["data"], json!([]));
    for bad in [
        "status=ringing",
        "limit=0",
        "limit=101",
        "cursor=zzz",
        "direction=sideways",
        "bogus=1",
    ] {
        let (status, problem) = app.get(&format!("/v1/calls?{bad}"), ACME_KEY).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    app.stop().await;
}

async fn cancel_only_queued_or_calling_calls(db: Db) {
    let app = TestApp::start(db, None).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let cancel = format!("/v1/calls/{}/cancel", call["id"].as_str().unwrap());
    let (status, canceled) = app.post(&cancel, ACME_KEY, "").await;
    assert_eq!(status, 200);
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["end_reason"], "canceled");
    assert!(canceled["ended_at"].is_string());
    let (status, problem) = app.post(&cancel, ACME_KEY, "").await;
    assert_eq!(status, 409, "{problem}");
    app.stop().await;
}

async fn agents_are_provisioned_listed_created_and_patched(db: Db) {
    let app = TestApp::start(db, None).await;
    let (status, agents) = app.get("/v1/agents", ACME_KEY).await;
    assert_eq!(status, 200);
    let support = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Inbound Support Agent")
        .unwrap();
    assert_eq!(support["direction"], "inbound");
    assert_eq!(support["voice"], "calm_support");
    assert_eq!(support["active"], true);
    for key in [
        "id",
        "slug",
        "name",
        "direction",
        "voice",
        "prompt",
        "kind",
        "active",
    ] {
        assert!(support.get(key).is_some(), "agent has {key}");
    }

    let new = r#"{"slug": "reminder", "name": "Reminder Agent", "direction": "outbound", "voice": "brisk",
        "questions": [{"key": "confirm", "ask": "Can you make it?", "type": "yes_no"}]}"#;
    let (status, created) = app.post("/v1/agents", ACME_KEY, new).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        app.post("/v1/agents", ACME_KEY, new).await.0,
        409,
        "slug is taken"
    );
    let (status, problem) = app
        .post(
            "/v1/agents",
            ACME_KEY,
            r#"{"slug": "x", "name": "X", "direction": "sideways"}"#,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("direction"))
    );
    let (status, _) = app
        .post(
            "/v1/agents",
            ACME_KEY,
            r#"{"slug": "q", "name": "Q", "direction": "outbound", "kind": "websocket"}"#,
        )
        .await;
    assert_eq!(status, 422, "a websocket agent needs a url");
    let (status, problem) = app
        .post(
            "/v1/agents",
            ACME_KEY,
            r#"{"slug": "l", "name": "L", "direction": "outbound", "questions": [
                {"key": "account", "ask": "Account?", "type": "digits", "min_length": 9, "max_length": 8}]}"#,
        )
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("questions")),
        "{problem}"
    );
    let sized = r#"{"slug": "sized", "name": "Sized", "direction": "outbound", "questions": [
        {"key": "account", "ask": "Account?", "type": "digits", "min_length": 8, "max_length": 8}]}"#;
    let (status, agent) = app.post("/v1/agents", ACME_KEY, sized).await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["questions"][0]["max_length"], 8, "{agent}");

    let id = created["id"].as_str().unwrap();
    let patch = app
        .send(
            app.http
                .patch(format!("{}/v1/agents/{id}", app.base))
                .bearer_auth(ACME_KEY)
                .body(r#"{"active": false, "prompt": "Remind politely."}"#),
        )
        .await;
    assert_eq!(patch.0, 200, "{}", patch.1);
    assert_eq!(patch.1["active"], false);
    assert_eq!(patch.1["prompt"], "Remind politely.");
    assert_eq!(
        patch.1["voice"], "brisk",
        "unpatched fields keep their value"
    );
    let (status, problem) = app
        .post(
            "/v1/calls/outbound",
            ACME_KEY,
            &format!(r#"{{"to": "+12025550143", "agent_id": "{id}"}}"#),
        )
        .await;
    assert_eq!(status, 422, "an inactive agent cannot call: {problem}");
    let other = app
        .send(
            app.http
                .patch(format!("{}/v1/agents/{id}", app.base))
                .bearer_auth(GLOBEX_KEY)
                .body("{}"),
        )
        .await;
    assert_eq!(other.0, 404);
    app.stop().await;
}

async fn quota_exhausted_is_402(db: Db) {
    let app = TestApp::start(db, None).await;
    let (_, org) = app.get("/v1/org", GLOBEX_KEY).await;
    assert_eq!(
        (
            org["minutes_included"].as_i64(),
            org["minutes_used"].as_i64()
        ),
        (Some(10), Some(0))
    );
    let org_id = uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap();
    let (status, _) = app
        .post(
            "/v1/calls/outbound",
            GLOBEX_KEY,
            r#"{"to": "+12025550143"}"#,
        )
        .await;
    assert_eq!(status, 201);
    app.store().charge_minutes(org_id, 10).await.unwrap();
    let (status, problem) = app
        .post(
            "/v1/calls/outbound",
            GLOBEX_KEY,
            r#"{"to": "+12025550143"}"#,
        )
        .await;
    assert_eq!(status, 402, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("10 of its 10"),
        "{problem}"
    );
    let (_, org) = app.get("/v1/org", GLOBEX_KEY).await;
    assert_eq!(org["minutes_used"], 10);
    app.stop().await;
}

async fn operational_endpoints_answer(db: Db) {
    let app = TestApp::start(db, None).await;
    let text = |path: &str| {
        let url = format!("{}{path}", app.base);
        let http = app.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(text("/healthz").await, (200, "ok".into()));
    let (status, ready) = text("/readyz").await;
    assert_eq!(status, 200);
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready,
        json!({
            "status": "ready",
            "database": "ok",
            "telephony": "disabled",
            "capacity": {
                "rtp_port_pairs_in_use": 0,
                "rtp_port_pairs": 5000,
                "transcribed_calls": 0,
                "transcription_slots": 0,
                "transcription_sizing": null,
                "calibrated_utterance_ms": null,
                "recognizing": 0,
                "recognition_queue": 0,
                "recognition_wait_p95_ms": 0,
                "recognition_wait_limit_ms": 0,
                "second_opinions_skipped": 0,
                "utterance_pairs": 0,
                "utterance_pairs_split": 0
            }
        })
    );
    app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let (status, metrics) = text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("voxbridge_calls_queued_total"),
        "{metrics}"
    );
    // Capacity gauges are set at each scrape.
    assert!(
        metrics.contains("voxbridge_rtp_port_pairs 5000"),
        "{metrics}"
    );
    let (status, spec) = text("/v1/openapi.json").await;
    assert_eq!(status, 200);
    let spec: Value = serde_json::from_str(&spec).unwrap();
    for path in [
        "/v1/calls/outbound",
        "/v1/calls",
        "/v1/calls/{id}",
        "/v1/calls/{id}/cancel",
        "/v1/agents",
        "/v1/org",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "openapi documents {path}"
        );
    }
    assert!(spec["components"]["schemas"].get("Call").is_some());
    let (status, _) = app.get("/v1/nope", ACME_KEY).await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn calls_stay_queued_when_telephony_is_off(db: Db) {
    let app = TestApp::start(db, None).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, now) = app
        .get(
            &format!("/v1/calls/{}", call["id"].as_str().unwrap()),
            ACME_KEY,
        )
        .await;
    assert_eq!(now["status"], "queued");
    assert_eq!(now["attempts"], 0);
    app.stop().await;
}

async fn unknown_voices_are_422_naming_the_field(db: Db) {
    let app = TestApp::start(db, None).await;
    let (status, problem) = app
        .post(
            "/v1/agents",
            ACME_KEY,
            r#"{"slug": "x", "name": "X", "direction": "outbound", "voice": "robot"}"#,
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "voice");
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("robot") && message.contains("brisk, calm_support, formal"),
        "{message}"
    );
    let (_, agents) = app.get("/v1/agents", ACME_KEY).await;
    assert!(
        agents["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["slug"] != "x"),
        "nothing was written"
    );

    let welcome = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["slug"] == "welcome")
        .unwrap();
    let path = format!("{}/v1/agents/{}", app.base, welcome["id"].as_str().unwrap());
    let patch =
        |body: &'static str| app.send(app.http.patch(&path).bearer_auth(ACME_KEY).body(body));
    let (status, problem) = patch(r#"{"voice": "robot"}"#).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("voice"))
    );
    let (status, agent) = patch(r#"{"voice": "formal"}"#).await;
    assert_eq!(
        (status, agent["voice"].as_str()),
        (200, Some("formal")),
        "{agent}"
    );
    app.stop().await;
}

/// The agent a call without `agent_id` gets: the active one marked default, else the first
/// active one of that direction in config order; marking another moves the mark.
async fn the_default_agent_is_the_marked_one_else_the_first_active(db: Db) {
    let app = TestApp::start_with(
        db,
        None,
        |c| {
            let agents = &mut c.orgs[0].agents;
            let mut first = agents[0].clone();
            (first.slug, first.name) = ("first-line".into(), "First Line".into());
            agents.iter_mut().for_each(|a| a.default = false);
            agents.insert(0, first);
        },
        None,
    )
    .await;
    let (_, agents) = app.get("/v1/agents", ACME_KEY).await;
    let id_of = |slug: &str| {
        agents["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["slug"] == slug)
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let queued_with = |call: Value| call["agent_id"].as_str().unwrap().to_owned();
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    assert_eq!(
        queued_with(call),
        id_of("first-line"),
        "none marked: the first active"
    );

    let mark = |slug: &str| {
        let path = format!("{}/v1/agents/{}", app.base, id_of(slug));
        app.send(
            app.http
                .patch(path)
                .bearer_auth(ACME_KEY)
                .body(r#"{"default": true}"#),
        )
    };
    assert_eq!(mark("welcome").await.0, 200);
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    assert_eq!(queued_with(call), id_of("welcome"), "the marked one");

    assert_eq!(mark("first-line").await.0, 200);
    let (_, agents) = app.get("/v1/agents", ACME_KEY).await;
    let marked: Vec<&str> = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["default"] == true && a["direction"] == "outbound")
        .map(|a| a["slug"].as_str().unwrap())
        .collect();
    assert_eq!(marked, ["first-line"], "one default per direction");
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    assert_eq!(queued_with(call), id_of("first-line"));
    app.stop().await;
}

/// An outbound call whose agent says "Hi {{name}}" needs `name` in its context: 422 naming
/// it, and nothing queued.
async fn a_context_key_the_script_needs_is_required(db: Db) {
    let app = TestApp::start_with(
        db,
        None,
        |c| c.orgs[0].agents[0].greeting = Some("Hi {{name}}, this is Acme.".into()),
        None,
    )
    .await;
    for body in [
        r#"{"to": "+12025550143"}"#,
        r#"{"to": "+12025550143", "context": {"nam": "Ann"}}"#,
    ] {
        let (status, problem) = app.post("/v1/calls/outbound", ACME_KEY, body).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "context", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("name"), "{message}");
    }
    let (_, calls) = app.get("/v1/calls", ACME_KEY).await;
    assert_eq!(calls["data"], json!([]), "nothing queued");
    let call = app
        .queue_call(r#"{"to": "+12025550143", "context": {"name": "Ann"}}"#)
        .await;
    assert_eq!(call["status"], "queued");
    app.stop().await;
}
