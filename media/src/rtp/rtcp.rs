//! RTCP (RFC 3550 §6): zero-copy parsing of compound packets and writers for the SR, RR,
//! SDES CNAME and BYE packets a telephony endpoint sends.

use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    #[error("RTCP packet truncated")]
    Truncated,
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative count.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender-info section of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram, borrowing its report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        blocks: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        blocks: ReportBlocks<'a>,
    },
    Bye {
        ssrc: Option<u32>,
    },
    /// SDES, APP, feedback and anything else we do not act on.
    Other {
        packet_type: u8,
    },
}

/// Lazily decoded report blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.0.split_first_chunk::<REPORT_BLOCK_LEN>()?;
        self.0 = rest;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
        Some(ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost,
            extended_highest_seq: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }
}

/// Iterates the packets of a compound RTCP datagram.
pub struct Compound<'a>(&'a [u8]);

impl<'a> Compound<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Self(datagram)
    }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let result = parse_one(self.0);
        match result {
            Ok((packet, len)) => {
                self.0 = &self.0[len..];
                Some(Ok(packet))
            }
            Err(e) => {
                // A broken packet poisons the rest of the compound: stop there.
                self.0 = &[];
                Some(Err(e))
            }
        }
    }
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, usize), RtcpError> {
    let head = buf.get(..4).ok_or(RtcpError::Truncated)?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let count = usize::from(head[0] & 0x1f);
    let packet_type = head[1];
    let len = (usize::from(u16::from_be_bytes([head[2], head[3]])) + 1) * 4;
    let body = buf.get(4..len).ok_or(RtcpError::Truncated)?;
    let word = |i: usize| -> Result<u32, RtcpError> {
        body.get(i..i + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or(RtcpError::Truncated)
    };
    let blocks_at = |start: usize| -> Result<ReportBlocks<'_>, RtcpError> {
        body.get(start..start + count * REPORT_BLOCK_LEN)
            .map(ReportBlocks)
            .ok_or(RtcpError::Truncated)
    };
    let packet = match packet_type {
        PT_SR => RtcpPacket::SenderReport {
            ssrc: word(0)?,
            info: SenderInfo {
                ntp: (u64::from(word(4)?) << 32) | u64::from(word(8)?),
                rtp_timestamp: word(12)?,
                packet_count: word(16)?,
                octet_count: word(20)?,
            },
            blocks: blocks_at(4 + SENDER_INFO_LEN)?,
        },
        PT_RR => RtcpPacket::ReceiverReport {
            ssrc: word(0)?,
            blocks: blocks_at(4)?,
        },
        PT_BYE => RtcpPacket::Bye {
            ssrc: if count > 0 { Some(word(0)?) } else { None },
        },
        other => RtcpPacket::Other { packet_type: other },
    };
    Ok((packet, len))
}

/// Appends RTCP packets to a caller-provided buffer without allocating.
pub struct RtcpWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> RtcpWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RtcpError> {
        let dst = self
            .buf
            .get_mut(self.len..self.len + bytes.len())
            .ok_or(RtcpError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn header(&mut self, count: usize, packet_type: u8, body_len: usize) -> Result<(), RtcpError> {
        let words = u16::try_from((body_len + 4) / 4 - 1).map_err(|_| RtcpError::BufferTooSmall)?;
        let [hi, lo] = words.to_be_bytes();
        self.put(&[0x80 | (count as u8 & 0x1f), packet_type, hi, lo])
    }

    fn block(&mut self, b: &ReportBlock) -> Result<(), RtcpError> {
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff).to_be_bytes();
        self.put(&b.ssrc.to_be_bytes())?;
        self.put(&[b.fraction_lost, lost[1], lost[2], lost[3]])?;
        self.put(&b.extended_highest_seq.to_be_bytes())?;
        self.put(&b.jitter.to_be_bytes())?;
        self.put(&b.last_sr.to_be_bytes())?;
        self.put(&b.delay_since_last_sr.to_be_bytes())
    }

