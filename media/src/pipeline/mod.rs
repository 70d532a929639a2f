//! One call's media, sans-IO: RTP in → jitter buffer → decode → 16 kHz → VAD (caller side);
//! agent 16 kHz PCM → resample → encode → paced RTP out (agent side); DTMF both ways; RTCP.
//!
//! The driver feeds datagrams and timeouts and drains [`CallMedia::poll_output`] until it
//! returns [`MediaOutput::Timeout`]. Outputs borrow the call's own buffers, so nothing is
//! allocated per packet or per frame.

mod agent;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::{AudioCodec, CodecError, CodecKind};
use crate::dtmf::{Digit, DtmfError, DtmfReceiver, DtmfSender};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::pacer::Pacer;
use crate::quality::{burst_ratio, estimate_mos, CallQuality};
use crate::resample::{resampler, ResampleError, Resampler};
use crate::rtp::{
    Component, Datagram, Input, Output, RemoteReport, RtpSession, SessionConfig, SessionEvent,
    SourcePolicy, Transmit, RTP_HEADER_LEN,
};
use crate::vad::{Vad, VadConfig, VadEvent};
use agent::AgentAudio;

/// The pipeline's PCM rate towards the agent and the transcriber.
pub const PIPELINE_RATE: u32 = 16_000;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Dtmf(#[from] DtmfError),
    #[error("DTMF needs a negotiated telephone-event payload type")]
    NoDtmfPayloadType,
    #[error("unsupported ptime {0} ms (10 to 60 ms in steps of 10)")]
    UnsupportedPtime(u32),
}

/// What SDP negotiation decided, plus tuning with sensible defaults.
#[derive(Debug, Clone)]
pub struct CallMediaConfig {
    pub codec: CodecKind,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub ptime_ms: u32,
    pub remote_rtp: SocketAddr,
    /// SDP `a=rtcp`; defaults to RTP port + 1. Ignored with rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    pub rtcp_mux: bool,
    pub source_policy: SourcePolicy,
    pub local_ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
    /// NTP time at `now` of [`CallMedia::new`], for RTCP sender reports.
    pub ntp_at_start: u64,
    pub vad: VadConfig,
    pub jitter_min_delay: Duration,
    pub jitter_max_delay: Duration,
    /// Agent audio beyond this much queued is refused (bots sending faster than real time).
    pub max_agent_queue: Duration,
    /// Low-level noise instead of digital silence while the agent is quiet.
    pub comfort_noise: bool,
}

