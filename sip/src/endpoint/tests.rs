//! Two endpoints wired back to back with a virtual clock (quinn-proto's `Pair` idea): every
//! scenario runs on injected time, with optional loss, and no sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::auth::{Algorithm, Credentials, DigestServer};
use crate::message::{parse_datagram, Message, Method};
use crate::sdp::{Codec, Direction, LocalMedia};

struct Pair {
    a: Endpoint,
    b: Endpoint,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    /// Drops packets for which this returns true (simulated loss).
    drop: Box<dyn FnMut(&Transmit) -> bool>,
    wire: Vec<Bytes>,
}

fn media(port: u16, codecs: Vec<Codec>) -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port,
        codecs,
        telephone_event: true,
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

fn config(addr: SocketAddr) -> EndpointConfig {
    EndpointConfig {
        rate_limit: None,
        ..EndpointConfig::new(addr)
    }
}

impl Pair {
    fn new(b_config: impl FnOnce(EndpointConfig) -> EndpointConfig) -> Pair {
        let now = Instant::now();
        let a_addr: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let b_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        Pair {
            a: Endpoint::new(config(a_addr), now, 1_700_000_000),
            b: Endpoint::new(b_config(config(b_addr)), now, 1_700_000_000),
            a_addr,
            b_addr,
            now,
            a_events: Vec::new(),
            b_events: Vec::new(),
            drop: Box::new(|_| false),
            wire: Vec::new(),
        }
    }

    /// Delivers queued packets both ways until both sides are quiet.
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                assert_eq!(t.destination, self.b_addr);
                self.wire.push(t.payload.clone());
                if !(self.drop)(&t) {
                    self.b
                        .handle_datagram(self.now, t.transport, self.a_addr, t.payload);
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                assert_eq!(t.destination, self.a_addr);
                self.wire.push(t.payload.clone());
                if !(self.drop)(&t) {
                    self.a
                        .handle_datagram(self.now, t.transport, self.b_addr, t.payload);
                }
            }
            self.a_events
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.b_events
                .extend(std::iter::from_fn(|| self.b.poll_event()));
            if !moved {
                return;
            }
        }
    }

    /// Jumps from deadline to deadline for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.deliver();
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    self.deliver();
                    return;
                }
            }
        }
    }

    fn place(&mut self, creds: Option<Credentials>) -> CallRef {
        let pc = PlaceCall {
            peer: self.b_addr,
            transport: Transport::Udp,
            target: "sip:+12025550142@127.0.0.1:5060".into(),
            from: "sip:+12025550100@127.0.0.1:5070".into(),
            credentials: creds,
            media: media(40000, vec![Codec::Pcmu, Codec::Pcma]),
            headers: Vec::new(),
        };
        let call = self.a.place_call(pc, self.now);
        self.deliver();
        call
    }

    fn take_incoming(&mut self) -> IncomingCall {
        let i = self
            .b_events
            .iter()
            .position(|e| matches!(e, Event::Incoming(_)))
            .expect("incoming call");
        match self.b_events.remove(i) {
            Event::Incoming(c) => *c,
            _ => unreachable!(),
        }
    }

    fn idle(&self) -> bool {
        let (a, b) = (self.a.stats(), self.b.stats());
        a.transactions == 0 && b.transactions == 0 && a.calls == 0 && b.calls == 0
    }
}

fn call_events(events: &[Event], call: CallRef) -> Vec<CallEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Call(c, ev) if *c == call => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn call_answer_confirm_hangup_and_everything_is_released() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    assert_eq!(inc.did, "+12025550142");
    assert_eq!(inc.caller.as_deref(), Some("+12025550100"));
    assert_eq!(inc.source, p.a_addr);
    assert_eq!(inc.offer.as_ref().unwrap().media[0].port, 40000);
    p.b.ring(inc.call, p.now).unwrap();
    let neg =
        p.b.answer(
            inc.call,
            media(30000, vec![Codec::Pcma, Codec::Pcmu]),
            p.now,
        )
        .unwrap();
    assert_eq!((neg.codec, neg.remote.port()), (Codec::Pcmu, 40000));
    p.deliver();
    let a_ev = call_events(&p.a_events, a_call);
    assert_eq!(a_ev[0], CallEvent::Progress { status: 180 });
    assert!(
        matches!(&a_ev[1], CallEvent::Answered { negotiated } if negotiated.remote.port() == 30000 && negotiated.codec == Codec::Pcmu)
    );
    assert_eq!(
        call_events(&p.b_events, inc.call),
        vec![CallEvent::Confirmed]
    );
    p.a.hangup(a_call, p.now).unwrap();
    p.deliver();
    assert_eq!(
        call_events(&p.b_events, inc.call).last(),
        Some(&CallEvent::Ended {
            reason: EndReason::RemoteBye
        })
    );
    p.run_for(Duration::from_secs(40));
    assert!(p.idle(), "{:?} {:?}", p.a.stats(), p.b.stats());
    // Tags and branches on the wire are lowercase hex (SIPp-friendly).
    for msg in &p.wire {
        let Ok(m) = parse_datagram(msg.clone()) else {
            panic!()
        };
        let tag = m.headers().from_hdr().unwrap().tag().unwrap().to_owned();
        assert!(
            tag.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "{tag}"
        );
    }
}

