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
    /// From an SDP `a=rtpmap` encoding (`PCMU/8000`, `opus/48000/2`, `L16/16000`…); names are
    /// case-insensitive (RFC 4855). `None` for anything we do not carry.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: Option<u32>) -> Option<Self> {
        let mono = channels.unwrap_or(1) == 1;
        match (name.to_ascii_lowercase().as_str(), clock_rate) {
            ("pcmu", 8000) if mono => Some(CodecKind::Pcmu),
            ("pcma", 8000) if mono => Some(CodecKind::Pcma),
            // RFC 7587: always 48000/2 in SDP, whatever is actually sent.
            ("opus", 48_000) => Some(CodecKind::Opus),
            ("l16", 8000 | 16_000) if mono => Some(CodecKind::L16 { rate: clock_rate }),
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_names() {
        assert_eq!(
            CodecKind::from_rtpmap("PCMU", 8000, None),
            Some(CodecKind::Pcmu)
        );
        assert_eq!(
            CodecKind::from_rtpmap("pcma", 8000, Some(1)),
            Some(CodecKind::Pcma)
        );
        assert_eq!(
            CodecKind::from_rtpmap("opus", 48_000, Some(2)),
            Some(CodecKind::Opus)
        );
        assert_eq!(
            CodecKind::from_rtpmap("L16", 16_000, None),
            Some(CodecKind::L16 { rate: 16_000 })
        );
        assert_eq!(CodecKind::from_rtpmap("L16", 44_100, Some(2)), None);
        assert_eq!(CodecKind::from_rtpmap("G729", 8000, None), None);
        assert_eq!(CodecKind::from_rtpmap("PCMU", 16_000, None), None);
    }
}
