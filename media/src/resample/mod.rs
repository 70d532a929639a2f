//! Sample-rate conversion behind one trait, fixed 20 ms chunks in and out, with the
//! algorithmic delay exposed so the pipeline can account for it.
//!
//! 2:1 and 1:2 (8 ↔ 16 kHz, the G.711 hot path) use our half-band FIR; every other ratio
//! (48 ↔ 16 kHz when Opus is decoded at 48 kHz) wraps rubato's synchronous FFT resampler,
//! whose delay is half an FFT block; splitting each 20 ms chunk into sub-chunks shortens the
//! block and so the delay. docs/decisions.md has the measurements behind the split.

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _, WindowFunction};
use thiserror::Error;

mod fir;
pub use fir::{HalfBandDown, HalfBandUp};

#[derive(Debug, Error)]
pub enum ResampleError {
    #[error("resampler construction: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
    #[error("resampling: {0}")]
    Process(#[from] rubato::ResampleError),
    #[error("buffer sizes do not match the chunk ({0})")]
    BufferSize(#[from] audioadapter_buffers::SizeError),
    #[error("input must be exactly {expected} samples, got {actual}")]
    WrongInputLength { expected: usize, actual: usize },
}

/// Mono PCM rate conversion in fixed chunks.
pub trait Resampler: Send {
    /// Samples consumed per call.
    fn input_frames(&self) -> usize;
    /// Samples produced per call.
    fn output_frames(&self) -> usize;
    /// Converts exactly `input_frames()` samples into `output[..output_frames()]`.
    fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError>;
    /// Algorithmic delay in output samples.
    fn delay(&self) -> usize;
}

/// Creates a converter from `from` Hz to `to` Hz for chunks of `chunk_ms`.
pub fn resampler(from: u32, to: u32, chunk_ms: u32) -> Result<Box<dyn Resampler>, ResampleError> {
    let input = (from * chunk_ms / 1000) as usize;
    if from == to {
        return Ok(Box::new(Passthrough(input)));
    }
    if to == 2 * from {
        return Ok(Box::new(HalfBandUp::new(input)));
    }
    if from == 2 * to {
        return Ok(Box::new(HalfBandDown::new(input)));
    }
    Ok(Box::new(RubatoFft::new(from, to, input)?))
}

struct Passthrough(usize);

impl Resampler for Passthrough {
    fn input_frames(&self) -> usize {
        self.0
    }
    fn output_frames(&self) -> usize {
        self.0
    }
    fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        check_input(input, self.0)?;
        output[..self.0].copy_from_slice(input);
        Ok(self.0)
    }
    fn delay(&self) -> usize {
        0
    }
}

fn check_input(input: &[i16], expected: usize) -> Result<(), ResampleError> {
    if input.len() == expected {
        Ok(())
    } else {
        Err(ResampleError::WrongInputLength {
            expected,
            actual: input.len(),
        })
    }
}

/// Sub-chunks per 20 ms chunk: 4 gives a 5 ms FFT block, i.e. 2.5 ms of delay, while the
/// anti-aliasing cutoff stays above 0.9 of Nyquist for the telephone band.
const SUB_CHUNKS: usize = 4;

pub struct RubatoFft {
    inner: Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    in_frames: usize,
    out_frames: usize,
}

impl RubatoFft {
    pub fn new(from: u32, to: u32, in_frames: usize) -> Result<Self, ResampleError> {
        let inner = Fft::<f32>::new_custom(
            from as usize,
            to as usize,
            in_frames,
            SUB_CHUNKS,
            1,
            WindowFunction::BlackmanHarris2,
            FixedSync::Input,
        )?;
        let out_frames = inner.output_frames_next();
        Ok(Self {
            input: vec![0.0; in_frames],
            output: vec![0.0; inner.output_frames_max()],
            inner,
            in_frames,
            out_frames,
        })
    }
}

impl Resampler for RubatoFft {
    fn input_frames(&self) -> usize {
        self.in_frames
    }
    fn output_frames(&self) -> usize {
        self.out_frames
    }
    fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        check_input(input, self.in_frames)?;
        for (f, &s) in self.input.iter_mut().zip(input) {
            *f = f32::from(s) * (1.0 / 32768.0);
        }
        let out_len = self.output.len();
        let src = InterleavedSlice::new(&self.input[..], 1, self.in_frames)?;
        let mut dst = InterleavedSlice::new_mut(&mut self.output[..], 1, out_len)?;
        let (_, written) = self.inner.process_into_buffer(&src, &mut dst, None)?;
        for (o, &f) in output.iter_mut().zip(&self.output[..written]) {
            *o = (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(written.min(output.len()))
    }
    fn delay(&self) -> usize {
        self.inner.output_delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, n: usize, shift: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = (i as f64 - shift as f64) / f64::from(rate);
                if i < shift {
                    0.0
                } else {
                    (2.0 * std::f64::consts::PI * freq * t).sin() * 10_000.0
                }
            })
            .collect()
    }

