//! Outbound calls end to end: `POST /v1/calls/outbound`, the dispatcher dials through the
//! outbound trunk, and SIPp (a separate process) plays the carrier and the phone behind it:
//! it answers, rings without answer, refuses, challenges for digest credentials or answers
//! with media we cannot take. The agent's conversation on an answered call runs with real
//! RTP, espeak-ng and whisper, and the call is stored, billed and announced in order.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};

use common::audio::{fixture_ulaw, spoken_ms};
use common::caller_rtp::CallerRtp;
use common::receiver::Receiver;
use common::{Db, TestApp, ACME_KEY};
use serde_json::{json, Value};
use voxbridge::config::{Config, Rounding};
use voxbridge::domain::{Question, QuestionType};

on_both_databases!(
    an_answered_call_talks_is_transcribed_billed_and_announced_in_order,
    busy_is_retried_then_failed,
);

const VOICE: &str = "friendly";
const GREETING: &str = "Hello, this is Acme Dental with a reminder of your appointment tomorrow.";
const COMING: &str = "Will you be able to come?";
const CLOSING: &str = "Thank you. Goodbye.";

const ANSWER: &str = include_str!("sipp/carrier_answer.xml");
const CHALLENGE: &str = include_str!("sipp/carrier_challenge.xml");
const REFUSE: &str = include_str!("sipp/carrier_refuse.xml");
const RING: &str = include_str!("sipp/carrier_ring.xml");

/// A SIP port for each test's carrier (tests run in parallel).
fn carrier_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(47_000);
    NEXT.fetch_add(2, Ordering::Relaxed)
}

/// A server dialing through a trunk to SIPp on `carrier`; `tweak` adjusts the rest.
async fn start(
    db: Db,
    webhook_url: Option<&str>,
    carrier: u16,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    TestApp::start_with(
        db,
        webhook_url,
        move |c: &mut Config| {
            let mut trunk = common::loopback_trunk("127.0.0.1/32");
            trunk.port = carrier;
            trunk.from_number = Some("+12025550100".into());
            c.trunks.push(trunk);
            c.telephony.enabled = true;
            c.telephony.outbound_trunk = Some("carrier".into());
            c.telephony.retry.busy_seconds = 1;
            let agent = c.orgs[0]
                .agents
                .iter_mut()
                .find(|a| a.slug == "welcome")
                .expect("the outbound agent");
            agent.greeting = Some(GREETING.into());
            agent.closing = Some(CLOSING.into());
            tweak(c);
        },
        None,
    )
    .await
}

/// Runs SIPp as the carrier for `calls` calls on a thread; joins to whether all passed.
fn carrier(port: u16, scenario: String, calls: u32) -> tokio::task::JoinHandle<bool> {
    carrier_logging(port, scenario, calls, None)
}

/// Like [`carrier`], writing the scenario's `<log>` lines to `log`.
fn carrier_logging(
    port: u16,
    scenario: String,
    calls: u32,
    log: Option<std::path::PathBuf>,
) -> tokio::task::JoinHandle<bool> {
    let media = common::sipp::media_port().to_string();
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["-mi", "127.0.0.1", "-mp", &media];
        let log = log.map(|p| p.display().to_string());
        if let Some(log) = &log {
            args.extend(["-trace_logs", "-log_file", log]);
        }
        common::sipp::serve(port, &scenario, calls, &args)
    })
}

/// SIPp's own check of an MD5 digest answer: the action, then the branch on its result.
const VERIFY_MD5: &str =
    r#"<verifyauth assign_to="authvalid" username="voxbridge" password="@PASSWORD@"/>"#;
const VERIFIED_MD5: &str = r#"<nop hide="true" test="authvalid" next="authorized"/>
<nop><action><error message="wrong digest credentials"/></action></nop>
<label id="authorized"/>"#;

/// `challenge`: digest algorithm and the password the carrier expects of user `voxbridge`
/// (checked by SIPp for MD5; for SHA-256 the test checks the logged Authorization).
fn answering(callee: Option<&std::path::Path>, challenge: Option<(&str, &str)>) -> String {
    let play = callee.map_or(String::new(), |pcap| {
        format!(
            "<nop><action><exec play_pcap_audio=\"{}\"/></action></nop>",
            pcap.display()
        )
    });
    let challenge = challenge.map_or(String::new(), |(algorithm, password)| {
        let (verify, verified) = match algorithm {
            "MD5" => (VERIFY_MD5, VERIFIED_MD5),
            _ => ("", ""),
        };
        CHALLENGE
            .replace("@VERIFY@", verify)
            .replace("@VERIFIED@", verified)
            .replace("@ALGORITHM@", algorithm)
            .replace("@PASSWORD@", password)
    });
    ANSWER
        .replace("@CHALLENGE@", &challenge)
        .replace("@CALLEE@", &play)
        .replace("@PORT@", "[media_port]")
        .replace("@ANSWER_PT@", "0 96")
}

