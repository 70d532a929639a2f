//! Dispatcher bookkeeping on both databases: claims, attempts, retries, final failure, the
//! schedule, cancellation mid-attempt, concurrency limits and lease recovery. Schedules,
//! backoff and leases run on virtual time (a `ManualClock` the test moves). The telephony
//! layer is replaced at its seam, the `Dialer` trait, by a scripted one.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Db, TestApp, ACME_KEY, GLOBEX_KEY};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use voxbridge::clock::{Clock, ManualClock};
use voxbridge::config::{Config, RetryConfig};
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
    /// Rings until dropped, or until the server stops.
    RingForever,
    /// Still getting ready to send the INVITE when the server stops: sends nothing.
    StoppedBeforeInvite,
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
    /// The server's clock, and when (on it) each dial started.
    clock: Mutex<Clock>,
    dialled_at: Mutex<Vec<OffsetDateTime>>,
    /// Calls being dialled or talking now by org, and the most there ever were.
    org_active: Mutex<HashMap<uuid::Uuid, (usize, usize)>>,
    /// The carrier answers 503 to everything.
    carrier_down: std::sync::atomic::AtomicBool,
}

struct ActiveGuard<'a>(&'a ScriptedDialer, uuid::Uuid);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
        if let Some((now, _)) = self.0.org_active.lock().unwrap().get_mut(&self.1) {
            *now -= 1;
        }
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
        {
            let mut orgs = self.org_active.lock().unwrap();
            let (now, max) = orgs.entry(call.org_id).or_default();
            *now += 1;
            *max = (*max).max(*now);
        }
        let _guard = ActiveGuard(self, call.org_id);
        let now = self.clock.lock().unwrap().now();
        self.dialled_at.lock().unwrap().push(now);
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
        if self.carrier_down.load(Ordering::SeqCst) {
            return AttemptOutcome::Failed {
                outcome: Outcome::TrunkError,
                sip_status: Some(503),
            };
        }
        match step {
            Step::Answer { secs } => {
                let answered = answer.answered(Some(200));
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
            Step::RingForever => {
                // Until canceled (the dial is dropped) or the server stops: then CANCEL.
                let _ = answer.hang_up().wait_for(|stop| *stop).await;
                AttemptOutcome::Failed {
                    outcome: Outcome::NoCapacity,
                    sip_status: None,
                }
            }
            Step::StoppedBeforeInvite => {
                let _ = answer.hang_up().wait_for(|stop| *stop).await;
                AttemptOutcome::NotPlaced
            }
        }
    }

    fn room(&self) -> usize {
        self.room.lock().unwrap().unwrap_or(usize::MAX)
    }
}

const RETRY_AT_ONCE: RetryConfig = RetryConfig {
    busy_seconds: 0,
    no_answer_seconds: 0,
    trunk_error_seconds: 0,
};

async fn start(db: Db, dialer: Arc<ScriptedDialer>, max_concurrent: usize) -> TestApp {
    start_on(db, dialer, Clock::system(), |c| {
        c.telephony.max_concurrent_calls = max_concurrent
    })
    .await
}

/// A server on virtual time: nothing that waits on its clock moves until the test moves it.
async fn start_virtual(
    db: Db,
    dialer: Arc<ScriptedDialer>,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, ManualClock) {
    let clock = ManualClock::starting_at(common::virtual_start());
    *dialer.clock.lock().unwrap() = clock.clock();
    let app = start_on(db, dialer, clock.clock(), tweak).await;
    (app, clock)
}

/// Dialling through the loopback trunk, 50 calls per second, 10 at once, failed attempts
/// retried at once; then `tweak`.
async fn start_on(
    db: Db,
    dialer: Arc<ScriptedDialer>,
    clock: Clock,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    TestApp::start_with_clock(
        db,
        None,
        |c| {
            c.telephony.enabled = true;
            c.telephony.outbound_trunk = Some("carrier".into());
            c.telephony.retry = RETRY_AT_ONCE;
            c.telephony.calls_per_second = 50;
            c.telephony.max_concurrent_calls = 10;
            c.trunks.push(common::loopback_trunk("127.0.0.0/8"));
            tweak(c);
        },
        Some(dialer),
        clock,
    )
    .await
}

/// Lets the server act on what the test just did (it runs on real time beside the test).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    common::eventually(15, &format!("call {id} to be {status}"), || {
        has_status(app, id, status)
    })
    .await
}

