//! The engine entry points the server uses: non-blocking typed recognition of an utterance,
//! and audio longer than one 30 s window split by the VAD with segment times.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::{
    parse_wav, AnswerType, AnswerValue, AsrConfig, AsrError, Pcm, Question, SampleRate,
    SpeechEngine,
};

fn pcm(name: &str) -> Pcm {
    parse_wav(&std::fs::read(common::fixtures().join(name)).unwrap()).unwrap()
}

fn engine() -> SpeechEngine {
    let config = AsrConfig {
        timeout: Duration::from_secs(60),
        ..common::config()
    };
    SpeechEngine::with_model(common::model(), config).unwrap()
}

#[test]
fn typed_utterance_is_recognized_off_thread_and_a_full_engine_says_busy() {
    let engine = engine();
    let audio = to_model_input(&pcm("yes_no_01.wav"), Upsampler::ZeroStuff);
    let question = Question::asked("Shall I book the appointment for you?", AnswerType::YesNo);
    let (tx, rx) = mpsc::channel();
    engine
        .try_transcribe_utterance(audio.clone(), &question, move |r| tx.send(r).unwrap())
        .unwrap();
    let busy = engine.try_transcribe_utterance(audio, &question, |_| panic!("must not run"));
    assert!(matches!(busy, Err(AsrError::Busy(1))), "{busy:?}");
    let out = rx.recv().unwrap().unwrap();
    assert_eq!(out.value, Some(AnswerValue::Bool(true)), "{out:?}");
    assert!(out.confidence > 0.5, "{out:?}");
}

#[test]
fn audio_longer_than_a_window_is_split_with_segment_times() {
    // 14 s of speech, 20 s of silence, 5 s of speech: two VAD windows.
    let first: Vec<i16> = [
        "free_01.wav",
        "free_02.wav",
        "free_03.wav",
        "free_05.wav",
        "free_19.wav",
    ]
    .iter()
    .flat_map(|n| pcm(n).samples)
    .collect();
    let second = pcm("free_13.wav").samples;
    let gap = vec![0i16; 8000 * 20];
    let first_ms = first.len() as u64 / 8;
    let samples = [first, gap, second].concat();
    let total_ms = samples.len() as u64 / 8;
    let long = Pcm {
        rate: SampleRate::Hz8000,
        samples,
    };
    let out = engine().transcribe_pcm(&long, &Question::free()).unwrap();
    assert_eq!(out.segments.len(), 2, "{:?}", out.segments);
    let (a, b) = (&out.segments[0], &out.segments[1]);
    assert!(a.start_ms < a.end_ms && a.end_ms <= first_ms + 300, "{a:?}");
    assert!(
        b.start_ms >= first_ms + 19_000 && b.end_ms <= total_ms,
        "{b:?}"
    );
    let text = out.text.to_lowercase();
    assert!(
        text.contains("address") && text.contains("password"),
        "{text}"
    );
}

#[test]
fn calibration_times_the_engine_and_derives_calls_that_shrink_with_the_target() {
    let engine = SpeechEngine::with_model(
        common::model(),
        AsrConfig {
            max_concurrent: 64,
            timeout: Duration::from_secs(60),
            ..common::config()
        },
    )
    .unwrap();
    let calibration = engine.calibrate(Duration::from_secs(1)).unwrap();
    assert!(
        calibration.utterance > Duration::from_secs(3)
            && calibration.service > Duration::from_millis(10)
            && calibration.service < Duration::from_secs(30),
        "{calibration:?}"
    );
    // 64 workers, but only as many recognize at once as this process has cores.
    assert_eq!(
        calibration.recognizers,
        voxbridge_asr::capacity::usable_cores(),
        "{calibration:?}"
    );
    assert!(calibration.calls >= 1, "{calibration:?}");
    let relaxed = voxbridge_asr::capacity::talking_calls(
        calibration.service,
        calibration.recognizers,
        calibration
            .utterance
            .div_f64(voxbridge_asr::capacity::TALK_SHARE),
        Duration::from_secs(10),
    );
    assert!(relaxed > calibration.calls, "{relaxed} vs {calibration:?}");
    eprintln!("{calibration:?}");
}
