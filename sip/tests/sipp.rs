//! Interop with SIPp 3.6 (Debian `sip-tester`) as a separate process on 127.0.0.1: our UAS
//! against SIPp's uac, our UAC against SIPp's uas, over UDP and TCP, plus CANCEL both ways and
//! a 401 digest challenge. Each run is bounded (-m, -timeout); SIPp must report 0 failed calls.
//! Skipped (with a message) when /usr/bin/sipp is absent.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::sync::mpsc;
use voxbridge_sip::auth::{Algorithm, Credentials, DigestServer};
use voxbridge_sip::driver::{start, DriverConfig, SipHandle};
use voxbridge_sip::endpoint::{AuthStatus, CallEvent, Event, PlaceCall, ServerAuth, Transport};
use voxbridge_sip::sdp::{Codec, Direction, LocalMedia};

const SIPP: &str = "/usr/bin/sipp";

fn sipp_available() -> bool {
    let ok = Path::new(SIPP).exists();
    if !ok {
        eprintln!("skipping: {SIPP} not installed (apt-get install sip-tester)");
    }
    ok
}

/// A port free on both UDP and TCP right now.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn media() -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().expect("ip"),
        port: 20000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

async fn driver() -> (SipHandle, mpsc::Receiver<Event>) {
    driver_with(None).await
}

async fn driver_with(auth: Option<ServerAuth>) -> (SipHandle, mpsc::Receiver<Event>) {
    let mut config = DriverConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.endpoint.rate_limit = None;
    config.endpoint.auth = auth;
    start(config).await.expect("driver starts")
}

fn scenario(name: &str) -> String {
    format!("{}/../fixtures/sip/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn run_sipp(args: Vec<String>) -> Output {
    let mut cmd = tokio::process::Command::new(SIPP);
    cmd.args(&args)
        .args([
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-i",
            "127.0.0.1",
        ])
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(40), cmd.output())
        .await
        .expect("sipp finished in time")
        .expect("sipp runs")
}

/// "Successful call" / "Failed call" cumulative counts from SIPp's final screen.
fn counts(out: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let read = |label: &str| {
        text.lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split('|').nth(2))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    (read("Successful call"), read("Failed call"))
}

fn assert_clean(out: &Output, calls: u64) {
    let (ok, failed) = counts(out);
    assert!(
        out.status.success() && ok == calls && failed == 0,
        "sipp exit {:?}, successful {ok}, failed {failed}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Answers (or, with `ring_only`, rings) every incoming call until the channel closes.
fn serve(sip: SipHandle, mut events: mpsc::Receiver<Event>, ring_only: bool) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Incoming(call) = event {
                let result = if ring_only {
                    sip.ring(call.call).await
                } else {
                    sip.answer(call.call, media()).await.map(drop)
                };
                result.expect("respond");
            }
        }
    });
}

