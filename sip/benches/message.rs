//! Parse and serialize a typical INVITE (target: < 10 µs each).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use voxbridge_sip::message::{parse_datagram, Message};

/// The fixture is stored with LF line ends and a placeholder Content-Length; build the wire form.
fn typical_invite() -> Bytes {
    let text = include_str!("../../fixtures/sip/typical_invite.sip");
    let (head, body) = text.split_once("\n\n").expect("fixture has a body");
    let body = body.replace('\n', "\r\n");
    let head = head.replace('\n', "\r\n").replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", body.len()),
    );
    Bytes::from(format!("{head}\r\n\r\n{body}"))
}

fn bench(c: &mut Criterion) {
    let wire = typical_invite();
    c.bench_function("parse_typical_invite", |b| {
        b.iter(|| {
            let msg = parse_datagram(wire.clone()).expect("parses");
            // Touch what a UAS reads for every INVITE, so lazy parsing is not flattered.
            let h = msg.headers();
            let via = h.via_top().expect("via");
            std::hint::black_box((
                via.branch(),
                h.call_id().ok(),
                h.cseq().ok(),
                h.from_hdr().ok().and_then(|f| f.tag()),
                h.to_hdr().is_ok(),
            ));
            msg
        })
    });
    let msg = parse_datagram(wire.clone()).expect("parses");
    c.bench_function("serialize_typical_invite", |b| {
        b.iter(|| std::hint::black_box(&msg).to_bytes())
    });
    let Message::Request(req) = &msg else {
        unreachable!("fixture is a request")
    };
    c.bench_function("parse_serialize_roundtrip_equal", |b| {
        b.iter(|| parse_datagram(req.to_bytes()).expect("reparses"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
