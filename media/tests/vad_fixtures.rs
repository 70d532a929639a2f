//! Measures the VAD methods on speech mixed with noise (fixtures/media/generate.sh) and holds
//! the default to the numbers recorded in docs/media.md. Run with `--nocapture` for the table.
//!
//! Truth comes from the clean clip: a frame is speech when its clean level is above -50 dBFS.
//! Recall counts truth-speech frames the VAD marks as speech (hangover included); false alarms
//! count frames marked speech that are more than hangover + 100 ms away from any truth speech.

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::{level, load16, FRAME};
use voxbridge_media::vad::{Vad, VadConfig, VadEvent, VadMethod};

#[derive(Debug)]
struct Score {
    recall: f64,
    false_alarm: f64,
    utterances: usize,
}

fn score(method: VadMethod, truth: &[bool], noisy: &[i16]) -> Score {
    let mut cfg = VadConfig::new(16_000);
    cfg.method = method;
    let hang = (cfg.hangover.as_millis() / 20) as usize + 5;
    let mut vad = Vad::new(cfg);
    let mut marked = vec![];
    let mut utterances = 0;
    for f in noisy.chunks_exact(FRAME) {
        if vad.process(f) == Some(VadEvent::SpeechStart) {
            utterances += 1;
        }
        marked.push(vad.is_speech());
    }
    let n = marked.len().min(truth.len());
    let near_speech = |i: usize| {
        truth[i.saturating_sub(hang)..(i + 4).min(n)]
            .iter()
            .any(|&t| t)
    };
    let speech = (0..n).filter(|&i| truth[i]).count();
    let hits = (0..n).filter(|&i| truth[i] && marked[i]).count();
    let far: Vec<usize> = (0..n).filter(|&i| !near_speech(i)).collect();
    let alarms = far.iter().filter(|&&i| marked[i]).count();
    Score {
        recall: hits as f64 / speech as f64,
        false_alarm: alarms as f64 / far.len().max(1) as f64,
        utterances,
    }
}

#[test]
fn default_method_detects_both_utterances_in_noise() {
    let clean = load16("vad_clean.ulaw");
    let truth: Vec<bool> = clean
        .chunks_exact(FRAME)
        .map(|f| level(f) > -50.0)
        .collect();
    let methods = [
        (
            "fixed -40 dBFS",
            VadMethod::FixedEnergy {
                threshold_dbfs: -40.0,
            },
        ),
        ("adaptive 9 dB", VadMethod::AdaptiveEnergy { snr_db: 9.0 }),
        ("band 9 dB", VadMethod::AdaptiveBand { snr_db: 9.0 }),
    ];
    let fixtures = [
        "vad_clean.ulaw",
        "vad_pink_10db.ulaw",
        "vad_pink_5db.ulaw",
        "vad_white_10db.ulaw",
        "vad_white_5db.ulaw",
    ];
    println!("| method | fixture | recall | false alarm | utterances |");
    for name in fixtures {
        let noisy = load16(name);
        for (label, method) in methods {
            let s = score(method, &truth, &noisy);
            println!(
                "| {label} | {name} | {:.3} | {:.3} | {} |",
                s.recall, s.false_alarm, s.utterances
            );
            if method == VadConfig::new(16_000).method {
                assert!(s.recall > 0.85, "{name}: {s:?}");
                assert!(s.false_alarm < 0.05, "{name}: {s:?}");
                assert_eq!(s.utterances, 2, "{name}: {s:?}");
            }
        }
    }
}

/// Barge-in needs voiced speech (`VadConfig::voiced`): each utterance of the fixtures, clean
/// or in noise, is announced soon after it starts; the 60 ms quota is what the agent uses.
#[test]
fn each_utterance_is_announced_voiced_soon_after_it_starts() {
    println!("| fixture | start → voiced (ms) per utterance |");
    for name in [
        "vad_clean.ulaw",
        "vad_pink_10db.ulaw",
        "vad_white_10db.ulaw",
        "vad_pink_5db.ulaw",
        "vad_white_5db.ulaw",
    ] {
        let mut cfg = VadConfig::new(16_000);
        cfg.voiced = Some(std::time::Duration::from_millis(60));
        let mut vad = Vad::new(cfg);
        let (mut started, mut delays) = (None, vec![]);
        for (i, f) in load16(name).chunks_exact(FRAME).enumerate() {
            match vad.process(f) {
                Some(VadEvent::SpeechStart) => started = Some(i),
                Some(VadEvent::Voiced) => delays.push((i - started.unwrap()) * 20),
                _ => {}
            }
        }
        println!("| {name} | {delays:?} |");
        assert_eq!(delays.len(), 2, "{name}: {delays:?}");
        assert!(delays.iter().all(|&d| d <= 100), "{name}: {delays:?}");
    }
}