async fn queue(app: &TestApp, body: Value) -> String {
    let call = app.queue_call(&body.to_string()).await;
    call["id"].as_str().expect("an id").to_owned()
}

/// The call once its status is `status`.
async fn reaches(app: &TestApp, id: &str, status: &str, secs: u64) -> Value {
    common::eventually(secs, &format!("the call to be {status}"), || async {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        (call["status"] == status).then_some(call)
    })
    .await
}

/// Waits until no call holds an RTP port pair (the attempt gave back what it reserved).
async fn ports_released(app: &TestApp) {
    common::eventually(5, "the RTP ports to be released", || async {
        let (_, ready) = app.get("/readyz", ACME_KEY).await;
        (ready["capacity"]["rtp_port_pairs_in_use"] == 0).then_some(())
    })
    .await;
}

/// The org's minutes and seconds used.
async fn used(app: &TestApp) -> (i64, i64) {
    let (_, org) = app.get("/v1/org", ACME_KEY).await;
    let minutes = org["minutes_used"].as_i64().expect("minutes_used");
    (minutes, org["seconds_used"].as_i64().expect("seconds_used"))
}

async fn an_answered_call_talks_is_transcribed_billed_and_announced_in_order(db: Db) {
    let receiver = Receiver::start().await;
    let port = carrier_port();
    let app = start(db, Some(&receiver.url), port, |c| {
        common::transcribe(c);
        let agent = &mut c.orgs[0].agents[0];
        agent.questions = vec![Question::new("coming", COMING, QuestionType::YesNo)];
    })
    .await;
    let used_before = used(&app).await;

    // The callee waits for the question, then says yes.
    let dir = tempfile::tempdir().unwrap();
    let mut callee = CallerRtp::default();
    callee.silence(spoken_ms(VOICE, GREETING).await + spoken_ms(VOICE, COMING).await + 700);
    callee.audio(&fixture_ulaw("yes_no_01.wav", &dir.path().join("yes.ul")));
    let pcap = dir.path().join("callee.pcap");
    callee.write_pcap(&pcap);
    let sipp = carrier(port, answering(Some(&pcap), None), 1);

    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    assert!(
        sipp.await.unwrap(),
        "the carrier saw the call through to our BYE"
    );
    let call = reaches(&app, &id, "completed", 30).await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call:#}");
    assert_eq!(call["sip_status"], 200);
    assert_eq!(call["attempts"], 1);
    assert!(call["ringing_at"].is_string(), "{call:#}");
    assert!(call["answered_at"].is_string(), "{call:#}");
    assert!(call["duration_seconds"].as_i64().unwrap() >= 3, "{call:#}");
    assert_eq!(
        call["analysis"]["answers"],
        json!({"coming": true}),
        "{call:#}"
    );
    let transcript = call["transcript"].as_array().unwrap();
    let roles: Vec<&str> = transcript
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["agent", "agent", "caller", "agent"], "{call:#}");
    assert_eq!(transcript[0]["text"], GREETING);
    assert!(call["quality"]["packets_received"].as_u64().unwrap() > 50);

    // Billed by the started minute (the default rounding).
    let billed = (call["duration_seconds"].as_i64().unwrap() + 59) / 60;
    let (minutes, seconds) = used_before;
    assert_eq!(used(&app).await, (minutes + billed, seconds + billed * 60));
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let events = app.store().call_events(uuid).await.unwrap();
    let types: Vec<&str> = events.iter().map(|(kind, _, _)| kind.as_str()).collect();
    let expected = [
        "call.queued",
        "call.calling",
        "call.answered",
        "call.ended",
        "call.analyzed",
    ];
    assert_eq!(types, expected);
    // Delivered in that order, each showing the call as it was then.
    let delivered: Vec<Value> = receiver
        .wait_for(5, 10)
        .await
        .iter()
        .map(|r| r.json())
        .collect();
    let sent: Vec<&str> = delivered
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(sent, expected);
    let data = |i: usize| &delivered[i]["data"];
    assert_eq!(data(1)["status"], "calling");
    assert_eq!(data(1)["attempts"], 1);
    assert!(data(1)["sip_status"].is_null() && data(1)["answered_at"].is_null());
    assert_eq!(data(2)["status"], "in_progress");
    assert_eq!(data(2)["sip_status"], 200);
    assert_eq!(data(2)["answered_at"], call["answered_at"]);
    assert_eq!(data(3)["status"], "completed");
    assert_eq!(data(3)["duration_seconds"], call["duration_seconds"]);
    assert_eq!(data(4)["analysis"], call["analysis"]);
    ports_released(&app).await;
    app.stop().await;
}

