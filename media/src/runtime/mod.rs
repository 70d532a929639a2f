//! The media driver: dedicated shard threads (never the control plane's runtime), each
//! running an epoll loop (mio) over many calls. A shard owns its calls' UDP sockets and
//! sans-IO [`CallMedia`]s, keeps one timer heap for all their deadlines, and wakes on a
//! datagram, a command or the earliest deadline (a timerfd: epoll's own timeout is only
//! millisecond-precise). Deadlines falling within [`COALESCE`] of
//! each other are served in one wake-up, which is what keeps the cost per call low; caller
//! audio and events go to the application over bounded channels.

mod recorder;
mod shard;
mod timer;

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::Waker;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::{CallMedia, CallMediaConfig, MediaError, MediaEvent};
use crate::ports::{PortAllocator, PortError, PortPair};
use crate::quality::CallQuality;
use recorder::{spawn_recorder, RecordFrame};
use shard::Shard;

/// Deadlines this close are served together: packets go out at most this early, caller
/// frames are handed over at most this early. Well inside the 2 ms pacing budget.
pub const COALESCE: Duration = Duration::from_micros(500);

#[derive(Debug, Error)]
pub enum RuntimeError {
    /// No RTP port pair free: answer the INVITE with 503.
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the media runtime has shut down")]
    ShutDown,
}

#[derive(Debug, Clone)]
pub struct MediaRuntimeConfig {
    /// Shard threads; calls are spread over them round-robin. Defaults to one per core: on
    /// 2 cores, 1,000 calls on 2 shards had half the pacing-jitter p99 of 1 shard, because a
    /// shard that is preempted delays only its own calls (docs/performance.md).
    pub threads: usize,
    /// Local address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub reuse_guard: Duration,
    /// Caller audio frames and events buffered towards the application per call; when the
    /// application falls further behind, frames are dropped, never queued without bound.
    pub event_queue: usize,
    /// Run the shard threads SCHED_FIFO at this priority (1–99; needs root or
    /// CAP_SYS_NICE). `None` leaves them in the normal scheduler, where on a busy host other
    /// work can delay packets by milliseconds (docs/performance.md).
    pub realtime_priority: Option<i32>,
}

impl MediaRuntimeConfig {
    pub fn new(bind_ip: IpAddr, rtp_port_min: u16, rtp_port_max: u16) -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            bind_ip,
            rtp_port_min,
            rtp_port_max,
            reuse_guard: Duration::from_secs(10),
            event_queue: 50,
            realtime_priority: None,
        }
    }
}

pub struct MediaRuntime {
    shards: Vec<ShardHandle>,
    next_shard: AtomicUsize,
    next_call: AtomicU64,
    ports: Arc<Mutex<PortAllocator>>,
    cfg: MediaRuntimeConfig,
}

struct ShardHandle {
    inbox: std_mpsc::Sender<ShardMsg>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

enum ShardMsg {
    Start(Box<NewCall>),
    Command(u64, Command),
    Shutdown,
}

struct NewCall {
    id: u64,
    media: CallMedia,
    rtp: StdUdpSocket,
    rtcp: StdUdpSocket,
    ports: MediaPorts,
    events: mpsc::Sender<CallEvent>,
    done: oneshot::Sender<CallQuality>,
    recorder: Option<std_mpsc::SyncSender<RecordFrame>>,
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
    Remote(SocketAddr, Option<SocketAddr>),
    Sending(bool),
    AgentAudio(Vec<i16>),
    ClearAgentAudio,
    Dtmf(char, Duration),
    Quality(oneshot::Sender<CallQuality>),
    Hangup,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("the call's media has ended")]
pub struct CallGone;

/// The application's side of one call. Dropping it hangs the call up.
pub struct CallHandle {
    id: u64,
    inbox: std_mpsc::Sender<ShardMsg>,
    waker: Arc<Waker>,
    events: mpsc::Receiver<CallEvent>,
    done: Option<oneshot::Receiver<CallQuality>>,
    local_rtp: SocketAddr,
}

impl CallHandle {
    pub fn local_rtp(&self) -> SocketAddr {
        self.local_rtp
    }

