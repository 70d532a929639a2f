//! The media driver: dedicated shard threads (never the control plane's runtime), each
//! running an epoll loop (mio) over many calls. A shard owns its calls' UDP sockets and
//! sans-IO [`CallMedia`]s, keeps one timer heap for all their deadlines, and wakes on a
//! datagram, a command or the earliest deadline. Deadlines falling within [`COALESCE`] of
//! each other are served in one wake-up, which is what keeps the cost per call low; caller
//! audio and events go to the application over bounded channels.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::{BufWriter, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::pipeline::{CallMedia, CallMediaConfig, MediaError, MediaEvent, MediaOutput};
use crate::ports::{PortAllocator, PortError, PortPair};
use crate::quality::CallQuality;
use crate::rtp::Component;
use crate::wav::StereoRecorder;

/// Deadlines this close are served together: packets go out at most this early, caller
/// frames are handed over at most this early. Well inside the 2 ms pacing budget.
pub const COALESCE: Duration = Duration::from_micros(1000);

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
    /// Shard threads; calls are spread over them round-robin.
    pub threads: usize,
    /// Local address the RTP sockets bind to.
    pub bind_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    pub reuse_guard: Duration,
    /// Caller audio frames and events buffered towards the application per call; when the
    /// application falls further behind, frames are dropped, never queued without bound.
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
            .map(Shard::spawn)
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

enum RecordFrame {
    Caller([i16; FRAME_SAMPLES]),
    Agent([i16; FRAME_SAMPLES]),
}

/// Recording runs on its own thread so disk writes never block the media task.
fn spawn_recorder(path: PathBuf) -> std::io::Result<std_mpsc::SyncSender<RecordFrame>> {
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

const WAKER: Token = Token(usize::MAX);

struct CallSlot {
    id: u64,
    media: CallMedia,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    events: mpsc::Sender<CallEvent>,
    done: oneshot::Sender<CallQuality>,
    recorder: Option<std_mpsc::SyncSender<RecordFrame>>,
    /// The deadline the timer heap holds for this call; other heap entries are stale.
    deadline: Instant,
    /// Held for the call's lifetime; released (into the reuse guard) when the slot goes.
    _ports: MediaPorts,
}

struct Shard {
    poll: Poll,
    inbox: std_mpsc::Receiver<ShardMsg>,
    slots: Vec<Option<CallSlot>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Shard {
    fn spawn(index: usize) -> std::io::Result<ShardHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = std_mpsc::channel();
        let mut shard = Shard {
            poll,
            inbox: rx,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("media-rt-{index}"))
            .spawn(move || shard.run())?;
        Ok(ShardHandle {
            inbox: tx,
            waker,
            thread: Some(thread),
        })
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = [0u8; 2048];
        loop {
            let timeout = self
                .timers
                .peek()
                .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        if !self.drain_inbox() {
                            return;
                        }
                    }
                    Token(t) => self.receive(t / 2, t % 2 == 1, &mut buf),
                }
            }
            self.run_timers();
        }
    }

    /// Handles control messages; false on shutdown.
    fn drain_inbox(&mut self) -> bool {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ShardMsg::Start(call) => self.add(*call),
                ShardMsg::Command(id, cmd) => {
                    if let Some(&slot) = self.by_id.get(&id) {
                        self.command(slot, cmd);
                    }
                }
                ShardMsg::Shutdown => return false,
            }
        }
        true
    }

    fn add(&mut self, call: NewCall) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let mut rtp = UdpSocket::from_std(call.rtp);
        let mut rtcp = UdpSocket::from_std(call.rtcp);
        let registry = self.poll.registry();
        let registered = registry
            .register(&mut rtp, Token(2 * slot), Interest::READABLE)
            .and_then(|()| registry.register(&mut rtcp, Token(2 * slot + 1), Interest::READABLE));
        if registered.is_err() {
            // The call's handle sees `CallGone`; the ports go back with `call.ports`.
            self.free.push(slot);
            return;
        }
        let deadline = call.media.poll_timeout();
        self.slots[slot] = Some(CallSlot {
            id: call.id,
            media: call.media,
            rtp,
            rtcp,
            events: call.events,
            done: call.done,
            recorder: call.recorder,
            deadline,
            _ports: call.ports,
        });
        self.by_id.insert(call.id, slot);
        self.timers.push(Reverse((deadline, slot)));
    }

    fn command(&mut self, slot: usize, cmd: Command) {
        let Some(call) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match cmd {
            Command::AgentAudio(pcm) => {
                call.media.push_agent_audio(&pcm);
            }
            Command::ClearAgentAudio => call.media.clear_agent_audio(),
            Command::Dtmf(digit, len) => {
                let _ = call.media.send_dtmf(digit, len);
            }
            Command::Quality(tx) => {
                let _ = tx.send(call.media.quality());
            }
            Command::Hangup => return self.remove(slot),
        }
        self.after_input(slot, Instant::now());
    }

    fn remove(&mut self, slot: usize) {
        let Some(mut call) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if let Some(bye) = call.media.bye(Instant::now()) {
            let socket = if bye.component == Component::Rtp {
                &call.rtp
            } else {
                &call.rtcp
            };
            let _ = socket.send_to(bye.data, bye.destination);
        }
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut call.rtp);
        let _ = registry.deregister(&mut call.rtcp);
        self.by_id.remove(&call.id);
        let _ = call.done.send(call.media.quality());
        self.free.push(slot);
    }

    fn receive(&mut self, slot: usize, rtcp: bool, buf: &mut [u8]) {
        let Some(call) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (socket, component) = if rtcp {
            (&call.rtcp, Component::Rtcp)
        } else {
            (&call.rtp, Component::Rtp)
        };
        // Edge-triggered: drain until the socket would block.
        while let Ok((n, from)) = socket.recv_from(buf) {
            call.media
                .handle_datagram(Instant::now(), from, component, &buf[..n]);
        }
        self.after_input(slot, Instant::now());
    }

    /// Serves every call whose deadline falls within COALESCE of now.
    fn run_timers(&mut self) {
        let now = Instant::now();
        let horizon = now + COALESCE;
        while let Some(&Reverse((at, slot))) = self.timers.peek() {
            if at > horizon {
                return;
            }
            self.timers.pop();
            let Some(call) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue; // the call ended
            };
            if call.deadline != at {
                continue; // stale entry: the call moved its deadline
            }
            // The entry is consumed: whatever comes next must be pushed anew.
            call.deadline = far_future(now);
            // Deadlines slightly ahead are served now, as if it were their time.
            self.after_input(slot, now.max(at));
        }
    }

    /// Flushes a call's outputs and re-arms its timer.
    fn after_input(&mut self, slot: usize, now: Instant) {
        let Some(call) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let next = call.flush(now);
        if next != call.deadline {
            call.deadline = next;
            self.timers.push(Reverse((next, slot)));
        }
    }
}

impl CallSlot {
    /// Drains the call's outputs; returns its next deadline.
    fn flush(&mut self, now: Instant) -> Instant {
        self.media.handle_timeout(now);
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
                    let _ = socket.send_to(t.data, t.destination);
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

/// A deadline no call ever has, marking "no timer queued".
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400)
}

fn frame20(pcm: &[i16]) -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    let n = pcm.len().min(FRAME_SAMPLES);
    f[..n].copy_from_slice(&pcm[..n]);
    f
}
