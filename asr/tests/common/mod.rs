//! Shared by the model-backed tests: locating the converted model and the fixtures.
// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use voxbridge_asr::whisper::WhisperModel;
use voxbridge_asr::AsrConfig;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures() -> PathBuf {
    workspace().join("fixtures/asr")
}

/// The server's default model: `VOXBRIDGE_ASR_MODEL`, else
/// `<workspace>/models/ggml-tiny.en-q8_0.bin`. Missing model: the test fails (CI must have run
/// scripts/fetch-model.sh); it never silently skips.
pub fn model_path() -> PathBuf {
    existing("VOXBRIDGE_ASR_MODEL", "ggml-tiny.en-q8_0.bin")
}

/// The default answer model (typed answers): `VOXBRIDGE_ASR_ANSWER_MODEL`, else
/// `<workspace>/models/ggml-tiny.en.bin`.
pub fn answer_model_path() -> PathBuf {
    existing("VOXBRIDGE_ASR_ANSWER_MODEL", "ggml-tiny.en.bin")
}

fn existing(var: &str, file: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models").join(file));
    assert!(
        path.is_file(),
        "speech model {} not found: run scripts/fetch-model.sh (or set {var})",
        path.display()
    );
    path
}

/// The server's defaults: `model_path()` with `answer_model_path()` for typed answers.
pub fn config() -> AsrConfig {
    AsrConfig {
        answer_model: Some(answer_model_path()),
        ..AsrConfig::new(model_path())
    }
}

/// Loaded once per test binary and shared, as the server does: the default model with the
/// answer model beside it.
pub fn model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        match WhisperModel::load(&model_path())
            .and_then(|m| m.with_answer_model(&answer_model_path()))
        {
            Ok(model) => model,
            Err(e) => panic!("{e}"),
        }
    })
}
