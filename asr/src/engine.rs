//! The library entry points: a speech engine built from configuration (model loaded once, a
//! bounded worker pool), utterance and file transcription with typed answers, and
//! [`transcribe_wav`] for `voxbridge transcribe`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::answers::{candidates, format_hint, interpret, AnswerType, AnswerValue};
use crate::error::AsrError;
use crate::frontend::{to_model_input, Upsampler};
use crate::pool::{Completion, PoolConfig, Priority, RecognizerPool};
use crate::transcriber::{samples_ms, DecodeSettings, Recognition, Request, Segment};
use crate::vad;
use crate::wav::{parse_wav, Pcm};

/// Utterances that may wait for a recognizer: minutes of speech at the rates one node takes,
/// so a full queue means the node is far past its capacity, not a busy moment.
pub const DEFAULT_MAX_QUEUED: usize = 256;

/// `[asr]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrConfig {
    /// A whisper.cpp ggml model file.
    pub model: PathBuf,
    /// A second model for typed answers (the f16 one beside the default q8_0 model); `None`:
    /// `model` decodes everything.
    pub answer_model: Option<PathBuf>,
    /// Decoder threads per job.
    pub threads: usize,
    /// Jobs that may run at once; more wait in the queue.
    pub max_concurrent: usize,
    /// Jobs that may wait for a worker; more are refused ([`AsrError::Busy`]).
    pub max_queued: usize,
    /// Language for multilingual models ("en").
    pub language: String,
    /// A job running longer than this is aborted.
    pub timeout: Duration,
    /// End of utterance → text, if the caller waits for one: a second opinion that would end
    /// later is skipped.
    pub latency_target: Option<Duration>,
    /// Recognize two short free-form utterances in one decode while others wait
    /// ([`crate::pool::PoolConfig::pair_utterances`]).
    pub pair_utterances: bool,
}

impl AsrConfig {
    /// Defaults for `model`: 1 thread, one job at a time, English, 10 s timeout, no latency
    /// target.
    ///
    /// One thread per job is deliberate: ggml's worker threads spin-wait at every barrier, so
    /// with more runnable threads than cores (other jobs, media, SIP) a 2-thread job burned 6×
    /// the CPU of a 1-thread job here. Scale with `max_concurrent` (≈ cores) instead.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        AsrConfig {
            model: model.into(),
            answer_model: None,
            threads: 1,
            max_concurrent: 1,
            max_queued: DEFAULT_MAX_QUEUED,
            language: "en".into(),
            timeout: Duration::from_secs(10),
            latency_target: None,
            pair_utterances: false,
        }
    }
}

/// What is being asked, so the recognizer can be primed and the answer typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The question the caller just heard, or any text the speech likely follows.
    pub prompt: Option<String>,
    pub answer_type: AnswerType,
}

impl Question {
    pub fn free() -> Self {
        Question {
            prompt: None,
            answer_type: AnswerType::Free,
        }
    }

    /// The measured policy for an agent's question: typed answers are primed with the question
    /// (plus a format example for open types); free-form answers get no prompt, because on our
    /// fixtures a question prompt made free-form WER worse (docs/asr.md).
    pub fn asked(ask: &str, answer_type: AnswerType) -> Self {
        let prompt = match (&answer_type, format_hint(&answer_type)) {
            (AnswerType::Free, _) => None,
            (_, Some(hint)) => Some(format!("{} {hint}", ask.trim())),
            (_, None) => Some(ask.trim().to_string()),
        };
        Question {
            prompt,
            answer_type,
        }
    }
}

/// A transcription: `{"text", "value", "confidence", "segments"}` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptionOutput {
    pub text: String,
    /// The typed answer (null for free text or when nothing usable was said).
    pub value: Option<AnswerValue>,
    /// 0–1; typed values below ~0.6 deserve a read-back.
    pub confidence: f32,
    pub segments: Vec<Segment>,
    /// How long the utterance waited for a recognizer (not in JSON).
    #[serde(skip)]
    pub queue_wait: Duration,
}

/// A loaded model behind a bounded pool.
pub struct SpeechEngine {
    pool: RecognizerPool,
    config: AsrConfig,
    /// Threads for a job that has the recognizers to itself.
    idle_threads: usize,
}

