//! WAV files: the one reader (PCM16, μ-law or A-law, any rate and channel count; the
//! recognizer, the CLI and speech synthesis narrow it down) and the streaming PCM16 writer
//! of call recordings, whose header is written up front with placeholder sizes and patched by
//! `finish`, so a recording goes to disk as the call happens.

use std::io::{self, Seek, SeekFrom, Write};

use crate::codec::{alaw_to_linear, ulaw_to_linear};

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// Why a WAV file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("the file ends inside the {0} chunk")]
    Truncated(&'static str),
    #[error("no `fmt ` chunk before the `data` chunk")]
    MissingFormat,
    #[error("no `data` chunk")]
    MissingData,
    #[error("unsupported WAV encoding (format tag {tag}, {bits} bits): use PCM16, μ-law or A-law")]
    UnsupportedEncoding { tag: u16, bits: u16 },
    #[error("unsupported sample rate {0} Hz: use 8000 or 16000")]
    UnsupportedRate(u32),
    #[error("unsupported channel count {0}: use mono")]
    UnsupportedChannels(u16),
}

/// A decoded WAV file: linear PCM16, channels interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct WavAudio {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse_format(body: &[u8]) -> Result<Format, WavError> {
    let truncated = || WavError::Truncated("fmt ");
    let u16_at = |at| le_u16(body, at).ok_or_else(truncated);
    let mut tag = u16_at(0)?;
    // WAVE_FORMAT_EXTENSIBLE carries the real tag in the first two bytes of its sub-format GUID.
    if tag == FORMAT_EXTENSIBLE {
        tag = u16_at(24)?;
    }
    let channels = u16_at(2)?;
    let (rate, bits) = (le_u32(body, 4).ok_or_else(truncated)?, u16_at(14)?);
    if channels == 0 {
        return Err(WavError::UnsupportedChannels(0));
    }
    Ok(Format {
        tag,
        channels,
        rate,
        bits,
    })
}

