//! WAV reading: PCM16, μ-law or A-law, mono, 8 or 16 kHz. Anything else is refused with a reason.

use crate::error::WavError;
use crate::g711::{alaw_to_linear, ulaw_to_linear};

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Sample rates the recognizer accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleRate {
    /// Narrowband telephone audio: goes through the telephone front end.
    Hz8000,
    /// Wideband audio: fed to the model as is.
    Hz16000,
}

impl SampleRate {
    pub fn hz(self) -> u32 {
        match self {
            SampleRate::Hz8000 => 8000,
            SampleRate::Hz16000 => 16000,
        }
    }
}

/// Decoded mono linear PCM.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub rate: SampleRate,
    pub samples: Vec<i16>,
}

impl Pcm {
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(self.rate.hz())
    }
}

struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_format(body: &[u8]) -> Result<Format, WavError> {
    if body.len() < 16 {
        return Err(WavError::Truncated("fmt "));
    }
    let mut tag = le_u16(body, 0);
    // WAVE_FORMAT_EXTENSIBLE carries the real tag in the first two bytes of its sub-format GUID.
    if tag == FORMAT_EXTENSIBLE {
        if body.len() < 26 {
            return Err(WavError::Truncated("fmt "));
        }
        tag = le_u16(body, 24);
    }
    Ok(Format {
        tag,
        channels: le_u16(body, 2),
        rate: le_u32(body, 4),
        bits: le_u16(body, 14),
    })
}

/// Parses a whole WAV file held in memory.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut format = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = le_u32(bytes, pos + 4) as usize;
        let start = pos + 8;
        let end = start.saturating_add(size);
        if id == b"fmt " {
            let body = bytes.get(start..end).ok_or(WavError::Truncated("fmt "))?;
            format = Some(parse_format(body)?);
        } else if id == b"data" {
            let format = format.ok_or(WavError::MissingFormat)?;
            // Writers that stream (sox to a pipe) leave the size at 0 or 0xffffffff: take the rest.
            let body = match bytes.get(start..end) {
                Some(body) if size > 0 => body,
                _ => &bytes[start..],
            };
            return decode(&format, body);
        }
        // Chunks are word-aligned.
        pos = end.saturating_add(size & 1);
    }
    Err(if format.is_some() {
        WavError::MissingData
    } else {
        WavError::MissingFormat
    })
}

fn decode(format: &Format, data: &[u8]) -> Result<Pcm, WavError> {
    if format.channels != 1 {
        return Err(WavError::UnsupportedChannels(format.channels));
    }
    let rate = match format.rate {
        8000 => SampleRate::Hz8000,
        16000 => SampleRate::Hz16000,
        other => return Err(WavError::UnsupportedRate(other)),
    };
    let samples = match (format.tag, format.bits) {
        (FORMAT_PCM, 16) => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        (FORMAT_ULAW, 8) => data.iter().map(|&b| ulaw_to_linear(b)).collect(),
        (FORMAT_ALAW, 8) => data.iter().map(|&b| alaw_to_linear(b)).collect(),
        (tag, bits) => return Err(WavError::UnsupportedEncoding { tag, bits }),
    };
    Ok(Pcm { rate, samples })
}

#[cfg(test)]
pub(crate) fn build_wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    let block = channels * bits / 8;
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pcm16_at_16k() {
        let data: Vec<u8> = [1i16, -2, 300]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let pcm = parse_wav(&build_wav(1, 1, 16000, 16, &data)).unwrap();
        assert_eq!(pcm.rate, SampleRate::Hz16000);
        assert_eq!(pcm.samples, vec![1, -2, 300]);
    }

    #[test]
    fn reads_ulaw_and_alaw_at_8k() {
        let pcm = parse_wav(&build_wav(7, 1, 8000, 8, &[0xff, 0x80])).unwrap();
        assert_eq!(
            (pcm.rate, pcm.samples),
            (SampleRate::Hz8000, vec![0, 32124])
        );
        let pcm = parse_wav(&build_wav(6, 1, 8000, 8, &[0xd5])).unwrap();
        assert_eq!(pcm.samples, vec![8]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_wav(b"OggS...."), Err(WavError::NotWave));
        assert_eq!(
            parse_wav(&build_wav(1, 2, 8000, 16, &[0; 8])),
            Err(WavError::UnsupportedChannels(2))
        );
        assert_eq!(
            parse_wav(&build_wav(1, 1, 44100, 16, &[0; 8])),
            Err(WavError::UnsupportedRate(44100))
        );
        assert_eq!(
            parse_wav(&build_wav(3, 1, 16000, 32, &[0; 8])),
            Err(WavError::UnsupportedEncoding { tag: 3, bits: 32 })
        );
        let mut truncated = build_wav(1, 1, 8000, 16, &[]);
        truncated.truncate(30);
        assert_eq!(parse_wav(&truncated), Err(WavError::Truncated("fmt ")));
    }

    #[test]
    fn skips_unknown_chunks_and_accepts_streamed_sizes() {
        let mut wav = build_wav(1, 1, 8000, 16, &[5, 0, 6, 0]);
        // Streamed output: data size 0xffffffff.
        let n = wav.len();
        wav[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        // A LIST chunk with an odd size (padded) before fmt.
        let mut with_list = wav[..12].to_vec();
        with_list.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        with_list.extend_from_slice(&wav[12..]);
        assert_eq!(parse_wav(&with_list).unwrap().samples, vec![5, 6]);
    }
}
