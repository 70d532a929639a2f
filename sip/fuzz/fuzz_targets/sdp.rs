//! SDP parsing and offer/answer against arbitrary offers: must never panic, and any answer we
//! produce must parse again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxbridge_sip::sdp::{answer, Codec, Direction, LocalMedia, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse(data) else { return };
    let local = LocalMedia {
        addr: "127.0.0.1".parse().expect("ip"),
        port: 30000,
        codecs: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    };
    if let Ok((ans, _)) = answer(&offer, &local, 1, 1) {
        let text = ans.to_string();
        assert!(SessionDescription::parse(text.as_bytes()).is_ok(), "{text}");
    }
    let _ = SessionDescription::parse(offer.to_string().as_bytes());
});
