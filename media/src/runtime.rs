//! The media driver: a dedicated tokio runtime (its own threads, so the control plane can
//! never stall media) running one task per call. Each task owns the call's UDP sockets and
//! its sans-IO [`CallMedia`], wakes on a datagram, a command or the next deadline, and
//! forwards caller audio and events to the application over a bounded channel.

use std::fs::File;
use std::io::BufWriter;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::{CallMedia, CallMediaConfig, MediaError, MediaEvent, MediaOutput};
use crate::ports::{PortAllocator, PortError, PortPair};
use crate::quality::CallQuality;
use crate::rtp::Component;
use crate::wav::StereoRecorder;

#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No RTP port pair free: answer the INVITE with 503.
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Media(#[from] MediaError),
}

#[derive(Debug, Clone)]
pub struct MediaRuntimeConfig {
    pub threads: usize,
    /// Local address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub reuse_guard: Duration,
    /// Caller audio frames and events buffered towards the application per call; when the
    /// application falls further behind, frames are dropped (and counted), never queued.
    pub event_queue: usize,
}

impl MediaRuntimeConfig {
    pub fn new(bind_ip: IpAddr, rtp_port_min: u16, rtp_port_max: u16) -> Self {
        Self {
            threads: 1,
            bind_ip,
            rtp_port_min,
            rtp_port_max,
            reuse_guard: Duration::from_secs(10),
            event_queue: 50,
        }
    }
}

pub struct MediaRuntime {
    rt: tokio::runtime::Runtime,
    ports: Arc<Mutex<PortAllocator>>,
    cfg: MediaRuntimeConfig,
}

/// A reserved, bound port pair. Dropping it returns the pair to the allocator.
pub struct MediaPorts {
    pair: PortPair,
    rtp: Option<StdUdpSocket>,
    rtcp: Option<StdUdpSocket>,
    allocator: Arc<Mutex<PortAllocator>>,
}

impl MediaPorts {
    pub fn pair(&self) -> PortPair {
        self.pair
    }
}

impl Drop for MediaPorts {
    fn drop(&mut self) {
        let mut ports = self
            .allocator
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only fails for a pair the allocator never handed out, which cannot be ours.
        let _ = ports.release(self.pair, Instant::now());
    }
}

/// Samples in one [`AudioFrame`]: 20 ms at 16 kHz. Longer packet times arrive as several.
pub const FRAME_SAMPLES: usize = 320;

/// 20 ms of 16 kHz caller audio, carried inline so the channel allocates nothing per frame.
#[derive(Debug, Clone)]
pub struct AudioFrame {
    pub pcm: [i16; FRAME_SAMPLES],
    /// Playout deadline the jitter buffer gave this frame.
    pub due: Instant,
}

// Frames travel inline on purpose: boxing them would allocate 50 times a second per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CallEvent {
    Audio(AudioFrame),
    Media(MediaEvent),
}

enum Command {
    AgentAudio(Vec<i16>),
    ClearAgentAudio,
    Dtmf(char, Duration),
    Quality(oneshot::Sender<CallQuality>),
    Hangup,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the call's media task has ended")]
pub struct CallGone;

/// The application's side of one call.
pub struct CallHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<CallEvent>,
    done: oneshot::Receiver<CallQuality>,
    local_rtp: SocketAddr,
}

impl CallHandle {
    pub fn local_rtp(&self) -> SocketAddr {
        self.local_rtp
    }

    /// Queues 16 kHz agent audio (the media task paces it out).
    pub fn push_agent_audio(&self, pcm: Vec<i16>) -> Result<(), CallGone> {
        self.commands
            .try_send(Command::AgentAudio(pcm))
            .map_err(|_| CallGone)
    }

    /// Barge-in: drop agent audio not yet sent.
    pub fn clear_agent_audio(&self) -> Result<(), CallGone> {
        self.commands
            .try_send(Command::ClearAgentAudio)
            .map_err(|_| CallGone)
    }

    pub fn send_dtmf(&self, digit: char, duration: Duration) -> Result<(), CallGone> {
        self.commands
            .try_send(Command::Dtmf(digit, duration))
            .map_err(|_| CallGone)
    }

    /// Next caller audio frame or media event; `None` once the call's media ended.
    pub async fn recv(&mut self) -> Option<CallEvent> {
        self.events.recv().await
    }

