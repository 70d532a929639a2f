//! Model start-up: the converted model loads and transcribes a known clip; a missing or corrupt
//! model and unsupported audio are clear errors. (CI runs this right after fetch-model.sh.)

mod common;

use voxbridge_asr::frontend::{to_model_input, Upsampler};
use voxbridge_asr::wer::WerTally;
use voxbridge_asr::whisper::WhisperModel;
use voxbridge_asr::{
    parse_wav, transcribe_wav, AnswerType, AsrConfig, AsrError, Question, Recognition,
    SpeechEngine, TranscribeOptions, WavError,
};

fn options() -> TranscribeOptions {
    TranscribeOptions {
        model: common::model_path(),
        answer_model: Some(common::answer_model_path()),
        prompt: None,
        answer_type: None,
        choices: Vec::new(),
        threads: 1,
        language: "en".into(),
    }
}

#[test]
fn known_clip_is_transcribed_from_every_wav_encoding() {
    let invoice = "Please send me a copy of the invoice by email.";
    let address = "I would like to change the address on my account.";
    for (clip, reference) in [
        ("format_pcm16_16k.wav", invoice),
        ("format_alaw_8k.wav", invoice),
        ("free_01.wav", address),
    ] {
        let out = transcribe_wav(&common::fixtures().join(clip), &options()).unwrap();
        let mut tally = WerTally::default();
        tally.add(reference, &out.text);
        assert!(
            tally.wer() <= 0.2,
            "{clip}: {:?} (WER {:.2})",
            out.text,
            tally.wer()
        );
        assert_eq!(out.segments.len(), 1, "{clip}: {:?}", out.segments);
        assert!(out.segments[0].end_ms <= 4000, "{:?}", out.segments);
        let json = serde_json::to_value(&out).unwrap();
        for key in ["text", "value", "segments"] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
    }
}

/// The default model is quantized; typed answers go to the f16 answer model beside it, and each
/// recognition is exactly what its model alone gives.
#[test]
fn typed_answers_are_decoded_by_the_answer_model() {
    let alone = |path: &std::path::Path| {
        let model = WhisperModel::load(path).unwrap();
        SpeechEngine::with_model(&model, AsrConfig::new(path)).unwrap()
    };
    let both = SpeechEngine::with_model(common::model(), common::config()).unwrap();
    let quantized = alone(&common::model_path());
    let full = alone(&common::answer_model_path());
    let wav = std::fs::read(common::fixtures().join("yes_no_01.wav")).unwrap();
    let audio = to_model_input(&parse_wav(&wav).unwrap(), Upsampler::ZeroStuff);
    let run = |engine: &SpeechEngine, question: &Question| -> Recognition {
        engine
            .pool()
            .recognize(audio.clone(), engine.request(question))
            .unwrap()
    };

    let yes_no = Question::asked("Shall I book the appointment for you?", AnswerType::YesNo);
    let answer = run(&both, &yes_no);
    assert!(!answer.candidate_logprobs.is_empty());
    assert_eq!(
        answer.candidate_logprobs,
        run(&full, &yes_no).candidate_logprobs
    );
    assert_ne!(
        answer.candidate_logprobs,
        run(&quantized, &yes_no).candidate_logprobs,
        "the two models must differ, or this test proves nothing"
    );

    let free = Question::free();
    let (speech, reference) = (run(&both, &free), run(&quantized, &free));
    assert_eq!(
        (speech.text, speech.confidence),
        (reference.text, reference.confidence)
    );
}

#[test]
fn missing_model_is_a_clear_error() {
    let err = WhisperModel::load(std::path::Path::new("/nonexistent/ggml-tiny.en.bin"))
        .err()
        .unwrap();
    assert!(matches!(err, AsrError::ModelMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch-model.sh"), "{err}");
    let err = WhisperModel::load(&common::model_path())
        .and_then(|m| m.with_answer_model(std::path::Path::new("/nonexistent/answers.bin")))
        .err()
        .unwrap();
    assert!(matches!(err, AsrError::ModelMissing { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/answers.bin"),
        "{err}"
    );
}

#[test]
fn corrupt_models_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("voxbridge-asr-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = std::fs::read(common::model_path()).unwrap();
    let cases = [
        ("garbage.bin", b"this is not a model at all".to_vec()),
        ("truncated.bin", real[..real.len() / 2].to_vec()),
        ("empty.bin", Vec::new()),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = WhisperModel::load(&path).err().unwrap();
        assert!(
            matches!(err, AsrError::ModelInvalid { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("could not be loaded"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unsupported_wav_is_a_clear_error() {
    let path = common::fixtures().join("format_stereo_22k.wav");
    let err = transcribe_wav(&path, &options()).err().unwrap();
    assert!(
        matches!(
            err,
            AsrError::Wav {
                source: WavError::UnsupportedChannels(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("mono"), "{err}");
    let err = transcribe_wav(&common::fixtures().join("manifest.tsv"), &options())
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a RIFF/WAVE file"), "{err}");
}
