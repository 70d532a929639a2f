//! The tokio driver over real loopback sockets, without SIPp: OPTIONS answered over UDP and
//! TCP on the same port, malformed requests answered 400 or dropped and counted, a TCP
//! message split across writes framed correctly.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use voxbridge_sip::driver::{start, DriverConfig, SipHandle};

fn options(branch: &str, transport: &str, port: u16) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn driver() -> SipHandle {
    let (sip, _events) = start(DriverConfig::new("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("start");
    // Events are not needed here; the receiver is dropped and nothing in these tests emits any.
    sip
}

async fn udp_exchange(sock: &UdpSocket, to: std::net::SocketAddr, msg: &str) -> Option<String> {
    sock.send_to(msg.as_bytes(), to).await.expect("send");
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn options_over_udp_with_rport_and_400_for_malformed() {
    let sip = driver().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let resp = udp_exchange(&sock, sip.local_addr(), &options("u1", "UDP", port))
        .await
        .expect("reply");
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(resp.contains(&format!("rport={port}")), "{resp}");
    let bad = options("u2", "UDP", port).replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    let resp = udp_exchange(&sock, sip.local_addr(), &bad)
        .await
        .expect("reply");
    assert!(resp.starts_with("SIP/2.0 400"), "{resp}");
    assert!(
        udp_exchange(&sock, sip.local_addr(), "\x16\x03\x01 not sip\r\n\r\n")
            .await
            .is_none()
    );
    let stats = sip.stats().await.expect("stats");
    assert_eq!((stats.malformed_answered, stats.malformed_dropped), (1, 1));
}

#[tokio::test]
async fn options_over_tcp_on_the_same_port_split_across_writes() {
    let sip = driver().await;
    let mut tcp = TcpStream::connect(sip.local_addr()).await.expect("connect");
    let port = tcp.local_addr().expect("addr").port();
    let msg = options("t1", "TCP", port);
    let (a, b) = msg.split_at(40);
    tcp.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(20)).await;
    tcp.write_all(b.as_bytes()).await.expect("write");
    tcp.write_all(options("t2", "TCP", port).as_bytes())
        .await
        .expect("write");
    let mut got = String::new();
    let mut buf = vec![0u8; 4096];
    while got.matches("SIP/2.0 200 OK").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(n > 0, "connection closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("z9hG4bKt1") && got.contains("z9hG4bKt2"),
        "{got}"
    );
}

#[tokio::test]
async fn tcp_framing_error_closes_the_connection() {
    let sip = driver().await;
    let mut tcp = TcpStream::connect(sip.local_addr()).await.expect("connect");
    // No Content-Length on a stream: framing is impossible.
    tcp.write_all(b"OPTIONS sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "expected close, got {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}
