//! The `espeak-ng` command line as a [`Synthesizer`]. A process per prompt costs ~8 ms more
//! than the library would (docs/decisions.md) and buys crash isolation and no global state.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{parse_wav, Pcm, Synthesizer, TtsError, VoiceSettings};

/// 5,000 characters take ~0.5 s; far beyond that the process is stuck, not busy.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct EspeakCli {
    program: String,
}

impl EspeakCli {
    pub fn new() -> Self {
        Self {
            program: "espeak-ng".into(),
        }
    }
}

impl Default for EspeakCli {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Synthesizer for EspeakCli {
    fn engine(&self) -> &'static str {
        "espeak-ng"
    }

    async fn synthesize(&self, voice: &VoiceSettings, text: &str) -> Result<Pcm, TtsError> {
        // Text goes in on stdin, never argv: no shell, no option injection, no length limit.
        // Without -m espeak-ng reads SSML as plain text; UTF-8 (-b 1) is forced so non-ASCII
        // text is not guessed as Latin-1.
        let mut child = Command::new(&self.program)
            .args(["--stdin", "--stdout", "-b", "1", "-v"])
            .arg(&voice.voice)
            .arg("-s")
            .arg(voice.rate.to_string())
            .arg("-p")
            .arg(voice.pitch.to_string())
            .arg("-a")
            .arg(voice.volume.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TtsError::Engine(format!("cannot run {}: {e}", self.program)))?;
        let input = plain_text(text);
        let mut stdin = child.stdin.take();
        let feed = async move {
            if let Some(stdin) = stdin.as_mut() {
                // A write error means espeak-ng exited early; its status tells why.
                let _ = stdin.write_all(input.as_bytes()).await;
            }
            drop(stdin);
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        let output = tokio::time::timeout(TIMEOUT, run)
            .await
            .map_err(|_| TtsError::Timeout(TIMEOUT))?
            .map_err(|e| TtsError::Engine(format!("espeak-ng: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(TtsError::Engine(format!(
                "espeak-ng voice {:?}: {} ({})",
                voice.voice,
                stderr.trim().chars().take(200).collect::<String>(),
                output.status
            )));
        }
        parse_wav(&output.stdout)
    }
}

/// Text espeak-ng will speak rather than interpret: control characters become spaces (a NUL
/// would cut the text short) and `[[`, which opens raw phoneme input, is broken up.
fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev = ' ';
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == '[' && prev == '[' {
            out.push(' ');
        }
        out.push(c);
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_are_neutralised() {
        assert_eq!(plain_text("a\0b\nc [[h@l'oU]]"), "a b c [ [h@l'oU]]");
        assert_eq!(plain_text("[[[["), "[ [ [ [");
    }

    #[tokio::test]
    async fn unknown_engine_voice_is_an_engine_error() {
        let voice = VoiceSettings {
            voice: "nosuchvoice".into(),
            rate: 175,
            pitch: 50,
            volume: 100,
        };
        let err = EspeakCli::new().synthesize(&voice, "hello").await;
        assert!(matches!(err, Err(TtsError::Engine(_))), "{err:?}");
    }
}