    pub fn try_recv(&mut self) -> Option<CallEvent> {
        self.events.try_recv().ok()
    }

    /// Current quality figures without ending the call.
    pub async fn quality(&self) -> Result<CallQuality, CallGone> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Quality(tx))
            .await
            .map_err(|_| CallGone)?;
        rx.await.map_err(|_| CallGone)
    }

    /// Stops the media (sending RTCP BYE) and returns the final quality.
    pub async fn hangup(self) -> Result<CallQuality, CallGone> {
        // If the queue is full the task still ends when the handle (and sender) drops.
        let _ = self.commands.try_send(Command::Hangup);
        drop(self.commands);
        self.done.await.map_err(|_| CallGone)
    }
}

impl MediaRuntime {
    pub fn new(cfg: MediaRuntimeConfig) -> Result<Self, RuntimeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name("media-rt")
            .enable_all()
            .build()?;
        let ports = PortAllocator::new(cfg.rtp_port_min, cfg.rtp_port_max, cfg.reuse_guard)?;
        Ok(Self {
            rt,
            ports: Arc::new(Mutex::new(ports)),
            cfg,
        })
    }

    /// Ports in use / available, for admission control and metrics.
    pub fn port_usage(&self) -> (usize, usize) {
        let p = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        (p.in_use(), p.capacity())
    }

    /// Reserves a port pair and binds its sockets, for the SDP offer or answer. A pair whose
    /// port another process holds is skipped. `Err(Ports(Exhausted))` means 503.
    pub fn reserve(&self) -> Result<MediaPorts, RuntimeError> {
        let attempts = self.port_usage().1;
        for _ in 0..attempts {
            let pair = self
                .ports
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .allocate(Instant::now())?;
            let mut ports = MediaPorts {
                pair,
                rtp: None,
                rtcp: None,
                allocator: Arc::clone(&self.ports),
            };
            let bind = |port| StdUdpSocket::bind(SocketAddr::new(self.cfg.bind_ip, port));
            match (bind(pair.rtp), bind(pair.rtcp)) {
                (Ok(rtp), Ok(rtcp)) => {
                    ports.rtp = Some(rtp);
                    ports.rtcp = Some(rtcp);
                    return Ok(ports);
                }
                // Taken by someone else: drop releases the pair (it cools down) and we move on.
                _ => continue,
            }
        }
        Err(PortError::Exhausted {
            min: self.cfg.rtp_port_min,
            max: self.cfg.rtp_port_max,
        }
        .into())
    }

    /// Starts a call's media on reserved ports. `record` streams a stereo WAV (caller left,
    /// agent right) to that path.
    pub fn start(
        &self,
        mut ports: MediaPorts,
        mut cfg: CallMediaConfig,
        record: Option<PathBuf>,
    ) -> Result<CallHandle, RuntimeError> {
        let (Some(rtp), Some(rtcp)) = (ports.rtp.take(), ports.rtcp.take()) else {
            return Err(PortError::NotAllocated(ports.pair.rtp).into());
        };
        rtp.set_nonblocking(true)?;
        rtcp.set_nonblocking(true)?;
        let local_rtp = rtp.local_addr()?;
        let ids = random_ids();
        cfg.local_ssrc = ids as u32;
        cfg.initial_seq = (ids >> 32) as u16;
        cfg.initial_timestamp = (ids >> 16) as u32 ^ (ids >> 48) as u32;
        cfg.ntp_at_start = ntp_now();
        let media = CallMedia::new(cfg, Instant::now())?;
        let recorder = record.map(spawn_recorder).transpose()?;
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(self.cfg.event_queue.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        self.rt.spawn(async move {
            // Sockets register with the reactor inside the runtime.
            let sockets =
                UdpSocket::from_std(rtp).and_then(|r| Ok((r, UdpSocket::from_std(rtcp)?)));
            let Ok((rtp, rtcp)) = sockets else {
                return;
            };
            let task = CallTask {
                media,
                rtp,
                rtcp,
                events: ev_tx,
                recorder,
                _ports: ports,
            };
            let quality = task.run(cmd_rx).await;
            let _ = done_tx.send(quality);
        });
        Ok(CallHandle {
            commands: cmd_tx,
            events: ev_rx,
            done: done_rx,
            local_rtp,
        })
    }
}

