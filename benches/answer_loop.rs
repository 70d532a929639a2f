//! The whole answer loop on telephone audio: does the agent store the right value? Simulated
//! callers answer each question truthfully in one of the built-in espeak-ng voices, over a
//! telephone line (8 kHz, μ-law, every other one with pink noise at 15 dB SNR): they say the
//! answer, say "yes" to a read-back that is right and "no" to one that is wrong, and key the
//! value when asked to. What they say goes the way a call's audio goes (μ-law decoded,
//! upsampled as the media pipeline does, cut with the VAD's lead-in and end-of-turn silence,
//! then `Utterance::model_input`) to the real recognizer, typed by the question the real
//! `Conversation` is listening for. Only the network is left out (the SIPp tests cover it).
//!
//!   cargo bench --bench answer_loop [-- TRIALS]     (default 96; needs scripts/setup.sh's models)
//!
//! Reports, per question type: stored right / wrong / unanswered, how (speech, read-back,
//! keypad), and wrong values stored as confirmed (must be 0).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use time::macros::date;
use voxbridge::agents::answers::{self, Method};
use voxbridge::agents::conversation::{Action, Conversation, Heard, Script};
use voxbridge::agents::tts::Tts;
use voxbridge::domain::{FirstSpeaker, Question, QuestionType};
use voxbridge::telephony::utterances::Utterance;
use voxbridge_asr::numbers::{number_to_words, ordinal_to_words};
use voxbridge_asr::{AsrConfig, SpeechEngine};
use voxbridge_media::codec::{linear_to_ulaw, ulaw_to_linear};
use voxbridge_media::resample::resampler;

/// The utterance cutter's lead-in before the speech: 200 ms at 16 kHz.
const LEAD: usize = 3200;
const VOICES: [&str; 4] = ["calm_support", "friendly", "formal", "neutral"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// One question and the caller's truth: what they say, what they key, the value to store.
struct Case {
    question: Question,
    said: String,
    keys: String,
    truth: Value,
}

/// A small deterministic generator, so every run asks the same things.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn case(kind: usize, rng: &mut Rng) -> Case {
    let q = |ask: &str, kind| Question::new("answer", ask, kind);
    match kind {
        0 => {
            let (said, yes) = [
                ("Yes.", true),
                ("Yes, please.", true),
                ("No.", false),
                ("No, thank you.", false),
            ][rng.below(4) as usize];
            Case {
                question: q("Shall I book the appointment for you?", QuestionType::YesNo),
                said: said.into(),
                keys: if yes { "1" } else { "2" }.into(),
                truth: json!(yes),
            }
        }
        1 => {
            let choices = ["billing", "technical support", "sales"];
            let pick = rng.below(3) as usize;
            let said = ["Billing.", "Technical support, please.", "Sales."][pick];
            Case {
                question: Question {
                    choices: choices.iter().map(|c| c.to_string()).collect(),
                    ..q(
                        "Which department do you need: billing, technical support, or sales?",
                        QuestionType::Choice,
                    )
                },
                said: said.into(),
                keys: (pick + 1).to_string(),
                truth: json!(choices[pick]),
            }
        }
        2 => {
            let len = 4 + rng.below(5);
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            let said: Vec<String> = digits
                .bytes()
                .map(|d| number_to_words(u64::from(d - b'0')))
                .collect();
            Case {
                question: q("What is your account number?", QuestionType::Digits),
                said: format!("{}.", said.join(" ")),
                keys: format!("{digits}#"),
                truth: json!(digits),
            }
        }
        3 => {
            let (month, day) = (rng.below(12) as usize, rng.below(28) as usize);
            Case {
                question: q(
                    "What date would you like the appointment?",
                    QuestionType::Date,
                ),
                said: format!("{} {}.", MONTHS[month], ordinal_to_words(day as u64 + 1)),
                keys: format!("2027{:02}{:02}#", month + 1, day + 1),
                truth: json!(format!("2027-{:02}-{:02}", month + 1, day + 1)),
            }
        }
        4 => {
            let (hour, quarter) = (1 + rng.below(12), rng.below(4));
            let afternoon = rng.below(2) == 1 && hour != 12;
            let minutes = ["o'clock", "fifteen", "thirty", "forty five"][quarter as usize];
            let h24 = if afternoon {
                hour + 12
            } else {
                hour % 12 + if hour == 12 { 12 } else { 0 }
            };
            let part = if afternoon {
                "in the afternoon"
            } else if hour == 12 {
                "noon"
            } else {
                "in the morning"
            };
            let said = if hour == 12 && quarter == 0 {
                "twelve noon".to_string()
            } else {
                format!("{} {minutes} {part}", number_to_words(hour))
                    .replace(" noon", " in the afternoon")
            };
            Case {
                question: q("What time works for you?", QuestionType::Time),
                said: format!("{said}."),
                keys: format!("{h24:02}{:02}#", quarter * 15),
                truth: json!(format!("{h24:02}:{:02}", quarter * 15)),
            }
        }
        _ => {
            let (dollars, cents) = (1 + rng.below(500), [0, 25, 50, 99][rng.below(4) as usize]);
            let said = match cents {
                0 => format!("{} dollars.", number_to_words(dollars)),
                c => format!(
                    "{} dollars and {} cents.",
                    number_to_words(dollars),
                    number_to_words(c)
                ),
            };
            Case {
                question: q("How much would you like to pay?", QuestionType::Amount),
                said,
                keys: format!("{dollars}{cents:02}#"),
                truth: json!({"value": format!("{dollars}.{cents:02}"), "currency": "USD"}),
            }
        }
    }
}

