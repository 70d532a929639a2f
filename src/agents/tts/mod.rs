//! Text-to-speech for the builtin agent: named voices over espeak-ng (or an optional remote
//! neural endpoint that falls back to espeak-ng), 16 kHz mono PCM16 out, cached per
//! (voice, text) so greetings and fixed questions are synthesized once.

mod cache;
mod espeak;
mod remote;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use espeak::EspeakCli;
pub use remote::RemoteTts;

use crate::config::{TtsConfig, VoiceConfig, VoiceEngine};

pub const BUILTIN_VOICES: &[&str] = &["neutral", "calm_support", "friendly", "formal"];

/// Output rate: what the media pipeline and the recorder work in.
pub const SAMPLE_RATE: u32 = 16_000;

/// 64 MiB of PCM16: ~35 minutes of prompts.
const CACHE_SAMPLES: usize = 32 << 20;

/// espeak-ng pads ~300 ms after the last word; leading/trailing quiet beyond this is cut so
/// the first packet carries speech and questions do not end in dead air.
const KEEP_SILENCE_MS: u32 = 30;
/// "Digital silence": below -72 dBFS, quieter than any speech sample near a word.
const SILENCE: i16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    #[error("speech engine: {0}")]
    Engine(String),
    #[error("speech engine gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("unusable audio: {0}")]
    BadAudio(String),
}

/// What an engine is told to speak with. For the remote engine `voice` is its voice name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceSettings {
    pub voice: String,
    /// Words per minute (espeak-ng: 80–450).
    pub rate: u32,
    /// 0–99, 50 is the voice's own.
    pub pitch: u32,
    /// Amplitude 0–200, 100 is the voice's own.
    pub volume: u32,
}

/// Interleaved PCM16 at the engine's rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u16,
    pub samples: Vec<i16>,
}

/// A speech engine; the seam that lets espeak-ng's CLI be swapped for the library or a test
/// double without touching voices, caching or resampling.
#[async_trait::async_trait]
pub trait Synthesizer: Send + Sync {
    /// Label for metrics and logs.
    fn engine(&self) -> &'static str;
    async fn synthesize(&self, voice: &VoiceSettings, text: &str) -> Result<Pcm, TtsError>;
}

/// A built-in voice's settings; any other name gets `neutral`'s.
fn builtin(name: &str) -> VoiceSettings {
    let (voice, rate, pitch) = match name {
        "calm_support" => ("en-us+f3", 145, 38),
        "friendly" => ("en-us+f4", 185, 62),
        "formal" => ("en-us+m3", 160, 44),
        _ => ("en-us", 165, 50),
    };
    VoiceSettings {
        voice: voice.into(),
        rate,
        pitch,
        volume: 100,
    }
}

struct Voice {
    local: VoiceSettings,
    /// The remote voice name when this voice is served by `[tts]`.
    remote: Option<String>,
}

/// Cheap to clone (Arc inside).
#[derive(Clone)]
pub struct Tts {
    inner: Arc<Inner>,
}

struct Inner {
    voices: BTreeMap<String, Voice>,
    local: Box<dyn Synthesizer>,
    remote: Option<Box<dyn Synthesizer>>,
    cache: Mutex<cache::AudioCache>,
}

impl Tts {
    /// Built-in voices plus the operator's `[voices.NAME]`, optional remote endpoint `[tts]`.
    pub fn new(voices: &BTreeMap<String, VoiceConfig>, remote: Option<&TtsConfig>) -> Self {
        let remote_engine = remote.and_then(|config| match RemoteTts::new(config) {
            Ok(engine) => Some(Box::new(engine) as Box<dyn Synthesizer>),
            Err(e) => {
                tracing::warn!(error = %e, "no HTTP client for [tts]; remote voices use espeak-ng");
                None
            }
        });
        Self::with_engines(
            voices,
            remote.map(|t| t.voice.as_str()),
            Box::new(EspeakCli::new()),
            remote_engine,
        )
    }

    /// As [`Tts::new`] with explicit engines; `remote_voice` is `[tts] voice`.
    pub fn with_engines(
        voices: &BTreeMap<String, VoiceConfig>,
        remote_voice: Option<&str>,
        local: Box<dyn Synthesizer>,
        remote: Option<Box<dyn Synthesizer>>,
    ) -> Self {
        let mut table: BTreeMap<String, Voice> = BUILTIN_VOICES
            .iter()
            .map(|name| {
                let local = builtin(name);
                (
                    name.to_string(),
                    Voice {
                        local,
                        remote: None,
                    },
                )
            })
            .collect();
        for (name, config) in voices {
            // An override starts from the built-in of that name, a new voice from neutral, so
            // `[voices.calm_support] rate = 130` changes only the rate.
            let mut local = builtin(name);
            local.rate = config.rate.unwrap_or(local.rate);
            local.pitch = config.pitch.unwrap_or(local.pitch);
            local.volume = config.volume.unwrap_or(local.volume);
            let remote = match config.engine {
                VoiceEngine::EspeakNg => {
                    if let Some(v) = &config.voice {
                        local.voice = v.clone();
                    }
                    None
                }
                // The voice name is the remote's; the fallback keeps the espeak voice.
                VoiceEngine::Remote => config
                    .voice
                    .clone()
                    .or_else(|| remote_voice.map(str::to_owned)),
            };
            table.insert(name.clone(), Voice { local, remote });
        }
        Self {
            inner: Arc::new(Inner {
                voices: table,
                local,
                remote,
                cache: Mutex::new(cache::AudioCache::new(CACHE_SAMPLES)),
            }),
        }
    }

    pub fn knows(&self, voice: &str) -> bool {
        self.inner.voices.contains_key(voice)
    }

