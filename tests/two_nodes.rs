//! Two nodes, two `voxbridge serve` processes, on one real PostgreSQL, dialling one batch of
//! 1,000 due calls through a SIPp carrier that counts INVITEs per call (X-VoxBridge-Call-Id):
//! both dispatchers share the work and every call is dialled exactly once; with one node
//! killed (-9) mid-batch, the other finishes the batch, each call dialled once per attempt.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::process::{free_port, spawn_server, wait_healthy, Process};
use common::ACME_KEY;
use sqlx::Row;

const CALLS: usize = 1_000;

/// Answers at once, and the callee hangs up 300 ms later.
fn carrier_scenario() -> String {
    include_str!("sipp/carrier_hangup.xml").replace(
        "<pause milliseconds=\"2000\"/>",
        "<pause milliseconds=\"300\"/>",
    )
}

struct Node {
    process: Process,
    base: String,
}

/// A node on `url` dialling `carrier`, with RTP ports of its own (`rtp_base`…+999).
async fn start_node(
    dir: &Path,
    name: &str,
    url: &str,
    carrier: u16,
    rtp_base: u16,
    lease: u64,
) -> Node {
    let http_port = free_port();
    let toml = common::config_on_port(url, None, http_port)
        + &format!(
            r#"
[telephony]
enabled = true
outbound_trunk = "carrier"
calls_per_second = 100
max_concurrent_calls = 100
lease_seconds = {lease}
[telephony.retry]
trunk_error_seconds = 0
[media]
rtp_port_min = {rtp_base}
rtp_port_max = {}

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {carrier}
from_number = "+12025550100"
"#,
            rtp_base + 999
        );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml).unwrap();
    let node = Node {
        process: spawn_server(&config),
        base: format!("http://127.0.0.1:{http_port}"),
    };
    wait_healthy(&reqwest::Client::new(), &node.base).await;
    node
}

/// Queues `CALLS` calls through `node`, all due at the same moment a few seconds ahead.
async fn queue_batch(node: &Node) {
    let http = reqwest::Client::new();
    let due = (time::OffsetDateTime::now_utc() + time::Duration::seconds(3))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for i in 0..CALLS {
        let body = format!(
            r#"{{"to": "+1202555{:04}", "schedule_at": "{due}"}}"#,
            1000 + i
        );
        let response = http
            .post(format!("{}/v1/calls/outbound", node.base))
            .bearer_auth(ACME_KEY)
            .body(body)
            .send()
            .await
            .expect("the node answers");
        assert_eq!(response.status(), 201);
    }
}

/// Each call's status and attempts.
async fn calls(db: &sqlx::PgPool) -> HashMap<String, (String, i64)> {
    let rows = sqlx::query("SELECT id, status, attempts FROM calls")
        .fetch_all(db)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get("id"), (r.get("status"), r.get("attempts"))))
        .collect()
}

async fn dialled(db: &sqlx::PgPool) -> usize {
    let calls = calls(db).await;
    calls.values().filter(|(_, attempts)| *attempts > 0).count()
}

async fn all_completed(db: &sqlx::PgPool) -> HashMap<String, (String, i64)> {
    let mut polls = 0;
    common::eventually(120, "every call to complete", || {
        polls += 1;
        let report = polls % 250 == 0;
        async move {
            let calls = calls(db).await;
            let done = calls.values().filter(|(s, _)| s == "completed").count();
            if report {
                let mut by_status: HashMap<&str, usize> = HashMap::new();
                for (status, _) in calls.values() {
                    *by_status.entry(status).or_default() += 1;
                }
                eprintln!("waiting for the batch: {by_status:?}");
            }
            (done == CALLS).then_some(calls)
        }
    })
    .await
}

struct Batch {
    dir: tempfile::TempDir,
    _carrier: Process,
    trace: std::path::PathBuf,
    db: sqlx::PgPool,
    nodes: [Node; 2],
}

/// Two nodes with leases of `lease` seconds, and the batch queued.
async fn start_batch(carrier_port: u16, lease: u64) -> Batch {
    let dir = tempfile::tempdir().unwrap();
    let (carrier, trace) =
        common::sipp::carrier_tracing(carrier_port, &carrier_scenario(), dir.path());
    let url = common::postgres::fresh_database().await;
    let first = start_node(dir.path(), "a", &url, carrier_port, 31_000, lease).await;
    let second = start_node(dir.path(), "b", &url, carrier_port, 32_000, lease).await;
    queue_batch(&first).await;
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    Batch {
        dir,
        _carrier: carrier,
        trace,
        db,
        nodes: [first, second],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_dial_every_call_of_a_batch_exactly_once() {
    let batch = start_batch(48_100, 30).await;
    let calls = all_completed(&batch.db).await;
    let again = calls.values().filter(|(_, a)| *a > 1).count();
    assert_eq!(again, 0, "one attempt each");
    // The carrier may still be writing the last INVITEs' lines.
    let invites = common::eventually(10, "every INVITE in the trace", || async {
        let invites = common::sipp::invites(&batch.trace);
        (invites.len() >= CALLS).then_some(invites)
    })
    .await;
    let per_call = common::sipp::invites_per_call(&batch.trace);
    assert_eq!(per_call.len(), CALLS, "every call dialled");
    assert!(per_call.values().all(|n| *n == 1), "none dialled twice");
    assert_eq!(invites.len(), CALLS);
    let mut by_node: HashMap<&str, usize> = HashMap::new();
    for invite in &invites {
        *by_node.entry(&invite.sender).or_default() += 1;
    }
    assert_eq!(by_node.len(), 2, "both nodes dialled: {by_node:?}");
    assert!(
        by_node.values().all(|n| *n >= CALLS / 10),
        "both took a share: {by_node:?}"
    );
    drop(batch.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_node_is_killed_mid_batch_the_other_finishes_it() {
    let mut batch = start_batch(48_102, 5).await;
    common::eventually(60, "a third of the batch to be dialled", || async {
        (dialled(&batch.db).await >= CALLS / 3).then_some(())
    })
    .await;
    batch.nodes[1].process.kill_9();
    let at_kill = dialled(&batch.db).await;
    assert!(
        at_kill < CALLS,
        "killed mid-batch ({at_kill} of {CALLS} dialled)"
    );

    let calls = all_completed(&batch.db).await;
    // Completed calls were all answered: their last INVITE reached the carrier.
    let per_call = common::eventually(10, "every call's INVITE in the trace", || async {
        let per_call = common::sipp::invites_per_call(&batch.trace);
        (per_call.len() >= CALLS).then_some(per_call)
    })
    .await;
    assert_eq!(per_call.len(), CALLS, "every call dialled, none lost");
    for (id, (_, attempts)) in &calls {
        // An attempt the killed node had claimed may have ended before its INVITE went out.
        let invites = per_call[id] as i64;
        assert!(
            invites <= *attempts,
            "call {id}: {invites} INVITEs for {attempts} attempts"
        );
    }
    let twice = per_call.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 100,
        "only calls the killed node had in progress (at most its 100) were dialled again: {twice}"
    );
    drop(batch.dir);
}
