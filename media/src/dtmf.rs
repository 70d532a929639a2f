//! RFC 4733 telephone-events: a receiver that turns the redundant packet stream into one
//! event per key press, and a sender that produces the packet sequence for a digit.
//!
//! A sender repeats each update and sends the end packet three times, all with the event's
//! start timestamp; the receiver keys an event by that timestamp, so retransmissions and
//! reordering never report a digit twice.

use thiserror::Error;

#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum DtmfError {
    #[error("telephone-event payload shorter than 4 bytes")]
    TooShort,
    #[error("not a DTMF key: {0:?}")]
    UnknownDigit(char),
}

/// One decoded RFC 4733 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let b = payload.get(..4).ok_or(DtmfError::TooShort)?;
        Ok(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    pub fn write(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = (u8::from(self.end) << 7) | (self.volume & 0x3f);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

const DIGITS: &[u8; 16] = b"0123456789*#ABCD";

pub fn event_to_digit(event: u8) -> Option<char> {
    DIGITS.get(usize::from(event)).map(|&d| char::from(d))
}

pub fn digit_to_event(digit: char) -> Result<u8, DtmfError> {
    let upper = digit.to_ascii_uppercase();
    DIGITS
        .iter()
        .position(|&d| char::from(d) == upper)
        .map(|p| p as u8)
        .ok_or(DtmfError::UnknownDigit(digit))
}

/// A completed key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    /// In RTP timestamp units.
    pub duration: u16,
    pub timestamp: u32,
}

/// Reports each key press once: on its first end packet, or when a new event starts before
/// the previous one's end packets arrived (all lost).
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// (start timestamp, event, longest duration seen, reported)
    current: Option<(u32, u8, u16, bool)>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet; returns at most two digits (a previous event whose
    /// end was lost, then this one if it ended).
    pub fn receive(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<[Option<Digit>; 2], DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let mut out = [None, None];
        match &mut self.current {
            Some((ts, event, duration, reported)) if *ts == timestamp && *event == ev.event => {
                *duration = (*duration).max(ev.duration);
                if ev.end && !*reported {
                    *reported = true;
                    out[1] = digit(*event, *duration, *ts);
                }
                return Ok(out);
            }
            Some((ts, event, duration, reported)) => {
                // Retransmissions of an older event (reordered) are ignored.
                if (timestamp.wrapping_sub(*ts) as i32) < 0 {
                    return Ok(out);
                }
                if !*reported {
                    out[0] = digit(*event, *duration, *ts);
                }
            }
            None => {}
        }
        self.current = Some((timestamp, ev.event, ev.duration, ev.end));
        if ev.end {
            out[1] = digit(ev.event, ev.duration, timestamp);
        }
        Ok(out)
    }
}

fn digit(event: u8, duration: u16, timestamp: u32) -> Option<Digit> {
    event_to_digit(event).map(|digit| Digit {
        digit,
        duration,
        timestamp,
    })
}

/// Copies of the end packet (RFC 4733 §2.5.1.4).
const END_REPEATS: u8 = 3;

/// Produces the packets of one key press, one per packet interval.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    timestamp: u32,
    /// Total duration and packet interval, in timestamp units.
    total: u32,
    step: u32,
    elapsed: u32,
    ends_sent: u8,
}

/// One packet to send: payload plus the RTP fields RFC 4733 dictates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub payload: [u8; 4],
    pub timestamp: u32,
    /// Set on the first packet of the event only.
    pub marker: bool,
}

impl DtmfSender {
    /// `timestamp` is the RTP timestamp at the start of the tone; `duration` and `step` are
    /// in timestamp units (e.g. 100 ms = 800 and 20 ms = 160 at 8 kHz).
    pub fn new(digit: char, timestamp: u32, duration: u32, step: u32) -> Result<Self, DtmfError> {
        Ok(Self {
            event: digit_to_event(digit)?,
            timestamp,
            // Durations are 16-bit: longer tones would need segmenting, which keys never need.
            total: duration.clamp(step.max(1), u32::from(u16::MAX)),
            step: step.max(1),
            elapsed: 0,
            ends_sent: 0,
        })
    }

    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_REPEATS
    }

    /// The next packet, or `None` once the third end packet went out.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        if self.is_done() {
            return None;
        }
        let marker = self.elapsed == 0;
        self.elapsed = (self.elapsed + self.step).min(self.total);
        let end = self.elapsed >= self.total;
        if end {
            self.ends_sent += 1;
        }
        let mut payload = [0u8; 4];
        TelephoneEvent {
            event: self.event,
            end,
            volume: 10,
            duration: self.elapsed as u16,
        }
        .write(&mut payload);
        Some(DtmfPacket {
            payload,
            timestamp: self.timestamp,
            marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(rx: &mut DtmfReceiver, ts: u32, p: &[u8]) -> Vec<Digit> {
        rx.receive(ts, p).unwrap().into_iter().flatten().collect()
    }

    #[test]
    fn sender_sequence_has_marker_durations_and_three_ends() {
        let mut tx = DtmfSender::new('5', 1000, 800, 160).unwrap();
        let packets: Vec<_> = std::iter::from_fn(|| tx.next_packet()).collect();
        assert_eq!(packets.len(), 5 + 2);
        assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
        assert!(packets.iter().all(|p| p.timestamp == 1000));
        let evs: Vec<_> = packets
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert_eq!(
            evs.iter().map(|e| e.duration).collect::<Vec<_>>(),
            [160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(evs.iter().filter(|e| e.end).count(), 3);
        assert!(evs.iter().all(|e| e.event == 5 && e.volume == 10));
    }

    #[test]
    fn receiver_reports_each_press_once() {
        let mut rx = DtmfReceiver::new();
        let mut got = vec![];
        for (ts, digit) in [(1000, '1'), (5000, '#'), (9000, '1')] {
            let mut tx = DtmfSender::new(digit, ts, 480, 160).unwrap();
            while let Some(p) = tx.next_packet() {
                got.extend(digits(&mut rx, p.timestamp, &p.payload));
            }
        }
        let d: Vec<_> = got
            .iter()
            .map(|d| (d.digit, d.duration, d.timestamp))
            .collect();
        assert_eq!(
            d,
            vec![('1', 480, 1000), ('#', 480, 5000), ('1', 480, 9000)]
        );
    }

    #[test]
    fn lost_end_packets_still_yield_the_digit_when_the_next_starts() {
        let mut rx = DtmfReceiver::new();
        let mut p = [0u8; 4];
        TelephoneEvent {
            event: 9,
            end: false,
            volume: 10,
            duration: 320,
        }
        .write(&mut p);
        assert!(digits(&mut rx, 100, &p).is_empty());
        TelephoneEvent {
            event: 2,
            end: true,
            volume: 10,
            duration: 400,
        }
        .write(&mut p);
        let d = digits(&mut rx, 2000, &p);
        assert_eq!(d.iter().map(|d| d.digit).collect::<String>(), "92");
        // A late retransmission of the old event is ignored.
        TelephoneEvent {
            event: 9,
            end: true,
            volume: 10,
            duration: 480,
        }
        .write(&mut p);
        assert!(digits(&mut rx, 100, &p).is_empty());
    }

    #[test]
    fn parse_errors_and_digit_mapping() {
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::TooShort));
        assert_eq!(digit_to_event('*'), Ok(10));
        assert_eq!(digit_to_event('d'), Ok(15));
        assert_eq!(digit_to_event('x'), Err(DtmfError::UnknownDigit('x')));
        assert_eq!(event_to_digit(11), Some('#'));
        assert_eq!(event_to_digit(16), None);
    }
}
