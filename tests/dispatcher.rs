//! Dispatcher bookkeeping on both databases: claims, attempts, retries, final failure, the
//! schedule, cancellation mid-attempt, concurrency limits and lease recovery. The telephony
//! layer is replaced at its seam, the `Dialer` trait, by a scripted one.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Db, TestApp, ACME_KEY};
use serde_json::Value;
use voxbridge::config::RetryConfig;
use voxbridge::dispatcher::{AttemptOutcome, AttemptProgress, Dialer};
use voxbridge::domain::{Analysis, EndReason, Speaker, TranscriptEntry};
use voxbridge::outcome::Outcome;

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Answers, talks for `secs` (of call time, not test time), caller hangs up.
    Answer {
        secs: i64,
    },
    Fail(Outcome, u16),
    /// Rings until dropped.
    RingForever,
}

#[derive(Default)]
struct ScriptedDialer {
    scripts: Mutex<HashMap<String, Vec<Step>>>,
    dials: Mutex<Vec<(String, i64)>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
    dropped: AtomicUsize,
    /// Calls the node has room for; `None`: unlimited.
    room: Mutex<Option<usize>>,
}

struct ActiveGuard<'a>(&'a ScriptedDialer);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl ScriptedDialer {
    fn script(&self, to: &str, steps: &[Step]) {
        self.scripts
            .lock()
            .unwrap()
            .insert(to.to_owned(), steps.to_vec());
    }
}

