//! Opus via audiopus (libopus from the system, found through pkg-config). Mono on both sides;
//! the RTP clock is 48 kHz whatever the PCM rate (RFC 7587). The PCM side runs at the
//! pipeline's rate so no resampler is needed: libopus decodes natively to 8/16/48 kHz.

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};

use super::{check_len, AudioCodec, CodecError, CodecInfo};

/// RFC 6716: a frame never exceeds 1275 bytes.
const MAX_PACKET: usize = 1275;
/// `OPUS_SET_PACKET_LOSS_PERC_REQUEST`: how much loss the in-band FEC is tuned for.
const SET_PACKET_LOSS_PERC: i32 = 4014;

pub struct Opus {
    encoder: Encoder,
    decoder: Decoder,
    pcm_rate: u32,
    frame: usize,
    ptime_ms: u32,
}

/// libopus runs at 8, 12, 16, 24 or 48 kHz; anything else gets 48 kHz (callers read the
/// actual rate back from `info().pcm_rate`).
fn sample_rate(rate: u32) -> SampleRate {
    match rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        _ => SampleRate::Hz48000,
    }
}

impl Opus {
    pub fn new(pcm_rate: u32, ptime_ms: u32) -> Result<Self, CodecError> {
        let rate = sample_rate(pcm_rate);
        let mut encoder = Encoder::new(rate, Channels::Mono, Application::Voip)?;
        encoder.set_bitrate(Bitrate::BitsPerSecond(24_000))?;
        encoder.set_inband_fec(true)?;
        encoder.set_encoder_ctl_request(SET_PACKET_LOSS_PERC, 10)?;
        let decoder = Decoder::new(rate, Channels::Mono)?;
        let pcm_rate = rate as i32 as u32;
        Ok(Self {
            encoder,
            decoder,
            pcm_rate,
            frame: (pcm_rate * ptime_ms / 1000) as usize,
            ptime_ms,
        })
    }
}

impl AudioCodec for Opus {
    fn info(&self) -> CodecInfo {
        CodecInfo {
            name: "opus",
            rtp_clock_rate: 48_000,
            pcm_rate: self.pcm_rate,
            frame_samples: self.frame,
            frame_ticks: 48 * self.ptime_ms,
            max_payload: MAX_PACKET,
        }
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        Ok(self.encoder.encode(pcm, out)?)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_len(out, self.frame)?;
        // Let libopus size the output from the packet's own TOC (it may carry 10–60 ms).
        Ok(self.decoder.decode(Some(payload), out, false)?)
    }

    fn conceal(&mut self, next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        check_len(out, self.frame)?;
        let out = &mut out[..self.frame];
        // With the next packet in hand, its FEC layer rebuilds the lost one; otherwise PLC.
        Ok(match next {
            Some(next) => self.decoder.decode(Some(next), out, true)?,
            None => self.decoder.decode(None::<&[u8]>, out, false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: f64) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 440.0 / rate).sin() * 8000.0) as i16)
            .collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64
    }

    #[test]
    fn encodes_decodes_and_recovers_loss_with_fec() {
        let mut c = Opus::new(16_000, 20).unwrap();
        let info = c.info();
        assert_eq!(
            (info.frame_samples, info.frame_ticks, info.rtp_clock_rate),
            (320, 960, 48_000)
        );
        let pcm = tone(320 * 50, 16_000.0);
        let mut packets = vec![];
        for f in pcm.chunks(320) {
            let mut buf = [0u8; MAX_PACKET];
            let n = c.encode(f, &mut buf).unwrap();
            packets.push(buf[..n].to_vec());
        }
        let mut out = [0i16; 960];
        let mut decoded = vec![];
        for (i, p) in packets.iter().enumerate() {
            let n = if i == 30 {
                c.conceal(Some(&packets[31]), &mut out).unwrap()
            } else if i == 40 {
                c.conceal(None, &mut out).unwrap()
            } else {
                c.decode(p, &mut out).unwrap()
            };
            assert_eq!(n, 320);
            decoded.push(out[..n].to_vec());
        }
        // Steady tone: recovered frames carry about the same energy as decoded ones.
        let reference = energy(&decoded[29]);
        let fec = energy(&decoded[30]);
        let plc = energy(&decoded[40]);
        assert!(
            fec > reference * 0.1 && fec < reference * 3.0,
            "fec {fec} ref {reference}"
        );
        assert!(plc > reference * 0.1, "plc {plc} ref {reference}");
    }
}
