//! Shared by the model-backed tests: locating the converted model and the fixtures.
// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use voxbridge_asr::whisper::WhisperModel;

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures() -> PathBuf {
    workspace().join("fixtures/asr")
}

/// `VOXBRIDGE_ASR_MODEL`, else `<workspace>/models/ggml-tiny.en.bin`. Missing model: the test
/// fails (CI must have run scripts/fetch-model.sh); it never silently skips.
pub fn model_path() -> PathBuf {
    let path = std::env::var_os("VOXBRIDGE_ASR_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models/ggml-tiny.en.bin"));
    assert!(
        path.is_file(),
        "speech model {} not found: run scripts/fetch-model.sh (or set VOXBRIDGE_ASR_MODEL)",
        path.display()
    );
    path
}

/// Loaded once per test binary and shared, as the server does.
pub fn model() -> &'static WhisperModel {
    static MODEL: OnceLock<WhisperModel> = OnceLock::new();
    MODEL.get_or_init(|| match WhisperModel::load(&model_path()) {
        Ok(model) => model,
        Err(e) => panic!("{e}"),
    })
}