/// The callee answers and hangs up at once: its BYE reaches us before our ACK reaches it.
#[test]
fn a_bye_overtaking_our_ack_ends_the_answered_call() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    let ok = p.b.poll_transmit().expect("the 200");
    p.a.handle_datagram(p.now, ok.transport, p.b_addr, ok.payload);
    let ack = p.a.poll_transmit().expect("our ACK");
    // The callee hangs up before our ACK arrives (an answered, unconfirmed call ends with BYE).
    p.b.hangup(inc.call, p.now).unwrap();
    while let Some(t) = p.b.poll_transmit() {
        p.a.handle_datagram(p.now, t.transport, p.b_addr, t.payload);
    }
    p.b.handle_datagram(p.now, ack.transport, p.a_addr, ack.payload);
    p.run_for(Duration::from_secs(40));
    let events = call_events(&p.a_events, a_call);
    assert!(
        matches!(events[0], CallEvent::Answered { .. }),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&CallEvent::Ended {
            reason: EndReason::RemoteBye
        }),
        "{events:?}"
    );
    assert!(p.idle(), "{:?} {:?}", p.a.stats(), p.b.stats());
}

#[test]
fn cancel_before_answer_gets_487_and_cancelled_event() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    // CANCEL needs a provisional first: the 100 Trying after 200 ms of silence.
    p.run_for(Duration::from_millis(250));
    p.a.hangup(a_call, p.now).unwrap();
    p.deliver();
    assert_eq!(
        call_events(&p.b_events, inc.call),
        vec![CallEvent::Cancelled]
    );
    assert!(matches!(
        call_events(&p.a_events, a_call).last(),
        Some(CallEvent::Failed { status: 487, .. })
    ));
    assert_eq!(
        p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now),
        Err(CallError::NoSuchCall)
    );
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn reject_with_retry_after_reaches_caller() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.reject(
        inc.call,
        503,
        None,
        &[(HeaderName::RetryAfter, "30".into())],
        p.now,
    )
    .unwrap();
    p.deliver();
    assert_eq!(
        call_events(&p.a_events, a_call),
        vec![CallEvent::Failed {
            status: 503,
            reason: "Service Unavailable".into()
        }]
    );
    assert!(p
        .wire
        .iter()
        .any(|m| m.windows(15).any(|w| w == b"Retry-After: 30")));
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn no_common_codec_is_488() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    assert_eq!(
        p.b.answer(inc.call, media(30000, vec![Codec::Opus]), p.now),
        Err(CallError::NoCommonCodec)
    );
    p.deliver();
    assert!(matches!(
        call_events(&p.a_events, a_call)[..],
        [CallEvent::Failed { status: 488, .. }]
    ));
}

