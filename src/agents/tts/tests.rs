//! Against the real espeak-ng; the remote endpoint is a stand-in axum server on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};

use super::*;

fn no_voices() -> BTreeMap<String, VoiceConfig> {
    BTreeMap::new()
}

fn seconds(audio: &[i16]) -> f64 {
    audio.len() as f64 / f64::from(SAMPLE_RATE)
}

/// Counts the calls reaching the real engine.
struct Counting(EspeakCli, Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Synthesizer for Counting {
    fn engine(&self) -> &'static str {
        "espeak-ng"
    }
    async fn synthesize(&self, voice: &VoiceSettings, text: &str) -> Result<Pcm, TtsError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.synthesize(voice, text).await
    }
}

fn counting_tts(voices: &BTreeMap<String, VoiceConfig>) -> (Tts, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let local = Box::new(Counting(EspeakCli::new(), calls.clone()));
    (Tts::with_engines(voices, None, local, None), calls)
}

#[tokio::test]
async fn a_sentence_is_16k_speech_of_plausible_length_and_cached() {
    let (tts, calls) = counting_tts(&no_voices());
    let text = "Thanks for calling, how are you?";
    let audio = tts.speak("neutral", text).await.unwrap();
    let secs = seconds(&audio);
    assert!((0.8..5.0).contains(&secs), "{secs} s for 6 words");
    let peak = audio.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 3000, "speech, not silence: peak {peak}");
    let lead = audio.iter().position(|s| s.unsigned_abs() > 8).unwrap();
    let tail = audio.len() - 1 - audio.iter().rposition(|s| s.unsigned_abs() > 8).unwrap();
    assert!(
        lead <= 16 * 35 && tail <= 16 * 35,
        "silence trimmed to ~30 ms: lead {lead}, tail {tail} samples"
    );

    let again = tts.speak("neutral", &format!("  {text}\n")).await.unwrap();
    assert!(Arc::ptr_eq(&audio, &again), "second call is a cache hit");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn voices_differ_and_overrides_apply() {
    let mut voices = no_voices();
    voices.insert(
        "slow".into(),
        VoiceConfig {
            rate: Some(90),
            ..Default::default()
        },
    );
    let (tts, _) = counting_tts(&voices);
    let text = "Your appointment is on Tuesday at nine.";
    let mut seen: Vec<(&str, Arc<[i16]>)> = Vec::new();
    for voice in BUILTIN_VOICES {
        let audio = tts.speak(voice, text).await.unwrap();
        for (other, earlier) in &seen {
            assert_ne!(&audio[..], &earlier[..], "{voice} sounds like {other}");
        }
        seen.push((voice, audio));
    }
    let neutral = seconds(&seen[0].1);
    let slow = seconds(&tts.speak("slow", text).await.unwrap());
    assert!(
        slow > neutral * 1.4,
        "90 wpm ({slow} s) is much slower than neutral ({neutral} s)"
    );
    assert!(tts.knows("slow") && tts.knows("formal") && !tts.knows("brisk"));
    assert_eq!(
        tts.voice_names(),
        ["calm_support", "formal", "friendly", "neutral", "slow"]
    );
}

#[tokio::test]
async fn unknown_voice_is_an_error_and_blank_text_is_silence() {
    let (tts, calls) = counting_tts(&no_voices());
    assert!(matches!(
        tts.speak("brisk", "hello").await,
        Err(TtsError::UnknownVoice(v)) if v == "brisk"
    ));
    for blank in ["", "   ", "\n\t "] {
        assert!(tts.speak("neutral", blank).await.unwrap().is_empty());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no engine call for blank text"
    );
}

#[test]
fn speaking_can_run_on_any_runtime_worker() {
    fn is_send<T: Send>(_: &T) {}
    let tts = Tts::new(&no_voices(), None);
    is_send(&tts.speak("neutral", "hello"));
    is_send(&tts);
}