/// Waits for the call's status while virtual time moves on by `step` per tick.
async fn tick_until_status(
    app: &TestApp,
    clock: &ManualClock,
    step: Duration,
    id: &str,
    status: &str,
) -> Value {
    let what = format!("call {id} to be {status}");
    common::tick_until(clock, step, 15, &what, || has_status(app, id, status)).await
}

async fn has_status(app: &TestApp, id: &str, status: &str) -> Option<Value> {
    let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    (call["status"] == status).then_some(call)
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
    a_ringing_attempt_keeps_its_lease_until_canceled,
    concurrency_limit_is_respected,
    a_node_without_room_leaves_due_calls_queued,
    an_expired_lease_ends_the_attempt_and_retries_if_attempts_remain,
    org_and_trunk_caps_hold_while_calls_wait,
    a_stop_gives_back_claims_not_yet_dialled,
    a_claim_takes_no_more_calls_than_asked,
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

/// Busy is retried after `busy_seconds`, no answer only after `no_answer_seconds` (an hour,
/// on virtual time).
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
    let (app, clock) =
        start_virtual(Db::Sqlite, dialer.clone(), |c| c.telephony.retry = retry).await;
    let was_busy = app.queue_call(r#"{"to": "+12025550144"}"#).await;
    let was_away = app.queue_call(r#"{"to": "+12025550145"}"#).await;
    // Calls go out 20 ms apart at 50 a second: time has to move for the second.
    let step = Duration::from_millis(20);
    let busy_id = was_busy["id"].as_str().unwrap();
    let completed = tick_until_status(&app, &clock, step, busy_id, "completed").await;
    assert_eq!(completed["attempts"], 2);
    let away_id = was_away["id"].as_str().unwrap();
    let booked = "the first attempt to be booked";
    let waiting = common::tick_until(&clock, step, 15, booked, || async {
        let call = has_status(&app, away_id, "queued").await?;
        (call["attempts"] == 1).then_some(call)
    })
    .await;
    assert_eq!(waiting["end_reason"], "no_answer");
    let id = uuid::Uuid::parse_str(away_id).unwrap();
    let org = acme(&app).await;
    let stored = app.store().call(org.id, id).await.unwrap().unwrap();
    let wait = stored.next_attempt_at - clock.now();
    assert!(
        (2880..=4320).contains(&wait.whole_seconds()),
        "an hour ± 20 %: {wait}"
    );

    clock.advance((wait - time::Duration::SECOND).unsigned_abs());
    settle().await;
    let (_, early) = app.get(&format!("/v1/calls/{away_id}"), ACME_KEY).await;
    assert_eq!(
        (early["status"].as_str(), early["attempts"].as_i64()),
        (Some("queued"), Some(1)),
        "a second before the retry is due"
    );
    let done = tick_until_status(&app, &clock, Duration::from_secs(1), away_id, "completed").await;
    assert_eq!(done["attempts"], 2);
    assert!(parse_time(&done["answered_at"]) >= stored.next_attempt_at);
    app.stop().await;
}

/// Minutes used up between queueing and the due time: the call ends without a dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_due_after_the_minutes_ran_out_is_not_dialed() {
    let dialer = Arc::new(ScriptedDialer::default());
    let (app, clock) = start_virtual(Db::Sqlite, dialer.clone(), |_| {}).await;
    let at = rfc3339(clock.now() + time::Duration::minutes(10));
    let body = format!(r#"{{"to": "+12025550148", "schedule_at": "{at}"}}"#);
    let id = app.queue_call(&body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = acme(&app).await;
    app.store().charge_minutes(org.id, 1000).await.unwrap();
    clock.advance(Duration::from_secs(599));
    let failed = tick_until_status(&app, &clock, Duration::from_secs(1), &id, "failed").await;
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
    let (app, clock) = start_virtual(db, dialer.clone(), |_| {}).await;
    let scheduled = clock.now() + time::Duration::hours(1);
    let body = format!(
        r#"{{"to": "+12025550147", "schedule_at": "{}"}}"#,
        rfc3339(scheduled)
    );
    let call = app.queue_call(&body).await;
    let id = call["id"].as_str().unwrap();
    clock.advance(Duration::from_secs(3599));
    settle().await;
    let (_, early) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(
        (early["status"].as_str(), early["attempts"].as_i64()),
        (Some("queued"), Some(0)),
        "a second before schedule_at"
    );
    assert!(dialer.dials.lock().unwrap().is_empty());
    let done = tick_until_status(&app, &clock, Duration::from_secs(1), id, "completed").await;
    let answered = parse_time(&done["answered_at"]);
    assert!(
        answered >= scheduled && answered < scheduled + time::Duration::minutes(1),
        "dialled at {answered}, scheduled {scheduled}"
    );
    app.stop().await;
}

/// Two virtual minutes of ringing outlive the 30 s lease several times over: the attempt's
/// heartbeats keep it, and a cancel ends it.
async fn a_ringing_attempt_keeps_its_lease_until_canceled(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.script("+12025550148", &[Step::RingForever]);
    let (app, clock) = start_virtual(db, dialer.clone(), |_| {}).await;
    let call = app.queue_call(r#"{"to": "+12025550148"}"#).await;
    let id = call["id"].as_str().unwrap();
    wait_status(&app, id, "calling").await;
    for _ in 0..120 {
        clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, ringing) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(ringing["status"], "calling", "{ringing}");
    assert_eq!(dialer.dropped.load(Ordering::SeqCst), 0);
    let (status, canceled) = app
        .post(&format!("/v1/calls/{id}/cancel"), ACME_KEY, "")
        .await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    // A cancel on this node reaches its attempt at once, without waiting for a heartbeat.
    common::eventually(10, "the dial to be dropped", || async {
        (dialer.dropped.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let (_, after) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(after["status"], "canceled");
    assert_eq!(dialer.dials.lock().unwrap().len(), 1);
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
    let (app, clock) = start_virtual(db, dialer.clone(), |_| {}).await;
    let call = app.queue_call(r#"{"to": "+12025550143"}"#).await;
    let id = call["id"].as_str().unwrap();
    // A minute of dispatcher polls while the node has no room (media ports, recognition).
    for _ in 0..30 {
        clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    settle().await;
    let (_, waiting) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert_eq!(
        waiting["attempts"], 0,
        "waiting spends no attempt: {waiting}"
    );
    assert!(dialer.dials.lock().unwrap().is_empty());
    *dialer.room.lock().unwrap() = Some(1);
    let done = tick_until_status(&app, &clock, Duration::from_millis(500), id, "completed").await;
    assert_eq!(done["attempts"], 1);
    app.stop().await;
}

/// A node claimed two calls and stopped heartbeating (it died). Once its 30 s lease has run
/// out, the running dispatcher ends both attempts as errors: the call with attempts left is
/// dialled again, the other fails. Neither is dialled while the lease holds.
async fn an_expired_lease_ends_the_attempt_and_retries_if_attempts_remain(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    // This node takes no call before the dead one has claimed both.
    *dialer.room.lock().unwrap() = Some(0);
    let (app, clock) = start_virtual(db, dialer.clone(), |_| {}).await;
    let retried = app.queue_call(r#"{"to": "+12025550149"}"#).await;
    let last = app
        .queue_call(r#"{"to": "+12025550150", "max_attempts": 1}"#)
        .await;
    let (retried, last) = (
        retried["id"].as_str().unwrap(),
        last["id"].as_str().unwrap(),
    );
    let claimed_at = clock.now();
    let now_ms = voxbridge::domain::to_millis(claimed_at);
    let claimed = app
        .store()
        .claim_due_calls("dead-node", now_ms, now_ms + 30_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    *dialer.room.lock().unwrap() = None;
    clock.advance(Duration::from_secs(29));
    settle().await;
    for id in [retried, last] {
        let (_, held) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        assert_eq!(held["status"], "calling", "the lease still holds: {held}");
    }
    assert!(
        dialer.dials.lock().unwrap().is_empty(),
        "not dialled while the lease holds"
    );

    let failed = tick_until_status(&app, &clock, Duration::from_secs(1), last, "failed").await;
    assert_eq!(failed["end_reason"], "error");
    let late = clock.now() - claimed_at;
    assert!(
        late >= time::Duration::seconds(30) && late <= time::Duration::seconds(45),
        "ended {late} after the claim: lease 30 s, looked for every 10 s"
    );
    let done = tick_until_status(&app, &clock, Duration::from_secs(1), retried, "completed").await;
    assert_eq!(done["attempts"], 2);
    let dials = dialer.dials.lock().unwrap().clone();
    assert_eq!(
        dials,
        [("+12025550149".to_owned(), 2)],
        "one dial, the retry"
    );
    assert!(dialer.dialled_at.lock().unwrap()[0] >= claimed_at + time::Duration::seconds(30));
    let events = |id: &str| {
        let store = app.store().clone();
        let id = uuid::Uuid::parse_str(id).unwrap();
        async move { store.call_events(id).await.unwrap() }
    };
    assert_eq!(
        event_types(&events(last).await),
        ["call.queued", "call.calling", "call.ended"]
    );
    assert_eq!(
        event_types(&events(retried).await)[..4],
        ["call.queued", "call.calling", "call.queued", "call.calling"]
    );
    app.stop().await;
}

/// 20 calls due at once at `calls_per_second = 5`: one every 200 ms of virtual time, never a
/// burst (a carrier counting calls per second would refuse one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dials_keep_to_calls_per_second() {
    let dialer = Arc::new(ScriptedDialer::default());
    let (app, clock) = start_virtual(Db::Sqlite, dialer.clone(), |c| {
        c.telephony.calls_per_second = 5;
        c.telephony.max_concurrent_calls = 100;
    })
    .await;
    let start = clock.now();
    for i in 0..20 {
        app.queue_call(&format!(r#"{{"to": "+1202555{:04}"}}"#, 400 + i))
            .await;
    }
    common::tick_until(
        &clock,
        Duration::from_millis(50),
        30,
        "20 dials",
        || async { (dialer.dialled_at.lock().unwrap().len() == 20).then_some(()) },
    )
    .await;
    let mut at: Vec<i128> = dialer
        .dialled_at
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - start).whole_milliseconds())
        .collect();
    at.sort_unstable();
    for (i, ms) in at.iter().enumerate() {
        let allowed = 1 + ms / 200;
        assert!(
            (i as i128) < allowed,
            "dial {} at {ms} ms: at most {allowed} by then ({at:?})",
            i + 1
        );
    }
    assert!(
        (3800..4800).contains(&at[19]),
        "one at once, then 19 at 5/s: the last at {} ms",
        at[19]
    );
    app.stop().await;
}

/// Calls of two orgs wait on three caps at once: acme may have 2 calls at once, the trunk 3,
/// the node 10. Every call is dialled once, and no cap is ever exceeded.
async fn org_and_trunk_caps_hold_while_calls_wait(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    let app = start_on(db, dialer.clone(), Clock::system(), |c| {
        c.orgs[0].max_concurrent_calls = Some(2);
        c.trunks[0].max_concurrent = Some(3);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let call = app
            .queue_call(&format!(r#"{{"to": "+1202555{:04}"}}"#, 500 + i))
            .await;
        ids.push(call["id"].as_str().unwrap().to_owned());
    }
    for i in 0..3 {
        let body = format!(r#"{{"to": "+1202555{:04}"}}"#, 600 + i);
        let (status, call) = app.post("/v1/calls/outbound", GLOBEX_KEY, &body).await;
        assert_eq!(status, 201, "{call}");
    }
    for id in &ids {
        wait_status(&app, id, "completed").await;
    }
    common::eventually(15, "globex's calls to be dialled", || async {
        (dialer.dials.lock().unwrap().len() == 8).then_some(())
    })
    .await;
    let acme = acme(&app).await.id;
    let org_max = dialer.org_active.lock().unwrap()[&acme].1;
    assert_eq!(org_max, 2, "acme's cap held and was reached");
    assert_eq!(
        dialer.max_active.load(Ordering::SeqCst),
        3,
        "the trunk's cap held and was reached"
    );
    let mut dialled: Vec<String> = dialer
        .dials
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.0.clone())
        .collect();
    dialled.sort();
    dialled.dedup();
    assert_eq!(dialled.len(), 8, "each call dialled once");
    app.stop().await;
}

/// A graceful stop hands claimed calls that were not dialled yet back to the queue: no
/// attempt spent, due at once for another node.
async fn a_stop_gives_back_claims_not_yet_dialled(db: Db) {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.script("+12025550151", &[Step::StoppedBeforeInvite]);
    let app = start(db, dialer.clone(), 10).await;
    let call = app.queue_call(r#"{"to": "+12025550151"}"#).await;
    let id = uuid::Uuid::parse_str(call["id"].as_str().unwrap()).unwrap();
    wait_status(&app, &id.to_string(), "calling").await;
    let org = acme(&app).await.id;
    let mut app = app;
    let store = app.shut_down_and_reopen().await;
    let after = store.call(org, id).await.unwrap().unwrap();
    assert_eq!(after.status.as_str(), "queued");
    assert_eq!(after.attempts, 0, "no attempt spent");
    assert!(
        after.next_attempt_at <= Clock::system().now(),
        "due at once"
    );
    let events = store.call_events(id).await.unwrap();
    assert_eq!(
        event_types(&events),
        ["call.queued", "call.calling", "call.queued"]
    );
    store.close().await;
}

/// A carrier that answers 503 to everything gets probes, one call at a time after pauses that
/// double, not the batch again at every call's retry; the calls wait without spending their
/// attempts, and all go once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_failing_every_call_is_probed_not_stormed() {
    let dialer = Arc::new(ScriptedDialer::default());
    dialer.carrier_down.store(true, Ordering::SeqCst);
    let (app, clock) = start_virtual(Db::Sqlite, dialer.clone(), |c| {
        c.telephony.retry.trunk_error_seconds = 60;
        c.telephony.max_concurrent_calls = 100;
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let call = app
            .queue_call(&format!(r#"{{"to": "+1202555{:04}"}}"#, 700 + i))
            .await;
        ids.push(call["id"].as_str().unwrap().to_owned());
    }
    // Five virtual minutes of outage, a second per tick (about a dial per tick until the gate
    // closes). Without the gate every call would be dialled, and again after its minute.
    for _ in 0..300 {
        clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let dials = dialer.dials.lock().unwrap().len();
    assert!(
        (6..=25).contains(&dials),
        "five errors in a row, the calls already on their way, then probes: {dials} dials"
    );
    let org = acme(&app).await;
    for id in &ids {
        let id = uuid::Uuid::parse_str(id).unwrap();
        let call = app.store().call(org.id, id).await.unwrap().unwrap();
        assert_eq!(call.status.as_str(), "queued", "none failed for good");
    }

    dialer.carrier_down.store(false, Ordering::SeqCst);
    for id in &ids {
        tick_until_status(&app, &clock, Duration::from_secs(2), id, "completed").await;
    }
    app.stop().await;
}

/// Two nodes on one PostgreSQL whose clocks disagree by 5 s: the node ahead, looking for
/// expired leases, never takes a call from the node that holds it and heartbeats, through
/// three virtual minutes of ringing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_runs_ahead_takes_no_call_another_holds() {
    let holder = Arc::new(ScriptedDialer::default());
    let (app, clock) = start_virtual(Db::Postgres, holder.clone(), |_| {}).await;
    let ahead = ManualClock::starting_at(clock.now() + time::Duration::seconds(5));
    let other = Arc::new(ScriptedDialer::default());
    // The other node only recovers; it has no room to dial.
    *other.room.lock().unwrap() = Some(0);
    let mut config = common::parse_config(&common::base_config_toml(&app.database_url, None));
    config.telephony.enabled = true;
    config.telephony.outbound_trunk = Some("carrier".into());
    config.trunks.push(common::loopback_trunk("127.0.0.0/8"));
    let second = voxbridge::server::Server::start(config, Some(other.clone()), ahead.clock())
        .await
        .expect("the second node starts");
    let mut ids = Vec::new();
    for i in 0..5 {
        let to = format!("+1202555{:04}", 800 + i);
        holder.script(&to, &[Step::RingForever]);
        let call = app.queue_call(&format!(r#"{{"to": "{to}"}}"#)).await;
        ids.push(call["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        // Calls go out 20 ms apart at 50 a second: both clocks move on for the next.
        common::tick_until(
            &clock,
            Duration::from_millis(20),
            15,
            "the calls to ring",
            || async {
                ahead.advance(Duration::from_millis(20));
                has_status(&app, id, "calling").await
            },
        )
        .await;
    }
    for _ in 0..180 {
        clock.advance(Duration::from_secs(1));
        ahead.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    for id in &ids {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        assert_eq!(
            (call["status"].as_str(), call["attempts"].as_i64()),
            (Some("calling"), Some(1)),
            "{call}"
        );
    }
    assert_eq!(holder.dials.lock().unwrap().len(), 5);
    assert_eq!(
        holder.dropped.load(Ordering::SeqCst),
        0,
        "no dial was dropped"
    );
    second.shutdown().await;
    app.stop().await;
}

/// Ten calls due in the same millisecond, claimed one at a time: each claim takes exactly one
/// (PostgreSQL once took all ten for a limit of 1).
async fn a_claim_takes_no_more_calls_than_asked(db: Db) {
    let app = TestApp::start(db, None).await;
    let due = rfc3339(Clock::system().now() - time::Duration::SECOND);
    for i in 0..10 {
        let body = format!(
            r#"{{"to": "+1202555{:04}", "schedule_at": "{due}"}}"#,
            950 + i
        );
        app.queue_call(&body).await;
    }
    let now = Clock::system().now_ms();
    for taken in 1..=10 {
        let claimed = app
            .store()
            .claim_due_calls("node", now, now + 30_000, 1, &[])
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "claim {taken}");
    }
    let none = app
        .store()
        .claim_due_calls("node", now, now + 30_000, 5, &[])
        .await
        .unwrap();
    assert!(none.is_empty());
    app.stop().await;
}