#[test]
fn digest_challenge_and_authenticated_retry() {
    let auth = ServerAuth {
        digest: DigestServer::new("voxbridge", [3; 32], 300, Algorithm::Sha256),
        users: vec![("trunk".into(), "pw".into())],
    };
    let mut p = Pair::new(|c| EndpointConfig {
        auth: Some(auth),
        ..c
    });
    let a_call = p.place(Some(Credentials {
        username: "trunk".into(),
        password: "pw".into(),
    }));
    let first = p.take_incoming();
    assert_eq!(first.auth, AuthStatus::None);
    p.b.challenge(first.call, false, p.now).unwrap();
    p.deliver();
    let second = p.take_incoming();
    assert_eq!(second.auth, AuthStatus::Authenticated("trunk".into()));
    p.b.answer(second.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    assert!(matches!(
        call_events(&p.a_events, a_call)[..],
        [CallEvent::Answered { .. }]
    ));
}

#[test]
fn wrong_password_gets_one_retry_then_fails() {
    let auth = ServerAuth {
        digest: DigestServer::new("voxbridge", [3; 32], 300, Algorithm::Md5),
        users: vec![("trunk".into(), "pw".into())],
    };
    let mut p = Pair::new(|c| EndpointConfig {
        auth: Some(auth),
        ..c
    });
    let a_call = p.place(Some(Credentials {
        username: "trunk".into(),
        password: "wrong".into(),
    }));
    let first = p.take_incoming();
    p.b.challenge(first.call, false, p.now).unwrap();
    p.deliver();
    let second = p.take_incoming();
    assert_eq!(second.auth, AuthStatus::Rejected);
    p.b.challenge(second.call, false, p.now).unwrap();
    p.deliver();
    assert!(matches!(
        call_events(&p.a_events, a_call)[..],
        [CallEvent::Failed { status: 401, .. }]
    ));
}

#[test]
fn lost_acks_make_uas_retransmit_2xx_then_give_up_with_bye() {
    let mut p = Pair::new(|c| c);
    p.drop = Box::new(|t| t.payload.starts_with(b"ACK "));
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.run_for(Duration::from_secs(40));
    let oks = p
        .wire
        .iter()
        .filter(|m| m.starts_with(b"SIP/2.0 200") && m.windows(12).any(|w| w == b"CSeq: 1 INVI"))
        .count();
    assert!(oks >= 8, "2xx retransmitted until Timer L: {oks}");
    assert_eq!(
        call_events(&p.b_events, inc.call),
        vec![CallEvent::Ended {
            reason: EndReason::AckTimeout
        }]
    );
    assert_eq!(
        call_events(&p.a_events, a_call).last(),
        Some(&CallEvent::Ended {
            reason: EndReason::RemoteBye
        })
    );
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn lost_invite_is_retransmitted_and_duplicate_gets_one_call() {
    let mut p = Pair::new(|c| c);
    let mut first = true;
    p.drop = Box::new(move |t| {
        let lose = first && t.payload.starts_with(b"INVITE");
        first &= !lose;
        lose
    });
    p.place(None);
    assert!(p.b_events.is_empty());
    p.run_for(Duration::from_millis(600));
    let _ = p.take_incoming();
    p.run_for(Duration::from_secs(2));
    assert!(
        !p.b_events.iter().any(|e| matches!(e, Event::Incoming(_))),
        "retransmissions absorbed"
    );
}

#[test]
fn unanswered_outbound_call_times_out_with_408() {
    let mut p = Pair::new(|c| c);
    p.drop = Box::new(|_| true);
    let a_call = p.place(None);
    p.run_for(Duration::from_secs(33));
    assert_eq!(
        call_events(&p.a_events, a_call),
        vec![CallEvent::Failed {
            status: 408,
            reason: "Request Timeout".into()
        }]
    );
}

fn raw(p: &mut Pair, wire: &str) -> Option<Response> {
    p.b.handle_datagram(
        p.now,
        Transport::Udp,
        p.a_addr,
        Bytes::from(wire.replace('\n', "\r\n")),
    );
    p.b_events.extend(std::iter::from_fn(|| p.b.poll_event()));
    let t = p.b.poll_transmit()?;
    match parse_datagram(t.payload) {
        Ok(Message::Response(r)) => Some(r),
        _ => None,
    }
}

const OPTIONS: &str = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKopt1\nFrom: <sip:probe@127.0.0.1>;tag=1\nTo: <sip:127.0.0.1>\nCall-ID: opt1\nCSeq: 1 OPTIONS\nUser-Agent: monitor\nContent-Length: 0\n\n";

#[test]
fn options_outside_dialog_is_200() {
    let mut p = Pair::new(|c| c);
    let r = raw(&mut p, OPTIONS).unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .get_str(&HeaderName::Allow)
        .unwrap()
        .contains("INVITE"));
}

#[test]
fn malformed_answerable_gets_400_and_garbage_is_counted() {
    let mut p = Pair::new(|c| c);
    let bad = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    assert_eq!(raw(&mut p, &bad).unwrap().status, 400);
    assert!(raw(&mut p, "\u{1}\u{2}garbage\n\n").is_none());
    let s = p.b.stats();
    assert_eq!((s.malformed_answered, s.malformed_dropped), (1, 1));
}

#[test]
fn require_100rel_is_420_with_unsupported() {
    let mut p = Pair::new(|c| c);
    let invite = OPTIONS
        .replace("OPTIONS", "INVITE")
        .replace("User-Agent: monitor", "Require: 100rel");
    let r = raw(&mut p, &invite).unwrap();
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get_str(&HeaderName::Unsupported), Some("100rel"));
    assert!(p.b_events.is_empty());
}

