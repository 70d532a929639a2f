//! Sans-IO RTP session shaped like str0m's `Rtc`: the caller owns the sockets and the clock,
//! feeds datagrams and timeouts through [`RtpSession::handle_input`] and drains
//! [`RtpSession::poll_output`] until it yields [`Output::Timeout`].
//!
//! Received RTP is returned straight from `handle_input`, borrowing the caller's datagram, so
//! the media path never copies or allocates per packet; RTCP is consumed internally.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::packet::{is_rtcp, RtpError, RtpHeader, RtpPacket, RTP_HEADER_LEN};
use super::rtcp::{Compound, ReportBlock, RtcpError, RtcpPacket, RtcpWriter, SenderInfo};
use super::source::{SeqVerdict, SourceStats};

/// Which remote addresses are believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePolicy {
    /// Symmetric RTP behind NAT: the first valid packet fixes the remote address (which may
    /// differ from the SDP one); from then on only that address is accepted.
    Latch,
    /// Only the address from SDP is accepted.
    Strict,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub local_ssrc: u32,
    pub initial_seq: u16,
    pub clock_rate: u32,
    /// RTP destination from the remote SDP (`c=` + `m=` port).
    pub remote_rtp: SocketAddr,
    /// RTCP destination when not multiplexed (SDP `a=rtcp`, else RTP port + 1).
    pub remote_rtcp: SocketAddr,
    pub rtcp_mux: bool,
    pub source_policy: SourcePolicy,
    pub rtcp_interval: Duration,
    pub cname: String,
    /// NTP time (RFC 3550 64-bit format) at the `now` given to [`RtpSession::new`]: the
    /// session never reads a wall clock itself.
    pub ntp_at_start: u64,
}

impl SessionConfig {
    /// Defaults for a call: latch, 5 s RTCP interval, RTCP on RTP port + 1 unless muxed.
    pub fn new(local_ssrc: u32, initial_seq: u16, clock_rate: u32, remote_rtp: SocketAddr) -> Self {
        let mut remote_rtcp = remote_rtp;
        remote_rtcp.set_port(remote_rtp.port().wrapping_add(1));
        Self {
            local_ssrc,
            initial_seq,
            clock_rate,
            remote_rtp,
            remote_rtcp,
            rtcp_mux: false,
            source_policy: SourcePolicy::Latch,
            rtcp_interval: Duration::from_secs(5),
            cname: format!("{local_ssrc:08x}@voxbridge"),
            ntp_at_start: 0,
        }
    }
}

/// RTP or RTCP flow; with rtcp-mux both use the RTP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Rtp,
    Rtcp,
}

