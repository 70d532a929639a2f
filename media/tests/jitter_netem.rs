//! The jitter buffer on a simulated network: loss bursts, reordering, jitter and clock drift.
//! Each packet carries its frame index, so assertions check exactly what was played.

mod support;

use std::time::{Duration, Instant};

use support::netem::{Netem, NetemConfig};
use voxbridge_media::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};

const FRAME: Duration = Duration::from_millis(20);

struct Run {
    /// Frame index played in each period (None = concealed / silence).
    played: Vec<Option<u32>>,
    stats: JitterStats,
    dropped: u64,
    sent: u32,
    max_target: Duration,
}

/// Sends `secs` of 20 ms frames through `net` with the sender's clock off by `drift_ppm`.
fn run(cfg: NetemConfig, seed: u64, secs: u32, drift_ppm: f64) -> Run {
    let t0 = Instant::now();
    let mut net: Netem<(u32, [u8; 160])> = Netem::new(cfg, seed);
    let mut jb = JitterBuffer::new(JitterConfig::new(8000, FRAME, 160));
    let sender_period = FRAME.mul_f64(1.0 - drift_ppm / 1e6);
    let frames = secs * 50;
    let mut sent = 0u32;
    let mut played = vec![];
    let mut max_target = Duration::ZERO;
    let end = t0 + Duration::from_secs(u64::from(secs) + 1);
    loop {
        let next_send = (sent < frames).then(|| t0 + sender_period * sent);
        let now = [next_send, net.poll_timeout(), jb.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("something is always scheduled");
        if now > end || (sent == frames && net.poll_timeout().is_none() && jb.buffered() == 0) {
            break;
        }
        if next_send == Some(now) {
            let mut payload = [0u8; 160];
            payload[..4].copy_from_slice(&sent.to_be_bytes());
            net.send(now, (sent.wrapping_mul(160), payload));
            sent += 1;
        }
        while let Some((_, (ts, payload))) = net.poll(now) {
            jb.push(now, ts, false, &payload);
        }
        while let Some(p) = jb.pop(now) {
            played.push(match p {
                Playout::Frame { payload, .. } => Some(u32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ])),
                Playout::Conceal { .. } | Playout::Silence => None,
            });
        }
        max_target = max_target.max(jb.stats().target_delay);
    }
    Run {
        played,
        stats: jb.stats(),
        dropped: net.dropped,
        sent,
        max_target,
    }
}

fn assert_in_order_no_dupes(r: &Run) {
    let frames: Vec<u32> = r.played.iter().flatten().copied().collect();
    assert!(
        frames.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated"
    );
}

#[test]
fn clean_network_plays_everything_at_minimum_delay() {
    let r = run(NetemConfig::clean(Duration::from_millis(30)), 1, 20, 0.0);
    assert_in_order_no_dupes(&r);
    let frames: Vec<u32> = r.played.iter().flatten().copied().collect();
    assert_eq!(frames, (0..r.sent).collect::<Vec<_>>());
    assert_eq!(r.stats.concealed, 0);
    assert_eq!(r.stats.late, 0);
    assert_eq!(r.stats.target_delay, Duration::from_millis(20));
}

#[test]
fn jitter_raises_the_target_and_keeps_late_frames_rare() {
    let mut cfg = NetemConfig::clean(Duration::from_millis(30));
    cfg.jitter = Duration::from_millis(60);
    let r = run(cfg, 2, 60, 0.0);
    assert_in_order_no_dupes(&r);
    assert!(
        r.stats.target_delay >= Duration::from_millis(55)
            && r.stats.target_delay <= Duration::from_millis(80),
        "target {:?}",
        r.stats.target_delay
    );
    let late = r.stats.late as f64 / f64::from(r.sent);
    assert!(late < 0.005, "late fraction {late}, stats {:?}", r.stats);
    assert_eq!(
        r.stats.delivered + r.stats.late + r.stats.discarded,
        u64::from(r.sent)
    );
}

#[test]
fn bursty_loss_is_concealed_and_counted() {
    let mut cfg = NetemConfig::clean(Duration::from_millis(40));
    cfg.jitter = Duration::from_millis(10);
    cfg.p_good_bad = 0.01;
    cfg.p_bad_good = 0.3;
    cfg.loss_bad = 0.8;
    let r = run(cfg, 3, 60, 0.0);
    assert_in_order_no_dupes(&r);
    assert!(
        r.dropped > 50,
        "the model must actually lose packets: {}",
        r.dropped
    );
    assert_eq!(
        r.stats.delivered + r.stats.late + r.stats.discarded + r.dropped,
        u64::from(r.sent)
    );
    // Every dropped frame is concealed (bursts are far shorter than max_conceal allows).
    let gaps = r.played.iter().filter(|p| p.is_none()).count() as u64;
    assert!(gaps >= r.dropped, "gaps {gaps} dropped {}", r.dropped);
    // Loss shows in the stats, except frames skipped by a shrink or lost at the very end.
    assert!(
        r.stats.lost <= r.dropped,
        "{:?} dropped {}",
        r.stats,
        r.dropped
    );
    assert!(
        r.stats.lost + r.stats.shrunk + 5 >= r.dropped,
        "{:?} dropped {}",
        r.stats,
        r.dropped
    );
}

#[test]
fn reordering_is_repaired_without_loss() {
    let mut cfg = NetemConfig::clean(Duration::from_millis(20));
    cfg.reorder = 0.05;
    cfg.reorder_delay = Duration::from_millis(30);
    let r = run(cfg, 4, 30, 0.0);
    assert_in_order_no_dupes(&r);
    // After the first reordered packet teaches the buffer, nothing more is late.
    assert!(r.stats.late <= 3, "{:?}", r.stats);
    assert!(
        r.stats.target_delay >= Duration::from_millis(30),
        "{:?}",
        r.stats
    );
}

#[test]
fn fast_sender_clock_drift_is_absorbed_by_dropping_frames() {
    // Sender 0.5 % fast: 300 ms surplus over a minute must not pile up in the buffer.
    let r = run(NetemConfig::clean(Duration::from_millis(30)), 5, 60, 5000.0);
    assert_in_order_no_dupes(&r);
    assert!(r.stats.shrunk >= 10, "{:?}", r.stats);
    assert_eq!(r.stats.late, 0);
    assert!(
        r.max_target <= Duration::from_millis(40),
        "{:?}",
        r.max_target
    );
}

#[test]
fn slow_sender_clock_drift_is_absorbed_by_stretching() {
    let r = run(
        NetemConfig::clean(Duration::from_millis(30)),
        6,
        60,
        -5000.0,
    );
    assert_in_order_no_dupes(&r);
    assert!(r.stats.stretched >= 10, "{:?}", r.stats);
    assert!(r.stats.late <= 2, "{:?}", r.stats);
}
