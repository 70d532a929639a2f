//! Two sans-IO RTP sessions talking over a virtual wire: latching, strict source, RTCP
//! SR/RR exchange with loss, jitter and RTT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voxbridge_media::rtp::{
    Component, Datagram, Input, Output, Rejected, RtpSession, SessionConfig, SessionEvent,
    SourcePolicy, RTP_HEADER_LEN,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Wire {
    events: Vec<SessionEvent>,
    rtcp: Vec<(SocketAddr, Component, Vec<u8>)>,
}

fn drain(s: &mut RtpSession) -> Wire {
    let mut w = Wire {
        events: vec![],
        rtcp: vec![],
    };
    loop {
        match s.poll_output() {
            Output::Event(e) => w.events.push(e),
            Output::Transmit(t) => w.rtcp.push((t.destination, t.component, t.data.to_vec())),
            Output::Timeout(_) => return w,
        }
    }
}

fn send_rtp(s: &mut RtpSession, now: Instant, ts: u32) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 200];
    buf[RTP_HEADER_LEN..RTP_HEADER_LEN + 160].fill(0xff);
    let (len, dest) = s.write_rtp(now, 0, ts == 0, ts, 160, &mut buf).unwrap();
    (buf[..len].to_vec(), dest)
}

#[test]
fn latches_then_stays_strict() {
    let t0 = Instant::now();
    let sdp_remote = addr("127.0.0.1:4000");
    let mut s = RtpSession::new(SessionConfig::new(1, 0, 8000, sdp_remote), t0);
    let mut peer = RtpSession::new(SessionConfig::new(2, 100, 8000, addr("127.0.0.1:5000")), t0);
    let (pkt, _) = send_rtp(&mut peer, t0, 0);
    let nat = addr("127.0.0.2:6000");
    let rx = |source| {
        Input::Receive(
            t0,
            Datagram {
                source,
                component: Component::Rtp,
                data: &pkt,
            },
        )
    };
    let got = s.handle_input(rx(nat)).unwrap().unwrap();
    assert!(got.new_source);
    assert_eq!(got.packet.header.ssrc, 2);
    assert_eq!(
        s.remote_rtp(),
        nat,
        "symmetric RTP answers where media comes from"
    );
    assert_eq!(
        drain(&mut s).events,
        vec![
            SessionEvent::SourceLatched(nat),
            SessionEvent::NewRemoteSsrc(2)
        ]
    );
    assert_eq!(
        s.handle_input(rx(sdp_remote)),
        Err(Rejected::UnexpectedSource)
    );
    assert_eq!(s.rejected(), 1);
}

#[test]
fn strict_policy_only_accepts_sdp_address() {
    let t0 = Instant::now();
    let mut cfg = SessionConfig::new(1, 0, 8000, addr("127.0.0.1:4000"));
    cfg.source_policy = SourcePolicy::Strict;
    let mut s = RtpSession::new(cfg, t0);
    let mut peer = RtpSession::new(SessionConfig::new(2, 0, 8000, addr("127.0.0.1:5000")), t0);
    let (pkt, _) = send_rtp(&mut peer, t0, 0);
    let rx = |source| {
        Input::Receive(
            t0,
            Datagram {
                source,
                component: Component::Rtp,
                data: &pkt,
            },
        )
    };
    assert_eq!(
        s.handle_input(rx(addr("127.0.0.9:4000"))),
        Err(Rejected::UnexpectedSource)
    );
    assert!(s
        .handle_input(rx(addr("127.0.0.1:4000")))
        .unwrap()
        .is_some());
}

#[test]
fn malformed_datagrams_are_rejected_not_fatal() {
    let t0 = Instant::now();
    let mut s = RtpSession::new(SessionConfig::new(1, 0, 8000, addr("127.0.0.1:4000")), t0);
    let d = |data| {
        Input::Receive(
            t0,
            Datagram {
                source: addr("127.0.0.1:4000"),
                component: Component::Rtp,
                data,
            },
        )
    };
    assert!(matches!(
        s.handle_input(d(&[0x80, 0, 1])),
        Err(Rejected::Rtp(_))
    ));
    assert!(matches!(
        s.handle_input(d(&[0x00; 40])),
        Err(Rejected::Rtp(_))
    ));
}

/// A and B exchange 20 ms G.711 packets for 12 s with B dropping every 10th packet of A's,
/// 30 ms one-way delay and RTCP muxed: both ends see loss and RTT from the reports.
#[test]
fn rtcp_reports_loss_jitter_and_rtt() {
    let t0 = Instant::now();
    let a_addr = addr("127.0.0.1:4000");
    let b_addr = addr("127.0.0.1:5000");
    let mut ca = SessionConfig::new(0xa, 0, 8000, b_addr);
    ca.rtcp_mux = true;
    ca.ntp_at_start = 0x1234_5678_0000_0000;
    let mut cb = SessionConfig::new(0xb, 65500, 8000, a_addr);
    cb.rtcp_mux = true;
    cb.rtcp_interval = Duration::from_millis(4900);
    let mut a = RtpSession::new(ca, t0);
    let mut b = RtpSession::new(cb, t0);
    let one_way = Duration::from_millis(30);
    // (deliver_at, to_b, bytes)
    let mut in_flight: Vec<(Instant, bool, Vec<u8>)> = vec![];
    let mut a_reports = vec![];
    let mut b_reports = vec![];
    for i in 0..600u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        // deliver what is due
        in_flight.sort_by_key(|p| p.0);
        while in_flight.first().is_some_and(|p| p.0 <= now) {
            let (at, to_b, data) = in_flight.remove(0);
            let (dst, src) = if to_b {
                (&mut b, a_addr)
            } else {
                (&mut a, b_addr)
            };
            dst.handle_input(Input::Receive(
                at,
                Datagram {
                    source: src,
                    component: Component::Rtp,
                    data: &data,
                },
            ))
            .unwrap();
        }
        let (pa, _) = send_rtp(&mut a, now, i * 160);
        if i % 10 != 5 {
            in_flight.push((now + one_way, true, pa));
        }
        let (pb, _) = send_rtp(&mut b, now, i * 160);
        in_flight.push((now + one_way, false, pb));
        for (s, reports, to_b) in [
            (&mut a, &mut a_reports, true),
            (&mut b, &mut b_reports, false),
        ] {
            s.handle_input(Input::Timeout(now)).unwrap();
            let w = drain(s);
            for (_, component, data) in w.rtcp {
                assert_eq!(
                    component,
                    Component::Rtp,
                    "rtcp-mux sends on the RTP socket"
                );
                in_flight.push((now + one_way, to_b, data));
            }
            reports.extend(w.events.into_iter().filter_map(|e| match e {
                SessionEvent::RemoteReport(r) => Some(r),
                _ => None,
            }));
        }
    }
    let last_a = a_reports
        .last()
        .expect("A got B's reports about A's stream");
    assert!((0.05..0.15).contains(&last_a.fraction_lost), "{last_a:?}");
    assert!(last_a.cumulative_lost >= 45, "{last_a:?}");
    let rtt = last_a.rtt.expect("rtt from LSR/DLSR");
    assert!(
        rtt.abs_diff(2 * one_way) < Duration::from_millis(2),
        "rtt {rtt:?}"
    );
    let last_b = b_reports.last().expect("B got A's reports");
    assert_eq!(last_b.cumulative_lost, 0);
    assert!(last_b.jitter < Duration::from_millis(1));
    let src = b.source().unwrap();
    assert_eq!(src.ssrc, 0xa);
    assert!(
        a.source().unwrap().extended_max() > 65536,
        "B's sequence wrapped"
    );
}
