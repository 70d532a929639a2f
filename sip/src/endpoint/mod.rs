//! The sans-IO user agent: one object that takes received messages, timeouts and application
//! commands with `now`, and yields datagrams to send, events for the application and its next
//! deadline (str0m's shape). It owns the transactions, the dialogs and abuse protection; the
//! tokio [`driver`](crate::driver) only moves bytes.

mod dialog;
mod incoming;
mod protect;
mod types;
mod uac;
mod uas;

pub use protect::{in_prefix, is_scanner, RateLimit, RateLimiter};
pub use types::{
    AuthStatus, CallError, CallEvent, CallRef, EndReason, EndpointConfig, Event, IncomingCall,
    PlaceCall, ServerAuth, Stats, Transmit, Transport,
};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{
    parse_datagram, triage, HeaderName, Inbound, Message, ParseError, Request, Response,
};
use crate::transaction::{
    ClientInvite, ClientNonInvite, Reliability, ServerInvite, ServerNonInvite, TsxEvent, TsxKey,
    TsxOutput,
};
use dialog::Call;

/// The four RFC 3261 state machines (named after them, hence the shared suffix).
#[allow(clippy::enum_variant_names)]
enum Tsx {
    /// Boxed: it is the largest and the rarest (outbound calls only).
    ClientInvite(Box<ClientInvite>),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

struct TsxEntry {
    tsx: Tsx,
    /// Deadline already in the heap, so unchanged deadlines are not pushed again.
    scheduled: Option<Instant>,
    key: TsxKey,
    peer: SocketAddr,
    transport: Transport,
    call: Option<CallRef>,
}

impl Tsx {
    fn poll_output(&mut self) -> Option<TsxOutput> {
        match self {
            Tsx::ClientInvite(t) => t.poll_output(),
            Tsx::ClientNonInvite(t) => t.poll_output(),
            Tsx::ServerInvite(t) => t.poll_output(),
            Tsx::ServerNonInvite(t) => t.poll_output(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Tsx::ClientInvite(t) => t.poll_timeout(),
            Tsx::ClientNonInvite(t) => t.poll_timeout(),
            Tsx::ServerInvite(t) => t.poll_timeout(),
            Tsx::ServerNonInvite(t) => t.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Tsx::ClientInvite(t) => t.handle_timeout(now),
            Tsx::ClientNonInvite(t) => t.handle_timeout(now),
            Tsx::ServerInvite(t) => t.handle_timeout(now),
            Tsx::ServerNonInvite(t) => t.handle_timeout(now),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Tsx::ClientInvite(t) => t.is_terminated(),
            Tsx::ClientNonInvite(t) => t.is_terminated(),
            Tsx::ServerInvite(t) => t.is_terminated(),
            Tsx::ServerNonInvite(t) => t.is_terminated(),
        }
    }
}

fn reliability(t: Transport) -> Reliability {
    match t {
        Transport::Udp => Reliability::Unreliable,
        Transport::Tcp => Reliability::Reliable,
    }
}

type DialogKey = (Box<str>, Box<str>);

pub struct Endpoint {
    config: EndpointConfig,
    via_host: String,
    contact: String,
    txs: HashMap<u64, TsxEntry>,
    tx_index: HashMap<TsxKey, u64>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    next_call: u64,
    calls: HashMap<CallRef, Call>,
    dialogs: HashMap<DialogKey, CallRef>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    limiter: Option<RateLimiter>,
    next_sweep: Instant,
    stats: Stats,
    /// Wall clock at `anchor`, for digest nonces (the only use of wall time).
    unix_anchor: (Instant, u64),
}

const SWEEP_EVERY: Duration = Duration::from_secs(10);

impl Endpoint {
    /// `unix_now` is the wall clock (seconds) at `now`, used only for digest nonce expiry.
    pub fn new(config: EndpointConfig, now: Instant, unix_now: u64) -> Endpoint {
        let via_host = config.advertised.to_string();
        let contact = format!("<sip:{via_host}>");
        Endpoint {
            limiter: config.rate_limit.clone().map(RateLimiter::new),
            config,
            via_host,
            contact,
            txs: HashMap::new(),
            tx_index: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_id: 1,
            next_call: 1,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: now + SWEEP_EVERY,
            stats: Stats::default(),
            unix_anchor: (now, unix_now),
        }
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        payload: Bytes,
    ) {
        self.handle_message(now, transport, source, parse_datagram(payload));
    }

