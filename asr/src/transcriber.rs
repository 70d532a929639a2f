//! The backend-neutral recognition interface. whisper-rs churns between releases, so everything
//! outside `whisper.rs` talks to these types only.

use serde::Serialize;

use crate::error::AsrError;

/// Whisper's fixed input rate.
pub const MODEL_RATE: u32 = 16_000;

/// How long `samples` at [`MODEL_RATE`] last, in ms.
pub(crate) fn samples_ms(samples: usize) -> u64 {
    samples as u64 * 1000 / u64::from(MODEL_RATE)
}
/// Longest audio one decoding window can hold; longer utterances are split first.
pub const MAX_WINDOW_MS: u64 = 30_000;

/// How much of the encoder's 30 s context to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioContext {
    /// The whole 1500-frame context, as stock whisper does.
    Full,
    /// Just enough frames for the clip, but never fewer than `floor`: below ~384 frames tiny.en
    /// falls into repetition loops; free-form speech does best at 384, typed answers at 512
    /// (docs/asr.md).
    Fit { floor: u32 },
}

/// Decoder settings; [`DecodeSettings::telephone`] is our tuned profile, [`DecodeSettings::stock`]
/// the whisper.cpp defaults kept for side-by-side measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeSettings {
    pub no_timestamps: bool,
    pub audio_context: AudioContext,
    /// Cap on generated tokens per second of audio (plus a fixed allowance): the guard against
    /// runaway repetition with a shortened context.
    pub max_tokens_per_second: Option<u32>,
    /// Collapse a phrase repeated three or more times in a row to one occurrence.
    pub collapse_repeats: bool,
    /// whisper.cpp's retry at rising temperature when a decode looks degenerate. It samples
    /// randomly, so results would depend on each state's history; ours turns it off and relies
    /// on the token/repeat guard instead.
    pub temperature_fallback: bool,
    /// Silence put before the audio (ms).
    pub lead_in_ms: u32,
    /// Beam search width; `None` decodes greedily.
    pub beam_size: Option<u32>,
    /// When the decode's confidence (geometric mean token probability) is below this, decode a
    /// copy with -50 dBFS dither once more and keep the more confident of the two. Unlike the
    /// temperature fallback this is deterministic, and low confidence marks most of tiny.en's
    /// misrecognitions on telephone speech (docs/asr.md).
    pub retry_below: Option<f32>,
    /// Decode with the answer model when one is loaded (`[asr] answer_model`).
    pub answer_model: bool,
}

impl DecodeSettings {
    /// Free-form speech: the 384-frame floor measured better on free-form answers than 512
    /// (and costs a quarter less), and low-confidence decodes get a dithered second opinion.
    pub fn telephone() -> Self {
        DecodeSettings {
            no_timestamps: true,
            audio_context: AudioContext::Fit { floor: 384 },
            max_tokens_per_second: Some(8),
            collapse_repeats: true,
            temperature_fallback: false,
            lead_in_ms: 0,
            beam_size: None,
            retry_below: Some(0.5),
            answer_model: false,
        }
    }

    /// Typed answers: the 384 floor cost accuracy on short typed answers, and without a retry
    /// the closed-set scores are taken on the encoding of the decode whose text is returned.
    /// They are short, few and decide what an agent does next, so they get the full-precision
    /// answer model when one is loaded.
    pub fn telephone_typed() -> Self {
        DecodeSettings {
            audio_context: AudioContext::Fit { floor: 512 },
            retry_below: None,
            answer_model: true,
            ..Self::telephone()
        }
    }

    pub fn stock() -> Self {
        DecodeSettings {
            no_timestamps: false,
            audio_context: AudioContext::Full,
            max_tokens_per_second: None,
            collapse_repeats: false,
            temperature_fallback: true,
            lead_in_ms: 0,
            beam_size: None,
            retry_below: None,
            answer_model: false,
        }
    }
}

/// One recognition job.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Text the speech is likely to follow (the question asked, expected vocabulary).
    pub prompt: Option<String>,
    pub settings: DecodeSettings,
    /// Closed-set answers to score after the prompt, in this order (empty: none).
    pub candidates: Vec<String>,
    /// Decoder threads for this job.
    pub threads: usize,
    /// Language code for multilingual models ("en"); English-only models ignore it.
    pub language: String,
}

impl Request {
    pub fn new(threads: usize, language: &str) -> Self {
        Request {
            prompt: None,
            settings: DecodeSettings::telephone(),
            candidates: Vec::new(),
            threads,
            language: language.to_string(),
        }
    }
}

/// A piece of recognized text with its position in the audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// What one job produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    pub text: String,
    pub segments: Vec<Segment>,
    /// Geometric mean probability of the text tokens (0–1); 0 for no text.
    pub confidence: f32,
    /// Log-probability of each requested candidate, in request order.
    pub candidate_logprobs: Vec<f32>,
    /// How long the job waited for a recognizer (set by the pool).
    pub queue_wait: std::time::Duration,
}

/// A loaded model, shared by all workers (load once, wrap in `Arc`).
pub trait Transcriber: Send + Sync {
    /// A per-worker decoding session holding its own buffers.
    fn session(&self) -> Result<Box<dyn Session>, AsrError>;
}

/// What the pool tells a session about the job it runs.
pub struct JobLimits<'a> {
    /// Give up (with [`AsrError::Timeout`]) once this instant has passed.
    pub deadline: Option<std::time::Instant>,
    /// Asked before optional work (a second opinion) expected to take this long: false while
    /// other jobs wait for a recognizer (each would wait for it too) or when it would end past
    /// the job's latency target.
    pub may_spend: &'a dyn Fn(std::time::Duration) -> bool,
}

/// Two utterances recognized together fit in this much audio, pause included: the shortest
/// encoder context our profile uses (384 frames), so the pair costs one encoder pass.
pub const PAIR_MAX_MS: u64 = 7_680;
/// Silence put between two utterances recognized together.
pub const PAIR_GAP_MS: u64 = 500;

/// Mutable decoding state; one per worker thread.
pub trait Session: Send {
    /// Recognizes one utterance of 16 kHz mono samples (at most [`MAX_WINDOW_MS`]).
    fn recognize(
        &mut self,
        audio: &[f32],
        request: &Request,
        limits: &JobLimits,
    ) -> Result<Recognition, AsrError>;

    /// Recognizes two short utterances in one decode, [`PAIR_GAP_MS`] of silence between them
    /// (at most [`PAIR_MAX_MS`] in all), one recognition each. `None` when the text cannot be
    /// told apart (whisper did not end exactly one segment per utterance): the caller then
    /// recognizes each alone. No second opinions.
    fn recognize_pair(
        &mut self,
        _first: &[f32],
        _second: &[f32],
        _request: &Request,
        _limits: &JobLimits,
    ) -> Result<Option<[Recognition; 2]>, AsrError> {
        Ok(None)
    }
}
