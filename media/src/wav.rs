//! Streaming WAV writer (PCM16). The header is written up front with placeholder sizes and
//! patched by `finish`, so a call's recording goes to disk as it happens.

use std::io::{self, Seek, SeekFrom, Write};

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
}