    /// Converts one second of a tone and compares with the ideal tone at the output rate,
    /// delayed by the reported delay: the delay must be exact and the error small.
    fn check(from: u32, to: u32, freq: f64) -> usize {
        let mut r = resampler(from, to, 20).unwrap();
        assert_eq!(r.input_frames(), (from / 50) as usize);
        assert_eq!(r.output_frames(), (to / 50) as usize);
        let input: Vec<i16> = sine(from, freq, from as usize, 0)
            .iter()
            .map(|&x| x as i16)
            .collect();
        let mut out = vec![];
        let mut buf = vec![0i16; r.output_frames()];
        for chunk in input.chunks(r.input_frames()) {
            let n = r.process(chunk, &mut buf).unwrap();
            assert_eq!(n, r.output_frames());
            out.extend_from_slice(&buf[..n]);
        }
        let delay = r.delay();
        let ideal = sine(to, freq, out.len(), delay);
        // Skip the start-up transient.
        let skip = delay + (to / 50) as usize;
        let (mut s, mut e) = (0.0, 0.0);
        for (o, i) in out[skip..].iter().zip(&ideal[skip..]) {
            s += i * i;
            e += (f64::from(*o) - i).powi(2);
        }
        let snr = 10.0 * (s / e).log10();
        assert!(
            snr > 35.0,
            "{from}->{to} @ {freq} Hz: snr {snr:.1} dB, delay {delay}"
        );
        delay
    }

    #[test]
    fn telephone_rates_convert_with_known_delay() {
        for freq in [300.0, 1000.0, 3000.0] {
            assert!(check(8000, 16_000, freq) <= 64, "8k->16k delay");
            assert!(check(16_000, 8000, freq) <= 32, "16k->8k delay");
        }
        check(48_000, 16_000, 3000.0);
        check(16_000, 48_000, 440.0);
    }

    /// Content above the new Nyquist must not alias into the telephone band.
    #[test]
    fn downsampling_suppresses_aliases() {
        let mut r = resampler(16_000, 8000, 20).unwrap();
        let input: Vec<i16> = sine(16_000, 6000.0, 16_000, 0)
            .iter()
            .map(|&x| x as i16)
            .collect();
        let mut out = vec![];
        let mut buf = [0i16; 160];
        for chunk in input.chunks(320) {
            r.process(chunk, &mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        let rms = (out[800..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / (out.len() - 800) as f64)
            .sqrt();
        // 6 kHz would fold to 2 kHz at 8 kHz: it must come out at least 40 dB down.
        assert!(rms < 10_000.0 / 2f64.sqrt() / 100.0, "alias rms {rms}");
    }

    #[test]
    fn passthrough_and_wrong_length() {
        let mut r = resampler(16_000, 16_000, 20).unwrap();
        assert_eq!(r.delay(), 0);
        let mut out = [0i16; 320];
        assert_eq!(r.process(&[7; 320], &mut out).unwrap(), 320);
        assert_eq!(out[319], 7);
        assert!(r.process(&[0; 10], &mut out).is_err());
        let mut r = resampler(8000, 16_000, 20).unwrap();
        assert!(matches!(
            r.process(&[0; 10], &mut out),
            Err(ResampleError::WrongInputLength {
                expected: 160,
                actual: 10
            })
        ));
    }
}
