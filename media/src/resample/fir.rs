//! Half-band FIR for the 2:1 ratios on the telephony hot path (8 ↔ 16 kHz).
//!
//! A half-band low-pass (cutoff at a quarter of the high rate) has every other tap zero
//! except the centre, which is 1/2. Upsampling by 2 then needs one dot product per input
//! sample (the other output phase is a delayed copy) and decimating by 2 one dot product
//! over the even input samples plus the centre tap. Taps are Q14 fixed point so the dot
//! product is an integer sum the compiler vectorises. Cost per 20 ms and why rubato is not
//! used here: docs/decisions.md.

use super::{check_input, ResampleError, Resampler};

const Q: i32 = 14;
/// Non-zero taps per dot product (63 taps in all): with the Blackman window, a stop band
/// about 60 dB down and a transition band of roughly ±700 Hz around 4 kHz.
const TAPS: usize = 32;

/// The non-zero side taps of a Blackman-windowed half-band sinc: offsets ±1, ±3, …,
/// ±(TAPS - 1) from the centre (whose tap is 1/2), scaled to sum to `gain`.
fn half_band_taps(gain: f64) -> [i16; TAPS] {
    let half_span = TAPS as f64;
    let mut h = [0f64; TAPS];
    for (j, t) in h.iter_mut().enumerate() {
        let x = (2 * j) as f64 - (TAPS - 1) as f64;
        let sinc = (std::f64::consts::PI * x / 2.0).sin() / (std::f64::consts::PI * x);
        let w = std::f64::consts::PI * x / half_span;
        *t = sinc * (0.42 + 0.5 * w.cos() + 0.08 * (2.0 * w).cos());
    }
    let sum: f64 = h.iter().sum();
    // Symmetric, so already in the order of an ascending window.
    let mut q = [0i16; TAPS];
    for (dst, &t) in q.iter_mut().zip(&h) {
        *dst = (t * gain / sum * f64::from(1 << Q)).round() as i16;
    }
    q
}

#[inline]
fn dot(taps: &[i16; TAPS], x: &[i16]) -> i32 {
    taps.iter()
        .zip(&x[..TAPS])
        .map(|(&t, &s)| i32::from(t) * i32::from(s))
        .sum()
}

#[inline]
fn round_q(acc: i32) -> i16 {
    ((acc + (1 << (Q - 1))) >> Q).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

/// Doubles the rate.
pub struct HalfBandUp {
    taps: [i16; TAPS],
    /// TAPS - 1 samples of history, then the chunk.
    buf: Vec<i16>,
    in_frames: usize,
}

impl HalfBandUp {
    pub fn new(in_frames: usize) -> Self {
        Self {
            taps: half_band_taps(1.0),
            buf: vec![0; TAPS - 1 + in_frames],
            in_frames,
        }
    }
}

impl Resampler for HalfBandUp {
    fn input_frames(&self) -> usize {
        self.in_frames
    }
    fn output_frames(&self) -> usize {
        2 * self.in_frames
    }
    fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        check_input(input, self.in_frames)?;
        self.buf[TAPS - 1..].copy_from_slice(input);
        let n = self.in_frames.min(output.len() / 2);
        let (buf, taps) = (&self.buf, &self.taps);
        for (i, (pair, window)) in output[..2 * n]
            .chunks_exact_mut(2)
            .zip(buf.windows(TAPS))
            .enumerate()
        {
            pair[0] = round_q(dot(taps, window));
            // The odd phase is the centre tap alone: the input, TAPS/2 samples late.
            pair[1] = buf[i + TAPS / 2];
        }
        self.buf.copy_within(self.in_frames.., 0);
        Ok(2 * n)
    }
    fn delay(&self) -> usize {
        TAPS - 1
    }
}

/// Halves the rate. The filter is centred on an even input sample so the delay is a whole
/// number of output samples: side taps apply to odd samples, the centre to an even one.
pub struct HalfBandDown {
    taps: [i16; TAPS],
    /// Even input samples: TAPS / 2 of history, then this chunk's.
    even: Vec<i16>,
    /// Odd input samples: TAPS of history, then this chunk's.
    odd: Vec<i16>,
    in_frames: usize,
}

impl HalfBandDown {
    pub fn new(in_frames: usize) -> Self {
        let half = in_frames / 2;
        Self {
            taps: half_band_taps(0.5),
            even: vec![0; TAPS / 2 + half],
            odd: vec![0; TAPS + half],
            in_frames,
        }
    }
}

impl Resampler for HalfBandDown {
    fn input_frames(&self) -> usize {
        self.in_frames
    }
    fn output_frames(&self) -> usize {
        self.in_frames / 2
    }
    fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        check_input(input, self.in_frames)?;
        let half = self.in_frames / 2;
        for (k, pair) in input.chunks_exact(2).enumerate() {
            self.even[TAPS / 2 + k] = pair[0];
            self.odd[TAPS + k] = pair[1];
        }
        for (k, o) in output.iter_mut().take(half).enumerate() {
            // Centre tap 1/2 on the even sample in the middle of the window.
            let centre = i32::from(self.even[k]) << (Q - 1);
            *o = round_q(dot(&self.taps, &self.odd[k..]) + centre);
        }
        self.even.copy_within(half.., 0);
        self.odd.copy_within(half.., 0);
        Ok(half.min(output.len()))
    }
    fn delay(&self) -> usize {
        TAPS / 2
    }
}