/// The caller's side of the line: their speech as the server receives it.
struct Line {
    tts: Tts,
    voice: &'static str,
    noisy: bool,
    seed: u32,
}

impl Line {
    /// `text` said by this caller and cut as the call would cut it, as the recognizer's input.
    async fn utterance(&mut self, text: &str) -> Vec<f32> {
        let audio = self
            .tts
            .speak(self.voice, text)
            .await
            .expect("espeak-ng speaks");
        let mut narrow = Vec::new();
        let mut down = resampler(16_000, 8000, 20).unwrap();
        let mut buf = [0i16; 160];
        let mut padded = vec![0i16; LEAD];
        padded.extend_from_slice(&audio);
        padded.extend(vec![0i16; 320 * 20]);
        padded.resize(padded.len().div_ceil(320) * 320, 0);
        for chunk in padded.chunks_exact(320) {
            let n = down.process(chunk, &mut buf).unwrap();
            narrow.extend_from_slice(&buf[..n]);
        }
        if self.noisy {
            self.add_noise(&mut narrow, 15.0);
        }
        // The phone's μ-law, then the media pipeline's 8 → 16 kHz.
        let decoded: Vec<i16> = narrow
            .iter()
            .map(|&s| ulaw_to_linear(linear_to_ulaw(s)))
            .collect();
        let mut up = resampler(8000, 16_000, 20).unwrap();
        let mut wide = Vec::new();
        let mut frame = [0i16; 320];
        for chunk in decoded.chunks_exact(160) {
            let n = up.process(chunk, &mut frame).unwrap();
            wide.extend_from_slice(&frame[..n]);
        }
        // The cutter's 200 ms lead-in and the 400 ms end-of-turn silence around the speech.
        let end = (LEAD + audio.len() + 16 * 400).min(wide.len());
        Utterance {
            start_ms: 0,
            end_ms: 0,
            pcm: wide[..end].to_vec(),
            voiced: true,
        }
        .model_input(true)
    }

    /// Pink-ish noise (a one-pole low-passed white noise) at `snr_db` below the speech level.
    fn add_noise(&mut self, audio: &mut [i16], snr_db: f64) {
        let power = audio.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / audio.len() as f64;
        let mut low = 0.0;
        let noise: Vec<f64> = (0..audio.len())
            .map(|_| {
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 17;
                self.seed ^= self.seed << 5;
                low = 0.9 * low + (f64::from(self.seed) / f64::from(u32::MAX) - 0.5);
                low
            })
            .collect();
        let noise_power = noise.iter().map(|n| n * n).sum::<f64>() / noise.len() as f64;
        // The speech is about a third of the padded clip: scale to its level, not the clip's.
        let gain = (power * 3.0 / noise_power / 10f64.powf(snr_db / 10.0)).sqrt();
        for (s, n) in audio.iter_mut().zip(noise) {
            *s = (f64::from(*s) + n * gain).clamp(-32768.0, 32767.0) as i16;
        }
    }
}

#[derive(Default)]
struct Tally {
    right: usize,
    wrong: usize,
    unanswered: usize,
    wrong_confirmed: usize,
    by_speech: usize,
    by_read_back: usize,
    by_keypad: usize,
    recognitions: usize,
}

fn recognize(engine: &SpeechEngine, audio: Vec<f32>, question: Option<&Question>) -> Heard {
    let (tx, rx) = mpsc::channel();
    let asr_question = answers::recognizer_question(question);
    engine
        .try_transcribe_utterance(audio, &asr_question, move |r| {
            let _ = tx.send(r);
        })
        .expect("a free recognizer");
    let out = rx.recv().expect("a result").expect("recognized");
    Heard {
        turn: 0,
        text: out.text,
        value: out.value,
        confidence: out.confidence,
    }
}

