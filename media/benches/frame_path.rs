//! Per-20 ms-frame costs of the media hot paths (targets in issue 4 / docs/media.md),
//! measured in thread CPU time so other processes on the machine do not inflate them.

mod support;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main};
use support::cpu_time::ThreadCpuTime;

type Criterion = criterion::Criterion<ThreadCpuTime>;
use voxbridge_media::codec::{AudioCodec, CodecKind, Opus};
use voxbridge_media::jitter::{JitterBuffer, JitterConfig, Playout};
use voxbridge_media::pipeline::{CallMedia, CallMediaConfig, MediaOutput};
use voxbridge_media::resample::{resampler, Resampler, RubatoFft};
use voxbridge_media::rtp::{
    Component, Datagram, Input, RtpHeader, RtpPacket, RtpSession, SessionConfig, RTP_HEADER_LEN,
};
use voxbridge_media::vad::{Vad, VadConfig};

const FRAME: Duration = Duration::from_millis(20);

fn speechlike(n: usize, rate: f64) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            ((t * 2.0 * std::f64::consts::PI * 220.0).sin() * 6000.0
                + (t * 2.0 * std::f64::consts::PI * 1170.0).sin() * 2000.0) as i16
        })
        .collect()
}

fn pcmu_packet(seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; RTP_HEADER_LEN + payload.len()];
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: ts,
        ssrc: 9,
    }
    .write(&mut buf)
    .unwrap();
    buf[RTP_HEADER_LEN..].copy_from_slice(payload);
    buf
}

/// RTP datagram in → session → jitter buffer → PCMU decode → 8→16 kHz → VAD.
fn rtp_in(c: &mut Criterion) {
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let t0 = Instant::now();
    let mut session = RtpSession::new(SessionConfig::new(1, 0, 8000, remote), t0);
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, FRAME, 160));
    let mut codec = CodecKind::Pcmu.create(20).unwrap();
    let mut up = resampler(8000, 16_000, 20).unwrap();
    let mut vad = Vad::new(VadConfig::new(16_000));
    let mut enc = CodecKind::Pcmu.create(20).unwrap();
    let mut payload = [0u8; 160];
    enc.encode(&speechlike(160, 8000.0), &mut payload).unwrap();
    let mut pkt = pcmu_packet(0, 0, &payload);
    let (mut pcm8, mut pcm16) = ([0i16; 160], [0i16; 320]);
    let mut i: u32 = 0;
    c.bench_function("pcmu_rtp_in_to_16k_frame", |b| {
        b.iter(|| {
            let now = t0 + FRAME * i;
            pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            pkt[4..8].copy_from_slice(&(i * 160).to_be_bytes());
            let d = Datagram {
                source: remote,
                component: Component::Rtp,
                data: &pkt,
            };
            if let Ok(Some(rx)) = session.handle_input(Input::Receive(now, d)) {
                jb.push(
                    now,
                    rx.packet.header.timestamp,
                    rx.packet.header.marker,
                    rx.packet.payload,
                );
            }
            // Pop at the playout time of the frame that just came in (initial delay 40 ms).
            while let Some(p) = jb.pop(now + Duration::from_millis(40)) {
                let n = match p {
                    Playout::Frame { payload, .. } => codec.decode(payload, &mut pcm8).unwrap(),
                    Playout::Conceal { next } => codec.conceal(next, &mut pcm8).unwrap(),
                    Playout::Silence => 0,
                };
                pcm8[n..].fill(0);
                up.process(&pcm8, &mut pcm16).unwrap();
                black_box(vad.process(&pcm16));
            }
            i += 1;
        })
    });
}

/// 16 kHz agent PCM → 16→8 kHz → PCMU → RTP header.
fn rtp_out(c: &mut Criterion) {
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let t0 = Instant::now();
    let mut session = RtpSession::new(SessionConfig::new(1, 0, 8000, remote), t0);
    let mut codec = CodecKind::Pcmu.create(20).unwrap();
    let mut down = resampler(16_000, 8000, 20).unwrap();
    let agent = speechlike(320, 16_000.0);
    let mut pcm8 = [0i16; 160];
    let mut out = [0u8; 1500];
    let mut i: u32 = 0;
    c.bench_function("pcm16k_to_pcmu_rtp_out_frame", |b| {
        b.iter(|| {
            down.process(black_box(&agent), &mut pcm8).unwrap();
            let n = codec.encode(&pcm8, &mut out[RTP_HEADER_LEN..]).unwrap();
            black_box(
                session
                    .write_rtp(t0, 0, false, i * 160, n, &mut out)
                    .unwrap(),
            );
            i += 1;
        })
    });
}

