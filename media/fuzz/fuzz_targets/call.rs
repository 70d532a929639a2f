//! A whole call fed arbitrary datagrams and timings: no input may panic the pipeline.
//! Input: repeated [time step (1 byte, ms), length (1 byte), datagram bytes…].
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use voxbridge_media::codec::CodecKind;
use voxbridge_media::pipeline::{CallMedia, CallMediaConfig, MediaOutput};
use voxbridge_media::rtp::Component;

fuzz_target!(|data: &[u8]| {
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let codec = match data.first().map(|b| b % 3) {
        Some(0) => CodecKind::Pcmu,
        Some(1) => CodecKind::Opus,
        _ => CodecKind::L16 { rate: 8000 },
    };
    let t0 = Instant::now();
    let Ok(mut media) = CallMedia::new(CallMediaConfig::new(codec, 0, peer), t0) else {
        return;
    };
    let mut now = t0;
    let mut rest = data.get(1..).unwrap_or_default();
    while let [step, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        now += Duration::from_millis(u64::from(*step));
        let component = if step % 5 == 0 { Component::Rtcp } else { Component::Rtp };
        media.handle_datagram(now, peer, component, &tail[..n]);
        media.handle_timeout(now);
        while !matches!(media.poll_output(), MediaOutput::Timeout(_)) {}
        rest = &tail[n..];
    }
    let _ = media.quality();
});
