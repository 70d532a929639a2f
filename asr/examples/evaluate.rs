//! Side-by-side evaluation on the telephone fixtures: stock whisper settings vs each of our
//! levers (WER, latency), typed-answer accuracy per type and method, and pool throughput.
//!
//!     cargo run --release -p voxbridge-asr --example evaluate [-- MODEL [FIXTURE_DIR]]
//!
//! MODEL defaults to the server's q8_0 model; `ANSWER_MODEL=path` (or `ANSWER_MODEL=` for none)
//! sets the typed-answer model, by default the f16 one beside it, as the server has them.
//! Prints markdown tables (pasted into docs/asr.md and docs/performance.md).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use voxbridge_asr::answers::{interpret_with, AnswerType, AnswerValue, ClosedSetMethod};
use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::manifest::{read_manifest, LabelledClip};
use voxbridge_asr::wer::WerTally;
use voxbridge_asr::whisper::WhisperModel;
use voxbridge_asr::{
    parse_wav, AsrConfig, AudioContext, DecodeSettings, Priority, Question, Recognition, Request,
    SpeechEngine, Transcriber,
};

struct Profile {
    name: &'static str,
    upsampler: Upsampler,
    settings: DecodeSettings,
    prompt: bool,
}

fn profiles() -> Vec<Profile> {
    let stock = DecodeSettings::stock();
    let ours = DecodeSettings::telephone();
    let profile = |name, upsampler, settings, prompt| Profile {
        name,
        upsampler,
        settings,
        prompt,
    };
    vec![
        profile(
            "stock (band-limited resampler, timestamps, full context)",
            Upsampler::Sinc,
            stock.clone(),
            false,
        ),
        profile(
            "stock + zero-stuffed upsampling",
            Upsampler::ZeroStuff,
            stock.clone(),
            false,
        ),
        profile(
            "stock + zero-stuffing + no timestamps",
            Upsampler::ZeroStuff,
            DecodeSettings {
                no_timestamps: true,
                ..stock
            },
            false,
        ),
        profile(
            "**ours**: + audio_ctx fit (floor 384) + token/repeat guard + dithered retry below 0.5 confidence, no fallback",
            Upsampler::ZeroStuff,
            ours.clone(),
            false,
        ),
        profile(
            "ours without the dithered retry",
            Upsampler::ZeroStuff,
            DecodeSettings {
                retry_below: None,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours with the dithered retry on every clip",
            Upsampler::ZeroStuff,
            DecodeSettings {
                retry_below: Some(1.0),
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours with temperature fallback instead of the dithered retry",
            Upsampler::ZeroStuff,
            DecodeSettings {
                retry_below: None,
                temperature_fallback: true,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours with audio_ctx floor 512",
            Upsampler::ZeroStuff,
            DecodeSettings {
                audio_context: AudioContext::Fit { floor: 512 },
                ..ours.clone()
            },
            false,
        ),
        profile(
            "floor 512, no retry (previous ours; our typed-answer profile)",
            Upsampler::ZeroStuff,
            DecodeSettings::telephone_typed(),
            false,
        ),
        profile(
            "ours with band-limited upsampling instead",
            Upsampler::Sinc,
            ours.clone(),
            false,
        ),
        profile(
            "ours without the token/repeat guard",
            Upsampler::ZeroStuff,
            DecodeSettings {
                max_tokens_per_second: None,
                collapse_repeats: false,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours + question prompt",
            Upsampler::ZeroStuff,
            ours.clone(),
            true,
        ),
        profile(
            "ours + 250 ms lead-in silence",
            Upsampler::ZeroStuff,
            DecodeSettings {
                lead_in_ms: 250,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours + 125 ms lead-in silence",
            Upsampler::ZeroStuff,
            DecodeSettings {
                lead_in_ms: 125,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours + 375 ms lead-in silence",
            Upsampler::ZeroStuff,
            DecodeSettings {
                lead_in_ms: 375,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours + 500 ms lead-in silence",
            Upsampler::ZeroStuff,
            DecodeSettings {
                lead_in_ms: 500,
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours with beam search (5)",
            Upsampler::ZeroStuff,
            DecodeSettings {
                beam_size: Some(5),
                ..ours.clone()
            },
            false,
        ),
        profile(
            "ours with audio_ctx floor 1024",
            Upsampler::ZeroStuff,
            DecodeSettings {
                audio_context: AudioContext::Fit { floor: 1024 },
                ..ours
            },
            false,
        ),
    ]
}

/// CPU time of this process so far (user + system, ms; 10 ms resolution). On this shared
/// machine wall-clock latency mostly measures other processes; CPU per job does not.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 10.0
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
    let mut settings = settings.clone();
    if let (AudioContext::Fit { .. }, Some(floor)) = (settings.audio_context, floor_override()) {
        settings.audio_context = AudioContext::Fit { floor };
    }
    Request {
        settings,
        ..engine.request(question)
    }
}

/// `FLOOR=384` overrides the audio_ctx floor of fitted profiles (experiments).
fn floor_override() -> Option<u32> {
    std::env::var("FLOOR").ok().and_then(|f| f.parse().ok())
}

/// Our request for a question, with the `FLOOR` override.
fn ours_request(engine: &SpeechEngine, question: &Question) -> Request {
    let mut request = engine.request(question);
    if let Some(floor) = floor_override() {
        request.settings.audio_context = AudioContext::Fit { floor };
    }
    request
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
        .unwrap_or_else(|| root.join("models/ggml-tiny.en-q8_0.bin"));
    let answer_model = std::env::var("ANSWER_MODEL")
        .unwrap_or_else(|_| root.join("models/ggml-tiny.en.bin").display().to_string());
    let fixtures = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("fixtures/asr"));
    let clips = read_manifest(&fixtures).expect("manifest readable");
    let mut model =
        WhisperModel::load(&model_path).expect("model loads (run scripts/fetch-model.sh)");
    if !answer_model.is_empty() {
        model = model
            .with_answer_model(Path::new(&answer_model))
            .expect("answer model loads");
    }
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let engine = SpeechEngine::with_model(
        &model,
        AsrConfig {
            threads,
            timeout: Duration::from_secs(120),
            ..AsrConfig::new(&model_path)
        },
    )
    .expect("engine starts");

    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || only == "free" {
        free_form(&engine, threads, &clips);
    }
    if only.is_empty() || only == "typed" {
        typed(&engine, threads, &clips);
    }
    if only == "backlog" {
        backlog(&model, &model_path, &clips);
    }
    if only.is_empty() || only == "capacity" {
        capacity(&model, &model_path, &clips);
    }
}

fn free_form(engine: &SpeechEngine, threads: usize, clips: &[LabelledClip]) {
    let free: Vec<&LabelledClip> = clips.iter().filter(|c| c.answer_type == "free").collect();
    println!(
        "\n### Free-form WER, {} telephone clips (8 kHz μ-law, 300–3400 Hz), tiny.en, {} thread(s)\n",
        free.len(),
        threads
    );
    println!("| profile | WER | wall latency p50 | CPU per clip (mean) |\n|---|---|---|---|");
    let filter = std::env::var("PROFILES").unwrap_or_default();
    for profile in profiles()
        .into_iter()
        .filter(|p| filter.is_empty() || filter.split(',').any(|f| p.name.contains(f)))
    {
        let mut tally = WerTally::default();
        let mut times = Vec::new();
        let cpu_start = cpu_ms();
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
                eprintln!(
                    "{} | {} | {} | {}",
                    profile.name, clip.reference, out.text, out.confidence
                );
            }
        }
        let cpu = (cpu_ms() - cpu_start) / times.len().max(1) as f64;
        println!(
            "| {} | {:.1} % | {:.0} ms | {:.0} ms |",
            profile.name,
            tally.wer() * 100.0,
            percentile(&mut times, 0.5),
            cpu
        );
    }
}

fn typed(engine: &SpeechEngine, threads: usize, clips: &[LabelledClip]) {
    println!("\n### Typed answers, telephone clips, tiny.en, {threads} thread(s)\n");
    println!("| type | n | stock, value from text | ours, text only | ours, closed-set scores only | ours, hybrid (text, else scores) | ours + format hint | mean confidence right / wrong (default) | latency p50 (default) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let verbose = std::env::var_os("VERBOSE").is_some();
    let types = std::env::var("TYPES").unwrap_or_default();
    for ty in [
        "yes_no", "choice", "digits", "date", "time", "amount", "spelling",
    ]
    .into_iter()
    .filter(|t| types.is_empty() || types.split(',').any(|f| f == *t))
    {
        let set: Vec<&LabelledClip> = clips.iter().filter(|c| c.answer_type == ty).collect();
        let closed = matches!(ty, "yes_no" | "choice");
        let mut right = [0usize; 5];
        let (mut conf_right, mut conf_wrong) = (Vec::new(), Vec::new());
        let mut times = Vec::new();
        for clip in &set {
            let answer_type = AnswerType::parse(ty, &clip.choices).expect("type");
            let ok = |answer: &voxbridge_asr::Answer| value_string(&answer.value) == clip.value;
            // Stock: band-limited resampling, stock settings, no prompt, value parsed from text.
            let stock_req = Request {
                candidates: Vec::new(),
                ..request(
                    engine,
                    &Question {
                        prompt: None,
                        answer_type: answer_type.clone(),
                    },
                    &DecodeSettings::stock(),
                )
            };
            // Stock decoding can loop until the 120 s timeout; that counts as a wrong answer.
            let stock = engine
                .pool()
                .recognize(samples(clip, Upsampler::Sinc), stock_req)
                .unwrap_or_else(|e| Recognition {
                    text: format!("<{e}>"),
                    segments: Vec::new(),
                    confidence: 0.0,
                    candidate_logprobs: Vec::new(),
                    queue_wait: std::time::Duration::ZERO,
                });
            right[0] += usize::from(ok(&interpret_with(
                &answer_type,
                &stock,
                ClosedSetMethod::Text,
            )));

            // Ours with the question as prompt, each closed-set method.
            let asked = Question {
                prompt: Some(clip.question.clone()),
                answer_type: answer_type.clone(),
            };
            let start = Instant::now();
            let ours = engine
                .pool()
                .recognize(
                    samples(clip, Upsampler::ZeroStuff),
                    ours_request(engine, &asked),
                )
                .expect("recognition");
            let elapsed = start.elapsed().as_secs_f64() * 1000.0;
            for (slot, method) in [
                (1, ClosedSetMethod::Text),
                (2, ClosedSetMethod::Scores),
                (3, ClosedSetMethod::Hybrid),
            ] {
                right[slot] += usize::from(ok(&interpret_with(&answer_type, &ours, method)));
            }
            // The default (Question::asked): adds a format example for open types.
            let (default, elapsed) = if closed {
                (
                    interpret_with(&answer_type, &ours, ClosedSetMethod::Hybrid),
                    elapsed,
                )
            } else {
                let start = Instant::now();
                let hinted = engine
                    .pool()
                    .recognize(
                        samples(clip, Upsampler::ZeroStuff),
                        ours_request(
                            engine,
                            &Question::asked(&clip.question, answer_type.clone()),
                        ),
                    )
                    .expect("recognition");
                let elapsed = start.elapsed().as_secs_f64() * 1000.0;
                if verbose {
                    eprintln!("{ty} hinted | {} | {:?}", clip.value, hinted.text);
                }
                (
                    interpret_with(&answer_type, &hinted, ClosedSetMethod::Hybrid),
                    elapsed,
                )
            };
            times.push(elapsed);
            right[4] += usize::from(ok(&default));
            if ok(&default) {
                conf_right.push(default.confidence)
            } else {
                conf_wrong.push(default.confidence)
            }
            if verbose {
                eprintln!(
                    "{ty} | {} | {:?} | {:?} {:.2} | {:?}",
                    clip.value,
                    ours.text,
                    default.value,
                    default.confidence,
                    ours.candidate_logprobs
                );
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
        let cell = |k: usize, applies: bool| {
            if applies {
                format!("{k}/{n}")
            } else {
                "–".to_string()
            }
        };
        println!(
            "| {ty} | {n} | {}/{n} | {}/{n} | {} | {}/{n} | {} | {} / {} | {:.0} ms |",
            right[0],
            right[1],
            cell(right[2], closed),
            right[3],
            cell(right[4], !closed),
            mean(&conf_right),
            mean(&conf_wrong),
            percentile(&mut times, 0.5)
        );
    }
}

/// Real-time capacity: how much speech per wall-clock second the node transcribes with all
/// workers busy, turned into concurrent calls at 40 % talk time; and the same from CPU time
/// (speech seconds per CPU second × cores), which does not depend on what else runs here.
fn capacity(model: &WhisperModel, model_path: &Path, clips: &[LabelledClip]) {
    println!("\n### Pool throughput (all free-form clips, submitted as fast as workers free up)\n");
    println!("| workers × threads | speech / wall second | calls at 40 % talk (wall) | CPU s per speech s | calls at 40 % talk on 2 idle cores (CPU) | p50 job latency |\n|---|---|---|---|---|---|");
    let audio: Vec<Vec<f32>> = clips
        .iter()
        .filter(|c| c.answer_type == "free")
        .map(|c| samples(c, Upsampler::ZeroStuff))
        .collect();
    let speech_s: f64 = audio.iter().map(|a| a.len() as f64 / 16_000.0).sum::<f64>() * 2.0;
    for (workers, threads) in [(1, 2), (2, 1), (1, 1)] {
        let engine = SpeechEngine::with_model(
            model as &dyn Transcriber,
            AsrConfig {
                max_concurrent: workers,
                threads,
                timeout: Duration::from_secs(120),
                ..AsrConfig::new(model_path)
            },
        )
        .expect("engine");
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let cpu_start = cpu_ms();
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
                        let _ = tx.send((r.map(|_| ()), submitted.elapsed()));
                    }),
                ) {
                    Ok(()) => {
                        pending.pop();
                        running += 1;
                    }
                    Err(_) => break, // pool full: wait for a completion
                }
            }
            let (result, latency) = rx.recv().expect("worker reports");
            if let Err(e) = result {
                panic!("recognition failed: {e}");
            }
            latencies.push(latency.as_secs_f64() * 1000.0);
            running -= 1;
        }
        let rate = speech_s / start.elapsed().as_secs_f64();
        let cpu_per_speech = (cpu_ms() - cpu_start) / 1000.0 / speech_s;
        println!(
            "| {workers} × {threads} | {rate:.2} s | {:.1} | {cpu_per_speech:.3} | {:.1} | {:.0} ms |",
            rate / 0.4,
            2.0 / cpu_per_speech / 0.4,
            percentile(&mut latencies, 0.5)
        );
    }
}

/// A backlog (`ONLY=backlog`): every free-form clip queued at once on one recognizer, as under
/// load, recognized one by one (no second opinions: others wait) and then in pairs
/// (`pair_utterances`): WER, CPU per clip, pairs made and split again.
fn backlog(model: &WhisperModel, model_path: &Path, clips: &[LabelledClip]) {
    let free: Vec<&LabelledClip> = clips.iter().filter(|c| c.answer_type == "free").collect();
    println!(
        "\n### A backlog of {} free-form clips on one recognizer\n",
        free.len()
    );
    println!("| mode | WER | CPU per clip | pairs (split again) |\n|---|---|---|---|");
    for pair_utterances in [false, true] {
        let engine = SpeechEngine::with_model(
            model as &dyn Transcriber,
            AsrConfig {
                threads: 1,
                timeout: Duration::from_secs(120),
                pair_utterances,
                ..AsrConfig::new(model_path)
            },
        )
        .expect("engine");
        let (tx, rx) = mpsc::channel();
        let cpu_start = cpu_ms();
        for (i, clip) in free.iter().enumerate() {
            let tx = tx.clone();
            engine
                .pool()
                .submit(
                    samples(clip, Upsampler::ZeroStuff),
                    engine.request(&Question::free()),
                    Priority::Listen,
                    Box::new(move |r| {
                        let _ = tx.send((i, r));
                    }),
                )
                .expect("queued");
        }
        let mut tally = WerTally::default();
        for _ in 0..free.len() {
            let (i, result) = rx.recv().expect("worker reports");
            let text = result.expect("recognition").text;
            if std::env::var_os("VERBOSE").is_some() {
                eprintln!("{pair_utterances} {i} | {} | {text}", free[i].reference);
            }
            tally.add(&free[i].reference, &text);
        }
        let (pairs, split) = engine.pool().pairs();
        println!(
            "| {} | {:.1} % | {:.0} ms | {pairs} ({split}) |",
            if pair_utterances {
                "in pairs"
            } else {
                "one by one"
            },
            tally.wer() * 100.0,
            (cpu_ms() - cpu_start) / free.len() as f64
        );
    }
}
