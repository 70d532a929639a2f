//! Call recording on its own thread, so disk writes never block a shard.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use super::FRAME_SAMPLES;
use crate::wav::StereoRecorder;

pub(super) enum RecordFrame {
    Caller([i16; FRAME_SAMPLES]),
    Agent([i16; FRAME_SAMPLES]),
}

/// Starts the writer thread for a stereo WAV at `path`.
pub(super) fn spawn_recorder(path: PathBuf) -> std::io::Result<std_mpsc::SyncSender<RecordFrame>> {
    let file = BufWriter::new(File::create(&path)?);
    let mut rec = StereoRecorder::new(file, 16_000, FRAME_SAMPLES)?;
    let (tx, rx) = std_mpsc::sync_channel::<RecordFrame>(500);
    std::thread::Builder::new()
        .name("media-rec".into())
        .spawn(move || {
            for frame in rx {
                let result = match &frame {
                    RecordFrame::Caller(pcm) => rec.caller(pcm),
                    RecordFrame::Agent(pcm) => rec.agent(pcm),
                };
                if result.is_err() {
                    return;
                }
            }
            let _ = rec.finish();
        })?;
    Ok(tx)
}