#[tokio::test]
async fn weird_input_never_panics() {
    let tts = Tts::new(&no_voices(), None);
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(112);
    assert!(long.len() > 5000);
    let inputs = [
        r#"He said "yes" and 'no' `now` $HOME; rm -rf / && echo"#,
        "<speak><break time=\"10s\"/>tags</speak> <audio src=\"x\"/>",
        "[[h@l'oU]] [[[[ ]]",
        "-v xx --help",
        "Ünïcödé café, 日本語, emoji 🎉, RTL שלום",
        "a\0b\u{7}c\u{1b}[31m",
        "...",
        long.as_str(),
    ];
    for input in inputs {
        let result = tts.speak("friendly", input).await;
        assert!(result.is_ok(), "{input:.40}: {result:?}");
    }
    let audio = tts.speak("friendly", &long).await.unwrap();
    assert!(seconds(&audio) > 100.0, "the whole long text is spoken");
}

#[test]
fn wav_parser_takes_any_pcm16_and_refuses_garbage() {
    let stereo = wav(24_000, 2, &[1, -1, 3, 5, 7]);
    let pcm = parse_wav(&stereo).unwrap();
    assert_eq!((pcm.rate, pcm.channels), (24_000, 2));
    assert_eq!(pcm.samples, [1, -1, 3, 5], "the half frame is dropped");
    assert_eq!(to_mono(&pcm), [0, 4]);
    let mut streaming = wav(22_050, 1, &[9, 9]);
    streaming[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse_wav(&streaming).unwrap().samples, [9, 9]);
    for garbage in [
        &b""[..],
        b"RIFF",
        b"RIFF\0\0\0\0WAVEdata\xff\xff\xff\xff",
        b"<html>502 Bad Gateway</html>",
        &stereo[..30],
    ] {
        assert!(parse_wav(garbage).is_err());
    }
    let mut float = wav(16_000, 1, &[0]);
    float[20] = 3;
    assert!(parse_wav(&float).is_err(), "IEEE float is refused");
    let mut huge_rate = wav(16_000, 1, &[0]);
    huge_rate[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse_wav(&huge_rate).is_err());
}

#[test]
fn resampling_keeps_duration_and_pitch() {
    for rate in [8000, 11_025, 22_050, 24_000, 44_100, 48_000] {
        let tone: Vec<i16> = (0..rate)
            .map(|i| {
                ((f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 8000.0)
                    as i16
            })
            .collect();
        let out = to_16k(&tone, rate).unwrap();
        assert_eq!(out.len(), 16_000, "{rate} Hz");
        let crossings = out[800..15_200]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((780..=800).contains(&crossings), "{rate} Hz: {crossings}");
    }
}

fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let out = std::io::Cursor::new(Vec::new());
    let mut writer = voxbridge_media::wav::WavWriter::new(out, rate, channels).unwrap();
    writer.write_samples(samples).unwrap();
    writer.finish().unwrap().into_inner()
}

/// A stand-in speech server: `/ok` answers one second of a 24 kHz stereo tone, the others
/// fail in the ways real endpoints do. Records the JSON requests it got.
async fn stand_in() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let tone: Vec<i16> = (0..24_000)
        .flat_map(|i| {
            let s =
                ((f64::from(i) * 440.0 * std::f64::consts::TAU / 24_000.0).sin() * 8000.0) as i16;
            [s, s]
        })
        .collect();
    let body = wav(24_000, 2, &tone);
    let app = Router::new()
        .route(
            "/ok",
            post(move |Json(request): Json<serde_json::Value>| async move {
                log.lock().unwrap().push(request);
                ([("content-type", "audio/wav")], body)
            }),
        )
        .route(
            "/500",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "model crashed") }),
        )
        .route(
            "/garbage",
            post(|| async { "RIFF\0\0\0\0WAVEnot audio at all" }),
        )
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                ""
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn remote_config(url: String) -> TtsConfig {
    TtsConfig {
        url,
        model: "tts-1".into(),
        voice: "alloy".into(),
        timeout_ms: 500,
    }
}

