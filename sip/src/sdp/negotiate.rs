//! Offer/answer (RFC 3264): the answerer picks the offerer's most preferred codec it supports,
//! keeps telephone-event when offered, rejects other streams with port 0 and mirrors the
//! direction. No common audio codec is an error the UA maps to 488.

use std::net::{IpAddr, SocketAddr};

use super::{Direction, Media, RtpMap, SessionDescription};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
    Opus,
}

impl Codec {
    fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    fn rtpmap(self, pt: u8) -> RtpMap {
        let (encoding, clock_rate, channels) = match self {
            Codec::Pcmu => ("PCMU", 8000, None),
            Codec::Pcma => ("PCMA", 8000, None),
            Codec::Opus => ("opus", 48000, Some(2)),
        };
        RtpMap {
            payload_type: pt,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        }
    }

    fn matches(self, pt: u8, map: Option<&RtpMap>) -> bool {
        match map {
            Some(m) => {
                let want = self.rtpmap(pt);
                m.encoding.eq_ignore_ascii_case(&want.encoding)
                    && m.clock_rate == want.clock_rate
                    && (self != Codec::Opus || m.channels == Some(2))
            }
            None => self.static_pt() == Some(pt),
        }
    }
}

/// What we can do: where we receive RTP and which codecs, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    pub codecs: Vec<Codec>,
    pub telephone_event: bool,
    pub ptime: u32,
    pub direction: Direction,
}

/// The agreed stream, for the media layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub remote: SocketAddr,
    pub codec: Codec,
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    pub ptime: u32,
    /// Our direction (sendonly when the peer put us on hold, inactive on mutual hold, ...).
    pub direction: Direction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no common codec")]
    NoCommonCodec,
    #[error("no connection address for the audio stream")]
    NoConnection,
}

const TELEPHONE_EVENT_PT: u8 = 101;
const OPUS_PT: u8 = 111;

/// Our offer for `local`.
pub fn offer(local: &LocalMedia, session_id: u64, version: u64) -> SessionDescription {
    let mut media = audio_media(local.port);
    for codec in &local.codecs {
        let pt = codec.static_pt().unwrap_or(OPUS_PT);
        media.formats.push(pt.to_string());
        media.rtpmaps.push(codec.rtpmap(pt));
        if *codec == Codec::Opus {
            media.fmtps.push((pt, "useinbandfec=1".to_owned()));
        }
    }
    if local.telephone_event {
        push_telephone_event(&mut media, TELEPHONE_EVENT_PT);
    }
    media.ptime = Some(local.ptime);
    media.direction = Some(local.direction);
    session(local.addr, session_id, version, vec![media])
}

/// Answers `offer`; returns the answer and what was agreed.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    session_id: u64,
    version: u64,
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let index = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP"))
        .ok_or(NegotiationError::NoAudio)?;
    let m = &offer.media[index];
    let (codec, pt) = pick(m, local).ok_or(NegotiationError::NoCommonCodec)?;
    let te = if local.telephone_event {
        telephone_event_pt(m)
    } else {
        None
    };
    let remote_ip = m
        .connection
        .or(offer.connection)
        .ok_or(NegotiationError::NoConnection)?;
    let direction = m.effective_direction(offer).answer_to(local.direction);
    let ptime = m.ptime.unwrap_or(local.ptime);

    let mut ours = audio_media(local.port);
    ours.formats.push(pt.to_string());
    ours.rtpmaps.push(codec.rtpmap(pt));
    if let Some(te) = te {
        push_telephone_event(&mut ours, te);
    }
    ours.ptime = Some(ptime);
    ours.direction = Some(direction);
    // RFC 3264 §6: one m-line per offered m-line; refused ones get port 0.
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, om)| {
            if i == index {
                ours.clone()
            } else {
                Media {
                    port: 0,
                    rtpmaps: Vec::new(),
                    fmtps: Vec::new(),
                    ptime: None,
                    direction: None,
                    connection: None,
                    ..om.clone()
                }
            }
        })
        .collect();
    let negotiated = Negotiated {
        remote: SocketAddr::new(remote_ip, m.port),
        codec,
        payload_type: pt,
        telephone_event_pt: te,
        ptime,
        direction,
    };
    Ok((session(local.addr, session_id, version, media), negotiated))
}

/// Reads the answer to our offer.
pub fn apply_answer(
    answer: &SessionDescription,
    local: &LocalMedia,
) -> Result<Negotiated, NegotiationError> {
    let m = answer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let (codec, pt) = pick(m, local).ok_or(NegotiationError::NoCommonCodec)?;
    let remote_ip = m
        .connection
        .or(answer.connection)
        .ok_or(NegotiationError::NoConnection)?;
    Ok(Negotiated {
        remote: SocketAddr::new(remote_ip, m.port),
        codec,
        payload_type: pt,
        telephone_event_pt: telephone_event_pt(m),
        ptime: m.ptime.unwrap_or(local.ptime),
        direction: m.effective_direction(answer).answer_to(local.direction),
    })
}

/// The first offered format (offerer's preference order) that we support.
fn pick(m: &Media, local: &LocalMedia) -> Option<(Codec, u8)> {
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| {
            let map = m.rtpmap(pt);
            local
                .codecs
                .iter()
                .find(|c| c.matches(pt, map))
                .map(|&c| (c, pt))
        })
}

