//! Speech recognition for telephone audio: the `Transcriber` trait and its whisper backend.
