//! The database goes away for a few seconds in the middle of a batch (PostgreSQL stops
//! answering: every query and new connection waits): the dispatcher pauses and resumes, and
//! every call is dialled exactly once and completes. Its own test binary, so the frozen
//! PostgreSQL server is this test's alone.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Db, TestApp, ACME_KEY};
use voxbridge::dispatcher::{AttemptOutcome, AttemptProgress, Dialer};
use voxbridge::domain::{Call, EndReason};

/// Answers every call at once; the callee hangs up after 200 ms.
#[derive(Default)]
struct Answering {
    dials: Mutex<HashMap<String, usize>>,
}

#[async_trait]
impl Dialer for Answering {
    async fn dial(&self, call: &Call, progress: AttemptProgress) -> AttemptOutcome {
        *self
            .dials
            .lock()
            .unwrap()
            .entry(call.to.clone())
            .or_default() += 1;
        let answered = progress.answered(Some(200));
        tokio::time::sleep(Duration::from_millis(200)).await;
        AttemptOutcome::Completed {
            ended_at: answered + time::Duration::milliseconds(200),
            end_reason: EndReason::CallerHangup,
            transcript: Vec::new(),
            analysis: None,
            quality: None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_for_seconds_pauses_dialling_and_loses_or_doubles_nothing() {
    let dialer = Arc::new(Answering::default());
    let app = TestApp::start_with(
        Db::Postgres,
        None,
        |c| {
            c.telephony.enabled = true;
            c.telephony.outbound_trunk = Some("carrier".into());
            c.telephony.calls_per_second = 5;
            c.trunks.push(common::loopback_trunk("127.0.0.0/8"));
        },
        Some(dialer.clone()),
    )
    .await;
    // All due together a few seconds from now; at 5 a second the 40 take 8 s to dial.
    let due = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .replace_nanosecond(0)
        .unwrap();
    let at = due
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let body = format!(
            r#"{{"to": "+1202555{:04}", "schedule_at": "{at}"}}"#,
            900 + i
        );
        ids.push(
            app.queue_call(&body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A second into dialling, the database stops answering.
    let into = (due + time::Duration::seconds(1)) - time::OffsetDateTime::now_utc();
    tokio::time::sleep(into.try_into().unwrap_or_default()).await;
    let before = dialer.dials.lock().unwrap().len();
    tokio::task::spawn_blocking(|| common::postgres::freeze_for(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(before < 40, "frozen mid-batch ({before} dialled)");
    for id in &ids {
        common::eventually(60, "every call to complete", || async {
            let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
            (call["status"] == "completed").then_some(())
        })
        .await;
    }
    let dials = dialer.dials.lock().unwrap().clone();
    assert_eq!(dials.len(), 40, "every call dialled");
    assert!(dials.values().all(|n| *n == 1), "none twice: {dials:?}");
    for id in &ids {
        let (_, call) = app.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
        assert_eq!(call["attempts"], 1, "{call}");
    }
    app.stop().await;
}
