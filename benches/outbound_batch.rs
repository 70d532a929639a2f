//! Batch load: queue N outbound calls (default 10,000) with 64 concurrent clients through the
//! real HTTP API, then check that nothing was lost — N calls stored, N `call.queued` webhooks
//! received with unique ids and valid signatures (checked with an HMAC computed here) — and
//! report API throughput and webhook latency from commit to receipt.
//!
//!   cargo bench --bench outbound_batch                       # SQLite in a temp dir
//!   VOXBRIDGE_BENCH_DB=postgres://… cargo bench --bench outbound_batch
//!   VOXBRIDGE_BENCH_CALLS=2000 VOXBRIDGE_BENCH_CLIENTS=32 …  # other sizes

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use voxbridge::config::Config;
use voxbridge::server::Server;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEY: &str = "vbk_bench_0123456789abcdef";

#[derive(Default)]
struct Receipts {
    ids: Vec<String>,
    bad_signatures: usize,
    /// Receipt time minus the event's commit timestamp, in ms.
    latency_ms: Vec<f64>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn signature_ok(headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let Ok(key) =
        base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_"))
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return false;
    };
    mac.update(format!("{}.{}.", get("webhook-id"), get("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    get("webhook-signature").split(' ').any(|s| s == expected)
}

async fn receive(
    State(receipts): State<Arc<Mutex<Receipts>>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let now = OffsetDateTime::now_utc();
    let ok = signature_ok(&headers, &body);
    let committed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v["timestamp"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        });
    let mut r = receipts.lock().unwrap_or_else(|e| e.into_inner());
    r.ids.push(
        headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    );
    if !ok {
        r.bad_signatures += 1;
    }
    if let Some(at) = committed {
        r.latency_ms.push((now - at).as_seconds_f64() * 1000.0);
    }
    "ok"
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let calls = env_usize("VOXBRIDGE_BENCH_CALLS", 10_000);
    let clients = env_usize("VOXBRIDGE_BENCH_CLIENTS", 64);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = std::env::var("VOXBRIDGE_BENCH_DB")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));

    let receipts = Arc::new(Mutex::new(Receipts::default()));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receipts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let toml = format!(
        r#"
[http]
listen = "127.0.0.1:0"
[sip]
listen = "127.0.0.1:0"
[database]
url = "{db}"
[webhooks]
allow_private_targets = true
[[orgs]]
slug = "bench"
name = "Bench"
minutes_included = 100000000
webhook_url = "{hook_url}"
webhook_secret = "{SECRET}"
api_keys = ["{KEY}"]
[[orgs.agents]]
slug = "caller"
name = "Bench Caller"
direction = "outbound"
"#
    );
    let config =
        Config::from_toml_str(&toml, "bench.toml".as_ref(), std::iter::empty()).expect("config");
    let server = Server::start(config, None, voxbridge::clock::Clock::system())
        .await
        .expect("server");
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let db_kind = db.split(':').next().unwrap_or("?").to_owned();

    // Unloaded webhook latency: one call at a time.
    let idle_calls = 200;
    for i in 0..idle_calls {
        post_call(&http, &base, i).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for(&receipts, idle_calls, Duration::from_secs(30)).await;
    let idle = latencies(&receipts);
    receipts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .latency_ms
        .clear();

    // The batch: `calls` requests from `clients` concurrent clients.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, next) = (http.clone(), base.clone(), next.clone());
            tokio::spawn(async move {
                let mut took = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= calls {
                        break took;
                    }
                    let t = Instant::now();
                    post_call(&http, &base, idle_calls + n).await;
                    took.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    let mut api_ms = Vec::with_capacity(calls);
    for task in tasks {
        api_ms.extend(task.await.expect("client task"));
    }
    let api_secs = started.elapsed().as_secs_f64();
    let total = idle_calls + calls;
    wait_for(&receipts, total, Duration::from_secs(300)).await;
    let delivered_secs = started.elapsed().as_secs_f64();
    let loaded = latencies(&receipts);
    api_ms.sort_by(f64::total_cmp);

    let stored = count_calls(&http, &base).await;
    let ok = {
        let r = receipts.lock().unwrap_or_else(|e| e.into_inner());
        let unique: HashSet<&String> = r.ids.iter().collect();
        println!("== outbound batch on {db_kind}: {calls} calls, {clients} clients (server, clients and receiver share the machine)");
        println!(
            "API: {:.0} calls/s, latency p50 {:.2} ms, p99 {:.2} ms",
            calls as f64 / api_secs,
            percentile(&api_ms, 0.5),
            percentile(&api_ms, 0.99)
        );
        println!(
            "all {total} webhooks delivered {:.1} s after the batch started",
            delivered_secs
        );
        println!(
            "webhook commit→receipt idle: p50 {:.1} ms, p99 {:.1} ms; under batch load: p50 {:.1} ms, p99 {:.1} ms",
            percentile(&idle, 0.5),
            percentile(&idle, 0.99),
            percentile(&loaded, 0.5),
            percentile(&loaded, 0.99)
        );
        println!(
            "stored calls: {stored}; webhooks received: {}; unique webhook-ids: {}; bad signatures: {}",
            r.ids.len(),
            unique.len(),
            r.bad_signatures
        );
        let ok = stored == total
            && r.ids.len() == total
            && unique.len() == total
            && r.bad_signatures == 0;
        println!(
            "{}",
            if ok {
                "RESULT: nothing lost"
            } else {
                "RESULT: MISMATCH"
            }
        );
        ok
    };
    server.shutdown().await;
    if !ok {
        std::process::exit(1);
    }
}

async fn post_call(http: &reqwest::Client, base: &str, n: usize) {
    let body = format!(
        r#"{{"to": "+1202555{:04}", "context": {{"n": {n}}}}}"#,
        n % 10_000
    );
    let response = http
        .post(format!("{base}/v1/calls/outbound"))
        .bearer_auth(KEY)
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
}

fn latencies(receipts: &Mutex<Receipts>) -> Vec<f64> {
    let mut l = receipts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .latency_ms
        .clone();
    l.sort_by(f64::total_cmp);
    l
}

async fn wait_for(receipts: &Mutex<Receipts>, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while receipts.lock().unwrap_or_else(|e| e.into_inner()).ids.len() < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count_calls(http: &reqwest::Client, base: &str) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/v1/calls?limit=100&cursor={c}"),
            None => format!("{base}/v1/calls?limit=100"),
        };
        let page: serde_json::Value = http
            .get(url)
            .bearer_auth(KEY)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        count += page["data"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return count,
        }
    }
}
