//! The speech-in-noise fixtures (fixtures/media/generate.sh) as the media pipeline sees them,
//! shared by tests/vad_fixtures.rs and benches/vad_compare.rs.

use voxbridge_media::codec::ulaw_to_linear;
use voxbridge_media::resample::resampler;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/media/");
/// 20 ms at 16 kHz.
pub const FRAME: usize = 320;

/// Loads an 8 kHz μ-law clip and brings it to 16 kHz through the pipeline's resampler.
pub fn load16(name: &str) -> Vec<i16> {
    let pcm8: Vec<i16> = std::fs::read(format!("{FIXTURES}{name}"))
        .expect("fixture (fixtures/media/generate.sh)")
        .into_iter()
        .map(ulaw_to_linear)
        .collect();
    let mut r = resampler(8000, 16_000, 20).unwrap();
    let mut out = vec![];
    let mut buf = [0i16; FRAME];
    for chunk in pcm8.chunks_exact(160) {
        let n = r.process(chunk, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out.drain(..r.delay());
    out
}

/// A frame's level in dBFS; truth is "the clean clip above -50 dBFS".
pub fn level(frame: &[i16]) -> f64 {
    let ms = frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frame.len() as f64;
    10.0 * (ms / 32768f64.powi(2) + 1e-12).log10()
}