/// Threads for a job that has the recognizers to itself: the machine's cores, at most 4
/// (tiny.en's decoder gains little beyond).
fn idle_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl SpeechEngine {
    /// Loads the model (a missing or corrupt file is an error here) and starts the workers.
    #[cfg(feature = "whisper")]
    pub fn load(config: AsrConfig) -> Result<Self, AsrError> {
        let mut model = crate::whisper::WhisperModel::load(&config.model)?;
        if let Some(answers) = &config.answer_model {
            model = model.with_answer_model(answers)?;
        }
        Self::with_model(&model, config)
    }

    /// Without a speech backend compiled in, loading always fails.
    #[cfg(not(feature = "whisper"))]
    pub fn load(_config: AsrConfig) -> Result<Self, AsrError> {
        Err(AsrError::NoEngine)
    }

    /// Starts the workers on an already loaded model (with its answer model, if any:
    /// `config.answer_model` is read only by [`SpeechEngine::load`]).
    pub fn with_model(
        model: &dyn crate::transcriber::Transcriber,
        config: AsrConfig,
    ) -> Result<Self, AsrError> {
        let pool = RecognizerPool::new(
            model,
            PoolConfig {
                max_concurrent: config.max_concurrent,
                timeout: config.timeout,
                max_queued: config.max_queued,
                latency_target: config.latency_target,
                pair_utterances: config.pair_utterances,
            },
        )?;
        let idle_threads = config.threads.max(idle_threads());
        Ok(SpeechEngine {
            pool,
            config,
            idle_threads,
        })
    }

    pub fn pool(&self) -> &RecognizerPool {
        &self.pool
    }

    /// The request our telephone profile sends for a question.
    pub fn request(&self, question: &Question) -> Request {
        let mut request = Request::new(self.config.threads, &self.config.language);
        request.prompt = question.prompt.clone();
        request.candidates = candidates(&question.answer_type).0;
        if question.answer_type != AnswerType::Free {
            request.settings = DecodeSettings::telephone_typed();
        }
        request
    }

    /// Non-blocking: queues one utterance (16 kHz samples, ≤ 30 s, as cut by the VAD) at
    /// `priority` and calls `done` on a worker thread. [`AsrError::Busy`] only when the queue
    /// is full.
    pub fn transcribe_utterance(
        &self,
        audio: Vec<f32>,
        question: &Question,
        priority: Priority,
        done: impl FnOnce(Result<TranscriptionOutput, AsrError>) + Send + 'static,
    ) -> Result<(), AsrError> {
        let (request, completion) = self.utterance_job(&audio, question, done);
        self.pool.submit(audio, request, priority, completion)
    }

    /// Like [`transcribe_utterance`](Self::transcribe_utterance), but only on a recognizer
    /// that is free now ([`AsrError::Busy`] at once otherwise): for early recognitions, which
    /// must not delay anyone's utterance.
    pub fn try_transcribe_utterance(
        &self,
        audio: Vec<f32>,
        question: &Question,
        done: impl FnOnce(Result<TranscriptionOutput, AsrError>) + Send + 'static,
    ) -> Result<(), AsrError> {
        let (request, completion) = self.utterance_job(&audio, question, done);
        self.pool.try_submit(audio, request, completion)
    }

    fn utterance_job(
        &self,
        audio: &[f32],
        question: &Question,
        done: impl FnOnce(Result<TranscriptionOutput, AsrError>) + Send + 'static,
    ) -> (Request, Completion) {
        let answer_type = question.answer_type.clone();
        let duration = samples_ms(audio.len());
        let mut request = self.request(question);
        // A lone utterance gets every core: a caller waiting on a 2-core machine hears the
        // agent ~2× sooner. With other jobs running or waiting it keeps `threads`, since
        // ggml's spin-waiting threads starve each other once they outnumber the cores.
        if self.pool.in_flight() == 0 && self.pool.queued() == 0 {
            request.threads = self.idle_threads;
        }
        let completion: Completion = Box::new(move |result| {
            done(result.map(|r| output(&answer_type, r, 0, duration)));
        });
        (request, completion)
    }

    /// Blocking: recognizes decoded audio of any length (split by the VAD into ≤ 30 s windows).
    pub fn transcribe_pcm(
        &self,
        pcm: &Pcm,
        question: &Question,
    ) -> Result<TranscriptionOutput, AsrError> {
        self.transcribe_samples(
            &to_model_input(pcm, Upsampler::ZeroStuff),
            question,
            &self.request(question),
        )
    }

    /// Blocking, with explicit settings (benchmarks compare profiles through this).
    pub fn transcribe_samples(
        &self,
        samples: &[f32],
        question: &Question,
        request: &Request,
    ) -> Result<TranscriptionOutput, AsrError> {
        let windows = vad::windows(samples);
        if windows.is_empty() {
            return Ok(TranscriptionOutput {
                text: String::new(),
                value: None,
                confidence: 0.0,
                segments: Vec::new(),
                queue_wait: Duration::ZERO,
            });
        }
        let mut texts = Vec::new();
        let mut segments = Vec::new();
        let mut merged: Option<Recognition> = None;
        let mut waited = Duration::ZERO;
        for window in windows {
            let (offset, duration) = (samples_ms(window.start), samples_ms(window.len()));
            let recognition = self
                .pool
                .recognize(samples[window].to_vec(), request.clone())?;
            let out = output(&question.answer_type, recognition.clone(), offset, duration);
            waited += out.queue_wait;
            texts.push(out.text);
            segments.extend(out.segments);
            // Typed answers are short: the first window with speech carries the answer.
            merged.get_or_insert(recognition);
        }
        let text = texts.join(" ").trim().to_string();
        let typed = merged.map(|r| {
            interpret(
                &question.answer_type,
                &Recognition {
                    text: text.clone(),
                    ..r
                },
            )
        });
        Ok(TranscriptionOutput {
            text,
            value: typed.as_ref().and_then(|a| a.value.clone()),
            confidence: typed.map_or(0.0, |a| a.confidence),
            segments,
            queue_wait: waited,
        })
    }
}