/// Opus 20 ms packet → 48 kHz PCM → 48→16 kHz (rubato), and the native 16 kHz decode the
/// pipeline actually uses.
fn opus_decode(c: &mut Criterion) {
    let pcm48 = speechlike(960, 48_000.0);
    let mut enc = Opus::new(48_000, 20).unwrap();
    let packets: Vec<Vec<u8>> = (0..50)
        .map(|_| {
            let mut buf = [0u8; 1500];
            let n = enc.encode(&pcm48, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();
    let mut dec48 = Opus::new(48_000, 20).unwrap();
    let mut down = resampler(48_000, 16_000, 20).unwrap();
    let (mut out48, mut out16) = ([0i16; 960], [0i16; 320]);
    let mut i = 0;
    c.bench_function("opus_decode_48k_then_resample_16k_frame", |b| {
        b.iter(|| {
            let n = dec48
                .decode(&packets[i % packets.len()], &mut out48)
                .unwrap();
            down.process(&out48[..n], &mut out16).unwrap();
            black_box(&out16);
            i += 1;
        })
    });
    let mut dec16 = Opus::new(16_000, 20).unwrap();
    c.bench_function("opus_decode_native_16k_frame", |b| {
        b.iter(|| {
            black_box(
                dec16
                    .decode(&packets[i % packets.len()], &mut out16)
                    .unwrap(),
            );
            i += 1;
        })
    });
}

fn stages(c: &mut Criterion) {
    let pcm8 = speechlike(160, 8000.0);
    let pcm16 = speechlike(320, 16_000.0);
    let mut out16 = [0i16; 320];
    let mut out8 = [0i16; 160];
    let mut up = resampler(8000, 16_000, 20).unwrap();
    c.bench_function("resample_8k_to_16k_frame", |b| {
        b.iter(|| black_box(up.process(black_box(&pcm8), &mut out16).unwrap()))
    });
    let mut fft = RubatoFft::new(8000, 16_000, 160).unwrap();
    c.bench_function("resample_8k_to_16k_rubato_fft_frame", |b| {
        b.iter(|| black_box(fft.process(black_box(&pcm8), &mut out16).unwrap()))
    });
    let mut down = resampler(16_000, 8000, 20).unwrap();
    c.bench_function("resample_16k_to_8k_frame", |b| {
        b.iter(|| black_box(down.process(black_box(&pcm16), &mut out8).unwrap()))
    });
    let mut vad = Vad::new(VadConfig::new(16_000));
    c.bench_function("vad_16k_frame", |b| {
        b.iter(|| black_box(vad.process(black_box(&pcm16))))
    });
}

fn rtp_parse(c: &mut Criterion) {
    let pkt = pcmu_packet(1, 160, &[0xff; 160]);
    c.bench_function("rtp_parse", |b| {
        b.iter(|| black_box(RtpPacket::parse(black_box(&pkt)).unwrap()))
    });
}

/// Everything one call does per 20 ms in both directions, through `CallMedia`.
fn call_media(c: &mut Criterion) {
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let t0 = Instant::now();
    let mut media = CallMedia::new(CallMediaConfig::new(CodecKind::Pcmu, 0, remote), t0).unwrap();
    let mut enc = CodecKind::Pcmu.create(20).unwrap();
    let mut payload = [0u8; 160];
    enc.encode(&speechlike(160, 8000.0), &mut payload).unwrap();
    let mut pkt = pcmu_packet(0, 0, &payload);
    let agent = speechlike(16_000, 16_000.0);
    let mut i: u32 = 0;
    c.bench_function("call_media_both_directions_frame", |b| {
        b.iter(|| {
            let now = t0 + FRAME * i;
            if i % 50 == 0 {
                media.push_agent_audio(&agent);
            }
            pkt[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            pkt[4..8].copy_from_slice(&(i * 160).to_be_bytes());
            media.handle_datagram(now, remote, Component::Rtp, &pkt);
            media.handle_timeout(now);
            loop {
                match media.poll_output() {
                    MediaOutput::Timeout(_) => break,
                    other => {
                        black_box(other);
                    }
                }
            }
            i += 1;
        })
    });
}

criterion_group! {
    name = benches;
    config = criterion::Criterion::default().with_measurement(ThreadCpuTime).sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = rtp_in, rtp_out, opus_decode, stages, rtp_parse, call_media
}
criterion_main!(benches);