    /// Every voice name, sorted.
    pub fn voice_names(&self) -> Vec<&str> {
        self.inner.voices.keys().map(String::as_str).collect()
    }

    /// 16 kHz mono PCM16 of `text` spoken in `voice`, cached per (voice, text): the greeting and
    /// fixed questions cost nothing after the first call.
    pub async fn speak(&self, voice: &str, text: &str) -> Result<Arc<[i16]>, TtsError> {
        let inner = &self.inner;
        let spec = inner
            .voices
            .get(voice)
            .ok_or_else(|| TtsError::UnknownVoice(voice.to_owned()))?;
        let text = text.trim();
        if text.is_empty() {
            return Ok(Arc::from(Vec::new()));
        }
        if let Some(hit) = self.cache().get(voice, text) {
            metrics::counter!("voxbridge_tts_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("voxbridge_tts_cache_total", "result" => "miss").increment(1);
        let remote = spec.remote.as_ref().zip(inner.remote.as_deref());
        let audio = match remote {
            Some((name, engine)) => {
                let settings = VoiceSettings {
                    voice: name.clone(),
                    ..spec.local.clone()
                };
                match render(engine, &settings, text).await {
                    Ok(audio) => audio,
                    Err(e) => {
                        tracing::warn!(voice, error = %e, "remote speech failed; using espeak-ng");
                        metrics::counter!("voxbridge_tts_fallback_total").increment(1);
                        render(inner.local.as_ref(), &spec.local, text).await?
                    }
                }
            }
            None => render(inner.local.as_ref(), &spec.local, text).await?,
        };
        let audio: Arc<[i16]> = audio.into();
        self.cache().insert(voice, text, audio.clone());
        Ok(audio)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, cache::AudioCache> {
        // The lock is never held across an await or a panic-prone call, so a poisoned lock
        // still holds a consistent cache.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn render(
    engine: &dyn Synthesizer,
    voice: &VoiceSettings,
    text: &str,
) -> Result<Vec<i16>, TtsError> {
    let started = Instant::now();
    let pcm = engine.synthesize(voice, text).await;
    metrics::histogram!("voxbridge_tts_seconds", "engine" => engine.engine())
        .record(started.elapsed().as_secs_f64());
    let pcm = pcm?;
    let mono = trim_silence(&to_mono(&pcm), pcm.rate);
    // Resampling a long prompt is milliseconds of CPU: off the async workers.
    let rate = pcm.rate;
    tokio::task::spawn_blocking(move || to_16k(&mono, rate))
        .await
        .map_err(|e| TtsError::BadAudio(format!("resampling: {e}")))?
}

fn to_mono(pcm: &Pcm) -> Vec<i16> {
    let channels = usize::from(pcm.channels.max(1));
    if channels == 1 {
        return pcm.samples.clone();
    }
    pcm.samples
        .chunks_exact(channels)
        .map(|frame| {
            let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
            (sum / channels as i32) as i16
        })
        .collect()
}

fn trim_silence(samples: &[i16], rate: u32) -> Vec<i16> {
    let keep = (rate * KEEP_SILENCE_MS / 1000) as usize;
    let loud = |s: &i16| s.unsigned_abs() > SILENCE.unsigned_abs();
    let (Some(first), Some(last)) = (
        samples.iter().position(loud),
        samples.iter().rposition(loud),
    ) else {
        return Vec::new();
    };
    let start = first.saturating_sub(keep);
    let end = (last + 1 + keep).min(samples.len());
    samples[start..end].to_vec()
}

/// Converts a whole prompt with the media crate's chunked resampler: zero-padded at the end,
/// its delay dropped at the start, cut to the exact output length.
fn to_16k(samples: &[i16], rate: u32) -> Result<Vec<i16>, TtsError> {
    if rate == SAMPLE_RATE || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let bad = |e: voxbridge_media::resample::ResampleError| TtsError::BadAudio(e.to_string());
    // A chunk must be a whole number of samples at both rates; 1 s always is.
    let chunk_ms = [20, 40, 100, 200, 1000]
        .into_iter()
        .find(|ms| rate * ms % 1000 == 0)
        .unwrap_or(1000);
    let mut r = voxbridge_media::resample::resampler(rate, SAMPLE_RATE, chunk_ms).map_err(bad)?;
    let n_in = r.input_frames();
    let delay = r.delay();
    let wanted = (samples.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let delay_in = (delay as u64 * u64::from(rate) / u64::from(SAMPLE_RATE)) as usize + 1;
    let chunks = (samples.len() + delay_in).div_ceil(n_in) + 1;
    let mut out = Vec::with_capacity(wanted + delay + r.output_frames());
    let mut input = vec![0i16; n_in];
    let mut output = vec![0i16; r.output_frames() * 2];
    for c in 0..chunks {
        let from = (c * n_in).min(samples.len());
        let to = (from + n_in).min(samples.len());
        input.fill(0);
        input[..to - from].copy_from_slice(&samples[from..to]);
        let n = r.process(&input, &mut output).map_err(bad)?;
        out.extend_from_slice(&output[..n]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(wanted);
    Ok(out)
}

/// A WAV of PCM16 (or G.711) at any rate and channel count, as TTS engines return it.
pub fn parse_wav(bytes: &[u8]) -> Result<Pcm, TtsError> {
    let audio =
        voxbridge_media::wav::read_wav(bytes).map_err(|e| TtsError::BadAudio(e.to_string()))?;
    if !(1..=8).contains(&audio.channels) || !(8000..=192_000).contains(&audio.rate) {
        return Err(TtsError::BadAudio(
            "channel count or sample rate out of range".into(),
        ));
    }
    Ok(Pcm {
        rate: audio.rate,
        channels: audio.channels,
        samples: audio.samples,
    })
}

#[cfg(test)]
mod tests;
