//! The tokio driver: one task owns the sans-IO [`Endpoint`], a UDP socket and a TCP listener on
//! the same address, and moves bytes, timeouts, commands and events. All protocol logic stays
//! in the endpoint; this file only does I/O.

mod tcp;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::endpoint::{
    CallError, CallEvent, CallRef, Endpoint, EndpointConfig, Event, PlaceCall, Stats, Transmit,
    Transport,
};
use crate::message::HeaderName;
use crate::sdp::{LocalMedia, Negotiated};
use tcp::{Connections, TcpInput};

/// Kernel socket buffers for the UDP socket: at thousands of calls per second the default
/// (~200 KiB) overflows during scheduling hiccups and turns into retransmissions.
const UDP_BUFFER: usize = 4 * 1024 * 1024;
/// Datagrams handled per wake-up before flushing output, to amortise the flush.
const RECV_BATCH: usize = 64;

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Where to listen (UDP and TCP). Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Advertised address; `None` advertises the bound address.
    pub advertised: Option<SocketAddr>,
    pub endpoint: EndpointConfig,
    /// Capacity of the event channel. When full, new calls are refused with 503 + Retry-After.
    pub event_capacity: usize,
}

impl DriverConfig {
    pub fn new(listen: SocketAddr) -> DriverConfig {
        DriverConfig {
            listen,
            advertised: None,
            endpoint: EndpointConfig::new(listen),
            event_capacity: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("SIP driver stopped")]
    Closed,
}

enum Command {
    Answer(
        CallRef,
        LocalMedia,
        oneshot::Sender<Result<Negotiated, CallError>>,
    ),
    Ring(CallRef, oneshot::Sender<Result<(), CallError>>),
    Reject(
        CallRef,
        u16,
        Option<String>,
        Vec<(HeaderName, String)>,
        oneshot::Sender<Result<(), CallError>>,
    ),
    Challenge(CallRef, bool, oneshot::Sender<Result<(), CallError>>),
    Hangup(CallRef, oneshot::Sender<Result<(), CallError>>),
    UpdateMedia(CallRef, LocalMedia, oneshot::Sender<Result<(), CallError>>),
    Place(Box<PlaceCall>, oneshot::Sender<PlacedCall>),
    Stats(oneshot::Sender<Stats>),
}

/// An outbound call just placed: its handle and its events, which go to this receiver only
/// (never to the driver's event stream), from the first response on.
pub struct PlacedCall {
    pub call: CallRef,
    pub events: mpsc::UnboundedReceiver<CallEvent>,
}

/// Cloneable handle to the running SIP endpoint. Dropping every handle stops the driver.
#[derive(Clone)]
pub struct SipHandle {
    commands: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
}

/// Starts the driver; returns the handle and the event stream.
pub async fn start(config: DriverConfig) -> io::Result<(SipHandle, mpsc::Receiver<Event>)> {
    let (udp, listener) = bind_pair(config.listen).await?;
    let local_addr = udp.local_addr()?;
    let mut endpoint_config = config.endpoint;
    endpoint_config.advertised = config.advertised.unwrap_or(local_addr);
    if endpoint_config.advertised.ip().is_unspecified() {
        tracing::warn!(%local_addr, "SIP advertised address is unspecified; set DriverConfig::advertised (public_addr) or peers cannot reach Contact");
    }
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let endpoint = Endpoint::new(endpoint_config, Instant::now(), unix_now);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(config.event_capacity.max(1));
    let (tcp_tx, tcp_rx) = mpsc::unbounded_channel();
    tokio::spawn(tcp::accept_loop(listener, tcp_tx.clone()));
    let driver = Driver {
        endpoint,
        udp,
        events: event_tx,
        placed: HashMap::new(),
        connections: Connections::new(tcp_tx),
    };
    tokio::spawn(driver.run(cmd_rx, tcp_rx));
    Ok((
        SipHandle {
            commands: cmd_tx,
            local_addr,
        },
        event_rx,
    ))
}

/// UDP and TCP on one port. With port 0 the OS picks a free *UDP* port, which a TCP socket may
/// already hold; pick again instead of failing.
async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    const ATTEMPTS: usize = 16;
    let mut attempt = 1;
    loop {
        let udp = bind_udp(listen)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if listen.port() == 0
                    && e.kind() == io::ErrorKind::AddrInUse
                    && attempt < ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl SipHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| DriverError::Closed)?;
        rx.await.map_err(|_| DriverError::Closed)
    }

    /// 200 OK with the SDP answer for `media`; 488 is sent (and an error returned) when no
    /// codec matches.
    pub async fn answer(
        &self,
        call: CallRef,
        media: LocalMedia,
    ) -> Result<Negotiated, DriverError> {
        Ok(self.ask(|r| Command::Answer(call, media, r)).await??)
    }

    /// 180 Ringing.
    pub async fn ring(&self, call: CallRef) -> Result<(), DriverError> {
        Ok(self.ask(|r| Command::Ring(call, r)).await??)
    }

    /// Final 3xx–6xx response, e.g. `reject(call, 503, None, vec![(HeaderName::RetryAfter, "30".into())])`.
    pub async fn reject(
        &self,
        call: CallRef,
        status: u16,
        reason: Option<String>,
        headers: Vec<(HeaderName, String)>,
    ) -> Result<(), DriverError> {
        Ok(self
            .ask(|r| Command::Reject(call, status, reason, headers, r))
            .await??)
    }

    /// 401 with a digest challenge (needs `EndpointConfig::auth`).
    pub async fn challenge(&self, call: CallRef, stale: bool) -> Result<(), DriverError> {
        Ok(self.ask(|r| Command::Challenge(call, stale, r)).await??)
    }

    /// BYE (established), CANCEL (outbound ringing) or 480 (inbound unanswered).
    pub async fn hangup(&self, call: CallRef) -> Result<(), DriverError> {
        Ok(self.ask(|r| Command::Hangup(call, r)).await??)
    }

    /// re-INVITE with a new offer (hold: `Direction::SendOnly`; resume: `SendRecv`); the
    /// outcome arrives as `CallEvent::MediaUpdated` or `CallEvent::UpdateRejected`.
    pub async fn update_media(&self, call: CallRef, media: LocalMedia) -> Result<(), DriverError> {
        Ok(self.ask(|r| Command::UpdateMedia(call, media, r)).await??)
    }

    /// INVITE with an SDP offer. The call's events arrive on the returned receiver, so not
    /// one is missed however fast the peer answers.
    pub async fn place_call(&self, call: PlaceCall) -> Result<PlacedCall, DriverError> {
        self.ask(|r| Command::Place(Box::new(call), r)).await
    }

    /// Like [`hangup`](Self::hangup) without waiting for the outcome: for `Drop` guards that
    /// must end a call whose owner went away.
    pub fn hangup_detached(&self, call: CallRef) {
        let (reply, _) = oneshot::channel();
        let _ = self.commands.send(Command::Hangup(call, reply));
    }

    pub async fn stats(&self) -> Result<Stats, DriverError> {
        self.ask(Command::Stats).await
    }
}

