//! SDP text parser: line-oriented, tolerant of LF-only line ends and unknown lines/attributes,
//! strict on the fields offer/answer relies on (o=, c=, m=, rtpmap, ptime).

use std::net::IpAddr;

use super::{Direction, Media, RtpMap, SessionDescription};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP is not UTF-8")]
    Encoding,
    #[error("SDP larger than allowed")]
    TooLarge,
    #[error("missing or malformed v= line")]
    Version,
    #[error("malformed o= line")]
    Origin,
    #[error("malformed c= line")]
    Connection,
    #[error("malformed m= line")]
    Media,
    #[error("malformed a=rtpmap")]
    RtpMap,
    #[error("malformed a=ptime")]
    Ptime,
    #[error("too many media descriptions or formats")]
    TooMany,
}

const MAX_SDP: usize = 16 * 1024;
const MAX_MEDIA: usize = 8;
const MAX_FORMATS: usize = 32;

impl SessionDescription {
    pub fn parse(bytes: &[u8]) -> Result<SessionDescription, SdpError> {
        if bytes.len() > MAX_SDP {
            return Err(SdpError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::Encoding)?;
        let mut lines = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty());
        if lines.next() != Some("v=0") {
            return Err(SdpError::Version);
        }
        let mut sdp = SessionDescription {
            origin_user: String::new(),
            session_id: 0,
            session_version: 0,
            origin_addr: IpAddr::from([0, 0, 0, 0]),
            session_name: String::new(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        let mut seen_origin = false;
        for line in lines {
            let Some((kind, value)) = line.split_once('=') else {
                continue;
            };
            match (kind, sdp.media.last_mut()) {
                ("o", None) => {
                    parse_origin(value, &mut sdp)?;
                    seen_origin = true;
                }
                ("s", None) => sdp.session_name = value.to_owned(),
                ("c", None) => sdp.connection = Some(parse_connection(value)?),
                ("c", Some(m)) => m.connection = Some(parse_connection(value)?),
                ("m", _) => {
                    if sdp.media.len() == MAX_MEDIA {
                        return Err(SdpError::TooMany);
                    }
                    sdp.media.push(parse_media(value)?);
                }
                ("a", None) => {
                    if let Some(d) = parse_direction(value) {
                        sdp.direction = Some(d);
                    }
                }
                ("a", Some(m)) => parse_media_attribute(value, m)?,
                _ => {}
            }
        }
        if !seen_origin {
            return Err(SdpError::Origin);
        }
        Ok(sdp)
    }
}

fn parse_origin(value: &str, sdp: &mut SessionDescription) -> Result<(), SdpError> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    let [user, id, version, "IN", _, addr] = f.as_slice() else {
        return Err(SdpError::Origin);
    };
    sdp.origin_user = (*user).to_owned();
    sdp.session_id = id.parse().map_err(|_| SdpError::Origin)?;
    sdp.session_version = version.parse().map_err(|_| SdpError::Origin)?;
    // Host names are legal in o=; only the value matters to nobody, so keep 0.0.0.0 then.
    sdp.origin_addr = addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Ok(())
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let f: Vec<&str> = value.split_ascii_whitespace().collect();
    let ["IN", _, addr] = f.as_slice() else {
        return Err(SdpError::Connection);
    };
    // Multicast TTL suffix ("/127") is not used by telephony peers; drop it if present.
    let addr = addr.split('/').next().unwrap_or_default();
    addr.parse().map_err(|_| SdpError::Connection)
}

fn parse_media(value: &str) -> Result<Media, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(SdpError::Media);
    };
    // Port may carry "/count" (RFC 8866 §5.14); only the base port matters here.
    let port = port
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| SdpError::Media)?;
    let formats: Vec<String> = f.map(str::to_owned).collect();
    if formats.len() > MAX_FORMATS {
        return Err(SdpError::TooMany);
    }
    Ok(Media {
        kind: kind.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        connection: None,
    })
}

fn parse_direction(value: &str) -> Option<Direction> {
    Some(match value {
        "sendrecv" => Direction::SendRecv,
        "sendonly" => Direction::SendOnly,
        "recvonly" => Direction::RecvOnly,
        "inactive" => Direction::Inactive,
        _ => return None,
    })
}

fn parse_media_attribute(value: &str, m: &mut Media) -> Result<(), SdpError> {
    if let Some(d) = parse_direction(value) {
        m.direction = Some(d);
    } else if let Some(rest) = value.strip_prefix("rtpmap:") {
        let (pt, enc) = rest.split_once(' ').ok_or(SdpError::RtpMap)?;
        let mut parts = enc.trim().split('/');
        let (Some(name), Some(rate)) = (parts.next(), parts.next()) else {
            return Err(SdpError::RtpMap);
        };
        let channels = match parts.next() {
            Some(c) => Some(c.parse().map_err(|_| SdpError::RtpMap)?),
            None => None,
        };
        if m.rtpmaps.len() < MAX_FORMATS {
            m.rtpmaps.push(RtpMap {
                payload_type: pt.parse().map_err(|_| SdpError::RtpMap)?,
                encoding: name.to_owned(),
                clock_rate: rate.parse().map_err(|_| SdpError::RtpMap)?,
                channels,
            });
        }
    } else if let Some(rest) = value.strip_prefix("fmtp:") {
        if let Some((pt, params)) = rest.split_once(' ') {
            if let (Ok(pt), true) = (pt.parse(), m.fmtps.len() < MAX_FORMATS) {
                m.fmtps.push((pt, params.trim().to_owned()));
            }
        }
    } else if let Some(rest) = value.strip_prefix("ptime:") {
        m.ptime = Some(rest.trim().parse().map_err(|_| SdpError::Ptime)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 40000 RTP/AVP 111 8 0 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\nm=video 0 RTP/AVP 31\r\n";

    #[test]
    fn parses_and_reprints() {
        let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(sdp.connection, Some("192.0.2.5".parse().unwrap()));
        let m = &sdp.media[0];
        assert_eq!((m.port, m.formats.len(), m.ptime), (40000, 4, Some(20)));
        assert_eq!(m.rtpmap(111).unwrap().channels, Some(2));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        let again = SessionDescription::parse(sdp.to_string().as_bytes()).unwrap();
        assert_eq!(again, sdp);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            SessionDescription::parse(b"v=1\r\n"),
            Err(SdpError::Version)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n"),
            Err(SdpError::Origin)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::Media)
        );
        assert_eq!(
            SessionDescription::parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 nope\r\n"),
            Err(SdpError::Connection)
        );
    }
}
