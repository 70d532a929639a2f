//! The crate's error type: every failure a caller can act on has its own variant.

use std::path::PathBuf;

pub use voxbridge_media::wav::WavError;

/// Everything the recognizer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("speech model {path} not found: run scripts/fetch-model.sh or set [asr] model")]
    ModelMissing { path: PathBuf },
    #[error("speech model {path} could not be loaded (corrupt or not a whisper.cpp ggml model): {reason}")]
    ModelInvalid { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: WavError,
    },
    #[error("all {0} recognition workers are busy")]
    Busy(usize),
    #[error("recognition did not finish before its deadline")]
    Timeout,
    #[error("the recognition pool has shut down")]
    PoolClosed,
    #[error("no audio to recognize")]
    EmptyAudio,
    #[error("answer type `choice` needs at least one choice")]
    NoChoices,
    #[error(
        "unknown answer type `{0}` (free, yes_no, digits, date, time, amount, spelling, choice)"
    )]
    UnknownAnswerType(String),
    /// The backend failed; the source is the backend's own error (kept opaque so whisper-rs
    /// types do not leak into this enum).
    #[error("speech engine failed")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start a recognition worker thread")]
    WorkerSpawn(#[source] std::io::Error),
    #[error("this build has no speech engine (enable the `whisper` feature)")]
    NoEngine,
}
