//! Energy VAD stand-in (until media/'s VAD is wired in): finds speech regions in 16 kHz audio
//! and packs them into decoding windows of at most 30 s.

use std::ops::Range;

use crate::transcriber::{MAX_WINDOW_MS, MODEL_RATE};

const FRAME: usize = MODEL_RATE as usize / 50; // 20 ms
/// Speech is this much louder than the quietest tenth of the clip…
const ABOVE_FLOOR_DB: f32 = 12.0;
/// …or, when the clip is nearly all speech (so that tenth is speech too), within this much of
/// the loudest frame…
const BELOW_PEAK_DB: f32 = 35.0;
/// …and at least this loud in absolute terms (dBFS), so digital silence is never speech.
const MIN_SPEECH_DB: f32 = -50.0;
/// Pauses shorter than this stay inside one region.
const BRIDGE_FRAMES: usize = 25; // 500 ms
/// Context kept around each region: whisper likes a little lead-in and tail.
const PAD_FRAMES: usize = 10; // 200 ms

fn frame_db(frame: &[f32]) -> f32 {
    let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * energy.max(1e-12).log10()
}

/// Sample ranges that contain speech, padded and with short pauses bridged.
pub fn speech_regions(samples: &[f32]) -> Vec<Range<usize>> {
    let levels: Vec<f32> = samples.chunks(FRAME).map(frame_db).collect();
    if levels.is_empty() {
        return Vec::new();
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = sorted[sorted.len() / 10];
    let peak = sorted[sorted.len() - 1];
    let threshold = (floor + ABOVE_FLOOR_DB)
        .min(peak - BELOW_PEAK_DB)
        .max(MIN_SPEECH_DB);
    let mut regions: Vec<Range<usize>> = Vec::new();
    for (i, _) in levels.iter().enumerate().filter(|(_, &db)| db >= threshold) {
        match regions.last_mut() {
            Some(last) if i <= last.end + BRIDGE_FRAMES => last.end = i + 1,
            _ => regions.push(i..i + 1),
        }
    }
    regions
        .into_iter()
        .map(|r| {
            let start = r.start.saturating_sub(PAD_FRAMES) * FRAME;
            let end = ((r.end + PAD_FRAMES) * FRAME).min(samples.len());
            start..end
        })
        .collect()
}

/// Decoding windows of at most 30 s: consecutive regions packed together, over-long regions cut.
pub fn windows(samples: &[f32]) -> Vec<Range<usize>> {
    let max = (MAX_WINDOW_MS as usize) * MODEL_RATE as usize / 1000;
    let mut out: Vec<Range<usize>> = Vec::new();
    for region in speech_regions(samples) {
        let mut start = region.start;
        while region.end - start > max {
            out.push(start..start + max);
            start += max;
        }
        let piece = start..region.end;
        match out.last_mut() {
            Some(last) if piece.end - last.start <= max => last.end = last.end.max(piece.end),
            _ => out.push(piece),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize) -> Vec<f32> {
        (0..ms * 16).map(|i| 0.3 * (i as f32 * 0.2).sin()).collect()
    }

    fn silence(ms: usize) -> Vec<f32> {
        vec![0.0; ms * 16]
    }

    #[test]
    fn finds_speech_between_silences() {
        let audio = [
            silence(1000),
            tone(500),
            silence(2000),
            tone(300),
            silence(1000),
        ]
        .concat();
        let regions = speech_regions(&audio);
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0], (800 * 16)..(1700 * 16));
        assert_eq!(regions[1], (3300 * 16)..(4000 * 16));
    }

    #[test]
    fn a_clip_that_is_all_speech_is_one_region() {
        let audio = tone(800);
        assert_eq!(speech_regions(&audio), vec![0..audio.len()]);
    }

    #[test]
    fn silence_has_no_speech() {
        assert!(speech_regions(&silence(3000)).is_empty());
        assert!(windows(&[]).is_empty());
    }

    #[test]
    fn windows_never_exceed_thirty_seconds() {
        let audio = [
            tone(20_000),
            silence(1000),
            tone(20_000),
            silence(500),
            tone(45_000),
        ]
        .concat();
        let w = windows(&audio);
        assert!(w.iter().all(|r| r.len() <= 30 * 16_000), "{w:?}");
        let covered: usize = w.iter().map(|r| r.len()).sum();
        assert!(covered >= (20_000 + 20_000 + 45_000) * 16);
    }
}