struct Driver {
    endpoint: Endpoint,
    udp: UdpSocket,
    events: mpsc::Sender<Event>,
    /// Outbound calls' own event channels, until their final event.
    placed: HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>,
    connections: Connections,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut tcp: mpsc::UnboundedReceiver<TcpInput>,
    ) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let deadline = self
                .endpoint
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            // Biased: application commands (answers, hangups) and due timers go before new
            // datagrams, so work already accepted finishes first under load.
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(cmd) => {
                        self.on_command(cmd);
                        while let Ok(cmd) = commands.try_recv() {
                            self.on_command(cmd);
                        }
                    }
                    None => return,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.endpoint.handle_timeout(Instant::now()),
                Some(input) = tcp.recv() => self.on_tcp(input),
                r = self.udp.recv_from(&mut buf) => {
                    if let Ok((n, src)) = r {
                        self.on_datagram(&buf[..n], src);
                        for _ in 1..RECV_BATCH {
                            match self.udp.try_recv_from(&mut buf) {
                                Ok((n, src)) => self.on_datagram(&buf[..n], src),
                                                                Err(_) => break,
                            }
                        }
                    }
                    self.flush().await;
                    // Let the application run (answers are produced by its tasks) before
                    // taking in more new calls; on a current-thread runtime it would otherwise
                    // only run when the coop budget runs out, and calls would pile up ringing.
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            self.flush().await;
        }
    }

    fn on_datagram(&mut self, data: &[u8], src: SocketAddr) {
        // Keep-alive pings (RFC 5626 CRLF) are not messages.
        if data.iter().all(|&c| c == b'\r' || c == b'\n') {
            return;
        }
        self.endpoint.handle_datagram(
            Instant::now(),
            Transport::Udp,
            src,
            Bytes::copy_from_slice(data),
        );
    }

    fn on_tcp(&mut self, input: TcpInput) {
        match input {
            TcpInput::Message(peer, msg) => {
                self.endpoint
                    .handle_message(Instant::now(), Transport::Tcp, peer, msg)
            }
            TcpInput::Connected(peer, writer) => self.connections.register(peer, writer),
            TcpInput::Closed(peer) => self.connections.remove(peer),
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        let e = &mut self.endpoint;
        // A dropped reply channel only means the caller stopped waiting.
        match cmd {
            Command::Answer(call, media, r) => {
                let _ = r.send(e.answer(call, media, now));
            }
            Command::Ring(call, r) => {
                let _ = r.send(e.ring(call, now));
            }
            Command::Reject(call, status, reason, headers, r) => {
                let _ = r.send(e.reject(call, status, reason.as_deref(), &headers, now));
            }
            Command::Challenge(call, stale, r) => {
                let _ = r.send(e.challenge(call, stale, now));
            }
            Command::Hangup(call, r) => {
                let _ = r.send(e.hangup(call, now));
            }
            Command::UpdateMedia(call, media, r) => {
                let _ = r.send(e.update_media(call, media, now));
            }
            Command::Place(pc, r) => {
                let call = e.place_call(*pc, now);
                let (tx, events) = mpsc::unbounded_channel();
                self.placed.insert(call, tx);
                if r.send(PlacedCall { call, events }).is_err() {
                    // Nobody will follow this call: end it now.
                    self.placed.remove(&call);
                    let _ = self.endpoint.hangup(call, now);
                }
            }
            Command::Stats(r) => {
                let _ = r.send(e.stats());
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(t).await;
        }
        while let Some(event) = self.endpoint.poll_event() {
            let Some(event) = self.route_placed(event) else {
                continue;
            };
            match self.events.try_send(event) {
                Ok(()) => {}
                // Overload: refuse new calls early rather than queue them (DESIGN: 503 + Retry-After).
                Err(mpsc::error::TrySendError::Full(Event::Incoming(call))) => {
                    let retry = [(HeaderName::RetryAfter, "5".to_owned())];
                    let _ = self
                        .endpoint
                        .reject(call.call, 503, None, &retry, Instant::now());
                }
                Err(mpsc::error::TrySendError::Full(event)) => {
                    if self.events.send(event).await.is_err() {
                        return;
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // Rejections above queue more output.
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(t).await;
        }
    }

    /// Hands an outbound call's event to its owner; returns the others.
    fn route_placed(&mut self, event: Event) -> Option<Event> {
        let Event::Call(call, call_event) = event else {
            return Some(event);
        };
        let Some(tx) = self.placed.get(&call) else {
            return Some(Event::Call(call, call_event));
        };
        let last = matches!(
            call_event,
            CallEvent::Failed { .. } | CallEvent::Ended { .. }
        );
        if tx.send(call_event).is_err() {
            // The owner went away without hanging up (its guard sends the hang-up).
            tracing::debug!(call = call.0, "event for a placed call nobody follows");
            self.placed.remove(&call);
        } else if last {
            self.placed.remove(&call);
        }
        None
    }

    async fn send(&mut self, t: Transmit) {
        match t.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.try_send_to(&t.payload, t.destination) {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        let _ = self.udp.send_to(&t.payload, t.destination).await;
                    }
                }
            }
            Transport::Tcp => self.connections.send(t.destination, t.payload),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
