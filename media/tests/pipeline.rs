//! Two `CallMedia` endpoints wired back to back through the seeded network model, in virtual
//! time: audio both ways, VAD on real speech, DTMF, talk-spurt markers, quality stats.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::netem::{Netem, NetemConfig};
use voxbridge_media::codec::{ulaw_to_linear, CodecKind};
use voxbridge_media::pipeline::{CallMedia, CallMediaConfig, MediaEvent, MediaOutput};
use voxbridge_media::rtp::{is_rtcp, Component, RtpPacket};
use voxbridge_media::vad::VadEvent;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/media/");

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[derive(Default)]
struct Seen {
    caller_audio: Vec<i16>,
    events: Vec<MediaEvent>,
    sent: Vec<(bool, u8, u32)>, // (marker, payload type, timestamp)
}

struct End {
    media: CallMedia,
    addr: SocketAddr,
    seen: Seen,
}

type Wire = Netem<(SocketAddr, SocketAddr, Component, Vec<u8>)>;

fn drain(end: &mut End, net: &mut Wire, now: Instant) {
    loop {
        match end.media.poll_output() {
            MediaOutput::Timeout(_) => return,
            MediaOutput::Transmit(t) => {
                if let Ok(p) = RtpPacket::parse(t.data) {
                    if !is_rtcp(t.data) {
                        end.seen.sent.push((
                            p.header.marker,
                            p.header.payload_type,
                            p.header.timestamp,
                        ));
                    }
                }
                net.send(now, (end.addr, t.destination, t.component, t.data.to_vec()));
            }
            MediaOutput::CallerAudio { pcm, due } => {
                assert!(due <= now, "frames are never handed out early");
                end.seen.caller_audio.extend_from_slice(pcm)
            }
            MediaOutput::AgentAudio(_) => {}
            MediaOutput::Event(e) => end.seen.events.push(e),
        }
    }
}

fn config(codec: CodecKind, pt: u8, remote: SocketAddr, ssrc: u32) -> CallMediaConfig {
    let mut c = CallMediaConfig::new(codec, pt, remote);
    c.local_ssrc = ssrc;
    c.initial_seq = (ssrc & 0xffff) as u16;
    c.initial_timestamp = ssrc.rotate_left(7);
    c
}

/// Runs both ends for `secs`, calling `script(t_ms, a, b)` every 20 ms of virtual time.
fn run(
    codec: CodecKind,
    pt: u8,
    net_cfg: NetemConfig,
    secs: u64,
    mut script: impl FnMut(u64, &mut CallMedia, &mut CallMedia),
) -> (End, End) {
    let t0 = Instant::now();
    let (a_addr, b_addr) = (addr("127.0.0.1:40000"), addr("127.0.0.1:50000"));
    let mut a = End {
        media: CallMedia::new(config(codec, pt, b_addr, 0xaaaa_0001), t0).unwrap(),
        addr: a_addr,
        seen: Seen::default(),
    };
    let mut b = End {
        media: CallMedia::new(config(codec, pt, a_addr, 0xbbbb_0002), t0).unwrap(),
        addr: b_addr,
        seen: Seen::default(),
    };
    let mut net: Wire = Netem::new(net_cfg, 42);
    let end = t0 + Duration::from_secs(secs);
    let mut next_script = t0;
    let mut now = t0;
    while now < end {
        if now >= next_script {
            script(
                next_script.duration_since(t0).as_millis() as u64,
                &mut a.media,
                &mut b.media,
            );
            next_script += Duration::from_millis(20);
        }
        while let Some((_, (from, to, component, data))) = net.poll(now) {
            let dst = if to == a_addr { &mut a } else { &mut b };
            dst.media.handle_datagram(now, from, component, &data);
        }
        a.media.handle_timeout(now);
        b.media.handle_timeout(now);
        drain(&mut a, &mut net, now);
        drain(&mut b, &mut net, now);
        now = [a.media.poll_timeout(), b.media.poll_timeout(), next_script]
            .into_iter()
            .chain(net.poll_timeout())
            .min()
            .unwrap()
            .max(now);
    }
    (a, b)
}

