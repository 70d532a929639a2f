//! A caller's RTP as one capture file that SIPp replays (`play_pcap_audio`): PCMU audio and
//! RFC 4733 key presses on one stream, one SSRC, in time order, as a phone sends them. SIPp's
//! own `rtp_stream` and `play_dtmf` send from two different ports, which a server that latches
//! onto the first source (as ours does) rightly ignores for the second.

use std::path::Path;

/// SIPp takes the capture's lowest destination port as the peer's media port.
const DEST_PORT: u16 = 6000;
/// What the test scenarios offer for telephone-event.
const EVENT_PT: u8 = 96;
const SSRC: u32 = 0x5eed_ca11;
/// 20 ms of 8 kHz audio.
const FRAME: usize = 160;
/// A key is held for 160 ms, as most phones send it.
const KEY_PACKETS: u16 = 8;

#[derive(Default)]
pub struct CallerRtp {
    packets: Vec<Vec<u8>>,
    seq: u16,
    timestamp: u32,
}

impl CallerRtp {
    /// Appends μ-law audio, one packet per 20 ms (the last one padded with silence).
    pub fn audio(&mut self, ulaw: &[u8]) {
        for chunk in ulaw.chunks(FRAME) {
            let mut payload = chunk.to_vec();
            payload.resize(FRAME, 0xff);
            self.push(0, false, payload);
            self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        }
    }

    /// Appends `ms` of μ-law silence.
    pub fn silence(&mut self, ms: u64) {
        self.audio(&vec![0xff; ms as usize * 8]);
    }

    /// Appends one key press: event packets every 20 ms with a growing duration, then the
    /// end packet sent three times (RFC 4733 §2.5.1.4), all 20 ms apart.
    pub fn key(&mut self, digit: char) {
        let event = match digit {
            '0'..='9' => digit as u8 - b'0',
            '*' => 10,
            '#' => 11,
            'A'..='D' => digit as u8 - b'A' + 12,
            _ => panic!("no key {digit:?}"),
        };
        for i in 1..=KEY_PACKETS {
            let duration = i * FRAME as u16;
            self.push(EVENT_PT, i == 1, event_payload(event, false, duration));
        }
        for _ in 0..3 {
            let duration = KEY_PACKETS * FRAME as u16;
            self.push(EVENT_PT, false, event_payload(event, true, duration));
        }
        self.timestamp = self
            .timestamp
            .wrapping_add(u32::from(KEY_PACKETS + 3) * FRAME as u32);
    }

    /// How long the stream lasts so far, in ms.
    pub fn ms(&self) -> u64 {
        self.packets.len() as u64 * 20
    }

    /// Writes the stream as an Ethernet-framed IPv4 pcap, packets 20 ms apart.
    pub fn write_pcap(&self, path: &Path) {
        let mut out = Vec::new();
        // Global header: little-endian magic, v2.4, no zone, snaplen 65535, Ethernet.
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, rtp) in self.packets.iter().enumerate() {
            let at_us = i as u64 * 20_000;
            let frame = ethernet_udp(rtp);
            out.extend_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        std::fs::write(path, out).expect("write the caller's pcap");
    }

    fn push(&mut self, payload_type: u8, marker: bool, payload: Vec<u8>) {
        let mut rtp = Vec::with_capacity(12 + payload.len());
        rtp.push(0x80);
        rtp.push(payload_type | if marker { 0x80 } else { 0 });
        rtp.extend_from_slice(&self.seq.to_be_bytes());
        rtp.extend_from_slice(&self.timestamp.to_be_bytes());
        rtp.extend_from_slice(&SSRC.to_be_bytes());
        rtp.extend_from_slice(&payload);
        self.seq = self.seq.wrapping_add(1);
        self.packets.push(rtp);
    }
}

fn event_payload(event: u8, end: bool, duration: u16) -> Vec<u8> {
    // Volume 10 (-10 dBm0); the E bit on the end packets.
    let flags = if end { 0x80 | 10 } else { 10 };
    let [hi, lo] = duration.to_be_bytes();
    vec![event, flags, hi, lo]
}

/// `payload` in UDP in IPv4 (127.0.0.1 to itself) in Ethernet; SIPp rewrites ports and the
/// checksum when it sends.
fn ethernet_udp(payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len() as u16;
    let ip_len = 20 + udp_len;
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&ip_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&5000u16.to_be_bytes());
    frame.extend_from_slice(&DEST_PORT.to_be_bytes());
    frame.extend_from_slice(&udp_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}
