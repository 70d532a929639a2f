//! Shared test harness: a real server on loopback against SQLite or a real PostgreSQL, and a
//! webhook receiver that records what arrives.
#![allow(dead_code)]

pub mod audio;
pub mod caller_rtp;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod sipp;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use voxbridge::clock::Clock;
use voxbridge::config::Config;
use voxbridge::dispatcher::Dialer;
use voxbridge::server::Server;

pub const ACME_KEY: &str = "vbk_acme_test_0123456789abcdef";
pub const GLOBEX_KEY: &str = "vbk_globex_test_0123456789abcd";
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Db)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Db::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Db::Postgres).await })*
        }
    };
}

/// A database URL for one test; the guard keeps a SQLite file's directory alive.
pub async fn database(db: Db) -> (String, Option<tempfile::TempDir>) {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            (
                format!("sqlite://{}", dir.path().join("voxbridge.db").display()),
                Some(dir),
            )
        }
        Db::Postgres => (postgres::fresh_database().await, None),
    }
}

/// Two orgs (acme with agents and DIDs, globex for isolation checks), telephony off.
pub fn base_config_toml(database_url: &str, webhook_url: Option<&str>) -> String {
    let webhook = webhook_url
        .map(|u| format!("webhook_url = \"{u}\""))
        .unwrap_or_default();
    format!(
        r#"
[http]
listen = "127.0.0.1:0"
[sip]
listen = "127.0.0.1:0"
[database]
url = "{database_url}"
max_connections = 8
[webhooks]
allow_private_targets = true
first_retry_seconds = 1
[voices.brisk]
rate = 220

[[orgs]]
slug = "acme"
name = "Acme"
minutes_included = 1000
webhook_secret = "{SECRET}"
{webhook}
api_keys = ["{ACME_KEY}"]
numbers = ["+12025550142"]

[[orgs.agents]]
slug = "welcome"
name = "Welcome Agent"
direction = "outbound"
voice = "friendly"
prompt = "Welcome the customer."
default = true

[[orgs.agents]]
slug = "retired"
name = "Retired Agent"
direction = "outbound"
active = false

[[orgs.agents]]
slug = "inbound-support"
name = "Inbound Support Agent"
direction = "inbound"
voice = "calm_support"
prompt = "Help callers."

[[orgs]]
slug = "globex"
name = "Globex"
minutes_included = 10
api_keys = ["{GLOBEX_KEY}"]

[[orgs.agents]]
slug = "caller"
name = "Globex Caller"
direction = "outbound"
"#
    )
}

/// [`base_config_toml`] with the HTTP API on `http_port` (SIP keeps port 0), for a server run
/// as a process of its own, which the test reaches at a port it knows.
pub fn config_on_port(database_url: &str, webhook_url: Option<&str>, http_port: u16) -> String {
    // The first `listen` is [http]'s.
    base_config_toml(database_url, webhook_url).replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{http_port}\""),
        1,
    )
}

