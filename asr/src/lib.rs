//! Speech recognition for telephone audio: the `Transcriber` trait and its whisper backend.
//!
//! Layers, from the bottom: WAV/G.711 decoding and the telephone front end (zero-stuffed
//! 8 → 16 kHz), an energy VAD stand-in, the backend-neutral [`Transcriber`]/[`Session`] traits
//! with the whisper.cpp implementation, a bounded worker [`pool`], typed [`answers`] and the
//! [`engine`] entry points on top.

pub mod answers;
pub mod capacity;
pub mod engine;
pub mod error;
pub mod frontend;
pub mod manifest;
#[cfg(feature = "whisper")]
mod model_file;
pub mod numbers;
pub mod pool;
#[cfg(feature = "whisper")]
mod repeats;
#[cfg(feature = "whisper")]
mod sound_tags;
pub mod transcriber;
pub mod vad;
pub mod wav;
pub mod wer;
#[cfg(feature = "whisper")]
pub mod whisper;

pub use answers::{Answer, AnswerType, AnswerValue};
pub use capacity::Calibration;
pub use engine::{
    transcribe_wav, AsrConfig, Question, SpeechEngine, TranscribeOptions, TranscriptionOutput,
};
pub use error::{AsrError, WavError};
pub use pool::Priority;
pub use transcriber::{
    AudioContext, DecodeSettings, JobLimits, Recognition, Request, Segment, Session, Transcriber,
};
pub use wav::{parse_wav, Pcm, SampleRate};
