//! Where the speech is in audio known in advance (a WAV file, a recording): the media crate's
//! VAD, the one that cuts utterances on calls, run over the clip, then packed into decoding
//! windows of at most 30 s.

use std::ops::Range;
use std::time::Duration;

use voxbridge_media::vad::{frames_in, level_db, Vad, VadConfig, VadEvent};

use crate::transcriber::{MAX_WINDOW_MS, MODEL_RATE};

const FRAME: usize = MODEL_RATE as usize / 50; // 20 ms
/// Pauses shorter than this stay inside one region.
const BRIDGE: Duration = Duration::from_millis(500);
/// Context kept around each region: whisper likes a little lead-in and tail.
const PAD_FRAMES: usize = 10; // 200 ms
/// A clip the VAD finds no start in (speech from end to end, so its floor is speech) is one
/// region when it is at least this loud (dBFS).
const MIN_SPEECH_DB: f32 = -50.0;

/// Sample ranges that contain speech, padded and with short pauses bridged.
pub fn speech_regions(samples: &[f32]) -> Vec<Range<usize>> {
    let pcm: Vec<i16> = samples
        .iter()
        .map(|s| (s * 32768.0).clamp(-32768.0, 32767.0) as i16)
        .collect();
    let frames: Vec<[i16; FRAME]> = pcm
        .chunks(FRAME)
        .map(|chunk| {
            let mut frame = [0i16; FRAME];
            frame[..chunk.len()].copy_from_slice(chunk);
            frame
        })
        .collect();
    let mut config = VadConfig::new(MODEL_RATE);
    config.hangover = BRIDGE;
    let onset = frames_in(config.onset, config.frame) as usize;
    let hangover = frames_in(config.hangover, config.frame) as usize;
    let mut vad = Vad::new(config);
    // The whole clip is known: a first pass learns the noise floor, so speech in the very first
    // frames is not taken for it.
    for frame in &frames {
        let _ = vad.process(frame);
    }
    vad.restart();
    let mut regions: Vec<Range<usize>> = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        match vad.process(frame) {
            Some(VadEvent::SpeechStart) => {
                regions.push((i + 1).saturating_sub(onset)..frames.len())
            }
            Some(VadEvent::SpeechEnd) => {
                if let Some(last) = regions.last_mut() {
                    last.end = (i + 1).saturating_sub(hangover).max(last.start + 1);
                }
            }
            _ => {}
        }
    }
    if regions.is_empty() && frames.iter().any(|f| level_db(f) >= MIN_SPEECH_DB) {
        regions.push(0..frames.len());
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

    /// Speech-like: a tone in syllables (4 a second, dipping 20 dB between them). A steady
    /// tone is not speech to the VAD: its noise floor climbs to meet it within seconds.
    fn tone(ms: usize) -> Vec<f32> {
        (0..ms * 16)
            .map(|i| {
                let syllable = if (i / 16) % 250 < 180 { 1.0 } else { 0.1 };
                0.3 * syllable * (i as f32 * 0.2).sin()
            })
            .collect()
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
        assert_eq!(regions.len(), 2, "{regions:?}");
        // 200 ms of padding either side; the band filter's tail may hold one more frame.
        let near = |got: usize, ms: usize| got.abs_diff(ms * 16) <= 20 * 16;
        assert!(
            near(regions[0].start, 800) && near(regions[0].end, 1700),
            "{regions:?}"
        );
        assert!(
            near(regions[1].start, 3300) && near(regions[1].end, 4000),
            "{regions:?}"
        );
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
