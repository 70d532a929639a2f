//! `voxbridge serve` answers SIP from the start: SIPp (a separate process) sends OPTIONS and
//! INVITEs over loopback, and each INVITE is routed through the store (trunk rule → DID →
//! org → agent) to the refusal the contract names. On both databases.

mod common;

use std::net::SocketAddr;

use common::{Db, TestApp};

on_both_databases!(inbound_invites_get_the_contracted_responses);

/// A one-request scenario that passes only if the final response is `expect`.
fn scenario(method: &str, expect: u16) -> String {
    let (sdp_headers, sdp) = if method == "INVITE" {
        (
            "Content-Type: application/sdp\n",
            "\nv=0\no=- 1 1 IN IP4 [local_ip]\ns=-\nc=IN IP4 [local_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n",
        )
    } else {
        ("", "")
    };
    let ack = if method == "INVITE" {
        r#"<send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:+12025550111@[local_ip]:[local_port]>;tag=[pid]tag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"#
    } else {
        ""
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{method} expecting {expect}">
<send retrans="500"><![CDATA[
{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+12025550111@[local_ip]:[local_port]>;tag=[pid]tag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 {method}
Contact: <sip:+12025550111@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: voxbridge-tests
{sdp_headers}Content-Length: [len]
{sdp}
]]></send>
<recv response="100" optional="true"/>
<recv response="{expect}"/>
{ack}
</scenario>
"#
    )
}

/// Runs SIPp from `local_ip` against `server`; true if its one call got the expected answer.
fn sipp(server: SocketAddr, local_ip: &str, service: &str, method: &str, expect: u16) -> bool {
    let args = [
        "-s",
        service,
        "-i",
        local_ip,
        "-bind_local",
        "-recv_timeout",
        "5s",
    ];
    common::sipp::run(server, &scenario(method, expect), &args)
}

async fn inbound_invites_get_the_contracted_responses(db: Db) {
    let app = TestApp::start_with(
        db,
        None,
        |c| {
            c.orgs[1].numbers.push("+12025550199".into());
            c.trunks.push(common::loopback_trunk("127.0.0.1/32"));
        },
        None,
    )
    .await;
    let sip = app.server.as_ref().unwrap().sip_addr;
    let run = |local: &'static str, service: &'static str, method: &'static str, expect: u16| {
        tokio::task::spawn_blocking(move || sipp(sip, local, service, method, expect))
    };
    assert!(
        run("127.0.0.1", "probe", "OPTIONS", 200).await.unwrap(),
        "OPTIONS → 200"
    );
    assert!(
        !run("127.0.0.1", "probe", "OPTIONS", 404).await.unwrap(),
        "the scenario check can fail"
    );
    // A routable call is answered: tests/sip_media.rs follows it through media to the store.
    assert!(
        run("127.0.0.1", "2025550100", "INVITE", 404).await.unwrap(),
        "unknown DID → 404"
    );
    assert!(
        run("127.0.0.1", "+12025550199", "INVITE", 480)
            .await
            .unwrap(),
        "org without inbound agent → 480"
    );
    assert!(
        run("127.0.0.2", "+12025550142", "INVITE", 403)
            .await
            .unwrap(),
        "source outside the trunk rules → 403"
    );

    // A datagram that is not SIP is dropped without harm.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(b"\x00\x01garbage\r\n\r\n", sip).unwrap();
    socket
        .send_to(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", sip)
        .unwrap();

    let (_, org) = app.get("/v1/org", common::ACME_KEY).await;
    let acme = uuid::Uuid::parse_str(org["id"].as_str().unwrap()).unwrap();
    app.store().charge_minutes(acme, 1000).await.unwrap();
    assert!(
        run("127.0.0.1", "+12025550142", "INVITE", 403)
            .await
            .unwrap(),
        "minutes exhausted → 403"
    );
    assert!(
        run("127.0.0.1", "probe", "OPTIONS", 200).await.unwrap(),
        "still answering after bad input"
    );
    app.stop().await;
}

/// Sends `n` OPTIONS from `local_ip` and counts the 200s that come back.
fn options_answered(server: SocketAddr, local_ip: &str, n: usize) -> usize {
    let socket = std::net::UdpSocket::bind((local_ip, 0)).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let mut answered = 0;
    for i in 0..n {
        let request = format!(
            "OPTIONS sip:probe@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKrl{i}\r\n\
             From: <sip:t@{local}>;tag=rl{i}\r\nTo: <sip:probe@{server}>\r\nCall-ID: rl{i}-{local}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        socket.send_to(request.as_bytes(), server).unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            answered += usize::from(buf[..len].starts_with(b"SIP/2.0 200"));
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunk_sources_are_exempt_from_the_rate_limit() {
    let app = TestApp::start_with(
        Db::Sqlite,
        None,
        |c| {
            c.sip.rate_limit_per_second = 1.0;
            c.sip.rate_limit_burst = 1.0;
            c.trunks.push(common::loopback_trunk("127.0.0.1/32"));
        },
        None,
    )
    .await;
    let sip = app.server.as_ref().unwrap().sip_addr;
    let (trunk, stranger) = tokio::task::spawn_blocking(move || {
        (
            options_answered(sip, "127.0.0.1", 10),
            options_answered(sip, "127.0.0.3", 10),
        )
    })
    .await
    .unwrap();
    assert_eq!(trunk, 10, "the trunk is never limited");
    assert!(
        stranger <= 2,
        "another source is limited to its burst: {stranger} of 10 answered"
    );
    app.stop().await;
}