async fn run_case(engine: &SpeechEngine, line: &mut Line, case: &Case, tally: &mut Tally) {
    let script = Script {
        greeting: None,
        questions: vec![case.question.clone()],
        closing: "Goodbye.".into(),
        first_speaker: FirstSpeaker::Agent,
        no_input: Duration::from_secs(5),
        inter_digit: Duration::from_secs(3),
        max_duration: Duration::from_secs(300),
        today: date!(2026 - 12 - 07),
    };
    let mut conv = Conversation::new(script);
    let mut now = Instant::now();
    conv.start(now);
    let read_back_truth = format!(
        "I heard {}. Is that right?",
        answers::read_back(case.question.kind, &case.truth)
    );
    for _ in 0..12 {
        let mut said = None;
        while let Some(action) = conv.poll_action() {
            if let Action::Say(text) = action {
                said = Some(text);
            }
        }
        if conv.is_done() || said.as_deref() == Some("Goodbye.") {
            break;
        }
        now += Duration::from_secs(3);
        conv.playout_done(now);
        let (turn, listening) = conv.listening();
        let reply = match (&listening, said.as_deref()) {
            // The keypad: the caller keys the value.
            (None, _) => {
                for key in case.keys.chars() {
                    now += Duration::from_millis(300);
                    conv.dtmf(key, now);
                }
                continue;
            }
            (Some(q), Some(prompt)) if q.ask == "Is that right?" => if prompt == read_back_truth {
                "Yes."
            } else {
                "No."
            }
            .to_string(),
            _ => case.said.clone(),
        };
        let audio = line.utterance(&reply).await;
        tally.recognitions += 1;
        let mut heard = recognize(engine, audio, listening.as_ref());
        heard.turn = turn;
        conv.caller_started();
        now += Duration::from_secs(2);
        conv.heard(heard, now);
    }
    let captured = &conv.captured()[0];
    match (&captured.value, captured.method) {
        (None, _) => tally.unanswered += 1,
        (Some(v), method) => {
            let right = *v == case.truth;
            if right {
                tally.right += 1;
            } else {
                tally.wrong += 1;
                tally.wrong_confirmed += usize::from(method == Some(Method::ReadBackConfirmed));
                eprintln!(
                    "wrong: {} said {:?} ({}, {}), stored {v} by {method:?}",
                    case.question.kind.as_str(),
                    case.said,
                    line.voice,
                    if line.noisy { "noisy" } else { "clean" }
                );
            }
            match method {
                Some(Method::Speech) => tally.by_speech += 1,
                Some(Method::ReadBackConfirmed) => tally.by_read_back += 1,
                Some(Method::Dtmf) => tally.by_keypad += 1,
                None => {}
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(96);
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let engine = SpeechEngine::load(AsrConfig {
        answer_model: Some(models.join("ggml-tiny.en.bin")),
        ..AsrConfig::new(models.join("ggml-tiny.en-q8_0.bin"))
    })
    .expect("models/ggml-tiny.en-q8_0.bin and ggml-tiny.en.bin (scripts/setup.sh)");
    let tts = Tts::new(&BTreeMap::new(), None);
    let kinds = ["yes_no", "choice", "digits", "date", "time", "amount"];
    let mut tallies: Vec<Tally> = kinds.iter().map(|_| Tally::default()).collect();
    let mut rng = Rng(7);
    let started = Instant::now();
    for i in 0..trials {
        let kind = i % kinds.len();
        let mut line = Line {
            tts: tts.clone(),
            // Each round of six questions has one voice and line; eight rounds cover them all.
            voice: VOICES[(i / kinds.len() / 2) % VOICES.len()],
            noisy: (i / kinds.len()) % 2 == 1,
            seed: 1 + i as u32,
        };
        let case = case(kind, &mut rng);
        run_case(&engine, &mut line, &case, &mut tallies[kind]).await;
    }
    println!(
        "{trials} questions, {} voices, half with pink noise at 15 dB SNR; {:.0} s; load average {}",
        VOICES.len(),
        started.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("| type | right | wrong | unanswered | by speech | by read-back | by keypad | wrong stored as confirmed | recognitions |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (kind, t) in kinds.iter().zip(&tallies) {
        let n = t.right + t.wrong + t.unanswered;
        println!(
            "| {kind} | {}/{n} ({:.0} %) | {} | {} | {} | {} | {} | {} | {} |",
            t.right,
            100.0 * t.right as f64 / n.max(1) as f64,
            t.wrong,
            t.unanswered,
            t.by_speech,
            t.by_read_back,
            t.by_keypad,
            t.wrong_confirmed,
            t.recognitions
        );
    }
}
