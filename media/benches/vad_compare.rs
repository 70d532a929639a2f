//! Our VAD against two published ones on the speech-in-noise fixtures (fixtures/media/) and
//! on noise bursts: speech onset and end error per utterance, false alarms far from speech,
//! utterances found, and CPU per 20 ms frame. Every classifier goes through the same onset
//! (60 ms) and hangover (600 ms) smoothing, so only the frame decisions differ.
//!   cargo bench -p voxbridge-media --bench vad_compare
//! Compared: ours (`AdaptiveBand`, 9 dB over a tracked floor), WebRTC's GMM VAD (C, through
//! the webrtc-vad crate; modes "quality" and "very aggressive") and earshot (a small neural
//! network in pure Rust, 16 ms frames, score ≥ 0.5). Numbers go to docs/decisions.md.

use std::time::Instant;

#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use fixtures::{level, load16, FRAME};
use voxbridge_media::vad::{Vad, VadConfig, VadEvent};

const ONSET: usize = 3;
const HANGOVER: usize = 30;

/// A frame classifier: one decision per 20 ms frame at 16 kHz.
trait Classifier {
    fn speech(&mut self, frame: &[i16]) -> bool;
}

struct Ours(Vad);
impl Classifier for Ours {
    fn speech(&mut self, frame: &[i16]) -> bool {
        self.0.process(frame);
        self.0.frame_active()
    }
}

struct WebRtc(webrtc_vad::Vad);
impl Classifier for WebRtc {
    fn speech(&mut self, frame: &[i16]) -> bool {
        self.0.is_voice_segment(frame).unwrap_or(false)
    }
}

/// earshot works on 16 ms frames: a 20 ms frame is speech when any 16 ms frame ending in it
/// scores ≥ 0.5.
struct Earshot {
    detector: Box<earshot::Detector>,
    pending: Vec<i16>,
}
impl Classifier for Earshot {
    fn speech(&mut self, frame: &[i16]) -> bool {
        self.pending.extend_from_slice(frame);
        let mut any = false;
        while self.pending.len() >= 256 {
            let chunk: Vec<i16> = self.pending.drain(..256).collect();
            any |= self.detector.predict_i16(&chunk) >= 0.5;
        }
        any
    }
}

fn classifiers() -> Vec<(&'static str, Box<dyn Classifier>)> {
    let webrtc = |mode| {
        Box::new(WebRtc(webrtc_vad::Vad::new_with_rate_and_mode(
            webrtc_vad::SampleRate::Rate16kHz,
            mode,
        ))) as Box<dyn Classifier>
    };
    vec![
        (
            "ours (band 9 dB)",
            Box::new(Ours(Vad::new(VadConfig::new(16_000)))),
        ),
        ("webrtc quality", webrtc(webrtc_vad::VadMode::Quality)),
        (
            "webrtc very aggressive",
            webrtc(webrtc_vad::VadMode::VeryAggressive),
        ),
        (
            "earshot",
            Box::new(Earshot {
                detector: earshot::Detector::default_boxed(),
                pending: Vec::new(),
            }),
        ),
    ]
}

/// Utterances (start, end) in frames after onset/hangover smoothing of `speech`.
fn utterances(speech: &[bool]) -> Vec<(usize, usize)> {
    let (mut out, mut run, mut speaking) = (Vec::new(), 0, false);
    for (i, &s) in speech.iter().enumerate() {
        if s == speaking {
            run = 0;
            continue;
        }
        run += 1;
        if !speaking && run >= ONSET {
            speaking = true;
            out.push((i + 1 - ONSET, speech.len()));
            run = 0;
        } else if speaking && run >= HANGOVER {
            speaking = false;
            if let Some(last) = out.last_mut() {
                last.1 = i + 1 - HANGOVER;
            }
            run = 0;
        }
    }
    out
}