impl CallMediaConfig {
    /// Defaults for a negotiated codec and remote address. Identifiers (SSRC, first
    /// sequence number and timestamp) should be random: set them from the driver.
    pub fn new(codec: CodecKind, payload_type: u8, remote_rtp: SocketAddr) -> Self {
        Self {
            codec,
            payload_type,
            dtmf_payload_type: Some(101),
            ptime_ms: 20,
            remote_rtp,
            remote_rtcp: None,
            rtcp_mux: false,
            source_policy: SourcePolicy::Latch,
            local_ssrc: 0x5678_9abc,
            initial_seq: 0,
            initial_timestamp: 0,
            ntp_at_start: 0,
            vad: VadConfig::new(PIPELINE_RATE),
            jitter_min_delay: Duration::from_millis(20),
            jitter_max_delay: Duration::from_millis(200),
            max_agent_queue: Duration::from_secs(30),
            comfort_noise: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MediaEvent {
    Vad(VadEvent),
    Dtmf(Digit),
    SourceLatched(SocketAddr),
    RemoteReport(RemoteReport),
    RemoteBye,
}

#[derive(Debug, PartialEq)]
pub enum MediaOutput<'a> {
    Transmit(Transmit<'a>),
    /// 20 ms of caller audio at 16 kHz, one per jitter-buffer playout period. `due` is the
    /// frame's playout deadline: anything later than that is latency the driver added.
    CallerAudio {
        pcm: &'a [i16],
        due: Instant,
    },
    /// 20 ms of what was just sent towards the caller, at 16 kHz (for recording).
    AgentAudio(&'a [i16]),
    Event(MediaEvent),
    Timeout(Instant),
}

const MAX_DATAGRAM: usize = 1500;

pub struct CallMedia {
    cfg: CallMediaConfig,
    now: Instant,
    session: RtpSession,
    codec: Box<dyn AudioCodec>,
    jitter: JitterBuffer,
    upsample: Box<dyn Resampler>,
    downsample: Box<dyn Resampler>,
    vad: Vad,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfSender>,
    pacer: Pacer,
    frame_ticks: u32,
    clock_rate: u32,
    codec_frame: usize,
    decoded: Vec<i16>,
    caller_frame: Vec<i16>,
    agent: AgentAudio,
    encode_pcm: Vec<i16>,
    events: VecDeque<MediaEvent>,
    rtcp_out: Vec<u8>,
    rtcp_dest: Option<(SocketAddr, Component)>,
    rtp_out: [u8; MAX_DATAGRAM],
    rtp_pending: Option<(usize, SocketAddr)>,
    agent_pending: bool,
    sending: bool,
    codec_errors: u64,
}

impl CallMedia {
    pub fn new(cfg: CallMediaConfig, now: Instant) -> Result<Self, MediaError> {
        // ptime comes from the remote SDP: bound it before it sizes any buffer.
        if !(10..=60).contains(&cfg.ptime_ms) || cfg.ptime_ms % 10 != 0 {
            return Err(MediaError::UnsupportedPtime(cfg.ptime_ms));
        }
        let codec = cfg.codec.create(cfg.ptime_ms)?;
        let info = codec.info();
        let mut scfg = SessionConfig::new(
            cfg.local_ssrc,
            cfg.initial_seq,
            info.rtp_clock_rate,
            cfg.remote_rtp,
        );
        if let Some(rtcp) = cfg.remote_rtcp {
            scfg.remote_rtcp = rtcp;
        }
        scfg.rtcp_mux = cfg.rtcp_mux;
        if cfg.rtcp_mux {
            scfg.remote_rtcp = cfg.remote_rtp;
        }
        scfg.source_policy = cfg.source_policy;
        scfg.ntp_at_start = cfg.ntp_at_start;
        let frame = Duration::from_millis(u64::from(cfg.ptime_ms));
        let mut jcfg = JitterConfig::new(info.rtp_clock_rate, frame, info.max_payload);
        jcfg.min_delay = cfg.jitter_min_delay;
        jcfg.max_delay = cfg.jitter_max_delay;
        jcfg.initial_delay = cfg
            .jitter_min_delay
            .max(frame * 2)
            .min(cfg.jitter_max_delay);
        let pipeline_frame = (PIPELINE_RATE * cfg.ptime_ms / 1000) as usize;
        Ok(Self {
            now,
            session: RtpSession::new(scfg, now),
            jitter: JitterBuffer::new(jcfg),
            upsample: resampler(info.pcm_rate, PIPELINE_RATE, cfg.ptime_ms)?,
            downsample: resampler(PIPELINE_RATE, info.pcm_rate, cfg.ptime_ms)?,
            vad: Vad::new(cfg.vad),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            pacer: Pacer::new(now, frame),
            frame_ticks: info.frame_ticks,
            clock_rate: info.rtp_clock_rate,
            codec_frame: info.frame_samples,
            // Room for the longest Opus packet (120 ms at 48 kHz).
            decoded: vec![0; 5760],
            caller_frame: vec![0; pipeline_frame],
            agent: AgentAudio::new(
                pipeline_frame,
                cfg.max_agent_queue,
                cfg.comfort_noise,
                cfg.local_ssrc,
            ),
            encode_pcm: vec![0; info.frame_samples],
            events: VecDeque::with_capacity(16),
            rtcp_out: Vec::with_capacity(512),
            rtcp_dest: None,
            rtp_out: [0; MAX_DATAGRAM],
            rtp_pending: None,
            agent_pending: false,
            sending: true,
            codec_errors: 0,
            codec,
            cfg,
        })
    }

    /// Applies a re-INVITE's new remote SDP address (RTCP: `a=rtcp`, else RTP port + 1).
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        let rtcp = rtcp.unwrap_or_else(|| SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1)));
        self.session.set_remote(rtp, rtcp);
    }

    /// Hold: with `false` (our direction sendonly→recvonly or inactive) no RTP is sent; the
    /// clock keeps running so timestamps stay continuous when sending resumes.
    pub fn set_sending(&mut self, sending: bool) {
        self.sending = sending;
    }

    /// Local RTP/RTCP addressing is the driver's; this is where we send.
    pub fn remote_rtp(&self) -> SocketAddr {
        self.session.remote_rtp()
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        component: Component,
        data: &[u8],
    ) {
        self.now = now;
        let datagram = Datagram {
            source,
            component,
            data,
        };
        if let Ok(Some(rx)) = self.session.handle_input(Input::Receive(now, datagram)) {
            let h = rx.packet.header;
            if rx.new_source {
                self.jitter.reset();
                // RFC 4733 names an event by (SSRC, start timestamp): a new stream's first key
                // may carry the timestamp of the old stream's last one and is still a new key.
                self.dtmf_rx = DtmfReceiver::new();
            }
            if Some(h.payload_type) == self.cfg.dtmf_payload_type {
                if let Ok(digits) = self.dtmf_rx.receive(h.timestamp, rx.packet.payload) {
                    self.events
                        .extend(digits.into_iter().flatten().map(MediaEvent::Dtmf));
                }
            } else if h.payload_type == self.cfg.payload_type {
                self.jitter
                    .push(now, h.timestamp, h.marker, rx.packet.payload);
            }
        }
        self.drain_session();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        // Session timeouts never fail; the result only carries received RTP.
        let _ = self.session.handle_input(Input::Timeout(now));
        self.drain_session();
    }

    fn drain_session(&mut self) {
        loop {
            match self.session.poll_output() {
                Output::Timeout(_) => return,
                Output::Event(e) => self.events.push_back(match e {
                    SessionEvent::SourceLatched(a) => MediaEvent::SourceLatched(a),
                    SessionEvent::RemoteReport(r) => MediaEvent::RemoteReport(r),
                    SessionEvent::Bye => MediaEvent::RemoteBye,
                    // The jitter buffer was reset when the packet came in.
                    SessionEvent::NewRemoteSsrc(_) => continue,
                }),
                Output::Transmit(t) => {
                    self.rtcp_out.clear();
                    self.rtcp_out.extend_from_slice(t.data);
                    self.rtcp_dest = Some((t.destination, t.component));
                }
            }
        }
    }

    /// Next output; call until it returns `Timeout`.
    pub fn poll_output(&mut self) -> MediaOutput<'_> {
        if let Some(e) = self.events.pop_front() {
            return MediaOutput::Event(e);
        }
        if let Some((destination, component)) = self.rtcp_dest.take() {
            return MediaOutput::Transmit(Transmit {
                destination,
                component,
                data: &self.rtcp_out,
            });
        }
        if let Some((len, destination)) = self.rtp_pending.take() {
            self.agent_pending = true;
            return MediaOutput::Transmit(Transmit {
                destination,
                component: Component::Rtp,
                data: &self.rtp_out[..len],
            });
        }
        if std::mem::take(&mut self.agent_pending) {
            return MediaOutput::AgentAudio(self.agent.frame());
        }
        if let Some(due) = self.play_caller_frame() {
            return MediaOutput::CallerAudio {
                pcm: &self.caller_frame,
                due,
            };
        }
        if let Some(tick) = self.pacer.poll(self.now) {
            if self.sending {
                self.send_tick(tick.index);
            }
            return self.poll_output();
        }
        MediaOutput::Timeout(self.poll_timeout())
    }

    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.session.poll_timeout().min(self.pacer.poll_timeout());
        if let Some(j) = self.jitter.poll_timeout() {
            t = t.min(j);
        }
        t
    }

    /// Decodes the frame due now into `caller_frame`; returns its deadline, `None` when no
    /// frame is due.
    fn play_caller_frame(&mut self) -> Option<Instant> {
        let frame = self.codec_frame;
        let due = self.jitter.poll_timeout()?;
        let playout = self.jitter.pop(self.now)?;
        let out = &mut self.decoded[..];
        let decoded = match playout {
            Playout::Frame { payload, .. } => self.codec.decode(payload, out),
            Playout::Conceal { next } => self.codec.conceal(next, out),
            Playout::Silence => Ok(0),
        };
        let n = decoded.unwrap_or_else(|_| {
            self.codec_errors += 1;
            0
        });
        // One frame per period whatever the packet held: truncate or pad with silence.
        self.decoded[n.min(frame)..frame].fill(0);
        if self
            .upsample
            .process(&self.decoded[..frame], &mut self.caller_frame)
            .is_err()
        {
            self.caller_frame.fill(0);
        }
        if let Some(e) = self.vad.process(&self.caller_frame) {
            self.events.push_back(MediaEvent::Vad(e));
        }
        Some(due)
    }

    fn send_tick(&mut self, index: u64) {
        let timestamp = self
            .cfg
            .initial_timestamp
            .wrapping_add((index as u32).wrapping_mul(self.frame_ticks));
        if let Some(tx) = &mut self.dtmf_tx {
            if let (Some(packet), Some(pt)) = (tx.next_packet(), self.cfg.dtmf_payload_type) {
                if tx.is_done() {
                    self.dtmf_tx = None;
                }
                self.rtp_out[RTP_HEADER_LEN..RTP_HEADER_LEN + 4].copy_from_slice(&packet.payload);
                self.agent.mute_frame();
                self.rtp_pending = self
                    .session
                    .write_rtp(
                        self.now,
                        pt,
                        packet.marker,
                        packet.timestamp,
                        4,
                        &mut self.rtp_out,
                    )
                    .ok();
                return;
            }
            self.dtmf_tx = None;
        }
        let marker = self.agent.next_frame();
        if self
            .downsample
            .process(self.agent.frame(), &mut self.encode_pcm)
            .is_err()
        {
            self.encode_pcm.fill(0);
        }
        let payload = &mut self.rtp_out[RTP_HEADER_LEN..];
        match self.codec.encode(&self.encode_pcm, payload) {
            Ok(len) => {
                self.rtp_pending = self
                    .session
                    .write_rtp(
                        self.now,
                        self.cfg.payload_type,
                        marker,
                        timestamp,
                        len,
                        &mut self.rtp_out,
                    )
                    .ok();
            }
            Err(_) => self.codec_errors += 1,
        }
    }

    /// Queues 16 kHz agent audio for playout; returns how many samples were accepted.
    pub fn push_agent_audio(&mut self, pcm: &[i16]) -> usize {
        self.agent.push(pcm)
    }

    /// Barge-in: drops queued agent audio.
    pub fn clear_agent_audio(&mut self) {
        self.agent.clear();
    }

    pub fn agent_audio_queued(&self) -> Duration {
        self.agent.queued()
    }

    /// Sends a key press as RFC 4733 events starting at the next packet; audio pauses
    /// meanwhile.
    pub fn send_dtmf(&mut self, digit: char, duration: Duration) -> Result<(), MediaError> {
        if self.cfg.dtmf_payload_type.is_none() {
            return Err(MediaError::NoDtmfPayloadType);
        }
        let ticks = (duration.as_micros() as u64 * u64::from(self.clock_rate) / 1_000_000) as u32;
        let start = self.next_timestamp();
        self.dtmf_tx = Some(DtmfSender::new(digit, start, ticks, self.frame_ticks)?);
        Ok(())
    }

    fn next_timestamp(&self) -> u32 {
        self.cfg
            .initial_timestamp
            .wrapping_add((self.pacer.next_index() as u32).wrapping_mul(self.frame_ticks))
    }

    /// Algorithmic delay of the resamplers: (caller → agent, agent → caller).
    pub fn resampler_delay(&self) -> (Duration, Duration) {
        let at = |samples: usize, rate: u32| {
            Duration::from_micros(samples as u64 * 1_000_000 / u64::from(rate.max(1)))
        };
        let codec_rate = self.codec.info().pcm_rate;
        (
            at(self.upsample.delay(), PIPELINE_RATE),
            at(self.downsample.delay(), codec_rate),
        )
    }

    /// RTCP BYE to send when the call ends.
    pub fn bye(&mut self, now: Instant) -> Option<Transmit<'_>> {
        self.session.bye(now)
    }

    pub fn quality(&self) -> CallQuality {
        let jb = self.jitter.stats();
        let src = self.session.source();
        let received = src.map_or(0, |s| s.received());
        let expected = src.map_or(0, |s| s.expected());
        let lost = src.map_or(0, |s| s.cumulative_lost().max(0) as u64);
        let report = self.session.last_remote_report();
        let rtt = report.and_then(|r| r.rtt);
        // Late packets are lost to the listener too.
        let effective_loss = if expected == 0 {
            0.0
        } else {
            (lost + jb.late) as f64 * 100.0 / expected as f64
        };
        // Mouth-to-ear towards the agent: network, packetisation, jitter buffer, resampler.
        let one_way = rtt.map_or(0.0, |r| r.as_secs_f64() * 500.0)
            + jb.target_delay.as_secs_f64() * 1000.0
            + f64::from(self.cfg.ptime_ms)
            + self.resampler_delay().0.as_secs_f64() * 1000.0;
        CallQuality {
            packets_received: received,
            packets_sent: u64::from(self.session.sent_packets()),
            packets_lost: lost,
            loss_percent: if expected == 0 {
                0.0
            } else {
                lost as f64 * 100.0 / expected as f64
            },
            jitter_ms: src.map_or(0.0, |s| s.jitter_secs() * 1000.0),
            late: jb.late,
            concealed: jb.concealed,
            duplicates: jb.duplicates,
            rtt_ms: rtt.map(|r| r.as_secs_f64() * 1000.0),
            remote_loss_percent: report.map(|r| r.fraction_lost * 100.0),
            jitter_buffer_ms: jb.target_delay.as_secs_f64() * 1000.0,
            mos: estimate_mos(
                self.cfg.codec,
                one_way,
                effective_loss,
                burst_ratio(jb.delivered, jb.concealed, jb.loss_bursts),
            ),
            frames_dropped: 0,
        }
    }

    /// Frames that failed to decode or encode (corrupt payloads); they play as silence.
    pub fn codec_errors(&self) -> u64 {
        self.codec_errors
    }
}
