//! Audio front end: turns decoded PCM into the 16 kHz float samples whisper expects.
//!
//! Telephone audio (8 kHz) is upsampled by zero-stuffing *without* an anti-imaging filter. The
//! mirrored image of the 0–4 kHz band above 4 kHz looks more like wideband speech to a model
//! trained on 16 kHz audio than an empty upper band does; measured on telephone speech this was
//! 6–7 WER points better than a high-quality resampler (see docs/asr.md).

use crate::wav::{Pcm, SampleRate};

/// How 8 kHz audio is brought to 16 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsampler {
    /// Insert a zero after every sample, keep the spectral image (our default).
    ZeroStuff,
    /// Zero-stuffing followed by a windowed-sinc low-pass at 4 kHz: what a high-quality
    /// resampler does (empty upper band). Kept as the measured baseline.
    Sinc,
}

fn to_float(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// 16 kHz float samples for the model.
pub fn to_model_input(pcm: &Pcm, upsampler: Upsampler) -> Vec<f32> {
    match pcm.rate {
        SampleRate::Hz16000 => pcm.samples.iter().copied().map(to_float).collect(),
        SampleRate::Hz8000 => upsample_8k(&pcm.samples, upsampler),
    }
}

/// 8 kHz → 16 kHz.
pub fn upsample_8k(samples: &[i16], upsampler: Upsampler) -> Vec<f32> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    match upsampler {
        // The ×2 keeps the level: zero-stuffing halves the energy of the baseband.
        Upsampler::ZeroStuff => {
            for &s in samples {
                out.push(2.0 * to_float(s));
                out.push(0.0);
            }
        }
        Upsampler::Sinc => {
            let stuffed = upsample_8k(samples, Upsampler::ZeroStuff);
            let taps = half_band_taps();
            let half = taps.len() / 2;
            for i in 0..stuffed.len() {
                let mut acc = 0.0;
                for (k, &t) in taps.iter().enumerate() {
                    if let Some(&x) = (i + k).checked_sub(half).and_then(|j| stuffed.get(j)) {
                        acc += t * x;
                    }
                }
                out.push(acc);
            }
        }
    }
    out
}

/// Hann-windowed sinc low-pass with its cut-off at a quarter of the 16 kHz rate (4 kHz).
fn half_band_taps() -> Vec<f32> {
    const N: usize = 63;
    let mid = (N / 2) as f32;
    (0..N)
        .map(|n| {
            let x = n as f32 - mid;
            let sinc = if x == 0.0 {
                0.5
            } else {
                (std::f32::consts::PI * x / 2.0).sin() / (std::f32::consts::PI * x)
            };
            let window = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / (N - 1) as f32).cos();
            sinc * window
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_stuffing_doubles_length_and_interleaves_zeros() {
        let out = upsample_8k(&[16384, -16384], Upsampler::ZeroStuff);
        assert_eq!(out, vec![1.0, 0.0, -1.0, 0.0]);
    }

    #[test]
    fn sinc_keeps_the_baseband_and_removes_the_image() {
        // A 1 kHz tone at 8 kHz: after upsampling, its 7 kHz image must be gone with Sinc and
        // present with ZeroStuff.
        let tone: Vec<i16> = (0..800)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin()) as i16
            })
            .collect();
        let power_at = |x: &[f32], hz: f32| {
            let (re, im) = x[200..1400]
                .iter()
                .enumerate()
                .fold((0.0, 0.0), |(re, im), (n, &v)| {
                    let w = 2.0 * std::f32::consts::PI * hz * n as f32 / 16000.0;
                    (re + v * w.cos(), im + v * w.sin())
                });
            re * re + im * im
        };
        let sinc = upsample_8k(&tone, Upsampler::Sinc);
        let stuffed = upsample_8k(&tone, Upsampler::ZeroStuff);
        assert!(power_at(&sinc, 7000.0) < power_at(&sinc, 1000.0) / 1000.0);
        assert!(power_at(&stuffed, 7000.0) > power_at(&stuffed, 1000.0) / 2.0);
    }

    #[test]
    fn wideband_passes_through() {
        let pcm = Pcm {
            rate: SampleRate::Hz16000,
            samples: vec![-32768, 0],
        };
        assert_eq!(to_model_input(&pcm, Upsampler::ZeroStuff), vec![-1.0, 0.0]);
    }
}