    fn command(&self, c: Command) -> Result<(), CallGone> {
        self.inbox
            .send(ShardMsg::Command(self.id, c))
            .map_err(|_| CallGone)?;
        self.waker.wake().map_err(|_| CallGone)
    }

    /// Queues 16 kHz agent audio (the shard paces it out).
    pub fn push_agent_audio(&self, pcm: Vec<i16>) -> Result<(), CallGone> {
        self.command(Command::AgentAudio(pcm))
    }

    /// Re-INVITE with a new remote address (RTCP from `a=rtcp`, else RTP port + 1).
    pub fn set_remote(&self, rtp: SocketAddr, rtcp: Option<SocketAddr>) -> Result<(), CallGone> {
        self.command(Command::Remote(rtp, rtcp))
    }

    /// Hold: stop (`false`) or resume (`true`) sending RTP; receiving continues.
    pub fn set_sending(&self, sending: bool) -> Result<(), CallGone> {
        self.command(Command::Sending(sending))
    }

    /// Barge-in: drop agent audio not yet sent.
    pub fn clear_agent_audio(&self) -> Result<(), CallGone> {
        self.command(Command::ClearAgentAudio)
    }

    pub fn send_dtmf(&self, digit: char, duration: Duration) -> Result<(), CallGone> {
        self.command(Command::Dtmf(digit, duration))
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
        self.command(Command::Quality(tx))?;
        rx.await.map_err(|_| CallGone)
    }

    /// Stops the media (sending RTCP BYE) and returns the final quality.
    pub async fn hangup(mut self) -> Result<CallQuality, CallGone> {
        self.command(Command::Hangup)?;
        let done = self.done.take().ok_or(CallGone)?;
        done.await.map_err(|_| CallGone)
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        if self.done.is_some() {
            let _ = self.command(Command::Hangup);
        }
    }
}

impl MediaRuntime {
    pub fn new(cfg: MediaRuntimeConfig) -> Result<Self, RuntimeError> {
        let ports = PortAllocator::new(cfg.rtp_port_min, cfg.rtp_port_max, cfg.reuse_guard)?;
        let shards = (0..cfg.threads.max(1))
            .map(|i| Shard::spawn(i, cfg.realtime_priority))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            shards,
            next_shard: AtomicUsize::new(0),
            next_call: AtomicU64::new(1),
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
            if let (Ok(rtp), Ok(rtcp)) = (bind(pair.rtp), bind(pair.rtcp)) {
                ports.rtp = Some(rtp);
                ports.rtcp = Some(rtcp);
                return Ok(ports);
            }
            // Taken by another process: dropping `ports` cools the pair down; try the next.
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
        cfg.initial_timestamp = ((ids >> 16) as u32) ^ ((ids >> 48) as u32);
        cfg.ntp_at_start = ntp_now();
        let media = CallMedia::new(cfg, Instant::now())?;
        let recorder = record.map(spawn_recorder).transpose()?;
        let (ev_tx, ev_rx) = mpsc::channel(self.cfg.event_queue.max(1));
        let (done_tx, done_rx) = oneshot::channel();
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let shard =
            &self.shards[self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len()];
        let call = NewCall {
            id,
            media,
            rtp,
            rtcp,
            ports,
            events: ev_tx,
            done: done_tx,
            recorder,
        };
        shard
            .inbox
            .send(ShardMsg::Start(Box::new(call)))
            .map_err(|_| RuntimeError::ShutDown)?;
        shard.waker.wake()?;
        Ok(CallHandle {
            id,
            inbox: shard.inbox.clone(),
            waker: Arc::clone(&shard.waker),
            events: ev_rx,
            done: Some(done_rx),
            local_rtp,
        })
    }
}

impl Drop for MediaRuntime {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            let _ = shard.inbox.send(ShardMsg::Shutdown);
            let _ = shard.waker.wake();
            if let Some(t) = shard.thread.take() {
                let _ = t.join();
            }
        }
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
