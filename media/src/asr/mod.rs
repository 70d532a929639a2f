//! Speech recognition: the `Transcriber` trait and its whisper implementation.