/// Reads a whole WAV file held in memory. Writers that stream (sox or espeak-ng to a pipe,
/// many TTS servers) leave the data size at 0 or 0xffffffff: the data is then the rest of the
/// file. A trailing partial sample frame is dropped.
pub fn read_wav(bytes: &[u8]) -> Result<WavAudio, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWave);
    }
    let mut format = None;
    let mut pos = 12;
    while let (Some(id), Some(size)) = (bytes.get(pos..pos + 4), le_u32(bytes, pos + 4)) {
        let (start, size) = (pos + 8, size as usize);
        let end = start.saturating_add(size);
        if id == b"fmt " {
            let body = bytes.get(start..end).ok_or(WavError::Truncated("fmt "))?;
            format = Some(parse_format(body)?);
        } else if id == b"data" {
            let format = format.ok_or(WavError::MissingFormat)?;
            let body = match bytes.get(start..end) {
                Some(body) if size > 0 => body,
                _ => &bytes[start.min(bytes.len())..],
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

fn decode(format: &Format, data: &[u8]) -> Result<WavAudio, WavError> {
    let bytes_per_sample = match (format.tag, format.bits) {
        (FORMAT_PCM, 16) => 2,
        (FORMAT_ULAW | FORMAT_ALAW, 8) => 1,
        (tag, bits) => return Err(WavError::UnsupportedEncoding { tag, bits }),
    };
    let frame = bytes_per_sample * usize::from(format.channels);
    let data = &data[..data.len() / frame * frame];
    let samples = match format.tag {
        FORMAT_PCM => data
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect(),
        FORMAT_ULAW => data.iter().map(|&b| ulaw_to_linear(b)).collect(),
        _ => data.iter().map(|&b| alaw_to_linear(b)).collect(),
    };
    Ok(WavAudio {
        rate: format.rate,
        channels: format.channels,
        samples,
    })
}

pub struct WavWriter<W: Write + Seek> {
    out: W,
    channels: u16,
    data_bytes: u32,
}

impl<W: Write + Seek> WavWriter<W> {
    pub fn new(mut out: W, sample_rate: u32, channels: u16) -> io::Result<Self> {
        let block = channels * 2;
        let mut h = [0u8; 44];
        h[0..4].copy_from_slice(b"RIFF");
        h[8..16].copy_from_slice(b"WAVEfmt ");
        h[16..20].copy_from_slice(&16u32.to_le_bytes());
        h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
        h[22..24].copy_from_slice(&channels.to_le_bytes());
        h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
        h[28..32].copy_from_slice(&(sample_rate * u32::from(block)).to_le_bytes());
        h[32..34].copy_from_slice(&block.to_le_bytes());
        h[34..36].copy_from_slice(&16u16.to_le_bytes());
        h[36..40].copy_from_slice(b"data");
        out.write_all(&h)?;
        Ok(Self {
            out,
            channels,
            data_bytes: 0,
        })
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Writes interleaved samples.
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        for chunk in samples.chunks(buf.len() / 2) {
            for (b, s) in buf.chunks_exact_mut(2).zip(chunk) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            self.out.write_all(&buf[..chunk.len() * 2])?;
        }
        self.data_bytes = self.data_bytes.saturating_add((samples.len() * 2) as u32);
        Ok(())
    }

    /// Patches the RIFF and data sizes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + self.data_bytes).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&self.data_bytes.to_le_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Pairs caller and agent frames into a stereo stream (caller left, agent right). The two
/// sides run on different 20 ms clocks; frames are matched in order and, when one side falls
/// `max_skew` frames behind (e.g. no inbound RTP yet), its missing frames are silence.
pub struct StereoRecorder<W: Write + Seek> {
    wav: WavWriter<W>,
    frame: usize,
    caller: std::collections::VecDeque<i16>,
    agent: std::collections::VecDeque<i16>,
    max_skew: usize,
    interleaved: Vec<i16>,
}

impl<W: Write + Seek> StereoRecorder<W> {
    pub fn new(out: W, sample_rate: u32, frame: usize) -> io::Result<Self> {
        let max_skew = 10;
        Ok(Self {
            wav: WavWriter::new(out, sample_rate, 2)?,
            frame,
            caller: std::collections::VecDeque::with_capacity(frame * (max_skew + 1)),
            agent: std::collections::VecDeque::with_capacity(frame * (max_skew + 1)),
            max_skew,
            interleaved: Vec::with_capacity(2 * frame),
        })
    }

    pub fn caller(&mut self, pcm: &[i16]) -> io::Result<()> {
        self.caller.extend(pcm);
        self.flush_pairs()
    }

    pub fn agent(&mut self, pcm: &[i16]) -> io::Result<()> {
        self.agent.extend(pcm);
        self.flush_pairs()
    }

    fn flush_pairs(&mut self) -> io::Result<()> {
        let limit = self.frame * self.max_skew;
        loop {
            let (c, a) = (self.caller.len(), self.agent.len());
            let n = if c.min(a) >= self.frame {
                self.frame
            } else if c.max(a) > limit {
                // One side is silent: write the other against silence.
                self.frame
            } else {
                return Ok(());
            };
            self.interleaved.clear();
            for _ in 0..n {
                self.interleaved.push(self.caller.pop_front().unwrap_or(0));
                self.interleaved.push(self.agent.pop_front().unwrap_or(0));
            }
            self.wav.write_samples(&self.interleaved)?;
        }
    }

    /// Writes what is left (padding the shorter side) and finalises the header.
    pub fn finish(mut self) -> io::Result<W> {
        let n = self.caller.len().max(self.agent.len());
        self.interleaved.clear();
        for _ in 0..n {
            self.interleaved.push(self.caller.pop_front().unwrap_or(0));
            self.interleaved.push(self.agent.pop_front().unwrap_or(0));
        }
        self.wav.write_samples(&self.interleaved)?;
        self.wav.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn stereo_file_has_caller_left_agent_right_and_valid_sizes() {
        let mut rec = StereoRecorder::new(Cursor::new(Vec::new()), 16_000, 4).unwrap();
        rec.caller(&[1, 1, 1, 1]).unwrap();
        rec.agent(&[2, 2, 2, 2]).unwrap();
        rec.caller(&[3, 3, 3, 3]).unwrap();
        let bytes = rec.finish().unwrap().into_inner();
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 32);
        assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2);
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            16_000
        );
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 32);
        let samples: Vec<i16> = bytes[44..]
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(
            samples,
            vec![1, 2, 1, 2, 1, 2, 1, 2, 3, 0, 3, 0, 3, 0, 3, 0]
        );
    }

    #[test]
    fn silent_side_does_not_hold_back_the_other() {
        let mut rec = StereoRecorder::new(Cursor::new(Vec::new()), 8000, 2).unwrap();
        for _ in 0..30 {
            rec.caller(&[5, 5]).unwrap();
        }
        let bytes = rec.wav.out.get_ref().len();
        assert!(
            bytes > 44 + 4 * 15,
            "frames streamed while the agent is silent: {bytes}"
        );
    }

    /// A WAV file's bytes with one `fmt ` chunk (PCM layout fields) and `data`.
    fn build(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF".to_vec();
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

    #[test]
    fn reads_pcm16_ulaw_and_alaw() {
        let data: Vec<u8> = [1i16, -2, 300, 4]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let stereo = read_wav(&build(1, 2, 22_050, 16, &data)).unwrap();
        assert_eq!((stereo.rate, stereo.channels), (22_050, 2));
        assert_eq!(stereo.samples, vec![1, -2, 300, 4]);
        let ulaw = read_wav(&build(7, 1, 8000, 8, &[0xff, 0x80])).unwrap();
        assert_eq!(ulaw.samples, vec![0, 32124]);
        assert_eq!(
            read_wav(&build(6, 1, 8000, 8, &[0xd5])).unwrap().samples,
            vec![8]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(read_wav(b"OggS...."), Err(WavError::NotWave));
        assert_eq!(read_wav(b"RIFF"), Err(WavError::NotWave));
        assert_eq!(
            read_wav(&build(3, 1, 16000, 32, &[0; 8])),
            Err(WavError::UnsupportedEncoding { tag: 3, bits: 32 })
        );
        assert_eq!(
            read_wav(&build(1, 0, 8000, 16, &[0; 8])),
            Err(WavError::UnsupportedChannels(0))
        );
        let mut truncated = build(1, 1, 8000, 16, &[]);
        truncated.truncate(30);
        assert_eq!(read_wav(&truncated), Err(WavError::Truncated("fmt ")));
        assert_eq!(
            read_wav(b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff"),
            Err(WavError::MissingFormat)
        );
    }

    #[test]
    fn skips_unknown_chunks_and_accepts_streamed_sizes() {
        let mut wav = build(1, 1, 8000, 16, &[5, 0, 6, 0, 7]);
        // Streamed output: data size 0xffffffff; the odd last byte is half a sample.
        let n = wav.len();
        wav[n - 9..n - 5].copy_from_slice(&u32::MAX.to_le_bytes());
        // A LIST chunk with an odd size (padded) before fmt.
        let mut with_list = wav[..12].to_vec();
        with_list.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        with_list.extend_from_slice(&wav[12..]);
        assert_eq!(read_wav(&with_list).unwrap().samples, vec![5, 6]);
    }

    #[test]
    fn a_recording_reads_back() {
        let mut rec = StereoRecorder::new(Cursor::new(Vec::new()), 16_000, 2).unwrap();
        rec.caller(&[7, 8]).unwrap();
        rec.agent(&[-1, -2]).unwrap();
        let bytes = rec.finish().unwrap().into_inner();
        let audio = read_wav(&bytes).unwrap();
        assert_eq!((audio.rate, audio.channels), (16_000, 2));
        assert_eq!(audio.samples, vec![7, -1, 8, -2]);
    }
}