/// Unpredictable SSRC / sequence / timestamp seeds (RFC 3550 §5.1) without a RNG crate.
fn random_ids() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS and differs per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// NTP time (seconds since 1900 in 32.32 fixed point) for RTCP sender reports.
fn ntp_now() -> u64 {
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ((d.as_secs() + NTP_UNIX_OFFSET) << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

enum RecordFrame {
    Caller([i16; FRAME_SAMPLES]),
    Agent([i16; FRAME_SAMPLES]),
}

/// Recording runs on its own thread so disk writes never block the media task.
fn spawn_recorder(path: PathBuf) -> std::io::Result<std::sync::mpsc::SyncSender<RecordFrame>> {
    let file = BufWriter::new(File::create(&path)?);
    let mut rec = StereoRecorder::new(file, 16_000, FRAME_SAMPLES)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordFrame>(500);
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

struct CallTask {
    media: CallMedia,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    events: mpsc::Sender<CallEvent>,
    recorder: Option<std::sync::mpsc::SyncSender<RecordFrame>>,
    /// Held for the call's lifetime; released (into the reuse guard) when the task ends.
    _ports: MediaPorts,
}

impl CallTask {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> CallQuality {
        let mut rtp_buf = [0u8; 2048];
        let mut rtcp_buf = [0u8; 2048];
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            let deadline = self.flush();
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::AgentAudio(pcm)) => {
                        self.media.push_agent_audio(&pcm);
                    }
                    Some(Command::ClearAgentAudio) => self.media.clear_agent_audio(),
                    Some(Command::Dtmf(d, len)) => {
                        let _ = self.media.send_dtmf(d, len);
                    }
                    Some(Command::Quality(tx)) => {
                        let _ = tx.send(self.media.quality());
                    }
                    Some(Command::Hangup) | None => break,
                },
                r = self.rtp.readable() => {
                    if r.is_ok() {
                        self.drain_socket(Component::Rtp, &mut rtp_buf);
                    }
                }
                r = self.rtcp.readable() => {
                    if r.is_ok() {
                        self.drain_socket(Component::Rtcp, &mut rtcp_buf);
                    }
                }
                () = &mut sleep => self.media.handle_timeout(Instant::now()),
            }
        }
        if let Some(bye) = self.media.bye(Instant::now()) {
            let socket = if bye.component == Component::Rtp {
                &self.rtp
            } else {
                &self.rtcp
            };
            let _ = socket.try_send_to(bye.data, bye.destination);
        }
        self.media.quality()
    }

    fn drain_socket(&mut self, component: Component, buf: &mut [u8]) {
        let socket = match component {
            Component::Rtp => &self.rtp,
            Component::Rtcp => &self.rtcp,
        };
        // Everything queued, then back to the select (which re-arms readiness).
        while let Ok((n, from)) = socket.try_recv_from(buf) {
            self.media
                .handle_datagram(Instant::now(), from, component, &buf[..n]);
        }
    }

    /// Drains the call's outputs; returns the next deadline.
    fn flush(&mut self) -> Instant {
        self.media.handle_timeout(Instant::now());
        loop {
            match self.media.poll_output() {
                MediaOutput::Timeout(at) => return at,
                MediaOutput::Transmit(t) => {
                    let socket = if t.component == Component::Rtp {
                        &self.rtp
                    } else {
                        &self.rtcp
                    };
                    // A full socket buffer drops the packet: media never waits.
                    let _ = socket.try_send_to(t.data, t.destination);
                }
                MediaOutput::CallerAudio { pcm, due } => {
                    for chunk in pcm.chunks(FRAME_SAMPLES) {
                        let frame = frame20(chunk);
                        if let Some(rec) = &self.recorder {
                            let _ = rec.try_send(RecordFrame::Caller(frame));
                        }
                        let _ = self
                            .events
                            .try_send(CallEvent::Audio(AudioFrame { pcm: frame, due }));
                    }
                }
                MediaOutput::AgentAudio(pcm) => {
                    if let Some(rec) = &self.recorder {
                        for chunk in pcm.chunks(FRAME_SAMPLES) {
                            let _ = rec.try_send(RecordFrame::Agent(frame20(chunk)));
                        }
                    }
                }
                MediaOutput::Event(e) => {
                    let _ = self.events.try_send(CallEvent::Media(e));
                }
            }
        }
    }
}

fn frame20(pcm: &[i16]) -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    let n = pcm.len().min(FRAME_SAMPLES);
    f[..n].copy_from_slice(&pcm[..n]);
    f
}
