//! Audio codecs behind one trait. Encode and decode write into caller buffers: nothing is
//! allocated per frame.

mod g711;
mod l16;
mod opus;
mod plc;

pub use g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear, G711Law, G711};
pub use l16::L16;
pub use opus::Opus;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("output buffer too small: need {needed}, have {have}")]
    OutputTooSmall { needed: usize, have: usize },
    #[error("payload is not a whole number of samples")]
    OddPayload,
    #[error("opus: {0}")]
    Opus(#[from] audiopus::Error),
}

/// The static description of a codec instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecInfo {
    pub name: &'static str,
    /// RTP timestamp clock.
    pub rtp_clock_rate: u32,
    /// Rate of the PCM this instance consumes and produces.
    pub pcm_rate: u32,
    /// PCM samples in one packet (one ptime).
    pub frame_samples: usize,
    /// RTP timestamp units per packet.
    pub frame_ticks: u32,
    /// Upper bound of an encoded packet's payload.
    pub max_payload: usize,
}

pub trait AudioCodec: Send {
    fn info(&self) -> CodecInfo;
    /// Encodes exactly `frame_samples` of PCM; returns the payload length.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
    /// Decodes one payload; returns the number of PCM samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;
    /// Produces one frame in place of a lost packet. `next` is the following packet when the
    /// jitter buffer already holds it (Opus recovers the loss from its in-band FEC).
    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError>;
}

/// Codecs a call can negotiate (SDP rtpmap names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecKind {
    Pcmu,
    Pcma,
    /// Linear 16-bit big-endian mono at the given rate.
    L16 {
        rate: u32,
    },
    /// opus/48000/2 on the wire; decoded and encoded mono.
    Opus,
}

impl CodecKind {
    /// Creates a codec instance for packets of `ptime_ms`. The PCM side runs at `pcm_rate`
    /// where the codec can choose (Opus decodes straight to the pipeline's 16 kHz).
    pub fn create(self, ptime_ms: u32) -> Result<Box<dyn AudioCodec>, CodecError> {
        Ok(match self {
            CodecKind::Pcmu => Box::new(G711::new(G711Law::Mu, ptime_ms)),
            CodecKind::Pcma => Box::new(G711::new(G711Law::A, ptime_ms)),
            CodecKind::L16 { rate } => Box::new(L16::new(rate, ptime_ms)),
            CodecKind::Opus => Box::new(Opus::new(16_000, ptime_ms)?),
        })
    }
}

fn check_len<T>(buf: &[T], needed: usize) -> Result<(), CodecError> {
    if buf.len() < needed {
        Err(CodecError::OutputTooSmall {
            needed,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}
