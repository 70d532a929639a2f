//! CPU cost of one complete inbound call in the sans-IO endpoint (no sockets, no scheduler):
//! INVITE in → 200 + SDP answer out → ACK in → BYE in → 200 out, with messages shaped like
//! SIPp's uac scenario. The inverse is the per-core call rate the UAS logic alone allows.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use voxbridge_sip::endpoint::{Endpoint, EndpointConfig, Event, Transport};
use voxbridge_sip::message::{parse_datagram, Message};
use voxbridge_sip::sdp::{Codec, Direction, LocalMedia};

const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn request(method: &str, n: u64, seq: u32, branch: u32, to_tag: &str, body: &str) -> Bytes {
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    Bytes::from(format!(
        "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-1-{n}-{branch}\r\nFrom: sipp <sip:sipp@127.0.0.1:5090>;tag=1SIPpTag00{n}\r\nTo: service <sip:service@127.0.0.1:5060>{to_tag}\r\nCall-ID: {n}-1@127.0.0.1\r\nCSeq: {seq} {method}\r\nContact: sip:sipp@127.0.0.1:5090\r\nMax-Forwards: 70\r\nSubject: Performance Test\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn bench(c: &mut Criterion) {
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("addr");
    let peer: SocketAddr = "127.0.0.1:5090".parse().expect("addr");
    let media = LocalMedia {
        addr: local.ip(),
        port: 20000,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    };
    let mut now = Instant::now();
    let mut ep = Endpoint::new(
        EndpointConfig {
            rate_limit: None,
            ..EndpointConfig::new(local)
        },
        now,
        0,
    );
    let mut n = 0u64;
    c.bench_function("uas_full_call", |b| {
        b.iter(|| {
            n += 1;
            now += Duration::from_micros(100);
            ep.handle_datagram(
                now,
                Transport::Udp,
                peer,
                request("INVITE", n, 1, 0, "", SDP),
            );
            let Some(Event::Incoming(call)) = ep.poll_event() else {
                panic!("incoming")
            };
            ep.answer(call.call, media.clone(), now).expect("answer");
            let Some(ok) = ep.poll_transmit() else {
                panic!("200")
            };
            // The UAC side's work: read our To tag for its ACK and BYE.
            let Ok(Message::Response(ok)) = parse_datagram(ok.payload) else {
                panic!("parse 200")
            };
            let tag = format!(
                ";tag={}",
                ok.headers.to_hdr().expect("to").tag().expect("tag")
            );
            ep.handle_datagram(now, Transport::Udp, peer, request("ACK", n, 1, 5, &tag, ""));
            ep.handle_datagram(now, Transport::Udp, peer, request("BYE", n, 2, 7, &tag, ""));
            while ep.poll_transmit().is_some() {}
            while ep.poll_event().is_some() {}
            // Expire lingering transactions now and then, as real time would (steady state
            // instead of ever-growing tables).
            if n % 1000 == 0 {
                now += Duration::from_secs(40);
            }
            ep.handle_timeout(now);
        })
    });
    now += Duration::from_secs(40);
    ep.handle_timeout(now);
    let s = ep.stats();
    assert_eq!((s.calls, s.transactions), (0, 0), "every call ended: {s:?}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