#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub source: SocketAddr,
    /// The socket it arrived on.
    pub component: Component,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Receive(Instant, Datagram<'a>),
    Timeout(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub destination: SocketAddr,
    /// The socket to send it from.
    pub component: Component,
    pub data: &'a [u8],
}

/// What the far end reports about the stream we send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteReport {
    pub fraction_lost: f64,
    pub cumulative_lost: i32,
    pub jitter: Duration,
    pub rtt: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionEvent {
    SourceLatched(SocketAddr),
    /// A new remote SSRC took over the stream (transfer, SBC re-anchoring): stats restart.
    NewRemoteSsrc(u32),
    RemoteReport(RemoteReport),
    Bye,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Output<'a> {
    Transmit(Transmit<'a>),
    Event(SessionEvent),
    Timeout(Instant),
}

/// An accepted RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub packet: RtpPacket<'a>,
    pub extended_seq: u64,
    /// First packet of a new remote SSRC: receivers must reset their playout state.
    pub new_source: bool,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    #[error("datagram from an address that is not the (latched) remote")]
    UnexpectedSource,
    #[error("malformed RTP: {0}")]
    Rtp(#[from] RtpError),
    #[error("malformed RTCP: {0}")]
    Rtcp(#[from] RtcpError),
    #[error("sequence jump held on probation")]
    Probation,
}

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    #[error("packet buffer too small for header and payload")]
    BufferTooSmall,
}

const RTCP_BUF_LEN: usize = 256;

pub struct RtpSession {
    config: SessionConfig,
    start: Instant,
    latched_rtp: bool,
    latched_rtcp: bool,
    source: Option<SourceStats>,
    next_seq: u16,
    sent_packets: u32,
    sent_octets: u32,
    last_sent_timestamp: u32,
    last_sent_at: Option<Instant>,
    /// Middle 32 bits of the last SR's NTP time and when it arrived (for LSR/DLSR).
    last_sr: Option<(u32, Instant)>,
    last_remote_report: Option<RemoteReport>,
    next_rtcp: Instant,
    rtcp_buf: [u8; RTCP_BUF_LEN],
    rtcp_pending: usize,
    events: VecDeque<SessionEvent>,
    rejected: u64,
}

impl RtpSession {
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let next_rtcp = now + config.rtcp_interval;
        Self {
            next_seq: config.initial_seq,
            config,
            start: now,
            latched_rtp: false,
            latched_rtcp: false,
            source: None,
            sent_packets: 0,
            sent_octets: 0,
            last_sent_timestamp: 0,
            last_sent_at: None,
            last_sr: None,
            last_remote_report: None,
            next_rtcp,
            rtcp_buf: [0; RTCP_BUF_LEN],
            rtcp_pending: 0,
            events: VecDeque::with_capacity(8),
            rejected: 0,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Feeds one input. Accepted RTP comes back directly, borrowing the datagram.
    pub fn handle_input<'a>(&mut self, input: Input<'a>) -> Result<Option<Received<'a>>, Rejected> {
        match input {
            Input::Timeout(now) => {
                self.handle_timeout(now);
                Ok(None)
            }
            Input::Receive(now, datagram) => {
                let result = self.handle_datagram(now, datagram);
                if result.is_err() {
                    self.rejected += 1;
                }
                result
            }
        }
    }

    fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        d: Datagram<'a>,
    ) -> Result<Option<Received<'a>>, Rejected> {
        let rtcp = d.component == Component::Rtcp || (self.config.rtcp_mux && is_rtcp(d.data));
        if rtcp {
            self.check_rtcp_source(d.source)?;
            self.handle_rtcp(now, d.data)?;
            return Ok(None);
        }
        let packet = RtpPacket::parse(d.data)?;
        self.check_rtp_source(d.source)?;
        let mut new_source = false;
        let stats = match &mut self.source {
            Some(s) if s.ssrc == packet.header.ssrc => s,
            slot => {
                new_source = true;
                self.events
                    .push_back(SessionEvent::NewRemoteSsrc(packet.header.ssrc));
                slot.insert(SourceStats::new(
                    packet.header.ssrc,
                    packet.header.sequence,
                    self.config.clock_rate,
                ))
            }
        };
        let extended_seq = match stats.update_seq(packet.header.sequence) {
            SeqVerdict::Accept(ext) => ext,
            SeqVerdict::Probation => return Err(Rejected::Probation),
        };
        let arrival = ticks_since(self.start, now, self.config.clock_rate);
        stats.update_jitter(arrival, packet.header.timestamp);
        Ok(Some(Received {
            packet,
            extended_seq,
            new_source,
        }))
    }

    fn check_rtp_source(&mut self, source: SocketAddr) -> Result<(), Rejected> {
        if source == self.config.remote_rtp {
            self.latched_rtp |= self.config.source_policy == SourcePolicy::Latch;
            return Ok(());
        }
        if self.config.source_policy == SourcePolicy::Strict || self.latched_rtp {
            return Err(Rejected::UnexpectedSource);
        }
        self.latched_rtp = true;
        self.config.remote_rtp = source;
        if self.config.rtcp_mux {
            self.config.remote_rtcp = source;
            self.latched_rtcp = true;
        }
        self.events.push_back(SessionEvent::SourceLatched(source));
        Ok(())
    }

    fn check_rtcp_source(&mut self, source: SocketAddr) -> Result<(), Rejected> {
        if source == self.config.remote_rtcp {
            self.latched_rtcp = true;
            return Ok(());
        }
        if self.config.source_policy == SourcePolicy::Strict || self.latched_rtcp {
            return Err(Rejected::UnexpectedSource);
        }
        self.latched_rtcp = true;
        self.config.remote_rtcp = source;
        Ok(())
    }

    fn handle_rtcp(&mut self, now: Instant, data: &[u8]) -> Result<(), Rejected> {
        for packet in Compound::new(data) {
            match packet? {
                RtcpPacket::SenderReport { info, blocks, .. } => {
                    self.last_sr = Some(((info.ntp >> 16) as u32, now));
                    self.take_blocks(now, blocks);
                }
                RtcpPacket::ReceiverReport { blocks, .. } => self.take_blocks(now, blocks),
                RtcpPacket::Bye { .. } => self.events.push_back(SessionEvent::Bye),
                RtcpPacket::Other { .. } => {}
            }
        }
        Ok(())
    }

    fn take_blocks(&mut self, now: Instant, blocks: impl Iterator<Item = ReportBlock>) {
        for b in blocks.filter(|b| b.ssrc == self.config.local_ssrc) {
            let rtt = (b.last_sr != 0)
                .then(|| {
                    // RFC 3550 §6.4.1: RTT = A - LSR - DLSR in 1/65536 s.
                    let a = self.ntp_middle(now);
                    let rtt = a
                        .wrapping_sub(b.last_sr)
                        .wrapping_sub(b.delay_since_last_sr);
                    // A negative result (clock skew, stale LSR) wraps huge: ignore it.
                    (rtt < 1 << 31)
                        .then(|| Duration::from_micros((u64::from(rtt) * 1_000_000) >> 16))
                })
                .flatten();
            let report = RemoteReport {
                fraction_lost: f64::from(b.fraction_lost) / 256.0,
                cumulative_lost: b.cumulative_lost,
                jitter: Duration::from_secs_f64(
                    f64::from(b.jitter) / f64::from(self.config.clock_rate),
                ),
                rtt: rtt.or(self.last_remote_report.and_then(|r| r.rtt)),
            };
            self.last_remote_report = Some(report);
            self.events.push_back(SessionEvent::RemoteReport(report));
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_rtcp {
            return;
        }
        self.next_rtcp = now + self.config.rtcp_interval;
        // An unsent report is superseded by the fresh one.
        self.rtcp_pending = self.write_report(now).unwrap_or(0);
    }

    fn write_report(&mut self, now: Instant) -> Result<usize, RtcpError> {
        let block = self.report_block(now);
        let blocks = block.as_slice();
        let ssrc = self.config.local_ssrc;
        let sending = self.last_sent_at.is_some();
        let info = self.sender_info(now);
        let mut w = RtcpWriter::new(&mut self.rtcp_buf);
        if sending {
            w.sender_report(ssrc, &info, blocks)?;
        } else {
            w.receiver_report(ssrc, blocks)?;
        }
        w.sdes_cname(ssrc, self.config.cname.as_bytes())?;
        Ok(w.len())
    }

    /// Compound BYE to send when the call ends; the caller transmits it once.
    pub fn bye(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let n = self.write_report(now).ok()?;
        let mut w = RtcpWriter::new(&mut self.rtcp_buf[n..]);
        w.bye(self.config.local_ssrc).ok()?;
        let len = n + w.len();
        Some(Transmit {
            destination: self.config.remote_rtcp,
            component: self.rtcp_component(),
            data: &self.rtcp_buf[..len],
        })
    }

    fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let last_sr = self.last_sr;
        let s = self.source.as_mut()?;
        let (lsr, dlsr) = last_sr.map_or((0, 0), |(mid, at)| {
            let delay = now.saturating_duration_since(at);
            (mid, ((delay.as_micros() << 16) / 1_000_000) as u32)
        });
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost: s.take_fraction_lost(),
            cumulative_lost: i32::try_from(s.cumulative_lost()).unwrap_or(i32::MAX),
            extended_highest_seq: s.extended_max() as u32,
            jitter: s.jitter(),
            last_sr: lsr,
            delay_since_last_sr: dlsr,
        })
    }

    fn sender_info(&self, now: Instant) -> SenderInfo {
        // Extrapolate the RTP timestamp of the last packet to `now` so receivers can map
        // NTP to media time (lip sync, RTT tools).
        let rtp_timestamp = self.last_sent_at.map_or(0, |at| {
            let elapsed = ticks_since(at, now, self.config.clock_rate);
            self.last_sent_timestamp.wrapping_add(elapsed)
        });
        SenderInfo {
            ntp: self.ntp(now),
            rtp_timestamp,
            packet_count: self.sent_packets,
            octet_count: self.sent_octets,
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.start);
        let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) & 0xffff_ffff;
        self.config
            .ntp_at_start
            .wrapping_add((d.as_secs() << 32) | frac)
    }

    fn ntp_middle(&self, now: Instant) -> u32 {
        (self.ntp(now) >> 16) as u32
    }

    fn rtcp_component(&self) -> Component {
        if self.config.rtcp_mux {
            Component::Rtp
        } else {
            Component::Rtcp
        }
    }

    /// Next pending output; `Output::Timeout` means the queue is empty.
    pub fn poll_output(&mut self) -> Output<'_> {
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        if self.rtcp_pending > 0 {
            let len = std::mem::take(&mut self.rtcp_pending);
            return Output::Transmit(Transmit {
                destination: self.config.remote_rtcp,
                component: self.rtcp_component(),
                data: &self.rtcp_buf[..len],
            });
        }
        Output::Timeout(self.next_rtcp)
    }

    pub fn poll_timeout(&self) -> Instant {
        self.next_rtcp
    }

    /// Writes the RTP header for a payload the caller already put at
    /// `buf[RTP_HEADER_LEN..RTP_HEADER_LEN + payload_len]`, assigning the next sequence number.
    /// Returns the datagram length and destination (the latched address under symmetric RTP).
    pub fn write_rtp(
        &mut self,
        now: Instant,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload_len: usize,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddr), SendError> {
        let len = RTP_HEADER_LEN + payload_len;
        if buf.len() < len {
            return Err(SendError::BufferTooSmall);
        }
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.next_seq,
            timestamp,
            ssrc: self.config.local_ssrc,
        };
        header.write(buf).map_err(|_| SendError::BufferTooSmall)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.sent_packets = self.sent_packets.wrapping_add(1);
        self.sent_octets = self.sent_octets.wrapping_add(payload_len as u32);
        self.last_sent_timestamp = timestamp;
        self.last_sent_at = Some(now);
        Ok((len, self.config.remote_rtp))
    }

    /// A re-INVITE moved the far end: new SDP addresses, and latching starts over.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: SocketAddr) {
        self.config.remote_rtp = rtp;
        self.config.remote_rtcp = if self.config.rtcp_mux { rtp } else { rtcp };
        self.latched_rtp = false;
        self.latched_rtcp = false;
    }

    pub fn remote_rtp(&self) -> SocketAddr {
        self.config.remote_rtp
    }

    pub fn source(&self) -> Option<&SourceStats> {
        self.source.as_ref()
    }

    pub fn last_remote_report(&self) -> Option<RemoteReport> {
        self.last_remote_report
    }

    pub fn sent_packets(&self) -> u32 {
        self.sent_packets
    }

    /// Datagrams refused (wrong source, malformed, probation).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

/// Time since `from`, in timestamp units, wrapping like RTP timestamps do.
fn ticks_since(from: Instant, now: Instant, clock_rate: u32) -> u32 {
    let micros = now.saturating_duration_since(from).as_micros();
    (micros * u128::from(clock_rate) / 1_000_000) as u32
}