/// Shapes a recognition of one window into output, shifting segment times by the window's
/// offset and clamping them to the window (no-timestamp decoding reports the 30 s frame).
fn output(
    answer_type: &AnswerType,
    r: Recognition,
    offset_ms: u64,
    duration_ms: u64,
) -> TranscriptionOutput {
    let answer = interpret(answer_type, &r);
    let segments = r
        .segments
        .iter()
        .map(|s| Segment {
            start_ms: offset_ms + s.start_ms.min(duration_ms),
            end_ms: offset_ms + s.end_ms.min(duration_ms),
            text: s.text.clone(),
        })
        .collect();
    TranscriptionOutput {
        text: r.text,
        value: answer.value,
        confidence: answer.confidence,
        segments,
        queue_wait: r.queue_wait,
    }
}

/// Options of `voxbridge transcribe`.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    pub model: PathBuf,
    pub answer_model: Option<PathBuf>,
    pub prompt: Option<String>,
    /// `free` (default), `yes_no`, `digits`, `date`, `time`, `amount`, `spelling`, `choice`.
    pub answer_type: Option<String>,
    pub choices: Vec<String>,
    pub threads: usize,
    pub language: String,
}

/// Transcribes a WAV file (PCM16, μ-law or A-law; mono; 8 or 16 kHz).
pub fn transcribe_wav(
    path: &Path,
    options: &TranscribeOptions,
) -> Result<TranscriptionOutput, AsrError> {
    let answer_type = AnswerType::parse(
        options.answer_type.as_deref().unwrap_or("free"),
        &options.choices,
    )?;
    let bytes = std::fs::read(path).map_err(|source| AsrError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let pcm = parse_wav(&bytes).map_err(|source| AsrError::Wav {
        path: path.to_path_buf(),
        source,
    })?;
    let engine = SpeechEngine::load(AsrConfig {
        threads: options.threads.max(1),
        language: options.language.clone(),
        // A file may hold several 30 s windows; give each its own full budget.
        timeout: Duration::from_secs(120),
        answer_model: options.answer_model.clone(),
        ..AsrConfig::new(&options.model)
    })?;
    engine.transcribe_pcm(
        &pcm,
        &Question {
            prompt: options.prompt.clone(),
            answer_type,
        },
    )
}

/// Stock whisper.cpp settings for side-by-side measurements.
pub fn stock_request(threads: usize, language: &str) -> Request {
    Request {
        settings: DecodeSettings::stock(),
        ..Request::new(threads, language)
    }
}