fn telephone_event_pt(m: &Media) -> Option<u8> {
    m.rtpmaps
        .iter()
        .find(|r| r.encoding.eq_ignore_ascii_case("telephone-event") && r.clock_rate == 8000)
        .map(|r| r.payload_type)
}

fn push_telephone_event(m: &mut Media, pt: u8) {
    m.formats.push(pt.to_string());
    m.rtpmaps.push(RtpMap {
        payload_type: pt,
        encoding: "telephone-event".to_owned(),
        clock_rate: 8000,
        channels: None,
    });
    m.fmtps.push((pt, "0-16".to_owned()));
}

fn audio_media(port: u16) -> Media {
    Media {
        kind: "audio".to_owned(),
        port,
        proto: "RTP/AVP".to_owned(),
        formats: Vec::new(),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        connection: None,
    }
}

fn session(addr: IpAddr, session_id: u64, version: u64, media: Vec<Media>) -> SessionDescription {
    SessionDescription {
        origin_user: "voxbridge".to_owned(),
        session_id,
        session_version: version,
        origin_addr: addr,
        session_name: "voxbridge".to_owned(),
        connection: Some(addr),
        direction: None,
        media,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(codecs: Vec<Codec>) -> LocalMedia {
        LocalMedia {
            addr: "127.0.0.1".parse().unwrap(),
            port: 30000,
            codecs,
            telephone_event: true,
            ptime: 20,
            direction: Direction::SendRecv,
        }
    }

    fn parse(s: &str) -> SessionDescription {
        SessionDescription::parse(s.as_bytes()).unwrap()
    }

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:30\r\nm=video 5000 RTP/AVP 31\r\n";

    #[test]
    fn answer_takes_offerers_first_supported_codec_and_keeps_dtmf() {
        let (ans, neg) =
            answer(&parse(OFFER), &local(vec![Codec::Pcmu, Codec::Pcma]), 7, 1).unwrap();
        assert_eq!(
            (
                neg.codec,
                neg.payload_type,
                neg.telephone_event_pt,
                neg.ptime
            ),
            (Codec::Pcma, 8, Some(101), 30)
        );
        assert_eq!(neg.remote, "192.0.2.5:40000".parse().unwrap());
        assert_eq!(ans.media.len(), 2);
        assert_eq!(ans.media[1].port, 0);
        let text = ans.to_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("a=sendrecv"));
    }

    #[test]
    fn opus_matches_by_name_and_static_pts_without_rtpmap() {
        let (_, neg) = answer(&parse(OFFER), &local(vec![Codec::Opus]), 1, 1).unwrap();
        assert_eq!((neg.codec, neg.payload_type), (Codec::Opus, 111));
        let bare = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let (_, neg) = answer(&parse(bare), &local(vec![Codec::Pcmu]), 1, 1).unwrap();
        assert_eq!(
            (neg.codec, neg.telephone_event_pt, neg.ptime),
            (Codec::Pcmu, None, 20)
        );
    }

    #[test]
    fn no_common_codec_is_an_error() {
        let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        assert_eq!(
            answer(&parse(g729), &local(vec![Codec::Pcmu]), 1, 1).unwrap_err(),
            NegotiationError::NoCommonCodec
        );
        let video = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 4000 RTP/AVP 31\r\n";
        assert_eq!(
            answer(&parse(video), &local(vec![Codec::Pcmu]), 1, 1).unwrap_err(),
            NegotiationError::NoAudio
        );
    }

    #[test]
    fn hold_offers_are_mirrored() {
        let hold = OFFER.replace("a=ptime:30\r\n", "a=ptime:30\r\na=sendonly\r\n");
        let (ans, neg) = answer(&parse(&hold), &local(vec![Codec::Pcma]), 1, 2).unwrap();
        assert_eq!(neg.direction, Direction::RecvOnly);
        assert_eq!(ans.media[0].direction, Some(Direction::RecvOnly));
        let inactive = OFFER.replace("a=ptime:30\r\n", "a=inactive\r\n");
        assert_eq!(
            answer(&parse(&inactive), &local(vec![Codec::Pcma]), 1, 2)
                .unwrap()
                .1
                .direction,
            Direction::Inactive
        );
        assert_eq!(
            Direction::RecvOnly.answer_to(Direction::SendRecv),
            Direction::SendOnly
        );
    }

    #[test]
    fn offer_then_answer_round_trip() {
        let ours = local(vec![Codec::Opus, Codec::Pcmu, Codec::Pcma]);
        let o = offer(&ours, 1, 1);
        let peer = LocalMedia {
            port: 41000,
            addr: "127.0.0.2".parse().unwrap(),
            codecs: vec![Codec::Pcmu],
            ..ours.clone()
        };
        let (ans, _) = answer(&parse(&o.to_string()), &peer, 9, 1).unwrap();
        let neg = apply_answer(&parse(&ans.to_string()), &ours).unwrap();
        assert_eq!(
            (neg.codec, neg.payload_type, neg.telephone_event_pt),
            (Codec::Pcmu, 0, Some(101))
        );
        assert_eq!(neg.remote, "127.0.0.2:41000".parse().unwrap());
    }
}
