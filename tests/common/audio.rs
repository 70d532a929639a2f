//! Test audio: how long the agent's voice takes to say a line, and telephone fixtures turned
//! into raw μ-law for a caller's RTP.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// sox output options for raw 8 kHz μ-law.
pub const ULAW_RAW: [&str; 8] = ["-t", "raw", "-r", "8000", "-c", "1", "-e", "u-law"];

/// How long `voice` takes to say `text`, in ms (the server synthesizes the same).
pub async fn spoken_ms(voice: &str, text: &str) -> u64 {
    let tts = voxbridge::agents::tts::Tts::new(&BTreeMap::new(), None);
    let audio = tts.speak(voice, text).await.expect("espeak-ng speaks");
    audio.len() as u64 / 16
}

/// A recorded telephone fixture (`fixtures/asr/<clip>`) as raw μ-law, converted via `out`.
pub fn fixture_ulaw(clip: &str, out: &Path) -> Vec<u8> {
    let clip = super::workspace().join("fixtures/asr").join(clip);
    sox(&[&[path(&clip)][..], &ULAW_RAW[..], &[path(out)]].concat());
    std::fs::read(out).expect("sox output")
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

pub fn sox(args: &[&str]) {
    let status = Command::new("sox")
        .args(args)
        .status()
        .expect("run sox (apt-get install sox)");
    assert!(status.success(), "sox {args:?}");
}