/// One call with `max_attempts` against the carrier `scenario` (SIPp, which must pass: it saw
/// what it expected for `max_attempts` attempts); the call once `failed`, after every attempt
/// gave its RTP ports back.
async fn failed_against(
    db: Db,
    scenario: String,
    max_attempts: u32,
    tweak: impl FnOnce(&mut Config),
) -> Value {
    let port = carrier_port();
    let app = start(db, None, port, tweak).await;
    let sipp = carrier(port, scenario, max_attempts);
    let body = json!({"to": "+12025550199", "context": {}, "max_attempts": max_attempts});
    let id = queue(&app, body).await;
    let call = reaches(&app, &id, "failed", 45).await;
    assert!(
        sipp.await.unwrap(),
        "the carrier saw what it expected: {call:#}"
    );
    ports_released(&app).await;
    app.stop().await;
    call
}

/// The carrier answers each INVITE with `status`.
async fn refused(db: Db, status: &str, max_attempts: u32) -> Value {
    let scenario = REFUSE.replace("@STATUS@", status);
    failed_against(db, scenario, max_attempts, |_| {}).await
}

async fn busy_is_retried_then_failed(db: Db) {
    let call = refused(db, "486 Busy Here", 2).await;
    assert_eq!(call["end_reason"], "busy", "{call:#}");
    assert_eq!(call["sip_status"], 486);
    assert_eq!(call["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_is_not_retried() {
    // max_attempts 3 would allow more; SIPp would fail waiting for a second INVITE if one came.
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |_| {}).await;
    let sipp = carrier(port, REFUSE.replace("@STATUS@", "603 Decline"), 1);
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    let call = reaches(&app, &id, "failed", 20).await;
    assert!(sipp.await.unwrap());
    assert_eq!(call["end_reason"], "rejected", "{call:#}");
    assert_eq!(call["sip_status"], 603);
    assert_eq!(call["attempts"], 1);
    ports_released(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_number_is_not_retried() {
    let call = refused(Db::Sqlite, "404 Not Found", 1).await;
    assert_eq!(call["end_reason"], "invalid_number", "{call:#}");
    assert_eq!(call["sip_status"], 404);
    assert_eq!(call["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringing_without_answer_is_canceled_at_the_ring_timeout() {
    let call = failed_against(Db::Sqlite, RING.to_owned(), 1, |c| {
        c.telephony.ring_timeout_seconds = 2;
    })
    .await;
    assert_eq!(call["end_reason"], "no_answer", "{call:#}");
    assert_eq!(call["sip_status"], 487);
    assert!(call["ringing_at"].is_string(), "{call:#}");
    assert!(call["answered_at"].is_null());
}

/// A carrier that challenges with `algorithm`; returns the Authorization our INVITE came back
/// with, once the call completed.
async fn digest_answered(algorithm: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("carrier.log");
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |c| {
        c.trunks[0].username = Some("voxbridge".into());
        c.trunks[0].password = Some("s3cret-42".into());
    })
    .await;
    let scenario = answering(None, Some((algorithm, "s3cret-42")));
    let sipp = carrier_logging(port, scenario, 1, Some(log.clone()));
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    assert!(
        sipp.await.unwrap(),
        "the carrier accepted our {algorithm} answer"
    );
    let call = reaches(&app, &id, "completed", 30).await;
    assert_eq!(call["end_reason"], "agent_hangup", "{call:#}");
    assert_eq!(call["transcript"][0]["text"], GREETING);
    app.stop().await;
    let logged = std::fs::read_to_string(&log).expect("the carrier's log");
    let line = logged
        .lines()
        .find_map(|l| l.strip_prefix("Authorization:"));
    line.expect("the Authorization header was logged")
        .trim()
        .to_owned()
}

/// The digest parameters of an Authorization header value.
fn digest_params(header: &str) -> std::collections::HashMap<String, String> {
    let params = header
        .trim()
        .strip_prefix("Digest")
        .expect("a Digest answer");
    params
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_digest_challenge_is_answered_with_the_trunk_credentials() {
    let header = digest_answered("MD5").await;
    assert_eq!(digest_params(&header)["algorithm"], "MD5", "{header}");
}

/// SIPp cannot check SHA-256 (RFC 8760): the test computes the expected response itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha256_digest_challenge_is_answered_with_the_trunk_credentials() {
    use sha2::{Digest, Sha256};
    let header = digest_answered("SHA-256").await;
    let p = digest_params(&header);
    assert_eq!(p["algorithm"], "SHA-256", "{header}");
    assert_eq!(
        (p["username"].as_str(), p["realm"].as_str()),
        ("voxbridge", "carrier.test")
    );
    let h = |text: String| {
        let digest = Sha256::digest(text.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h("voxbridge:carrier.test:s3cret-42".to_owned());
    let ha2 = h(format!("INVITE:{}", p["uri"]));
    let expected = h(format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        p["nonce"], p["nc"], p["cnonce"], p["qop"]
    ));
    assert_eq!(p["response"], expected, "{header}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_canceled_while_ringing_sends_cancel() {
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |_| {}).await;
    let sipp = carrier(port, RING.to_owned(), 1);
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    common::eventually(10, "the phone to ring", || async {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        call["ringing_at"].is_string().then_some(())
    })
    .await;
    let (status, call) = app
        .post(&format!("/v1/calls/{id}/cancel"), ACME_KEY, "")
        .await;
    assert_eq!(status, 200, "{call}");
    assert!(sipp.await.unwrap(), "the carrier got our CANCEL");
    let call = reaches(&app, &id, "canceled", 5).await;
    assert_eq!(call["end_reason"], "canceled");
    assert_eq!(call["attempts"], 1);
    ports_released(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_canceled_while_talking_is_hung_up_billed_and_keeps_its_transcript() {
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |c| {
        c.billing.rounding = Rounding::Second;
        let agent = &mut c.orgs[0].agents[0];
        agent.questions = vec![Question::new("coming", COMING, QuestionType::YesNo)];
    })
    .await;
    let used_before = used(&app).await;
    // The callee says nothing: the agent greets, asks and waits.
    let sipp = carrier(port, answering(None, None), 1);
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    reaches(&app, &id, "in_progress", 10).await;
    let (_, ready) = app.get("/readyz", ACME_KEY).await;
    assert_eq!(ready["capacity"]["rtp_port_pairs_in_use"], 1, "{ready}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, call) = app
        .post(&format!("/v1/calls/{id}/cancel"), ACME_KEY, "")
        .await;
    assert_eq!(status, 200, "{call}");
    assert!(sipp.await.unwrap(), "the carrier got our BYE");
    let call = common::eventually(10, "the transcript", || async {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        (!call["transcript"].as_array()?.is_empty()).then_some(call)
    })
    .await;
    assert_eq!(call["status"], "canceled", "{call:#}");
    assert_eq!(call["end_reason"], "canceled");
    assert!(call["duration_seconds"].as_i64().unwrap() >= 1, "{call:#}");
    assert_eq!(call["transcript"][0]["text"], GREETING);
    // Billed by the second: the pool's minutes are the started minutes of its seconds.
    let talked = call["duration_seconds"].as_i64().unwrap();
    let (minutes, seconds) = used_before;
    assert_eq!(used(&app).await, (minutes + 1, seconds + talked));
    ports_released(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_unusable_media_is_hung_up_as_a_trunk_error() {
    // G.729 only: nothing we offered. The carrier must get ACK, then BYE.
    let scenario = answering(None, None).replace("RTP/AVP 0 96", "RTP/AVP 18");
    let call = failed_against(Db::Sqlite, scenario, 1, |_| {}).await;
    assert_eq!(call["end_reason"], "trunk_error", "{call:#}");
    assert_eq!(call["sip_status"], 488);
    assert!(call["answered_at"].is_null());
}

/// `voxbridge serve` on the repository's demo config, with telephony, the trunk and its
/// credentials set by environment variables alone. The password and numbers look like numbers
/// and must stay strings; the carrier checks the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_alone_configures_dialing() {
    let dir = tempfile::tempdir().unwrap();
    let http = common::process::free_port();
    let (carrier_port, sip) = (carrier_port(), carrier_port() + 1);
    let db = format!("sqlite://{}", dir.path().join("env.db").display());
    let (http_listen, sip_listen) = (format!("127.0.0.1:{http}"), format!("127.0.0.1:{sip}"));
    let env = [
        ("VOXBRIDGE__DATABASE__URL", db.as_str()),
        ("VOXBRIDGE__HTTP__LISTEN", &http_listen),
        ("VOXBRIDGE__SIP__LISTEN", &sip_listen),
        ("VOXBRIDGE__TELEPHONY__ENABLED", "true"),
        ("VOXBRIDGE__TELEPHONY__OUTBOUND_TRUNK", "carrier"),
        ("VOXBRIDGE__TRUNKS__0__HOST", "127.0.0.1"),
        ("VOXBRIDGE__TRUNKS__0__PORT", &carrier_port.to_string()),
        ("VOXBRIDGE__TRUNKS__0__USERNAME", "voxbridge"),
        ("VOXBRIDGE__TRUNKS__0__PASSWORD", "12345678"),
        ("VOXBRIDGE__TRUNKS__0__FROM_NUMBER", "+12025550100"),
        ("VOXBRIDGE__ORGS__0__NUMBERS__0", "+12025550177"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["serve", "--config", "config/voxbridge.toml"])
        .current_dir(common::workspace())
        .envs(env)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run voxbridge serve");
    let base = format!("http://{http_listen}");
    let client = reqwest::Client::new();
    let up = common::eventually(30, "the server to start", || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(|_| ())
    });
    let started = tokio::time::timeout(std::time::Duration::from_secs(40), up).await;
    let log = || std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(started.is_ok(), "the server did not start:\n{}", log());

    let sipp = carrier(carrier_port, answering(None, Some(("MD5", "12345678"))), 1);
    let key = "vbk_demo_0123456789abcdef";
    let queued = client
        .post(format!("{base}/v1/calls/outbound"))
        .bearer_auth(key)
        .json(&json!({"to": "+12025550199"}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 201, "{}", log());
    let id = queued.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/v1/calls/{id}");
    common::eventually(15, "the callee to answer", || async {
        let call: Value = client
            .get(&url)
            .bearer_auth(key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (call["status"] == "in_progress").then_some(())
    })
    .await;
    // Hang up from our side; the carrier sees the BYE.
    let canceled = client
        .post(format!("{url}/cancel"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    assert!(
        sipp.await.unwrap(),
        "the carrier took our credentials:\n{}",
        log()
    );
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success(), "{}", log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_sdp_is_hung_up_as_a_trunk_error() {
    let answer = answering(None, None);
    let sdp_start = answer.find("Content-Type: application/sdp").unwrap();
    let sdp_end = answer.find("a=ptime:20\n").unwrap() + "a=ptime:20\n".len();
    let scenario = format!(
        "{}Content-Length: 0\n\n{}",
        &answer[..sdp_start],
        &answer[sdp_end..]
    );
    let call = failed_against(Db::Sqlite, scenario, 1, |_| {}).await;
    assert_eq!(call["end_reason"], "trunk_error", "{call:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_racing_our_cancel_is_acked_and_hung_up() {
    let scenario = include_str!("sipp/carrier_answer_after_cancel.xml").to_owned();
    let call = failed_against(Db::Sqlite, scenario, 1, |c| {
        c.telephony.ring_timeout_seconds = 1;
    })
    .await;
    assert_eq!(call["end_reason"], "no_answer", "{call:#}");
    assert!(call["answered_at"].is_null(), "{call:#}");
}

/// No response at all: the INVITE times out (64 × T1 = 32 s) even after the ring timeout, when
/// no CANCEL may be sent yet; the call is not left `calling`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_that_never_answers_ends_the_attempt_at_the_invite_timeout() {
    let scenario = include_str!("sipp/carrier_silent.xml").to_owned();
    let call = failed_against(Db::Sqlite, scenario, 1, |c| {
        c.telephony.ring_timeout_seconds = 2;
    })
    .await;
    assert_eq!(call["end_reason"], "no_answer", "{call:#}");
    assert_eq!(call["sip_status"], 408);
    assert!(call["ringing_at"].is_null());
}

/// The callee hangs up after the greeting has started: the call completes as the callee's
/// hang-up, billed. (A BYE that overtakes our ACK is a sans-IO test in voxbridge-sip: SIPp
/// cannot be made to send it before our ACK arrives.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callee_hanging_up_completes_the_call() {
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |_| {}).await;
    let scenario = include_str!("sipp/carrier_hangup.xml");
    let sipp = carrier(port, scenario.to_owned(), 1);
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    assert!(sipp.await.unwrap(), "our 200 answered the callee's BYE");
    let call = reaches(&app, &id, "completed", 10).await;
    assert_eq!(call["end_reason"], "caller_hangup", "{call:#}");
    assert!(call["answered_at"].is_string(), "{call:#}");
    assert!(call["duration_seconds"].as_i64().unwrap() >= 1, "{call:#}");
    assert_eq!(used(&app).await.0, 1, "a started minute billed");
    let greeting = &call["transcript"][0];
    assert_eq!(greeting["text"], GREETING);
    assert_eq!(
        greeting["interrupted"], true,
        "cut off by the hang-up: {call:#}"
    );
    ports_released(&app).await;
    app.stop().await;
}

/// Inbound and outbound calls share the node's cap (`max_concurrent_calls = 1`): while an
/// outbound call talks, an INVITE is refused with 503 + Retry-After and a second queued call
/// waits (no attempt spent); once the first ends, the second is dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_and_outbound_calls_share_the_node_cap() {
    let port = carrier_port();
    let app = start(Db::Sqlite, None, port, |c| {
        c.telephony.max_concurrent_calls = 1;
    })
    .await;
    let sipp = carrier(port, answering(None, None), 2);
    let first = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    reaches(&app, &first, "in_progress", 10).await;

    let sip = app.server.as_ref().unwrap().sip_addr;
    let media_port = common::sipp::media_port().to_string();
    let refused = tokio::task::spawn_blocking(move || {
        let args = ["-s", "+12025550142", "-i", "127.0.0.1", "-mi", "127.0.0.1"];
        let scenario = include_str!("sipp/refused_busy.xml");
        common::sipp::run(sip, scenario, &[&args[..], &["-mp", &media_port]].concat())
    })
    .await
    .unwrap();
    assert!(refused, "the INVITE is refused with 503 + Retry-After");

    let second = queue(&app, json!({"to": "+12025550198", "context": {}})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, waiting) = app.get(&format!("/v1/calls/{second}"), ACME_KEY).await;
    assert_eq!(
        (waiting["status"].as_str(), waiting["attempts"].as_i64()),
        (Some("queued"), Some(0)),
        "{waiting}"
    );
    let cancel = |id: String| {
        let app = &app;
        async move {
            let (status, call) = app
                .post(&format!("/v1/calls/{id}/cancel"), ACME_KEY, "")
                .await;
            assert_eq!(status, 200, "{call}");
        }
    };
    cancel(first.clone()).await;
    reaches(&app, &second, "in_progress", 10).await;
    cancel(second.clone()).await;
    assert!(
        sipp.await.unwrap(),
        "the carrier got both calls, and a BYE for each"
    );
    let (_, second) = app.get(&format!("/v1/calls/{second}"), ACME_KEY).await;
    assert_eq!(second["attempts"], 1);
    app.stop().await;
}

/// A graceful stop hangs up an answered outbound call as it does an inbound one: BYE to the
/// carrier, and the call stored completed (`agent_hangup`), with its minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hangs_up_answered_outbound_calls() {
    let port = carrier_port();
    let mut app = start(Db::Sqlite, None, port, |_| {}).await;
    let sipp = carrier(port, answering(None, None), 1);
    let id = queue(&app, json!({"to": "+12025550199", "context": {}})).await;
    reaches(&app, &id, "in_progress", 10).await;
    let org = app
        .store()
        .org_by_number("+12025550142")
        .await
        .unwrap()
        .unwrap()
        .id;
    let store = app.shut_down_and_reopen().await;
    assert!(sipp.await.unwrap(), "the carrier got our BYE");
    let call = store
        .call(org, uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.status.as_str(), "completed");
    assert_eq!(call.end_reason.map(|r| r.as_str()), Some("agent_hangup"));
    assert!(call.duration_seconds.is_some());
    store.close().await;
}