    /// A framed message (the driver parses TCP streams with [`StreamFramer`](crate::message::StreamFramer)).
    pub fn handle_message(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        parsed: Result<Message, ParseError>,
    ) {
        self.stats.received += 1;
        match triage(parsed) {
            Inbound::Drop(_) => self.stats.malformed_dropped += 1,
            Inbound::Reject(req, rejection) => {
                self.stats.malformed_answered += 1;
                let mut resp = Response::for_request(&req, rejection.status, None);
                resp.reason = Bytes::from_static(rejection.reason.as_bytes());
                self.transmit(transport, source, resp.to_bytes());
            }
            Inbound::Response(resp) => self.on_response(resp, now),
            Inbound::Request(req) => self.on_request(req, transport, source, now),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let due = self
                .txs
                .get(&id)
                .and_then(|e| e.tsx.poll_timeout())
                .is_some_and(|d| d <= now);
            if due {
                if let Some(e) = self.txs.get_mut(&id) {
                    e.tsx.handle_timeout(now);
                }
                self.pump(id, now);
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            self.maintain(now);
        }
    }

    /// Returns memory after a load peak: tables only grow on their own, so RSS would stay at
    /// the peak forever; shrink any that is mostly empty.
    fn maintain(&mut self, now: Instant) {
        if let Some(max) = self.config.max_call_duration {
            let expired: Vec<CallRef> = self
                .calls
                .iter()
                .filter(|(_, c)| {
                    c.established_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= max)
                })
                .map(|(&r, _)| r)
                .collect();
            for call in expired {
                self.send_bye(call, now);
                self.emit(
                    call,
                    CallEvent::Ended {
                        reason: EndReason::MaxDuration,
                    },
                );
            }
        }
        if let Some(l) = &mut self.limiter {
            l.sweep(now);
        }
        fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
            if m.capacity() > 64 && m.len() * 4 < m.capacity() {
                m.shrink_to(m.len() * 2);
            }
        }
        shrink(&mut self.txs);
        shrink(&mut self.tx_index);
        shrink(&mut self.calls);
        shrink(&mut self.dialogs);
        if self.deadlines.capacity() > 64 && self.deadlines.len() * 4 < self.deadlines.capacity() {
            self.deadlines.shrink_to(self.deadlines.len() * 2);
        }
        if self.transmits.is_empty() && self.transmits.capacity() > 1024 {
            self.transmits = VecDeque::new();
        }
        if self.events.is_empty() && self.events.capacity() > 1024 {
            self.events = VecDeque::new();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has work (may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tsx = self.deadlines.peek().map(|Reverse((at, _))| *at);
        Some(tsx.map_or(self.next_sweep, |t| t.min(self.next_sweep)))
    }

    pub fn stats(&self) -> Stats {
        let count = |p: dialog::Phase| self.calls.values().filter(|c| c.phase == p).count();
        Stats {
            transactions: self.txs.len(),
            calls: self.calls.len(),
            calls_ringing: count(dialog::Phase::Ringing),
            calls_answered: count(dialog::Phase::Answered),
            calls_established: count(dialog::Phase::Established),
            ..self.stats
        }
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.unix_anchor.1 + now.saturating_duration_since(self.unix_anchor.0).as_secs()
    }

    fn new_call_ref(&mut self) -> CallRef {
        self.next_call += 1;
        CallRef(self.next_call - 1)
    }

    fn transmit(&mut self, transport: Transport, destination: SocketAddr, payload: Bytes) {
        self.transmits.push_back(Transmit {
            transport,
            destination,
            payload,
        });
    }

    fn emit(&mut self, call: CallRef, event: CallEvent) {
        self.events.push_back(Event::Call(call, event));
    }

    fn insert_tsx(
        &mut self,
        tsx: Tsx,
        key: TsxKey,
        peer: SocketAddr,
        transport: Transport,
        call: Option<CallRef>,
        now: Instant,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.tx_index.insert(key.clone(), id);
        self.txs.insert(
            id,
            TsxEntry {
                tsx,
                scheduled: None,
                key,
                peer,
                transport,
                call,
            },
        );
        self.pump(id, now);
        id
    }

    /// Moves a transaction's queued output onward, reacts to its events, schedules its next
    /// deadline and forgets it once terminated.
    fn pump(&mut self, id: u64, now: Instant) {
        let Some(entry) = self.txs.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        while let Some(out) = entry.tsx.poll_output() {
            match out {
                TsxOutput::Send(b) => self.transmits.push_back(Transmit {
                    transport: entry.transport,
                    destination: entry.peer,
                    payload: b,
                }),
                TsxOutput::Event(e) => events.push(e),
            }
        }
        let call = entry.call;
        let is_client_invite = matches!(entry.tsx, Tsx::ClientInvite(_));
        if entry.tsx.is_terminated() {
            let key = entry.key.clone();
            self.txs.remove(&id);
            if self.tx_index.get(&key) == Some(&id) {
                self.tx_index.remove(&key);
            }
        } else if let Some(at) = entry
            .tsx
            .poll_timeout()
            .filter(|&at| entry.scheduled != Some(at))
        {
            entry.scheduled = Some(at);
            self.deadlines.push(Reverse((at, id)));
        }
        for event in events {
            match (event, call) {
                (TsxEvent::Response(resp), Some(call)) if is_client_invite => {
                    self.on_invite_response(call, id, *resp, now)
                }
                (TsxEvent::Timeout, Some(call)) if is_client_invite => {
                    self.fail_outbound(call, id, 408, "Request Timeout")
                }
                (TsxEvent::Acked, Some(call)) => self.on_acked(call, now),
                (TsxEvent::Timeout, Some(call)) => self.on_server_invite_timeout(call, id, now),
                _ => {}
            }
        }
    }

    /// Creates a server transaction for `req` and sends `resp` through it.
    fn respond_new(
        &mut self,
        req: &Request,
        resp: &Response,
        peer: SocketAddr,
        transport: Transport,
        call: Option<CallRef>,
        now: Instant,
    ) -> Option<u64> {
        let key = TsxKey::server(&req.method, &req.headers)?;
        let rel = reliability(transport);
        let tsx = if req.method == crate::message::Method::Invite {
            let mut t = ServerInvite::new(
                req,
                rel,
                self.config.timers,
                self.config.answer_timeout,
                now,
            );
            t.respond(resp, now);
            Tsx::ServerInvite(t)
        } else {
            let mut t = ServerNonInvite::new(rel, self.config.timers);
            t.respond(resp, now);
            Tsx::ServerNonInvite(t)
        };
        Some(self.insert_tsx(tsx, key, peer, transport, call, now))
    }

    fn respond_status(
        &mut self,
        req: &Request,
        status: u16,
        extra: &[(HeaderName, String)],
        peer: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let mut resp = Response::for_request(req, status, Some(&crate::message::new_tag()));
        for (name, value) in extra {
            resp.headers.push(name.clone(), value.clone());
        }
        self.respond_new(req, &resp, peer, transport, None, now);
    }

    /// Sends a request in its own non-INVITE client transaction (BYE, CANCEL).
    fn send_non_invite(
        &mut self,
        req: &Request,
        peer: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let Some(key) = TsxKey::client(&req.headers) else {
            return;
        };
        let tsx = ClientNonInvite::new(
            req.to_bytes(),
            reliability(transport),
            self.config.timers,
            now,
        );
        self.insert_tsx(Tsx::ClientNonInvite(tsx), key, peer, transport, None, now);
    }

    fn remove_call(&mut self, call: CallRef) -> Option<Call> {
        let c = self.calls.remove(&call)?;
        self.dialogs
            .remove(&(c.call_id.as_str().into(), c.local_tag.as_str().into()));
        Some(c)
    }

    fn on_response(&mut self, resp: Response, now: Instant) {
        let Some(id) = TsxKey::client(&resp.headers).and_then(|k| self.tx_index.get(&k).copied())
        else {
            // A 2xx retransmission after the INVITE transaction ended: re-ACK through the dialog.
            self.reack_stray_2xx(&resp);
            return;
        };
        match self.txs.get_mut(&id).map(|e| &mut e.tsx) {
            Some(Tsx::ClientInvite(t)) => t.handle_response(resp, now),
            Some(Tsx::ClientNonInvite(t)) => t.handle_response(resp, now),
            _ => return,
        }
        self.pump(id, now);
    }
}

#[cfg(test)]
mod tests;
