//! Media core for VoxBridge: RTP/RTCP, jitter buffer and loss concealment, codecs, resampling,
//! RFC 4733 DTMF, VAD and recording.
//!
//! Every protocol and signal-processing piece is sans-IO (time comes in as `now`, bytes in and
//! out through caller buffers); only [`runtime`] owns sockets, threads and clocks.

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod pacer;
pub mod pipeline;
pub mod ports;
pub mod quality;
pub mod resample;
pub mod rtp;
pub mod runtime;
pub mod vad;
pub mod wav;