fn remote_voices() -> BTreeMap<String, VoiceConfig> {
    let mut voices = no_voices();
    voices.insert(
        "neural".into(),
        VoiceConfig {
            engine: VoiceEngine::Remote,
            ..Default::default()
        },
    );
    voices.insert(
        "nova".into(),
        VoiceConfig {
            engine: VoiceEngine::Remote,
            voice: Some("nova".into()),
            ..Default::default()
        },
    );
    voices
}

#[tokio::test]
async fn remote_voice_is_fetched_parsed_and_resampled() {
    let (base, seen) = stand_in().await;
    let tts = Tts::new(&remote_voices(), Some(&remote_config(format!("{base}/ok"))));
    let audio = tts.speak("neural", "Hello from far away.").await.unwrap();
    assert!(
        (15_900..=16_000).contains(&audio.len()),
        "one second at 16 kHz: {}",
        audio.len()
    );
    tts.speak("nova", "Hi.").await.unwrap();
    tts.speak("neutral", "Local voices stay local.")
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0],
        serde_json::json!({"model": "tts-1", "input": "Hello from far away.",
            "voice": "alloy", "response_format": "wav"})
    );
    assert_eq!(seen[1]["voice"], "nova", "the voice's own remote name wins");
}

#[tokio::test]
async fn failing_remote_falls_back_to_espeak_within_the_timeout() {
    let (base, _) = stand_in().await;
    let local = Tts::new(&no_voices(), None);
    let text = "Sorry, the line is busy.";
    let expected = local.speak("neutral", text).await.unwrap();
    for path in ["/500", "/garbage", "/hang"] {
        let tts = Tts::new(
            &remote_voices(),
            Some(&remote_config(format!("{base}{path}"))),
        );
        let started = Instant::now();
        let audio = tts.speak("neural", text).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{path}: {:?}",
            started.elapsed()
        );
        assert_eq!(&audio[..], &expected[..], "{path}: espeak-ng's neutral");
    }
    let refused = Tts::new(
        &remote_voices(),
        Some(&remote_config("http://127.0.0.1:9/v1/audio/speech".into())),
    );
    assert_eq!(
        &refused.speak("neural", text).await.unwrap()[..],
        &expected[..]
    );
}

/// The numbers in docs/decisions.md: `cargo test --release -p voxbridge --lib
/// agents::tts::tests::measure -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_synthesis_cost() {
    fn cpu(who: i32) -> f64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    }
    let short = "Thanks for calling Acme, how can I help?";
    let long = "Thanks for calling Acme support. I can help with billing questions, change your \
        plan, or book a visit from a technician. Please tell me in a few words why you are calling today.";
    let engine = EspeakCli::new();
    let voice = builtin("neutral");
    for (name, text) in [("short", short), ("long", long)] {
        let runs = 30;
        let mut wall = Vec::new();
        let (child0, self0) = (cpu(libc::RUSAGE_CHILDREN), cpu(libc::RUSAGE_SELF));
        let mut audio = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            audio = render(&engine, &voice, text).await.unwrap();
            wall.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let child = (cpu(libc::RUSAGE_CHILDREN) - child0) / f64::from(runs) * 1000.0;
        let own = (cpu(libc::RUSAGE_SELF) - self0) / f64::from(runs) * 1000.0;
        wall.sort_by(f64::total_cmp);
        println!(
            "{name} ({} words, {:.2} s of audio): wall median {:.1} ms, p90 {:.1} ms; \
             CPU espeak-ng {child:.1} ms + ours {own:.1} ms",
            text.split_whitespace().count(),
            seconds(&audio),
            wall[wall.len() / 2],
            wall[wall.len() * 9 / 10],
        );
    }
    let tts = Tts::new(&no_voices(), None);
    tts.speak("neutral", long).await.unwrap();
    let started = Instant::now();
    tts.speak("neutral", long).await.unwrap();
    println!("cache hit: {:?}", started.elapsed());
}
