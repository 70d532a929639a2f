//! Media core for VoxBridge: RTP/RTCP, jitter buffer and loss concealment, codecs, resampling,
//! RFC 4733 DTMF, VAD and recording.
