//! Cuts the caller's 20 ms frames into utterances for the recognizer, following the media
//! VAD's speech start/end events. Pure: frames and events in, utterances out.

use std::collections::VecDeque;

use voxbridge_asr::frontend::{upsample_8k, Upsampler};

/// Samples per 20 ms frame at 16 kHz.
const FRAME: usize = 320;
const FRAME_MS: u64 = 20;
/// The VAD reports speech 60 ms after it began; keep that much and a little more of lead-in.
const PRE_ROLL_FRAMES: usize = 10;
/// whisper's window: longer speech is cut and recognized in pieces.
const MAX_FRAMES: usize = 30_000 / FRAME_MS as usize;
/// Speech this long is cut at its next pause, between words, before the hard cut at
/// [`MAX_FRAMES`] splits one (and whisper drops the words around a split).
const CUT_AT_PAUSE_FRAMES: usize = 20_000 / FRAME_MS as usize;

/// One stretch of caller speech, timed from the start of the call's media.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub start_ms: u64,
    pub end_ms: u64,
    /// 16 kHz mono.
    pub pcm: Vec<i16>,
    /// The VAD heard a vowel's worth of voiced (periodic) audio in its speech: without one it
    /// is a click, a cough or a burst of noise, not words, and is not worth a recognition.
    pub voiced: bool,
}

impl Utterance {
    /// Start and end in the call's time, for media that began `offset_ms` into the call.
    pub fn span(&self, offset_ms: u64) -> (u64, u64) {
        (self.start_ms + offset_ms, self.end_ms + offset_ms)
    }

    /// The recognizer's input. Telephone audio reaches us upsampled to 16 kHz by a band-limiting
    /// filter; the recognizer does better on the zero-stuffed 8 kHz original (docs/asr.md), which
    /// every other sample of the band-limited signal gives back.
    pub fn model_input(&self, narrowband: bool) -> Vec<f32> {
        if narrowband {
            let original: Vec<i16> = self.pcm.iter().step_by(2).copied().collect();
            upsample_8k(&original, Upsampler::ZeroStuff)
        } else {
            self.pcm.iter().map(|&s| f32::from(s) / 32768.0).collect()
        }
    }
}

#[derive(Debug, Default)]
pub struct UtteranceCutter {
    frames_seen: u64,
    recent: VecDeque<[i16; FRAME]>,
    current: Option<Utterance>,
    /// The VAD's speech segment in progress is voiced (it may be reported just before the
    /// segment's start, and holds for every piece cut out of the segment).
    voiced: bool,
}

impl UtteranceCutter {
    /// A caller frame; returns an utterance when speech ran past whisper's 30 s window.
    pub fn frame(&mut self, pcm: &[i16; FRAME]) -> Option<Utterance> {
        self.frames_seen += 1;
        let now_ms = self.frames_seen * FRAME_MS;
        let Some(current) = self.current.as_mut() else {
            if self.recent.len() == PRE_ROLL_FRAMES {
                self.recent.pop_front();
            }
            self.recent.push_back(*pcm);
            return None;
        };
        current.pcm.extend_from_slice(pcm);
        current.end_ms = now_ms;
        if current.pcm.len() >= MAX_FRAMES * FRAME {
            return self.cut();
        }
        None
    }

    /// The VAD heard a pause in ongoing speech: speech already long is cut here.
    pub fn paused(&mut self) -> Option<Utterance> {
        let long = self.current.as_ref()?.pcm.len() >= CUT_AT_PAUSE_FRAMES * FRAME;
        long.then(|| self.cut()).flatten()
    }

    /// Ends the current piece now. Speech goes on: the next piece starts where this one ends.
    fn cut(&mut self) -> Option<Utterance> {
        let now_ms = self.frames_seen * FRAME_MS;
        let next = Utterance {
            start_ms: now_ms,
            end_ms: now_ms,
            pcm: Vec::new(),
            voiced: self.voiced,
        };
        self.current.replace(next)
    }

    pub fn speech_started(&mut self) {
        if self.current.is_some() {
            return;
        }
        let lead = self.recent.len() as u64 * FRAME_MS;
        let now_ms = self.frames_seen * FRAME_MS;
        let pcm = self.recent.drain(..).flatten().collect();
        self.current = Some(Utterance {
            start_ms: now_ms.saturating_sub(lead),
            end_ms: now_ms,
            pcm,
            voiced: self.voiced,
        });
    }

