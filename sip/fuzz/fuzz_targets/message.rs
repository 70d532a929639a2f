//! Datagram and TCP-stream parsing, triage and every typed accessor: must never panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use voxbridge_sip::message::{parse_datagram, triage, HeaderName, Inbound, Message, StreamFramer};

fuzz_target!(|data: &[u8]| {
    let parsed = parse_datagram(Bytes::copy_from_slice(data));
    if let Ok(msg) = &parsed {
        let h = msg.headers();
        let _ = h.via_top().map(|v| (v.branch(), v.rport(), v.received()));
        let _ = h.vias().count();
        let _ = h.from_hdr().map(|f| f.tag().map(str::len));
        let _ = h.to_hdr().map(|t| t.params().count());
        let _ = h.contact().map(|c| c.uri.user_unescaped());
        let _ = h.cseq();
        let _ = h.call_id();
        let _ = h.max_forwards();
        let _ = h.name_addrs(&HeaderName::RecordRoute);
        if let Message::Request(r) = msg {
            let _ = r.uri().map(|u| (u.user_unescaped(), u.params().count()));
            let _ = r.validate();
            let _ = r.is_answerable();
        }
        // Serializing and parsing again must work for anything we accepted.
        let again = parse_datagram(msg.to_bytes());
        assert!(again.is_ok(), "re-parse failed: {again:?}");
    }
    if let Inbound::Reject(req, _) = triage(parsed) {
        let _ = voxbridge_sip::message::Response::for_request(&req, 400, Some("abc")).to_bytes();
    }
    let mut framer = StreamFramer::new();
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Ok(Some(_)) = framer.next_message() {}
    }
});
