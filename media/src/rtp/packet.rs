//! Zero-copy RTP packet view (RFC 3550 §5.1) and header writer.
//!
//! Parsing borrows the datagram: no allocation per packet (see docs/decisions.md for why this
//! replaces the `rtp` crate on the hot path).

use thiserror::Error;

/// Size of an RTP header without CSRCs or extension, which is all we ever send.
pub const RTP_HEADER_LEN: usize = 12;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    #[error("packet shorter than its header ({0} bytes)")]
    TooShort(usize),
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    #[error("padding length exceeds payload")]
    BadPadding,
    #[error("header extension overruns packet")]
    BadExtension,
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// The fields of an RTP header that a telephony endpoint acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP packet; CSRCs and header extensions are skipped, padding removed.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort(buf.len()));
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = buf[0] & 0x20 != 0;
        let has_extension = buf[0] & 0x10 != 0;
        let csrc_count = usize::from(buf[0] & 0x0f);
        let mut offset = RTP_HEADER_LEN + 4 * csrc_count;
        if buf.len() < offset {
            return Err(RtpError::TooShort(buf.len()));
        }
        if has_extension {
            let ext = buf.get(offset..offset + 4).ok_or(RtpError::BadExtension)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            offset += 4 + 4 * words;
            if buf.len() < offset {
                return Err(RtpError::BadExtension);
            }
        }
        let mut end = buf.len();
        if has_padding {
            let pad = usize::from(buf[end - 1]);
            if pad == 0 || pad > end - offset {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(Self {
            header: RtpHeader {
                marker: buf[1] & 0x80 != 0,
                payload_type: buf[1] & 0x7f,
                sequence: u16::from_be_bytes([buf[2], buf[3]]),
                timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            },
            payload: &buf[offset..end],
        })
    }
}

impl RtpHeader {
    /// Writes the 12-byte header (no CSRC, no extension) at the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let head = out
            .get_mut(..RTP_HEADER_LEN)
            .ok_or(RtpError::BufferTooSmall)?;
        head[0] = 0x80;
        head[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        head[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        head[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        head[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(RTP_HEADER_LEN)
    }
}

/// RFC 5761 §4: with rtcp-mux, a second octet in 192..=223 marks RTCP (RTP payload types
/// 64..=95 are never assigned so the ranges cannot collide).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 0,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 20];
        let n = header().write(&mut buf).unwrap();
        buf[n..].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.header, header());
        assert_eq!(p.payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn skips_csrc_extension_and_padding() {
        let mut buf = vec![0u8; 12];
        header().write(&mut buf).unwrap();
        buf[0] |= 0x20 | 0x10 | 1; // padding, extension, one CSRC
        buf.extend_from_slice(&[0, 0, 0, 9]); // CSRC
        buf.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one-word extension
        buf.extend_from_slice(&[7, 7]); // payload
        buf.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.payload, &[7, 7]);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        let mut buf = [0u8; 12];
        header().write(&mut buf).unwrap();
        buf[0] = 0x40;
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::BadVersion(1)));
        buf[0] = 0x80 | 0x20;
        buf[11] = 200; // padding count larger than the packet
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::BadPadding));
        buf[0] = 0x80 | 0x10; // extension flag but no extension header
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::BadExtension));
        buf[0] = 0x80 | 0x0f; // 15 CSRCs claimed
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::TooShort(12)));
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 201]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80]));
    }
}