fn speech16() -> Vec<i16> {
    // The 8 kHz fixture, sample-doubled: plenty for a VAD test.
    std::fs::read(format!("{FIXTURES}vad_pink_10db.ulaw"))
        .unwrap()
        .into_iter()
        .flat_map(|c| [ulaw_to_linear(c); 2])
        .collect()
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[test]
fn speech_flows_both_ways_with_vad_markers_and_dtmf() {
    let speech = speech16();
    let tone: Vec<i16> = (0..16_000)
        .map(|i| {
            ((i as f64 * 2.0 * std::f64::consts::PI * 1000.0 / 16_000.0).sin() * 8000.0) as i16
        })
        .collect();
    let mut net = NetemConfig::clean(Duration::from_millis(25));
    net.jitter = Duration::from_millis(15);
    let (a, b) = run(CodecKind::Pcmu, 0, net, 12, |t, a, b| {
        match t {
            // B (the "caller") speaks the fixture at once; A (our agent side) plays 1 s of
            // tone twice, with a pause, so we see two talk spurts.
            0 => {
                b.push_agent_audio(&speech);
                a.push_agent_audio(&tone);
            }
            2000 => {
                a.push_agent_audio(&tone);
            }
            10_000 => b.send_dtmf('7', Duration::from_millis(100)).unwrap(),
            _ => {}
        }
    });
    // A hears the caller's speech: two utterances, start and end each.
    let vad: Vec<_> = a
        .seen
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Vad(v) => Some(*v),
            _ => None,
        })
        .collect();
    assert_eq!(
        vad,
        vec![
            VadEvent::SpeechStart,
            VadEvent::SpeechEnd,
            VadEvent::SpeechStart,
            VadEvent::SpeechEnd
        ],
        "{:?}",
        a.seen.events
    );
    let digits: Vec<_> = a
        .seen
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf(d) => Some(d.digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['7']);
    // B hears A's tone at about its level (μ-law + resampling), and comfort noise between.
    let heard = &b.seen.caller_audio;
    assert!(heard.len() >= 16_000 * 11, "{}", heard.len());
    let loud = heard.chunks(320).filter(|f| rms(f) > 4000.0).count();
    assert!(
        (95..=105).contains(&loud),
        "two seconds of tone, got {loud} frames"
    );
    let quiet = heard.chunks(320).filter(|f| rms(f) < 100.0).count();
    assert!(quiet > 300, "{quiet}");
    // A's outbound stream: markers exactly at the two talk-spurt starts, contiguous timestamps.
    let audio: Vec<_> = a.seen.sent.iter().filter(|s| s.1 == 0).collect();
    assert_eq!(audio.iter().filter(|s| s.0).count(), 2);
    assert!(audio.windows(2).all(|w| w[1].2.wrapping_sub(w[0].2) == 160));
    assert!(audio.len() >= 599, "{}", audio.len());
    // B's DTMF: 5 updates + 3 end packets, marker on the first only.
    let dtmf: Vec<_> = b.seen.sent.iter().filter(|s| s.1 == 101).collect();
    assert_eq!(dtmf.len(), 5 + 2);
    assert!(dtmf[0].0 && dtmf[1..].iter().all(|s| !s.0));
    // G.711: half-band filters, 31 samples at 16 kHz and 16 at 8 kHz.
    assert_eq!(
        a.media.resampler_delay(),
        (Duration::from_micros(1937), Duration::from_millis(2))
    );
    let q = a.media.quality();
    assert_eq!(q.packets_lost, 0);
    assert!(
        q.packets_received >= 590 && q.jitter_ms > 1.0 && q.jitter_ms < 15.0,
        "{q:?}"
    );
    assert!(q.mos > 4.2, "{q:?}");
    assert!(q.rtt_ms.is_some_and(|r| (50.0..90.0).contains(&r)), "{q:?}");
}

#[test]
fn opus_call_survives_bursty_loss_with_concealment() {
    let tone: Vec<i16> = (0..16_000 * 6)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 16_000.0).sin() * 6000.0) as i16)
        .collect();
    let mut net = NetemConfig::clean(Duration::from_millis(30));
    net.p_good_bad = 0.02;
    net.p_bad_good = 0.4;
    net.loss_bad = 0.7;
    let (_, b) = run(CodecKind::Opus, 111, net, 6, |t, a, _| {
        if t == 0 {
            a.push_agent_audio(&tone);
        }
    });
    let q = b.media.quality();
    assert!(q.packets_lost > 3, "the network must lose packets: {q:?}");
    assert!(q.concealed >= q.packets_lost, "{q:?}");
    assert!(q.mos < 4.4 && q.mos > 3.0, "{q:?}");
    // Concealment keeps the tone going: almost no silent frames after start-up.
    let frames: Vec<_> = b
        .seen
        .caller_audio
        .chunks(320)
        .skip(10)
        .take(250)
        .map(rms)
        .collect();
    let silent = frames.iter().filter(|&&r| r < 500.0).count();
    assert!(silent <= 3, "silent frames {silent} of {}", frames.len());
}