async fn uas_against_sipp_uac(transport: &str) {
    let (sip, events) = driver().await;
    let target = sip.local_addr().to_string();
    serve(sip.clone(), events, false);
    let port = free_port().to_string();
    let out = run_sipp(vec![
        "-sn".into(),
        "uac".into(),
        target,
        "-t".into(),
        transport.into(),
        "-p".into(),
        port,
        "-m".into(),
        "20".into(),
        "-r".into(),
        "20".into(),
    ])
    .await;
    assert_clean(&out, 20);
    let stats = sip.stats().await.expect("stats");
    assert_eq!(stats.calls, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uas_udp_against_sipp_uac() {
    if sipp_available() {
        uas_against_sipp_uac("u1").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uas_tcp_against_sipp_uac() {
    if sipp_available() {
        uas_against_sipp_uac("t1").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uas_handles_cancel_from_sipp() {
    if !sipp_available() {
        return;
    }
    let (sip, events) = driver().await;
    let target = sip.local_addr().to_string();
    serve(sip.clone(), events, true);
    let port = free_port().to_string();
    let out = run_sipp(vec![
        "-sf".into(),
        scenario("uac_cancel.xml"),
        target,
        "-p".into(),
        port,
        "-m".into(),
        "5".into(),
        "-r".into(),
        "10".into(),
    ])
    .await;
    assert_clean(&out, 5);
}

/// Places `n` calls to a SIPp UAS at `port`, hanging up each on `hangup_on`; returns the
/// final event of each call.
async fn place_calls(
    sip: &SipHandle,
    port: u16,
    transport: Transport,
    n: usize,
    creds: Option<Credentials>,
    hangup_on_progress: bool,
) -> Vec<CallEvent> {
    let mut outcomes = Vec::new();
    for _ in 0..n {
        let pc = PlaceCall {
            peer: SocketAddr::from(([127, 0, 0, 1], port)),
            transport,
            target: format!("sip:+12025550142@127.0.0.1:{port}"),
            from: format!("sip:+12025550100@{}", sip.local_addr()),
            credentials: creds.clone(),
            media: media(),
            headers: Vec::new(),
        };
        let placed = sip.place_call(pc).await.expect("place");
        let (call, mut events) = (placed.call, placed.events);
        let outcome = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(ev) = events.recv().await {
                match ev {
                    CallEvent::Progress { .. } if hangup_on_progress => {
                        sip.hangup(call).await.expect("cancel")
                    }
                    CallEvent::Answered { .. } => {
                        sip.hangup(call).await.expect("bye");
                        return ev;
                    }
                    CallEvent::Failed { .. } | CallEvent::Ended { .. } => return ev,
                    _ => {}
                }
            }
            CallEvent::Failed {
                status: 0,
                reason: "event stream ended".into(),
            }
        })
        .await
        .expect("call outcome in time");
        outcomes.push(outcome);
    }
    outcomes
}

async fn uac_against(
    scenario_args: Vec<String>,
    transport: Transport,
    n: usize,
    creds: Option<Credentials>,
    hangup_on_progress: bool,
) -> (Vec<CallEvent>, Output) {
    // Placed calls' events come on their own channels; the driver's stream stays unused.
    let (sip, _events) = driver().await;
    let port = free_port();
    let mut args = scenario_args;
    args.extend(["-p".into(), port.to_string(), "-m".into(), n.to_string()]);
    args.extend([
        "-t".into(),
        if transport == Transport::Tcp {
            "t1".into()
        } else {
            "u1".into()
        },
    ]);
    let sipp = tokio::spawn(run_sipp(args));
    // Let SIPp bind before calling. Over UDP a lost first INVITE is retransmitted; over TCP a
    // refused connect would fail the call, so wait until SIPp accepts connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if transport == Transport::Tcp {
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let outcomes = place_calls(&sip, port, transport, n, creds, hangup_on_progress).await;
    let out = sipp.await.expect("sipp task");
    (outcomes, out)
}

/// Five calls to SIPp's built-in UAS: every one answered, SIPp sees no error.
async fn uac_against_sipp_uas(transport: Transport) {
    if sipp_available() {
        let (outcomes, out) =
            uac_against(vec!["-sn".into(), "uas".into()], transport, 5, None, false).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, CallEvent::Answered { .. })),
            "{outcomes:?}"
        );
        assert_clean(&out, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_udp_against_sipp_uas() {
    uac_against_sipp_uas(Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_tcp_against_sipp_uas() {
    uac_against_sipp_uas(Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_cancels_against_sipp() {
    if sipp_available() {
        let (outcomes, out) = uac_against(
            vec!["-sf".into(), scenario("uas_cancel.xml")],
            Transport::Udp,
            3,
            None,
            true,
        )
        .await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, CallEvent::Failed { status: 487, .. })),
            "{outcomes:?}"
        );
        assert_clean(&out, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uac_answers_401_digest_challenge_from_sipp() {
    if sipp_available() {
        let creds = Credentials {
            username: "trunk".into(),
            password: "secret".into(),
        };
        let (outcomes, out) = uac_against(
            vec!["-sf".into(), scenario("uas_auth.xml")],
            Transport::Udp,
            3,
            Some(creds),
            false,
        )
        .await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, CallEvent::Answered { .. })),
            "{outcomes:?}"
        );
        assert_clean(&out, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uas_challenges_sipp_uac_with_401_and_accepts_its_digest() {
    if !sipp_available() {
        return;
    }
    let auth = ServerAuth {
        digest: DigestServer::new("voxbridge", [9; 32], 300, Algorithm::Md5),
        users: vec![("trunk".into(), "secret".into())],
    };
    let (sip, mut events) = driver_with(Some(auth)).await;
    let target = sip.local_addr().to_string();
    let app = sip.clone();
    // Answers only authenticated calls: SIPp's calls can only succeed through a verified digest.
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Incoming(call) = event {
                match call.auth {
                    AuthStatus::None | AuthStatus::Stale => app
                        .challenge(call.call, call.auth == AuthStatus::Stale)
                        .await
                        .expect("challenge"),
                    AuthStatus::Authenticated(_) => app
                        .answer(call.call, media())
                        .await
                        .map(|_| ())
                        .expect("answer"),
                    AuthStatus::Rejected => app
                        .reject(call.call, 403, None, vec![])
                        .await
                        .expect("reject"),
                }
            }
        }
    });
    let port = free_port().to_string();
    let out = run_sipp(vec![
        "-sf".into(),
        scenario("uac_auth.xml"),
        target,
        "-p".into(),
        port,
        "-m".into(),
        "3".into(),
        "-r".into(),
        "10".into(),
    ])
    .await;
    assert_clean(&out, 3);
}
