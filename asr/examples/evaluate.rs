//! Side-by-side evaluation on the telephone fixtures: stock whisper settings vs each of our
//! levers (WER, latency), typed-answer accuracy per type and method, and pool throughput.
//!
//!     cargo run --release -p voxbridge-asr --example evaluate [-- MODEL [FIXTURE_DIR]]
//!
//! Prints markdown tables (pasted into docs/asr.md and docs/performance.md).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use voxbridge_asr::answers::{
    candidates, interpret_with, AnswerType, AnswerValue, ClosedSetMethod,
};
use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::manifest::{read_manifest, LabelledClip};
use voxbridge_asr::wer::WerTally;
use voxbridge_asr::whisper::WhisperModel;
use voxbridge_asr::{
    parse_wav, AsrConfig, AudioContext, DecodeSettings, Question, Request, SpeechEngine,
    Transcriber,
};

struct Profile {
    name: &'static str,
    upsampler: Upsampler,
    settings: DecodeSettings,
    prompt: bool,
}

fn profiles() -> Vec<Profile> {
    let stock = DecodeSettings::stock();
    let no_ts = DecodeSettings {
        no_timestamps: true,
        ..stock.clone()
    };
    vec![
        Profile {
            name: "stock (band-limited resampler, timestamps, full context)",
            upsampler: Upsampler::Sinc,
            settings: stock.clone(),
            prompt: false,
        },
        Profile {
            name: "+ zero-stuffed upsampling",
            upsampler: Upsampler::ZeroStuff,
            settings: stock,
            prompt: false,
        },
        Profile {
            name: "+ no timestamps",
            upsampler: Upsampler::ZeroStuff,
            settings: no_ts.clone(),
            prompt: false,
        },
        Profile {
            name: "+ audio_ctx fit (floor 512) + token/repeat guard",
            upsampler: Upsampler::ZeroStuff,
            settings: DecodeSettings::telephone(),
            prompt: false,
        },
        Profile {
            name: "+ question prompt (= ours)",
            upsampler: Upsampler::ZeroStuff,
            settings: DecodeSettings::telephone(),
            prompt: true,
        },
        Profile {
            name: "ours with audio_ctx floor 384",
            upsampler: Upsampler::ZeroStuff,
            settings: DecodeSettings {
                audio_context: AudioContext::Fit { floor: 384 },
                ..DecodeSettings::telephone()
            },
            prompt: true,
        },
    ]
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn samples(clip: &LabelledClip, upsampler: Upsampler) -> Vec<f32> {
    let pcm = parse_wav(&std::fs::read(&clip.path).expect("fixture readable"))
        .expect("fixture is a valid WAV");
    to_model_input(&pcm, upsampler)
}

fn request(engine: &SpeechEngine, question: &Question, settings: &DecodeSettings) -> Request {
    Request {
        settings: settings.clone(),
        ..engine.request(question)
    }
}

fn value_string(v: &Option<AnswerValue>) -> String {
    match v {
        Some(AnswerValue::Bool(b)) => b.to_string(),
        Some(AnswerValue::Text(t)) => t.clone(),
        None => String::new(),
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let args: Vec<String> = std::env::args().collect();
    let model_path = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/ggml-tiny.en.bin"));
    let fixtures = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("fixtures/asr"));
    let clips = read_manifest(&fixtures).expect("manifest readable");
    let model = WhisperModel::load(&model_path).expect("model loads (run scripts/fetch-model.sh)");
    let engine = SpeechEngine::with_model(
        &model,
        AsrConfig {
            timeout: Duration::from_secs(120),
            ..AsrConfig::new(&model_path)
        },
    )
    .expect("engine starts");

    free_form(&engine, &clips);
    typed(&engine, &clips);
    capacity(&model, &model_path, &clips);
}

fn free_form(engine: &SpeechEngine, clips: &[LabelledClip]) {
    let free: Vec<&LabelledClip> = clips.iter().filter(|c| c.answer_type == "free").collect();
    println!(
        "\n### Free-form WER, {} telephone clips (8 kHz μ-law, 300–3400 Hz), tiny.en, 2 threads\n",
        free.len()
    );
    println!("| profile | WER | latency p50 | latency mean |\n|---|---|---|---|");
    for profile in profiles() {
        let mut tally = WerTally::default();
        let mut times = Vec::new();
        for clip in &free {
            let audio = samples(clip, profile.upsampler);
            let question = Question {
                prompt: profile.prompt.then(|| clip.question.clone()),
                ..Question::free()
            };
            let req = request(engine, &question, &profile.settings);
            let start = Instant::now();
            let out = engine
                .transcribe_samples(&audio, &question, &req)
                .expect("recognition");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            tally.add(&clip.reference, &out.text);
            if std::env::var_os("VERBOSE").is_some() {
                eprintln!("{} | {} | {}", profile.name, clip.reference, out.text);
            }
        }
        let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
        println!(
            "| {} | {:.1} % | {:.0} ms | {:.0} ms |",
            profile.name,
            tally.wer() * 100.0,
            percentile(&mut times, 0.5),
            mean
        );
    }
}

fn typed(engine: &SpeechEngine, clips: &[LabelledClip]) {
    println!("\n### Typed answers (ours: zero-stuffing, no timestamps, audio_ctx fit, question prompt)\n");
    println!("| type | n | stock text parse | ours text | ours closed-set scores | ours hybrid (default) | mean conf. right / wrong | latency p50 |\n|---|---|---|---|---|---|---|---|");
    let types = [
        "yes_no", "choice", "digits", "date", "time", "amount", "spelling",
    ];
    for ty in types {
        let set: Vec<&LabelledClip> = clips.iter().filter(|c| c.answer_type == ty).collect();
        let mut right = [0usize; 4];
        let (mut conf_right, mut conf_wrong) = (Vec::new(), Vec::new());
        let mut times = Vec::new();
        for clip in &set {
            let answer_type = AnswerType::parse(ty, &clip.choices).expect("type");
            let question = Question {
                prompt: Some(clip.question.clone()),
                answer_type: answer_type.clone(),
            };
            // Stock: no prompt, band-limited resampling, stock settings, value parsed from text.
            let stock_q = Question {
                prompt: None,
                answer_type: answer_type.clone(),
            };
            let stock_req = request(engine, &stock_q, &DecodeSettings::stock());
            let stock_req = Request {
                candidates: Vec::new(),
                ..stock_req
            };
            let stock = engine
                .pool()
                .recognize(samples(clip, Upsampler::Sinc), stock_req)
                .expect("recognition");
            let stock_value =
                value_string(&interpret_with(&answer_type, &stock, ClosedSetMethod::Text).value);
            right[0] += usize::from(stock_value == clip.value);

            let req = engine.request(&question);
            let start = Instant::now();
            let ours = engine
                .pool()
                .recognize(samples(clip, Upsampler::ZeroStuff), req)
                .expect("recognition");
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            for (slot, method) in [
                (1, ClosedSetMethod::Text),
                (2, ClosedSetMethod::Scores),
                (3, ClosedSetMethod::Hybrid),
            ] {
                let answer = interpret_with(&answer_type, &ours, method);
                let ok = value_string(&answer.value) == clip.value;
                right[slot] += usize::from(ok);
                if method == ClosedSetMethod::Hybrid {
                    if ok {
                        conf_right.push(answer.confidence)
                    } else {
                        conf_wrong.push(answer.confidence)
                    }
                    if std::env::var_os("VERBOSE").is_some() {
                        eprintln!(
                            "{ty} | {} | {:?} | {:?} {:.2}",
                            clip.value, ours.text, answer.value, answer.confidence
                        );
                    }
                }
            }
            if candidates(&answer_type).0.is_empty() {
                right[2] = 0;
            }
        }
        let n = set.len();
        let mean = |v: &[f32]| {
            if v.is_empty() {
                "–".to_string()
            } else {
                format!("{:.2}", v.iter().sum::<f32>() / v.len() as f32)
            }
        };
        let scores = if candidates(&AnswerType::parse(ty, &["x".into()]).expect("type"))
            .0
            .is_empty()
        {
            "–".to_string()
        } else {
            format!("{}/{n}", right[2])
        };
        println!(
            "| {ty} | {n} | {}/{n} | {}/{n} | {scores} | {}/{n} | {} / {} | {:.0} ms |",
            right[0],
            right[1],
            right[3],
            mean(&conf_right),
            mean(&conf_wrong),
            percentile(&mut times, 0.5)
        );
    }
}

/// Real-time capacity: how much speech per wall-clock second the node transcribes with all
/// workers busy, turned into concurrent calls at 40 % talk time.
fn capacity(model: &WhisperModel, model_path: &Path, clips: &[LabelledClip]) {
    println!("\n### Pool throughput (all free-form clips, submitted as fast as workers free up)\n");
    println!("| workers × threads | speech transcribed / wall second | calls at 40 % talk | p50 job latency |\n|---|---|---|---|");
    let audio: Vec<Vec<f32>> = clips
        .iter()
        .filter(|c| c.answer_type == "free")
        .map(|c| samples(c, Upsampler::ZeroStuff))
        .collect();
    let speech_s: f64 = audio.iter().map(|a| a.len() as f64 / 16_000.0).sum::<f64>() * 2.0;
    for (workers, threads) in [(1, 2), (2, 1)] {
        let engine = SpeechEngine::with_model(
            model as &dyn Transcriber,
            AsrConfig {
                max_concurrent: workers,
                threads,
                ..AsrConfig::new(model_path)
            },
        )
        .expect("engine");
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let mut pending: Vec<&Vec<f32>> = audio.iter().chain(audio.iter()).collect();
        let mut running = 0;
        let mut latencies = Vec::new();
        while !pending.is_empty() || running > 0 {
            while let Some(next) = pending.last() {
                let submitted = Instant::now();
                let tx = tx.clone();
                match engine.pool().try_submit(
                    (*next).clone(),
                    engine.request(&Question::free()),
                    Box::new(move |r| {
                        let _ = tx.send((r.is_ok(), submitted.elapsed()));
                    }),
                ) {
                    Ok(()) => {
                        pending.pop();
                        running += 1;
                    }
                    Err(_) => break, // pool full: wait for a completion
                }
            }
            let (ok, latency): (bool, Duration) = rx.recv().expect("worker reports");
            assert!(ok, "recognition failed");
            latencies.push(latency.as_secs_f64() * 1000.0);
            running -= 1;
        }
        let rate = speech_s / start.elapsed().as_secs_f64();
        println!(
            "| {workers} × {threads} | {rate:.1} s | {:.1} | {:.0} ms |",
            rate / 0.4,
            percentile(&mut latencies, 0.5)
        );
    }
}
