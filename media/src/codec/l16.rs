//! L16 (RFC 3551 §4.5.11): 16-bit linear PCM in network byte order.

use super::plc::Repeater;
use super::{check_len, AudioCodec, CodecError, CodecInfo};

pub struct L16 {
    rate: u32,
    frame: usize,
    plc: Repeater,
}

impl L16 {
    pub fn new(rate: u32, ptime_ms: u32) -> Self {
        let frame = (rate * ptime_ms / 1000) as usize;
        Self {
            rate,
            frame,
            plc: Repeater::new(frame),
        }
    }
}

impl AudioCodec for L16 {
    fn info(&self) -> CodecInfo {
        CodecInfo {
            name: "L16",
            rtp_clock_rate: self.rate,
            pcm_rate: self.rate,
            frame_samples: self.frame,
            frame_ticks: self.frame as u32,
            max_payload: 2 * self.frame,
        }
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_len(out, 2 * pcm.len())?;
        for (o, s) in out.chunks_exact_mut(2).zip(pcm) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        Ok(2 * pcm.len())
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if payload.len() % 2 != 0 {
            return Err(CodecError::OddPayload);
        }
        let n = payload.len() / 2;
        check_len(out, n)?;
        for (o, b) in out.iter_mut().zip(payload.chunks_exact(2)) {
            *o = i16::from_be_bytes([b[0], b[1]]);
        }
        self.plc.good(&out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, _next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        check_len(out, self.frame)?;
        Ok(self.plc.conceal(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_big_endian() {
        let mut c = L16::new(16_000, 20);
        assert_eq!(c.info().frame_samples, 320);
        let pcm = [0x0102i16, -2, i16::MIN, i16::MAX];
        let mut bytes = [0u8; 8];
        assert_eq!(c.encode(&pcm, &mut bytes).unwrap(), 8);
        assert_eq!(&bytes[..4], &[1, 2, 0xff, 0xfe]);
        let mut back = [0i16; 4];
        assert_eq!(c.decode(&bytes, &mut back).unwrap(), 4);
        assert_eq!(back, pcm);
        assert!(matches!(
            c.decode(&bytes[..3], &mut back),
            Err(CodecError::OddPayload)
        ));
        assert!(matches!(
            c.encode(&pcm, &mut bytes[..7]),
            Err(CodecError::OutputTooSmall { .. })
        ));
    }
}
