//! One shard: an epoll loop (mio) over many calls' sockets plus a timer heap of their
//! deadlines, on its own thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::{mpsc, oneshot};

use super::recorder::RecordFrame;
use super::timer::TimerFd;
use super::{
    AudioFrame, CallEvent, Command, MediaPorts, NewCall, ShardHandle, ShardMsg, COALESCE,
    FRAME_SAMPLES,
};
use crate::pipeline::{CallMedia, MediaOutput};
use crate::quality::CallQuality;
use crate::rtp::Component;

const WAKER: Token = Token(usize::MAX);
const TIMER: Token = Token(usize::MAX - 1);

struct CallSlot {
    id: u64,
    media: CallMedia,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    events: mpsc::Sender<CallEvent>,
    /// Frames/events the application was too slow to take, and recorder frames lost.
    dropped: u64,
    done: oneshot::Sender<CallQuality>,
    recorder: Option<std_mpsc::SyncSender<RecordFrame>>,
    /// The deadline the timer heap holds for this call; other heap entries are stale.
    deadline: Instant,
    /// Held for the call's lifetime; released (into the reuse guard) when the slot goes.
    _ports: MediaPorts,
}

pub(super) struct Shard {
    poll: Poll,
    timer: TimerFd,
    inbox: std_mpsc::Receiver<ShardMsg>,
    slots: Vec<Option<CallSlot>>,
    free: Vec<usize>,
    by_id: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Shard {
    /// Starts shard `index`; with `realtime_priority`, its thread runs SCHED_FIFO at that
    /// priority, and failing to get it (no CAP_SYS_NICE) is an error.
    pub(super) fn spawn(
        index: usize,
        realtime_priority: Option<i32>,
    ) -> std::io::Result<ShardHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let timer = TimerFd::new(poll.registry(), TIMER)?;
        let (tx, rx) = std_mpsc::channel();
        let mut shard = Shard {
            timer,
            poll,
            inbox: rx,
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
        };
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("media-rt-{index}"))
            .spawn(move || {
                let ready = realtime_priority.map_or(Ok(()), set_realtime);
                let ok = ready.is_ok();
                let _ = ready_tx.send(ready);
                if ok {
                    shard.run();
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("media shard thread died at start"))??;
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
            if let Some(Reverse((at, _))) = self.timers.peek() {
                let after = at.saturating_duration_since(Instant::now());
                if self.timer.arm(after).is_err() {
                    return;
                }
            }
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() != ErrorKind::Interrupted {
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    TIMER => self.timer.clear(),
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
            dropped: 0,
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
            Command::Remote(rtp, rtcp) => call.media.set_remote(rtp, rtcp),
            Command::Sending(on) => call.media.set_sending(on),
            Command::AgentAudio(pcm) => {
                call.media.push_agent_audio(&pcm);
            }
            Command::ClearAgentAudio => call.media.clear_agent_audio(),
            Command::Dtmf(digit, len) => {
                let _ = call.media.send_dtmf(digit, len);
            }
            Command::Quality(tx) => {
                let _ = tx.send(call.quality());
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
        let quality = call.quality();
        let _ = call.done.send(quality);
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
    fn quality(&self) -> CallQuality {
        CallQuality {
            frames_dropped: self.dropped,
            ..self.media.quality()
        }
    }

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
                            self.dropped +=
                                u64::from(rec.try_send(RecordFrame::Caller(frame)).is_err());
                        }
                        let sent = self
                            .events
                            .try_send(CallEvent::Audio(AudioFrame { pcm: frame, due }));
                        self.dropped += u64::from(sent.is_err());
                    }
                }
                MediaOutput::AgentAudio(pcm) => {
                    if let Some(rec) = &self.recorder {
                        for chunk in pcm.chunks(FRAME_SAMPLES) {
                            let sent = rec.try_send(RecordFrame::Agent(frame20(chunk)));
                            self.dropped += u64::from(sent.is_err());
                        }
                    }
                }
                MediaOutput::Event(e) => {
                    self.dropped += u64::from(self.events.try_send(CallEvent::Media(e)).is_err());
                }
            }
        }
    }
}

/// Puts the calling thread under SCHED_FIFO: a busy host then cannot delay packets by
/// scheduling other work first (the kernel's RT throttling still bounds it to 95 % CPU).
fn set_realtime(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
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