/// A trunk named "carrier" on loopback that admits INVITEs from `cidr`.
pub fn loopback_trunk(cidr: &str) -> voxbridge::config::TrunkConfig {
    voxbridge::config::TrunkConfig {
        name: "carrier".into(),
        host: "127.0.0.1".into(),
        port: 5070,
        transport: voxbridge::config::Transport::Udp,
        username: None,
        password: None,
        inbound_cidrs: vec![cidr.parse().expect("cidr")],
        from_number: Some("+12025550100".into()),
        calls_per_second: None,
        max_concurrent: None,
    }
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The whisper model the tests recognize with (`scripts/setup.sh` fetches it).
pub fn asr_model() -> PathBuf {
    model_file("VOXBRIDGE_ASR_MODEL", "ggml-tiny.en-q8_0.bin")
}

/// The model typed answers are recognized with, as in the default config.
pub fn asr_answer_model() -> PathBuf {
    model_file("VOXBRIDGE_ASR_ANSWER_MODEL", "ggml-tiny.en.bin")
}

/// `var` if set, else `file` under the workspace's `models/`.
fn model_file(var: &str, file: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models").join(file))
}

/// Turns on speech recognition with the test model (up to 4 calls transcribed at once).
pub fn transcribe(c: &mut Config) {
    c.asr = Some(voxbridge::config::AsrConfig {
        model: Some(asr_model()),
        answer_model: Some(asr_answer_model()),
        threads: 1,
        language: "en".into(),
        max_concurrent: 2,
        max_calls: voxbridge::config::MaxCalls::Fixed(4),
        // Tests share a busy machine: no call is refused for slow recognition here.
        latency_target_ms: 30_000,
        pair_utterances: true,
    });
}

pub fn parse_config(toml: &str) -> Config {
    Config::from_toml_str(toml, &PathBuf::from("test.toml"), std::iter::empty())
        .expect("test config is valid")
}

pub struct TestApp {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    /// The server's database, for looking at what it left after a shutdown.
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn start(db: Db, webhook_url: Option<&str>) -> Self {
        Self::start_with(db, webhook_url, |_| {}, None).await
    }

    pub async fn start_with(
        db: Db,
        webhook_url: Option<&str>,
        tweak: impl FnOnce(&mut Config),
        dialer: Option<Arc<dyn Dialer>>,
    ) -> Self {
        Self::start_with_clock(db, webhook_url, tweak, dialer, Clock::system()).await
    }

    /// As `start_with`, with the server reading `clock` (a `ManualClock`'s, for virtual time).
    pub async fn start_with_clock(
        db: Db,
        webhook_url: Option<&str>,
        tweak: impl FnOnce(&mut Config),
        dialer: Option<Arc<dyn Dialer>>,
        clock: Clock,
    ) -> Self {
        let (url, dir) = database(db).await;
        let mut config = parse_config(&base_config_toml(&url, webhook_url));
        let database_url = url.clone();
        tweak(&mut config);
        config.validate().expect("tweaked config is valid");
        let server = Server::start(config, dialer, clock)
            .await
            .expect("server starts");
        let base = format!("http://{}", server.http_addr);
        Self {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            database_url,
            _dir: dir,
        }
    }

    pub fn store(&self) -> &voxbridge::store::Store {
        &self.server.as_ref().expect("running").store
    }

    pub async fn post(&self, path: &str, key: &str, body: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(key)
                .body(body.to_owned()),
        )
        .await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let problem = response.headers().get("content-type").is_some_and(|ct| {
            ct.to_str()
                .unwrap_or("")
                .starts_with("application/problem+json")
        });
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            assert!(problem, "error {status} must be problem+json: {value}");
        }
        (status, value)
    }

    /// Queues a call to a valid US number and returns its JSON.
    pub async fn queue_call(&self, body: &str) -> Value {
        let (status, call) = self.post("/v1/calls/outbound", ACME_KEY, body).await;
        assert_eq!(status, 201, "{call}");
        call
    }

    /// Shuts the server down gracefully and opens its database again, to look at what the
    /// shutdown left (the app keeps a SQLite file alive until it is dropped).
    pub async fn shut_down_and_reopen(&mut self) -> voxbridge::store::Store {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        voxbridge::store::Store::connect(&self.database_url, 1, Clock::system())
            .await
            .expect("the database opens again")
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Polls `check` every 20 ms until it returns Some, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Where virtual time starts in tests that move a `ManualClock` (any fixed instant will do).
pub fn virtual_start() -> time::OffsetDateTime {
    time::macros::datetime!(2031-03-10 09:00 UTC)
}

/// Virtual time for the server, real time for its I/O: moves `clock` forward by `step` every
/// 20 ms of real time until `check` returns Some (or panics after `secs` real seconds). Keep
/// `step` well below the 30 s dispatcher lease while an attempt runs, so its heartbeat
/// keeps up.
pub async fn tick_until<T, F, Fut>(
    clock: &voxbridge::clock::ManualClock,
    step: std::time::Duration,
    secs: u64,
    what: &str,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(secs, what, || {
        let checked = check();
        async move {
            let found = checked.await;
            if found.is_none() {
                clock.advance(step);
            }
            found
        }
    })
    .await
}
