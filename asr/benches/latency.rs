//! End of speech → final text, tiny.en on 2 threads: a 2 s and a 6 s utterance with our
//! telephone profile and with stock settings, and typed yes/no and choice answers
//! (targets: ≤ 250 ms, ≤ 400 ms, ≤ 400 ms p50). The utterance is complete when the VAD
//! reports end of speech, so the latency is the recognition time measured here.
//!
//!     cargo bench -p voxbridge-asr --bench latency

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use voxbridge_asr::engine::stock_request;
use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::whisper::WhisperModel;
use voxbridge_asr::{parse_wav, AnswerType, AsrConfig, Question, Request, SpeechEngine};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn clip(name: &str, upsampler: Upsampler) -> Vec<f32> {
    let path = workspace().join("fixtures/asr").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pcm = parse_wav(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    to_model_input(&pcm, upsampler)
}

/// Continuous speech of exactly `seconds`, cut from consecutive free-form clips.
fn speech(seconds: usize, upsampler: Upsampler) -> Vec<f32> {
    let mut audio: Vec<f32> = ["free_01.wav", "free_02.wav", "free_03.wav", "free_04.wav"]
        .iter()
        .flat_map(|n| clip(n, upsampler))
        .collect();
    audio.truncate(seconds * 16_000);
    audio
}

fn bench(c: &mut Criterion) {
    let model_path = std::env::var_os("VOXBRIDGE_ASR_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models/ggml-tiny.en-q8_0.bin"));
    // Typed answers use the f16 model, as the server's default config has it.
    let model = WhisperModel::load(&model_path)
        .and_then(|m| m.with_answer_model(&workspace().join("models/ggml-tiny.en.bin")))
        .unwrap_or_else(|e| panic!("{e}"));
    // THREADS=1 measures the configuration recommended for capacity (docs/asr.md).
    let threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let config = AsrConfig {
        threads,
        // Stock decoding of 6 s can take seconds on a busy machine; it must finish, not abort.
        timeout: Duration::from_secs(60),
        ..AsrConfig::new(&model_path)
    };
    let engine = SpeechEngine::with_model(&model, config).unwrap_or_else(|e| panic!("{e}"));
    let run = |audio: &[f32], request: &Request| {
        engine
            .pool()
            .recognize(audio.to_vec(), request.clone())
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let mut g = c.benchmark_group("end_of_speech_to_text");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let ours = engine.request(&Question::free());
    let stock = stock_request(threads, "en");
    for seconds in [2, 6] {
        let zero_stuffed = speech(seconds, Upsampler::ZeroStuff);
        let band_limited = speech(seconds, Upsampler::Sinc);
        g.bench_function(format!("ours_{seconds}s"), |b| {
            b.iter(|| run(&zero_stuffed, &ours))
        });
        g.bench_function(format!("stock_{seconds}s"), |b| {
            b.iter(|| run(&band_limited, &stock))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("typed_answer");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let yes_no = Question::asked("Shall I book the appointment for you?", AnswerType::YesNo);
    let choices: Vec<String> = ["billing", "technical support", "sales", "cancellations"]
        .map(String::from)
        .to_vec();
    let choice = Question::asked(
        "Which department do you need: billing, technical support, sales or cancellations?",
        AnswerType::Choice(choices),
    );
    let yes = clip("yes_no_03.wav", Upsampler::ZeroStuff);
    let support = clip("choice_02.wav", Upsampler::ZeroStuff);
    let (yes_req, choice_req) = (engine.request(&yes_no), engine.request(&choice));
    g.bench_function("yes_no", |b| b.iter(|| run(&yes, &yes_req)));
    g.bench_function("choice_4", |b| b.iter(|| run(&support, &choice_req)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
