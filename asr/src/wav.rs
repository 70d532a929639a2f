//! The recognizer's audio files: the media crate's WAV reader, narrowed to mono at 8 or
//! 16 kHz. Anything else is refused with a reason.

use voxbridge_media::wav::read_wav;
pub use voxbridge_media::wav::WavError;

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

/// Reads a whole WAV file held in memory: mono PCM16, μ-law or A-law at 8 or 16 kHz.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, WavError> {
    let audio = read_wav(bytes)?;
    if audio.channels != 1 {
        return Err(WavError::UnsupportedChannels(audio.channels));
    }
    let rate = match audio.rate {
        8000 => SampleRate::Hz8000,
        16000 => SampleRate::Hz16000,
        other => return Err(WavError::UnsupportedRate(other)),
    };
    Ok(Pcm {
        rate,
        samples: audio.samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCM16 WAV file written by the media crate's writer.
    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let out = std::io::Cursor::new(Vec::new());
        let mut writer = voxbridge_media::wav::WavWriter::new(out, rate, channels).unwrap();
        writer.write_samples(samples).unwrap();
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn takes_mono_at_8_or_16_khz_only() {
        let pcm = parse_wav(&wav(16000, 1, &[1, -2])).unwrap();
        assert_eq!((pcm.rate, pcm.samples), (SampleRate::Hz16000, vec![1, -2]));
        assert_eq!(
            parse_wav(&wav(8000, 1, &[0])).unwrap().rate,
            SampleRate::Hz8000
        );
        assert_eq!(
            parse_wav(&wav(8000, 2, &[0; 4])),
            Err(WavError::UnsupportedChannels(2))
        );
        assert_eq!(
            parse_wav(&wav(44100, 1, &[0; 4])),
            Err(WavError::UnsupportedRate(44100))
        );
        assert_eq!(parse_wav(b"OggS...."), Err(WavError::NotWave));
    }
}
