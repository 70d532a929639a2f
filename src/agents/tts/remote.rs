//! An OpenAI-compatible speech endpoint (`POST /v1/audio/speech`, WAV out) as a
//! [`Synthesizer`], for neural voices served elsewhere.

use std::time::Duration;

use super::{parse_wav, Pcm, Synthesizer, TtsError, VoiceSettings};
use crate::config::TtsConfig;

/// A 5,000-character prompt is ~15 MB of 24 kHz WAV; a bigger body is not speech.
const MAX_BODY: usize = 64 << 20;

pub struct RemoteTts {
    client: reqwest::Client,
    url: String,
    model: String,
    timeout: Duration,
}

impl RemoteTts {
    pub fn new(config: &TtsConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            url: config.url.clone(),
            model: config.model.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    async fn fetch(&self, voice: &str, text: &str) -> Result<Vec<u8>, TtsError> {
        let engine = |e: reqwest::Error| TtsError::Engine(format!("{}: {e}", self.url));
        let body = serde_json::json!({
            "model": self.model,
            "input": text,
            "voice": voice,
            "response_format": "wav",
        });
        let mut response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(engine)?;
        if !response.status().is_success() {
            return Err(TtsError::Engine(format!(
                "{} answered {}",
                self.url,
                response.status()
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(engine)? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(TtsError::BadAudio(format!(
                    "response is over {MAX_BODY} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl Synthesizer for RemoteTts {
    fn engine(&self) -> &'static str {
        "remote"
    }

    async fn synthesize(&self, voice: &VoiceSettings, text: &str) -> Result<Pcm, TtsError> {
        // One deadline over connect, headers and body: a server that trickles bytes must not
        // hold the caller in silence any longer than one that never answers.
        let bytes = tokio::time::timeout(self.timeout, self.fetch(&voice.voice, text))
            .await
            .map_err(|_| TtsError::Timeout(self.timeout))??;
        let pcm = parse_wav(&bytes)?;
        if pcm.samples.is_empty() {
            return Err(TtsError::BadAudio("the WAV holds no samples".into()));
        }
        Ok(pcm)
    }
}
