//! Per-call quality summary and a MOS estimate from a simplified ITU-T G.107 E-model.

use serde::Serialize;

use crate::codec::CodecKind;

/// What the telephony layer stores with a call.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct CallQuality {
    pub packets_received: u64,
    pub packets_sent: u64,
    /// From RTP sequence numbers (expected - received).
    pub packets_lost: u64,
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter of the caller's stream.
    pub jitter_ms: f64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Frames synthesised by loss concealment.
    pub concealed: u64,
    pub duplicates: u64,
    pub rtt_ms: Option<f64>,
    /// Loss the far end reports for our stream (RTCP), if it sends reports.
    pub remote_loss_percent: Option<f64>,
    pub jitter_buffer_ms: f64,
    pub mos: f64,
    /// Caller frames, events or recording frames dropped because their consumer (the
    /// application, the recorder thread) fell behind; set by the runtime.
    pub frames_dropped: u64,
}

/// Equipment impairment (Ie) and packet-loss robustness (Bpl) per codec. G.711 with PLC from
/// ITU-T G.113 Appendix I; L16 treated like it; Opus has no G.113 entry, so it gets G.711's
/// Ie with a higher Bpl for its FEC and PLC (an assumption, documented in docs/media.md).
fn impairment(codec: CodecKind) -> (f64, f64) {
    match codec {
        CodecKind::Pcmu | CodecKind::Pcma | CodecKind::L16 { .. } => (0.0, 25.1),
        CodecKind::Opus => (0.0, 30.0),
    }
}

/// ITU-T G.113 burst ratio from a 2-state Markov view of the loss: p = P(loss | previous
/// received) ≈ bursts / received, q = P(received | previous lost) ≈ bursts / lost,
/// BurstR = 1 / (p + q). 1 for random loss, larger when losses cluster.
pub fn burst_ratio(received: u64, lost: u64, bursts: u64) -> f64 {
    if received == 0 || lost == 0 || bursts == 0 {
        return 1.0;
    }
    let (b, r, l) = (bursts as f64, received as f64, lost as f64);
    (1.0 / (b / r + b / l)).max(1.0)
}

/// MOS-CQE from the E-model with default values for everything but delay and loss.
/// `burst_ratio` is 1 for random loss and larger for bursty loss.
pub fn estimate_mos(
    codec: CodecKind,
    one_way_delay_ms: f64,
    loss_percent: f64,
    burst_ratio: f64,
) -> f64 {
    let (ie, bpl) = impairment(codec);
    let ta = one_way_delay_ms.max(0.0);
    let id = 0.024 * ta + if ta > 177.3 { 0.11 * (ta - 177.3) } else { 0.0 };
    let ppl = loss_percent.clamp(0.0, 100.0);
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl / burst_ratio.max(1.0) + bpl);
    let r = 93.2 - id - ie_eff;
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_ratio_separates_random_from_bursty_loss() {
        // 1 % random loss: 10 isolated losses in 1000 frames.
        assert!((burst_ratio(990, 10, 10) - 1.0).abs() < 0.02);
        // The same 10 losses in 2 bursts of 5.
        assert!(burst_ratio(990, 10, 2) > 4.5);
        assert_eq!(burst_ratio(1000, 0, 0), 1.0);
    }

    #[test]
    fn e_model_reference_points() {
        // No impairments: R = 93.2 → MOS ≈ 4.41 (the G.107 default).
        let best = estimate_mos(CodecKind::Pcmu, 0.0, 0.0, 1.0);
        assert!((best - 4.41).abs() < 0.01, "{best}");
        // 150 ms one-way (G.114's limit) costs about 0.1 MOS.
        let delayed = estimate_mos(CodecKind::Pcmu, 150.0, 0.0, 1.0);
        assert!(delayed < best && delayed > 4.2, "{delayed}");
        // 5 % random loss with PLC: R ≈ 93.2 - 15.8 → MOS ≈ 3.9.
        let lossy = estimate_mos(CodecKind::Pcmu, 0.0, 5.0, 1.0);
        assert!((3.7..4.0).contains(&lossy), "{lossy}");
        // Bursts hurt more than random loss; huge loss bottoms out.
        assert!(estimate_mos(CodecKind::Pcmu, 0.0, 5.0, 2.0) < lossy);
        assert!(estimate_mos(CodecKind::Pcmu, 400.0, 60.0, 1.0) < 1.6);
    }
}
