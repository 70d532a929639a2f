//! Every parser that sees network bytes: RTP, compound RTCP, RFC 4733 payloads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge_media::dtmf::{DtmfReceiver, TelephoneEvent};
use voxbridge_media::rtp::rtcp::Compound;
use voxbridge_media::rtp::RtpPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        assert!(p.payload.len() <= data.len());
    }
    for packet in Compound::new(data) {
        if let Ok(voxbridge_media::rtp::rtcp::RtcpPacket::SenderReport { blocks, .. }) = packet {
            blocks.for_each(drop);
        }
    }
    let _ = TelephoneEvent::parse(data);
    let mut rx = DtmfReceiver::new();
    for chunk in data.chunks(8) {
        if chunk.len() >= 4 {
            let ts = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let _ = rx.receive(ts, &chunk[4..]);
        }
    }
});
