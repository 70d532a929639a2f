//! Two calls on the real runtime talking over 127.0.0.1: audio, DTMF, recording, quality and
//! port release. Bounded: about two seconds of real time.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use voxbridge_media::codec::CodecKind;
use voxbridge_media::pipeline::{CallMediaConfig, MediaEvent};
use voxbridge_media::ports::PortError;
use voxbridge_media::runtime::{CallEvent, MediaRuntime, MediaRuntimeConfig, RuntimeError};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn two_calls_exchange_audio_and_dtmf_over_loopback() {
    let mut cfg = MediaRuntimeConfig::new(LOCALHOST, 47000, 47099);
    cfg.reuse_guard = Duration::from_millis(1);
    let media = MediaRuntime::new(cfg).unwrap();
    let pa = media.reserve().unwrap();
    let pb = media.reserve().unwrap();
    let (addr_a, addr_b) = (
        std::net::SocketAddr::new(LOCALHOST, pa.pair().rtp),
        std::net::SocketAddr::new(LOCALHOST, pb.pair().rtp),
    );
    let wav = std::env::temp_dir().join(format!("voxbridge-loopback-{}.wav", std::process::id()));
    let mut a = media
        .start(
            pa,
            CallMediaConfig::new(CodecKind::Pcma, 8, addr_b),
            Some(wav.clone()),
        )
        .unwrap();
    let mut b = media
        .start(pb, CallMediaConfig::new(CodecKind::Pcma, 8, addr_a), None)
        .unwrap();
    assert_eq!(a.local_rtp(), addr_a);

    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (loud_frames, digits, qa, qb) = app.block_on(async {
        let tone: Vec<i16> = (0..8000).map(|i| ((i as f64 * 0.3).sin() * 10_000.0) as i16).collect();
        a.push_agent_audio(tone).unwrap();
        b.send_dtmf('9', Duration::from_millis(80)).unwrap();
        let mut loud = 0;
        let mut digits = vec![];
        let end = tokio::time::Instant::now() + Duration::from_millis(1500);
        while tokio::time::Instant::now() < end {
            tokio::select! {
                Some(ev) = b.recv() => if let CallEvent::Audio(f) = ev {
                    let rms = (f.pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt();
                    if rms > 3000.0 { loud += 1; }
                },
                Some(ev) = a.recv() => if let CallEvent::Media(MediaEvent::Dtmf(d)) = ev { digits.push(d.digit) },
                () = tokio::time::sleep_until(end) => {}
            }
        }
        let qa = a.hangup().await.unwrap();
        let qb = b.hangup().await.unwrap();
        (loud, digits, qa, qb)
    });
    // 8000 samples = 0.5 s = 25 frames of tone.
    assert!((23..=26).contains(&loud_frames), "{loud_frames}");
    assert_eq!(digits, vec!['9']);
    assert!(qb.packets_received > 60 && qb.packets_lost == 0, "{qb:?}");
    assert!(qa.packets_sent > 60 && qa.mos > 4.0, "{qa:?}");
    assert_eq!(qa.frames_dropped, 0, "the test drains both calls");
    // Both pairs are back in the pool.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(media.port_usage().0, 0);
    // The recording: stereo 16 kHz, agent (right) channel carries the tone.
    std::thread::sleep(Duration::from_millis(100));
    let bytes = std::fs::read(&wav).unwrap();
    let _ = std::fs::remove_file(&wav);
    assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2);
    let data_len = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]) as usize;
    assert_eq!(data_len, bytes.len() - 44);
    let right_peak = bytes[44..]
        .chunks_exact(4)
        .map(|c| i16::from_le_bytes([c[2], c[3]]).unsigned_abs())
        .max()
        .unwrap();
    assert!(right_peak > 8000, "{right_peak}");
}

#[test]
fn exhausted_port_range_is_a_typed_error() {
    let media = MediaRuntime::new(MediaRuntimeConfig::new(LOCALHOST, 47200, 47203)).unwrap();
    let _p1 = media.reserve().unwrap();
    let _p2 = media.reserve().unwrap();
    assert!(matches!(
        media.reserve(),
        Err(RuntimeError::Ports(PortError::Exhausted { .. }))
    ));
}

/// The telephony layer shares the runtime between tasks and moves handles into them.
#[test]
fn runtime_is_shareable_and_handles_movable() {
    fn shareable<T: Send + Sync>() {}
    fn movable<T: Send>() {}
    shareable::<MediaRuntime>();
    movable::<voxbridge_media::runtime::CallHandle>();
    movable::<voxbridge_media::runtime::MediaPorts>();
}