    /// A sender report with at most 31 report blocks.
    pub fn sender_report(
        &mut self,
        ssrc: u32,
        info: &SenderInfo,
        blocks: &[ReportBlock],
    ) -> Result<(), RtcpError> {
        let blocks = &blocks[..blocks.len().min(31)];
        self.header(
            blocks.len(),
            PT_SR,
            4 + SENDER_INFO_LEN + blocks.len() * REPORT_BLOCK_LEN,
        )?;
        self.put(&ssrc.to_be_bytes())?;
        self.put(&info.ntp.to_be_bytes())?;
        self.put(&info.rtp_timestamp.to_be_bytes())?;
        self.put(&info.packet_count.to_be_bytes())?;
        self.put(&info.octet_count.to_be_bytes())?;
        blocks.iter().try_for_each(|b| self.block(b))
    }

    /// A receiver report with at most 31 report blocks.
    pub fn receiver_report(&mut self, ssrc: u32, blocks: &[ReportBlock]) -> Result<(), RtcpError> {
        let blocks = &blocks[..blocks.len().min(31)];
        self.header(blocks.len(), PT_RR, 4 + blocks.len() * REPORT_BLOCK_LEN)?;
        self.put(&ssrc.to_be_bytes())?;
        blocks.iter().try_for_each(|b| self.block(b))
    }

    /// SDES with a single CNAME item, mandatory in every compound packet (RFC 3550 §6.1).
    pub fn sdes_cname(&mut self, ssrc: u32, cname: &[u8]) -> Result<(), RtcpError> {
        let cname = &cname[..cname.len().min(255)];
        // ssrc + type + len + text + at least one terminating zero, padded to 32 bits.
        let item_len = 4 + 2 + cname.len() + 1;
        let padded = item_len.div_ceil(4) * 4;
        self.header(1, PT_SDES, padded)?;
        self.put(&ssrc.to_be_bytes())?;
        self.put(&[1, cname.len() as u8])?;
        self.put(cname)?;
        for _ in 0..padded - (4 + 2 + cname.len()) {
            self.put(&[0])?;
        }
        Ok(())
    }

    pub fn bye(&mut self, ssrc: u32) -> Result<(), RtcpError> {
        self.header(1, PT_BYE, 4)?;
        self.put(&ssrc.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 7,
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 0x1_0005,
            jitter: 80,
            last_sr: 0xabcd_1234,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn compound_round_trip() {
        let mut buf = [0u8; 256];
        let mut w = RtcpWriter::new(&mut buf);
        let info = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 160,
            packet_count: 2,
            octet_count: 320,
        };
        w.sender_report(1, &info, &[block()]).unwrap();
        w.sdes_cname(1, b"voxbridge").unwrap();
        w.receiver_report(1, &[block(), block()]).unwrap();
        w.bye(1).unwrap();
        let n = w.len();
        assert_eq!(n % 4, 0);
        let packets: Vec<_> = Compound::new(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(packets.len(), 4);
        match packets[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: i,
                blocks,
            } => {
                assert_eq!(ssrc, 1);
                assert_eq!(i, info);
                assert_eq!(blocks.collect::<Vec<_>>(), vec![block()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            packets[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        );
        match packets[2] {
            RtcpPacket::ReceiverReport { blocks, .. } => assert_eq!(blocks.count(), 2),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(packets[3], RtcpPacket::Bye { ssrc: Some(1) });
    }

    #[test]
    fn truncated_and_bad_version() {
        let mut buf = [0u8; 64];
        let mut w = RtcpWriter::new(&mut buf);
        w.receiver_report(1, &[block()]).unwrap();
        let n = w.len();
        let mut it = Compound::new(&buf[..n - 4]);
        assert_eq!(it.next(), Some(Err(RtcpError::Truncated)));
        assert_eq!(it.next(), None);
        buf[0] = 0x40;
        assert_eq!(
            Compound::new(&buf[..n]).next(),
            Some(Err(RtcpError::BadVersion(1)))
        );
        // Count claims more blocks than the length holds.
        buf[0] = 0x80 | 3;
        assert_eq!(
            Compound::new(&buf[..n]).next(),
            Some(Err(RtcpError::Truncated))
        );
    }

    #[test]
    fn writer_reports_full_buffer() {
        let mut buf = [0u8; 20];
        let mut w = RtcpWriter::new(&mut buf);
        assert_eq!(
            w.receiver_report(1, &[block()]),
            Err(RtcpError::BufferTooSmall)
        );
    }
}