#[test]
fn scanners_are_dropped_and_floods_are_rate_limited() {
    let mut p = Pair::new(|c| EndpointConfig {
        rate_limit: Some(RateLimit {
            per_second: 5.0,
            burst: 3.0,
            ban: Duration::from_secs(60),
            exempt: vec![],
        }),
        ..c
    });
    assert!(raw(&mut p, &OPTIONS.replace("monitor", "friendly-scanner")).is_none());
    let mut answered = 0;
    for i in 0..10 {
        if raw(&mut p, &OPTIONS.replace("opt1", &format!("opt{i}x"))).is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 3);
    let s = p.b.stats();
    assert_eq!((s.scanner_dropped, s.rate_limited), (1, 7));
}

#[test]
fn reinvite_hold_is_answered_recvonly_and_reported() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    // Build the caller's re-INVITE from the dialog A holds.
    let c = p.a.calls.get_mut(&a_call).unwrap();
    let mut reinvite = c.request(Method::Invite, "127.0.0.1:5070", "<sip:127.0.0.1:5070>");
    reinvite
        .headers
        .push(HeaderName::ContentType, "application/sdp");
    let mut hold = crate::sdp::offer(
        &LocalMedia {
            direction: Direction::SendOnly,
            ..media(40000, vec![Codec::Pcmu])
        },
        1,
        2,
    );
    hold.media[0].direction = Some(Direction::SendOnly);
    reinvite.body = Bytes::from(hold.to_string());
    p.b.handle_datagram(p.now, Transport::Udp, p.a_addr, reinvite.to_bytes());
    p.deliver();
    let ev = call_events(&p.b_events, inc.call);
    assert!(
        matches!(ev.last(), Some(CallEvent::MediaUpdated { negotiated }) if negotiated.direction == Direction::RecvOnly),
        "{ev:?}"
    );
}

#[test]
fn bye_for_unknown_dialog_is_481() {
    let mut p = Pair::new(|c| c);
    let bye = OPTIONS
        .replace("OPTIONS", "BYE")
        .replace("To: <sip:127.0.0.1>", "To: <sip:127.0.0.1>;tag=zz");
    assert_eq!(raw(&mut p, &bye).unwrap().status, 481);
}

#[test]
fn transaction_cap_refuses_new_requests_with_503() {
    let mut p = Pair::new(|c| EndpointConfig {
        max_transactions: 1,
        ..c
    });
    assert_eq!(raw(&mut p, OPTIONS).unwrap().status, 200);
    let r = raw(&mut p, &OPTIONS.replace("opt1", "opt2")).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get_str(&HeaderName::RetryAfter), Some("5"));
    assert_eq!(p.b.stats().overload_rejected, 1);
}