#[test]
fn hostile_ptime_is_refused() {
    for ptime in [0, 5, 25, 120, 1000] {
        let mut cfg = CallMediaConfig::new(CodecKind::Pcmu, 0, addr("127.0.0.1:4000"));
        cfg.ptime_ms = ptime;
        assert!(
            CallMedia::new(cfg, Instant::now()).is_err(),
            "ptime {ptime}"
        );
    }
    for codec in [
        CodecKind::Pcmu,
        CodecKind::Pcma,
        CodecKind::Opus,
        CodecKind::L16 { rate: 16_000 },
    ] {
        let mut cfg = CallMediaConfig::new(codec, 96, addr("127.0.0.1:4000"));
        cfg.ptime_ms = 60;
        assert!(CallMedia::new(cfg, Instant::now()).is_ok(), "{codec:?}");
    }
}

/// Random and half-valid datagrams from the (latched) peer never panic the pipeline.
#[test]
fn garbage_datagrams_do_not_panic() {
    use support::netem::Rng;
    let t0 = Instant::now();
    let peer = addr("127.0.0.1:4000");
    for codec in [
        CodecKind::Pcmu,
        CodecKind::Opus,
        CodecKind::L16 { rate: 8000 },
    ] {
        let mut media = CallMedia::new(CallMediaConfig::new(codec, 0, peer), t0).unwrap();
        let mut rng = Rng::new(7);
        let mut buf = [0u8; 1500];
        for i in 0..20_000u32 {
            let len = (rng.next_u64() % 1500) as usize;
            for b in &mut buf[..len] {
                *b = rng.next_u64() as u8;
            }
            if i % 2 == 0 && len >= 12 {
                // Plausible RTP: version 2, our payload type or telephone-event, any contents.
                buf[0] = 0x80 | (buf[0] & 0x3f);
                buf[1] = if i % 4 == 0 { 0 } else { 101 };
            }
            let now = t0 + Duration::from_millis(u64::from(i));
            let component = if i % 7 == 0 {
                Component::Rtcp
            } else {
                Component::Rtp
            };
            media.handle_datagram(now, peer, component, &buf[..len]);
            media.handle_timeout(now);
            while !matches!(media.poll_output(), MediaOutput::Timeout(_)) {}
        }
        let _ = media.quality();
    }
}

/// Hold stops our RTP without breaking the timestamp clock; a re-INVITE's new address is
/// where packets go next.
#[test]
fn hold_and_new_remote_address() {
    let t0 = Instant::now();
    let mut media = CallMedia::new(
        CallMediaConfig::new(CodecKind::Pcmu, 0, addr("127.0.0.1:4000")),
        t0,
    )
    .unwrap();
    let mut sent = vec![];
    let step = |media: &mut CallMedia, ms: u64, sent: &mut Vec<(SocketAddr, u32)>| {
        let now = t0 + Duration::from_millis(ms);
        media.handle_timeout(now);
        loop {
            match media.poll_output() {
                MediaOutput::Timeout(_) => break,
                MediaOutput::Transmit(t) if !is_rtcp(t.data) => {
                    let p = RtpPacket::parse(t.data).unwrap();
                    sent.push((t.destination, p.header.timestamp));
                }
                _ => {}
            }
        }
    };
    for ms in (0..100).step_by(20) {
        step(&mut media, ms, &mut sent);
    }
    media.set_sending(false);
    for ms in (100..200).step_by(20) {
        step(&mut media, ms, &mut sent);
    }
    assert_eq!(sent.len(), 5, "nothing sent on hold");
    media.set_remote(addr("127.0.0.9:6000"), None);
    media.set_sending(true);
    for ms in (200..260).step_by(20) {
        step(&mut media, ms, &mut sent);
    }
    assert_eq!(sent.len(), 8);
    assert!(sent[5..].iter().all(|(d, _)| *d == addr("127.0.0.9:6000")));
    assert_eq!(
        sent[5].1.wrapping_sub(sent[4].1),
        6 * 160,
        "timestamps jump over the hold"
    );
}