fn main() {
    let clean = load16("vad_clean.ulaw");
    let truth: Vec<bool> = clean
        .chunks_exact(FRAME)
        .map(|f| level(f) > -50.0)
        .collect();
    let truth_utts = utterances(&truth);
    let fixtures = [
        "vad_clean.ulaw",
        "vad_pink_10db.ulaw",
        "vad_white_10db.ulaw",
        "vad_pink_5db.ulaw",
        "vad_white_5db.ulaw",
    ];
    println!("truth: utterances at frames {truth_utts:?}");
    println!("| VAD | fixture | utterances | onset error ms | end error ms | false alarm |");
    println!("|---|---|---|---|---|---|");
    let mut cost: Vec<(&str, f64)> = Vec::new();
    for name in fixtures {
        let audio = load16(name);
        for (label, mut c) in classifiers() {
            let started = Instant::now();
            let speech: Vec<bool> = audio.chunks_exact(FRAME).map(|f| c.speech(f)).collect();
            let per_frame = started.elapsed().as_secs_f64() / speech.len() as f64;
            match cost.iter_mut().find(|(l, _)| *l == label) {
                Some((_, v)) => *v += per_frame / fixtures.len() as f64,
                None => cost.push((label, per_frame / fixtures.len() as f64)),
            }
            let found = utterances(&speech);
            let errors = |pick: fn(&(usize, usize)) -> usize| -> String {
                truth_utts
                    .iter()
                    .map(|t| {
                        found
                            .iter()
                            .map(|f| pick(f) as i64 - pick(t) as i64)
                            .min_by_key(|d| d.abs())
                            .map_or("-".into(), |d| format!("{:+}", d * 20))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let n = speech.len().min(truth.len());
            let far =
                |i: usize| !truth[i.saturating_sub(HANGOVER + 5)..(i + 4).min(n)].contains(&true);
            let far_frames: Vec<usize> = (0..n).filter(|&i| far(i)).collect();
            let alarms = far_frames.iter().filter(|&&i| speech[i]).count();
            println!(
                "| {label} | {name} | {} | {} | {} | {:.3} |",
                found.len(),
                errors(|u| u.0),
                errors(|u| u.1),
                alarms as f64 / far_frames.len().max(1) as f64
            );
        }
    }
    println!("\nnoise bursts on a quiet line (utterances started; none is speech):");
    println!("| VAD | white 400 ms | cough-like 300 ms | rumble 400 ms | click 40 ms |");
    println!("|---|---|---|---|---|");
    let bursts = bursts();
    for (label, _) in classifiers() {
        let row: Vec<String> = bursts
            .iter()
            .map(|audio| {
                let mut c = classifiers()
                    .into_iter()
                    .find(|(l, _)| *l == label)
                    .map(|(_, c)| c)
                    .expect("classifier");
                let speech: Vec<bool> = audio.chunks_exact(FRAME).map(|f| c.speech(f)).collect();
                utterances(&speech).len().to_string()
            })
            .collect();
        println!("| {label} | {} |", row.join(" | "));
    }
    // The barge-in gate: utterances that also reach 60 ms of voiced audio (VadEvent::Voiced).
    let voiced: Vec<String> = bursts
        .iter()
        .map(|audio| {
            let mut cfg = VadConfig::new(16_000);
            cfg.voiced = Some(std::time::Duration::from_millis(60));
            let mut vad = Vad::new(cfg);
            let events = audio.chunks_exact(FRAME).filter_map(|f| vad.process(f));
            events
                .filter(|e| *e == VadEvent::Voiced)
                .count()
                .to_string()
        })
        .collect();
    println!("| ours, voiced 60 ms (barge-in) | {} |", voiced.join(" | "));
    println!("\nCPU per 20 ms frame (wall time on this machine, single thread):");
    for (label, per_frame) in cost {
        println!("- {label}: {:.2} µs", per_frame * 1e6);
    }
    // The voicing check runs only on active frames until a segment is announced voiced.
    let noisy = load16("vad_pink_10db.ulaw");
    let mut cfg = VadConfig::new(16_000);
    cfg.voiced = Some(std::time::Duration::from_millis(60));
    let mut vad = Vad::new(cfg);
    let started = Instant::now();
    let frames = noisy.chunks_exact(FRAME).map(|f| vad.process(f)).count();
    let per_frame = started.elapsed().as_secs_f64() / frames as f64;
    println!(
        "- ours with the voicing gate, averaged over a call-like clip: {:.2} µs",
        per_frame * 1e6
    );
    let mut voicing = Vad::new(cfg);
    let vowel: Vec<i16> = (0..FRAME * 200)
        .map(|i| ((i as f64 * 0.047).sin() * 6000.0 + (i as f64 * 0.094).sin() * 3000.0) as i16)
        .collect();
    // Worst case: a voiced-looking sound that never reaches the quota (reset each 2 frames).
    let started = Instant::now();
    for chunk in vowel.chunks_exact(FRAME * 2) {
        voicing.process(&chunk[..FRAME]);
        voicing.process(&[0; FRAME]);
    }
    let per_frame = started.elapsed().as_secs_f64() / 200.0;
    println!(
        "- ours, a frame whose voicing is checked: {:.2} µs",
        per_frame * 2e6
    );
}

/// Deterministic noise in [-1, 1).
fn noise(seed: &mut u32) -> f64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    f64::from(*seed) / f64::from(u32::MAX) * 2.0 - 1.0
}

/// A second of quiet line, a burst, two seconds of quiet line.
fn bursts() -> Vec<Vec<i16>> {
    let mut seed = 11;
    let quiet = |seed: &mut u32, frames: usize| -> Vec<i16> {
        (0..frames * FRAME)
            .map(|_| (noise(seed) * 30.0) as i16)
            .collect()
    };
    let white: Vec<i16> = (0..FRAME * 20)
        .map(|_| (noise(&mut seed) * 8000.0) as i16)
        .collect();
    let cough: Vec<i16> = (0..FRAME * 15)
        .map(|i| (noise(&mut seed) * 12_000.0 * (-(i as f64) / 1200.0).exp()) as i16)
        .collect();
    let mut low = 0.0;
    let rumble: Vec<i16> = (0..FRAME * 20)
        .map(|_| {
            low = 0.97 * low + noise(&mut seed) * 600.0;
            low as i16
        })
        .collect();
    let click: Vec<i16> = (0..FRAME * 2)
        .map(|i| if i % FRAME < 8 { 20_000 } else { 0 })
        .collect();
    [white, cough, rumble, click]
        .into_iter()
        .map(|burst| {
            let mut audio = quiet(&mut seed, 50);
            audio.extend(burst);
            audio.extend(quiet(&mut seed, 100));
            audio
        })
        .collect()
}