    /// The VAD heard voiced speech in the segment in progress.
    pub fn voiced(&mut self) {
        self.voiced = true;
        if let Some(current) = self.current.as_mut() {
            current.voiced = true;
        }
    }

    /// The utterance so far, while speech goes on (for recognizing it early at a pause).
    pub fn so_far(&self) -> Option<Utterance> {
        self.current.clone().filter(|u| !u.pcm.is_empty())
    }

    pub fn speech_ended(&mut self) -> Option<Utterance> {
        self.voiced = false;
        self.current.take().filter(|u| !u.pcm.is_empty())
    }

    /// The call ended: speech still in progress is an utterance too.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.speech_ended()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> [i16; FRAME] {
        [value; FRAME]
    }

    #[test]
    fn an_utterance_spans_pre_roll_to_speech_end() {
        let mut cut = UtteranceCutter::default();
        for _ in 0..50 {
            assert_eq!(cut.frame(&frame(0)), None);
        }
        cut.speech_started();
        for _ in 0..25 {
            assert_eq!(cut.frame(&frame(7)), None);
        }
        let u = cut.speech_ended().expect("an utterance");
        assert_eq!(u.start_ms, 1000 - PRE_ROLL_FRAMES as u64 * FRAME_MS);
        assert_eq!(u.end_ms, 1500);
        assert_eq!(u.pcm.len(), (PRE_ROLL_FRAMES + 25) * FRAME);
        assert!(u.pcm[PRE_ROLL_FRAMES * FRAME..].iter().all(|&s| s == 7));
        assert_eq!(cut.speech_ended(), None, "nothing twice");
    }

    #[test]
    fn long_speech_is_cut_at_thirty_seconds_without_losing_audio() {
        let mut cut = UtteranceCutter::default();
        cut.speech_started();
        let mut pieces = vec![];
        for _ in 0..(MAX_FRAMES + 100) {
            pieces.extend(cut.frame(&frame(1)));
        }
        pieces.extend(cut.finish());
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].end_ms, pieces[1].start_ms);
        let total: usize = pieces.iter().map(|u| u.pcm.len()).sum();
        assert_eq!(total, (MAX_FRAMES + 100) * FRAME);
    }

    #[test]
    fn long_speech_is_cut_at_a_pause_past_twenty_seconds() {
        let mut cut = UtteranceCutter::default();
        cut.speech_started();
        for _ in 0..CUT_AT_PAUSE_FRAMES - 1 {
            assert_eq!(cut.frame(&frame(1)), None);
        }
        assert_eq!(cut.paused(), None, "short of 20 s: no cut");
        assert_eq!(cut.frame(&frame(1)), None);
        let first = cut.paused().expect("cut at the pause");
        assert_eq!(first.end_ms, CUT_AT_PAUSE_FRAMES as u64 * FRAME_MS);
        for _ in 0..50 {
            assert_eq!(cut.frame(&frame(2)), None);
        }
        let second = cut.speech_ended().expect("the rest");
        assert_eq!(second.start_ms, first.end_ms);
        assert_eq!(second.pcm.len(), 50 * FRAME);
        assert_eq!(
            UtteranceCutter::default().paused(),
            None,
            "no speech, no cut"
        );
    }

    #[test]
    fn voicing_marks_the_segment_and_every_piece_cut_out_of_it() {
        let mut cut = UtteranceCutter::default();
        // A burst of noise: speech to the VAD, but never voiced.
        cut.speech_started();
        cut.frame(&frame(3));
        assert!(!cut.speech_ended().expect("the burst").voiced);
        // Voiced reported in the frame speech starts, before the start event.
        cut.voiced();
        cut.speech_started();
        for _ in 0..CUT_AT_PAUSE_FRAMES {
            cut.frame(&frame(1));
        }
        assert!(cut.paused().expect("cut at the pause").voiced);
        cut.frame(&frame(1));
        assert!(cut.speech_ended().expect("the rest").voiced);
        // The next segment starts unvoiced again.
        cut.speech_started();
        cut.frame(&frame(1));
        assert!(!cut.speech_ended().expect("another burst").voiced);
    }

    #[test]
    fn narrowband_input_is_the_zero_stuffed_original() {
        let u = Utterance {
            voiced: true,
            start_ms: 0,
            end_ms: 0,
            pcm: vec![16384, 111, -16384, 222],
        };
        assert_eq!(u.model_input(true), vec![1.0, 0.0, -1.0, 0.0]);
        assert_eq!(u.model_input(false)[0], 0.5);
    }
}