#[test]
fn unanswered_inbound_call_gets_480_after_answer_timeout() {
    let mut p = Pair::new(|c| EndpointConfig {
        answer_timeout: Duration::from_secs(5),
        ..c
    });
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.run_for(Duration::from_secs(6));
    assert_eq!(
        call_events(&p.b_events, inc.call),
        vec![CallEvent::Ended {
            reason: EndReason::Unanswered
        }]
    );
    assert!(matches!(
        call_events(&p.a_events, a_call)[..],
        [CallEvent::Failed { status: 480, .. }]
    ));
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn our_reinvite_puts_peer_on_hold_and_back() {
    let mut p = Pair::new(|c| c);
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    let hold = LocalMedia {
        direction: Direction::SendOnly,
        ..media(40000, vec![Codec::Pcmu])
    };
    p.a.update_media(a_call, hold, p.now).unwrap();
    p.deliver();
    let b_ev = call_events(&p.b_events, inc.call);
    assert!(
        matches!(b_ev.last(), Some(CallEvent::MediaUpdated { negotiated }) if negotiated.direction == Direction::RecvOnly),
        "{b_ev:?}"
    );
    let a_ev = call_events(&p.a_events, a_call);
    assert!(
        matches!(a_ev.last(), Some(CallEvent::MediaUpdated { negotiated }) if negotiated.direction == Direction::SendOnly),
        "{a_ev:?}"
    );
    p.a.update_media(a_call, media(40000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    let a_ev = call_events(&p.a_events, a_call);
    assert!(
        matches!(a_ev.last(), Some(CallEvent::MediaUpdated { negotiated }) if negotiated.direction == Direction::SendRecv)
    );
    // The callee can re-INVITE too, and the call still ends cleanly.
    p.b.update_media(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    p.b.hangup(inc.call, p.now).unwrap();
    p.deliver();
    assert_eq!(
        call_events(&p.a_events, a_call).last(),
        Some(&CallEvent::Ended {
            reason: EndReason::RemoteBye
        })
    );
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn unknown_body_type_is_415_and_require_on_any_method_is_420() {
    let mut p = Pair::new(|c| c);
    let invut = OPTIONS.replace("OPTIONS", "INVITE").replace(
        "Content-Length: 0\n",
        "Content-Type: application/unknownformat\nContent-Length: 5\n",
    ) + "hello";
    let r = raw(&mut p, &invut).unwrap();
    assert_eq!(r.status, 415);
    assert_eq!(
        r.headers.get_str(&HeaderName::Accept),
        Some("application/sdp")
    );
    // RFC 4475 bext01: unknown extensions required on an OPTIONS.
    let bext = OPTIONS.replace(
        "User-Agent: monitor",
        "Require: nothingSupportsThis, nothingSupportsThisEither",
    );
    let r = raw(&mut p, &bext).unwrap();
    assert_eq!(r.status, 420);
    assert_eq!(
        r.headers.get_str(&HeaderName::Unsupported),
        Some("nothingSupportsThis, nothingSupportsThisEither")
    );
    assert!(p.b_events.is_empty());
}

#[test]
fn calls_are_ended_after_max_call_duration() {
    let mut p = Pair::new(|c| EndpointConfig {
        max_call_duration: Some(Duration::from_secs(60)),
        ..c
    });
    let a_call = p.place(None);
    let inc = p.take_incoming();
    p.b.answer(inc.call, media(30000, vec![Codec::Pcmu]), p.now)
        .unwrap();
    p.deliver();
    p.run_for(Duration::from_secs(30));
    assert_eq!(
        call_events(&p.b_events, inc.call),
        vec![CallEvent::Confirmed]
    );
    p.run_for(Duration::from_secs(45));
    assert_eq!(
        call_events(&p.b_events, inc.call).last(),
        Some(&CallEvent::Ended {
            reason: EndReason::MaxDuration
        })
    );
    assert_eq!(
        call_events(&p.a_events, a_call).last(),
        Some(&CallEvent::Ended {
            reason: EndReason::RemoteBye
        })
    );
    p.run_for(Duration::from_secs(40));
    assert!(p.idle());
}

#[test]
fn accept_without_sdp_is_406() {
    // RFC 4475 sdp01, byte for byte from the fixture (CRLF folded back for `raw`).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/sip/torture/sdp01.sip"
    );
    let sdp01 = String::from_utf8(std::fs::read(path).expect("fixture")).expect("ASCII fixture");
    let sdp01 = sdp01.replace("\r\n", "\n");
    let mut p = Pair::new(|c| c);
    let r = raw(&mut p, &sdp01).unwrap();
    assert_eq!(r.status, 406);
    assert!(p.b_events.is_empty());
    // The same INVITE accepting SDP among other types (with parameters) becomes a call. (The
    // RFC's `a=rtpmap:31 LPC` has no clock rate, which our SDP parser answers 400, so it gets one.)
    let accepted = sdp01
        .replace(
            "Accept: text/nobodyKnowsThis",
            "Accept: text/plain, Application/*;q=0.5",
        )
        .replace("a=rtpmap:31 LPC\n", "a=rtpmap:31 LPC/8000\n")
        .replace("Content-Length: 150", "Content-Length: 155")
        .replace("z9hG4bKkdjuw", "z9hG4bKkdjuw2")
        .replace("sdp01.", "sdp01b.");
    let second = raw(&mut p, &accepted).map(|r| r.status);
    assert!(second.is_none_or(|s| s < 300), "{second:?}");
    assert!(p.b_events.iter().any(|e| matches!(e, Event::Incoming(_))));
}
