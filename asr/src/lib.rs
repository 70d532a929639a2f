//! Speech recognition for telephone audio: the `Transcriber` trait and its whisper backend.
//!
//! Layers, from the bottom: WAV/G.711 decoding and the telephone front end (zero-stuffed
//! 8 → 16 kHz), an energy VAD stand-in, the backend-neutral [`Transcriber`]/[`Session`] traits
//! with the whisper.cpp implementation, a bounded worker [`pool`], typed answers on top.

pub mod error;
pub mod frontend;
mod g711;
mod model_file;
mod repeats;
pub mod transcriber;
pub mod wav;
#[cfg(feature = "whisper")]
pub mod whisper;

pub use error::{AsrError, WavError};
pub use transcriber::{
    AudioContext, DecodeSettings, Recognition, Request, Segment, Session, Transcriber,
};