#[async_trait]
impl Dialer for ScriptedDialer {
    async fn dial(
        &self,
        call: &voxbridge::domain::Call,
        answer: AttemptProgress,
    ) -> AttemptOutcome {
        let active = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(active, Ordering::SeqCst);
        let _guard = ActiveGuard(self);
        self.dials
            .lock()
            .unwrap()
            .push((call.to.clone(), call.attempts));
        let step = {
            let scripts = self.scripts.lock().unwrap();
            let steps = scripts.get(&call.to).cloned().unwrap_or_default();
            steps
                .get((call.attempts - 1) as usize)
                .copied()
                .unwrap_or(Step::Answer { secs: 30 })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        match step {
            Step::Answer { secs } => {
                let answered = voxbridge::domain::now();
                answer.answered(answered, Some(200));
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut analysis = Analysis::default();
                analysis.answers.insert("tour".into(), Value::Bool(true));
                analysis
                    .answer_text
                    .insert("tour".into(), "yes please".into());
                AttemptOutcome::Completed {
                    ended_at: answered + time::Duration::seconds(secs),
                    end_reason: EndReason::CallerHangup,
                    transcript: vec![
                        TranscriptEntry {
                            role: Speaker::Agent,
                            text: "Would you like a tour?".into(),
                            start_ms: 0,
                            end_ms: 1500,
                            interrupted: false,
                        },
                        TranscriptEntry {
                            role: Speaker::Caller,
                            text: "yes please".into(),
                            start_ms: 1800,
                            end_ms: 2600,
                            interrupted: false,
                        },
                    ],
                    analysis: Some(analysis),
                    quality: None,
                }
            }
            Step::Fail(outcome, code) => AttemptOutcome::Failed {
                outcome,
                sip_status: Some(code),
            },
            Step::RingForever => std::future::pending().await,
        }
    }

    fn room(&self) -> usize {
        self.room.lock().unwrap().unwrap_or(usize::MAX)
    }
}

async fn start(db: Db, dialer: Arc<ScriptedDialer>, max_concurrent: usize) -> TestApp {
    let retry_at_once = RetryConfig {
        busy_seconds: 0,
        no_answer_seconds: 0,
        trunk_error_seconds: 0,
    };
    start_retrying(db, dialer, max_concurrent, retry_at_once).await
}

async fn start_retrying(
    db: Db,
    dialer: Arc<ScriptedDialer>,
    max_concurrent: usize,
    retry: RetryConfig,
) -> TestApp {
    TestApp::start_with(
        db,
        None,
        |c| {
            c.telephony.enabled = true;
            c.telephony.outbound_trunk = Some("carrier".into());
            c.telephony.retry = retry;
            c.telephony.calls_per_second = 50;
            c.telephony.max_concurrent_calls = max_concurrent;
            c.trunks.push(common::loopback_trunk("127.0.0.0/8"));
        },
        Some(dialer),
    )
    .await
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    common::eventually(15, &format!("call {id} to be {status}"), || async {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        (call["status"] == status).then_some(call)
    })
    .await
}

/// The org "acme" as stored.
async fn acme(app: &TestApp) -> voxbridge::domain::Org {
    let org = app.store().org_by_number("+12025550142").await.unwrap();
    org.expect("acme owns the demo DID")
}

fn event_types(events: &[(String, String, i64)]) -> Vec<&str> {
    events.iter().map(|e| e.0.as_str()).collect()
}

on_both_databases!(
    answered_call_completes_and_charges_minutes,
    busy_is_retried_up_to_max_attempts_then_failed,
    invalid_number_is_not_retried,
    schedule_at_is_honoured,
    cancel_during_calling_hangs_up,
    concurrency_limit_is_respected,
    a_node_without_room_leaves_due_calls_queued,
    expired_leases_fail_without_redialling,
);

async fn answered_call_completes_and_charges_minutes(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.script("+12025550143", &[Step::Answer { secs: 61 }]);
    let app = start(db, dialer.clone(), 10).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let id = call["id"].as_str().unwrap();
    let done = wait_status(&app, id, "completed").await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["duration_seconds"], 61);
    assert_eq!(done["end_reason"], "caller_hangup");
    assert_eq!(done["sip_status"], 200);
    assert!(done["answered_at"].is_string() && done["ended_at"].is_string());
    assert_eq!(done["transcript"][1]["role"], "caller");
    assert_eq!(done["analysis"]["answers"]["tour"], true);
    let (_, org) = app.get("/v1/org", ACME_KEY).await;
    assert_eq!(org["minutes_used"], 2, "61 s bill as two started minutes");
    let events = app
        .store()
        .call_events(uuid::Uuid::parse_str(id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        event_types(&events),
        [
            "call.queued",
            "call.calling",
            "call.answered",
            "call.ended",
            "call.analyzed"
        ]
    );
    app.stop().await;
}

async fn busy_is_retried_up_to_max_attempts_then_failed(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    let busy = Step::Fail(Outcome::Busy, 486);
    dialer.script("+12025550144", &[busy, busy, busy, busy]);
    dialer.script("+12025550145", &[busy, Step::Answer { secs: 5 }]);
    let app = start(db, dialer.clone(), 10).await;
    let failing = app
        .queue_call(r#"{"to": "+12025550144", "max_attempts": 3}"#)
        .await;
    let recovering = app.queue_call(r#"{"to": "+12025550145"}"#).await;
    let failed = wait_status(&app, failing["id"].as_str().unwrap(), "failed").await;
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["end_reason"], "busy");
    assert_eq!(failed["sip_status"], 486);
    let completed = wait_status(&app, recovering["id"].as_str().unwrap(), "completed").await;
    assert_eq!(completed["attempts"], 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dials = dialer.dials.lock().unwrap().clone();
    assert_eq!(
        dials.iter().filter(|(to, _)| to == "+12025550144").count(),
        3,
        "never more than max_attempts"
    );
    let events = app
        .store()
        .call_events(uuid::Uuid::parse_str(failing["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        event_types(&events),
        [
            "call.queued",
            "call.calling",
            "call.queued",
            "call.calling",
            "call.queued",
            "call.calling",
            "call.ended"
        ]
    );
    app.stop().await;
}

/// Busy is retried after `busy_seconds`, no answer only after `no_answer_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_before_a_retry_depends_on_why_the_attempt_failed() {
    let dialer = Arc::new(ScriptedDialer::default());
    let busy = Step::Fail(Outcome::Busy, 486);
    let away = Step::Fail(Outcome::NoAnswer, 480);
    dialer.script("+12025550144", &[busy, Step::Answer { secs: 5 }]);
    dialer.script("+12025550145", &[away, Step::Answer { secs: 5 }]);
    let retry = RetryConfig {
        busy_seconds: 0,
        no_answer_seconds: 3600,
        trunk_error_seconds: 0,
    };
    let app = start_retrying(Db::Sqlite, dialer.clone(), 10, retry).await;
    let was_busy = app.queue_call(r#"{"to": "+12025550144"}"#).await;
    let was_away = app.queue_call(r#"{"to": "+12025550145"}"#).await;
    let completed = wait_status(&app, was_busy["id"].as_str().unwrap(), "completed").await;
    assert_eq!(completed["attempts"], 2);
    let waiting = wait_status(&app, was_away["id"].as_str().unwrap(), "queued").await;
    assert_eq!(waiting["end_reason"], "no_answer");
    assert_eq!(waiting["attempts"], 1);
    let id = uuid::Uuid::parse_str(was_away["id"].as_str().unwrap()).unwrap();
    let org = acme(&app).await;
    let stored = app.store().call(org.id, id).await.unwrap().unwrap();
    let wait = (stored.next_attempt_at - voxbridge::domain::now()).whole_seconds();
    assert!((2800..=4400).contains(&wait), "an hour ± 20 %: {wait} s");
    app.stop().await;
}

/// Minutes used up between queueing and the due time: the call ends without a dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_due_after_the_minutes_ran_out_is_not_dialed() {
    let dialer = Arc::new(ScriptedDialer::default());
    let app = start(Db::Sqlite, dialer.clone(), 10).await;
    let at = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = format!(r#"{{"to": "+12025550148", "schedule_at": "{at}"}}"#);
    let id = app.queue_call(&body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = acme(&app).await;
    app.store().charge_minutes(org.id, 1000).await.unwrap();
    let failed = wait_status(&app, &id, "failed").await;
    assert_eq!(failed["end_reason"], "quota_exhausted");
    assert!(dialer.dials.lock().unwrap().is_empty(), "never dialed");
    app.stop().await;
}

async fn invalid_number_is_not_retried(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.script("+12025550146", &[Step::Fail(Outcome::InvalidNumber, 404)]);
    let app = start(db, dialer.clone(), 10).await;
    let call = app
        .queue_call(r#"{"to": "+12025550146", "max_attempts": 5}"#)
        .await;
    let failed = wait_status(&app, call["id"].as_str().unwrap(), "failed").await;
    assert_eq!(
        (failed["attempts"].as_i64(), failed["end_reason"].as_str()),
        (Some(1), Some("invalid_number"))
    );
    app.stop().await;
}

async fn schedule_at_is_honoured(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    let app = start(db, dialer.clone(), 10).await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let at = at
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let call = app
        .queue_call(&format!(
            r#"{{"to": "+12025550147", "schedule_at": "{at}"}}"#
        ))
        .await;
    let id = call["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, early) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(
        (early["status"].as_str(), early["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    let done = wait_status(&app, id, "completed").await;
    let answered = time::OffsetDateTime::parse(
        done["answered_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let scheduled =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(
        answered >= scheduled,
        "dialled at {answered}, scheduled {scheduled}"
    );
    app.stop().await;
}

async fn cancel_during_calling_hangs_up(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.script("+12025550148", &[Step::RingForever]);
    let app = start(db, dialer.clone(), 10).await;
    let call = app.queue_call(r#"{"to": "+12025550148"}"#).await;
    let id = call["id"].as_str().unwrap();
    wait_status(&app, id, "calling").await;
    let (status, canceled) = app
        .post(&format!("/v1/calls/{id}/cancel"), ACME_KEY, "")
        .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    // The dispatcher notices at its next lease heartbeat (10 s) and drops the dial.
    common::eventually(20, "the dial to be dropped", || async {
        (dialer.dropped.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let (_, after) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(after["status"], "canceled");
    app.stop().await;
}

async fn concurrency_limit_is_respected(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    let app = start(db, dialer.clone(), 2).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let call = app
            .queue_call(&format!(r#"{{"to": "+1202555{:04}"}}"#, 300 + i))
            .await;
        ids.push(call["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_status(&app, id, "completed").await;
    }
    assert_eq!(
        dialer.max_active.load(Ordering::SeqCst),
        2,
        "never more than max_concurrent_calls at once"
    );
    assert_eq!(
        dialer.dials.lock().unwrap().len(),
        6,
        "each call dialled once"
    );
    app.stop().await;
}

async fn a_node_without_room_leaves_due_calls_queued(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    *dialer.room.lock().unwrap() = Some(0);
    let app = start(db, dialer.clone(), 10).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let id = call["id"].as_str().unwrap();
    // Several dispatcher polls while the node has no room (media ports, recognition).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, waiting) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert_eq!(
        waiting["attempts"], 0,
        "waiting spends no attempt: {waiting}"
    );
    assert!(dialer.dials.lock().unwrap().is_empty());
    *dialer.room.lock().unwrap() = Some(1);
    let done = wait_status(&app, id, "completed").await;
    assert_eq!(done["attempts"], 1);
    app.stop().await;
}

async fn expired_leases_fail_without_redialling(db: Db) {
    // A node claimed the call and died: its lease is already past.
    let app = TestApp::start(db, None).await;
    let call = app.queue_call(r#"{"to": "+12025550149"}"#).await;
    let now = voxbridge::domain::to_millis(voxbridge::domain::now());
    let claimed = app
        .store()
        .claim_due_calls("dead-node", now, now - 1, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Telephony is off in this app, so no dispatcher competes with the recovery below.
    let store = app.store().clone();

    let recovered = store
        .fail_expired_leases(voxbridge::domain::to_millis(voxbridge::domain::now()))
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].status.as_str(), "failed");
    assert_eq!(recovered[0].end_reason, Some(EndReason::Error));
    assert!(
        store
            .fail_expired_leases(now + 60_000)
            .await
            .unwrap()
            .is_empty(),
        "recovered once"
    );
    let events = store
        .call_events(uuid::Uuid::parse_str(call["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        event_types(&events),
        ["call.queued", "call.calling", "call.ended"]
    );
    app.stop().await;
}
