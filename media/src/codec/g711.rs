//! G.711 μ-law (PCMU) and A-law (PCMA), table driven. The tables are built at compile time
//! from the ITU-T G.711 segment algorithm (as in the ITU/Sun reference `g711.c`), so the hot
//! path is one lookup per sample.

use super::plc::Repeater;
use super::{check_len, AudioCodec, CodecError, CodecInfo};

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

const fn segment(value: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if value <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Reference μ-law encoder of a 14-bit sample.
const fn ulaw_encode14(sample: i32) -> u8 {
    const ENDS: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    let (mut v, mask) = if sample < 0 {
        (-sample, 0x7f)
    } else {
        (sample, 0xff)
    };
    if v > ULAW_CLIP {
        v = ULAW_CLIP;
    }
    v += ULAW_BIAS >> 2;
    let seg = segment(v, &ENDS);
    let code = if seg >= 8 {
        0x7f
    } else {
        ((seg as i32) << 4) | ((v >> (seg + 1)) & 0xf)
    };
    (code ^ mask) as u8
}

const fn ulaw_decode(code: u8) -> i16 {
    let u = !code as i32;
    let t = (((u & 0x0f) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

/// Reference A-law encoder of a 13-bit sample.
const fn alaw_encode13(sample: i32) -> u8 {
    const ENDS: [i32; 8] = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
    let (v, mask) = if sample >= 0 {
        (sample, 0xd5)
    } else {
        (-sample - 1, 0x55)
    };
    let seg = segment(v, &ENDS);
    let code = if seg >= 8 {
        0x7f
    } else if seg < 2 {
        ((seg as i32) << 4) | ((v >> 1) & 0xf)
    } else {
        ((seg as i32) << 4) | ((v >> seg) & 0xf)
    };
    (code ^ mask) as u8
}

const fn alaw_decode(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0f) << 4;
    let seg = (a & 0x70) >> 4;
    t = match seg {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (seg - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const ULAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode(i as u8);
        i += 1;
    }
    t
};

const ALAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode(i as u8);
        i += 1;
    }
    t
};

/// Indexed by the 14-bit sample (`pcm >> 2`) offset to be non-negative.
static ULAW_ENC: [u8; 1 << 14] = {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < 1 << 14 {
        t[i] = ulaw_encode14(i as i32 - (1 << 13));
        i += 1;
    }
    t
};

/// Indexed by the 13-bit sample (`pcm >> 3`) offset to be non-negative.
static ALAW_ENC: [u8; 1 << 13] = {
    let mut t = [0u8; 1 << 13];
    let mut i = 0;
    while i < 1 << 13 {
        t[i] = alaw_encode13(i as i32 - (1 << 12));
        i += 1;
    }
    t
};

#[inline]
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    ULAW_ENC[((i32::from(pcm) >> 2) + (1 << 13)) as usize]
}

#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DEC[usize::from(code)]
}

#[inline]
pub fn linear_to_alaw(pcm: i16) -> u8 {
    ALAW_ENC[((i32::from(pcm) >> 3) + (1 << 12)) as usize]
}

#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DEC[usize::from(code)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    Mu,
    A,
}

pub struct G711 {
    law: G711Law,
    frame: usize,
    plc: Repeater,
}

impl G711 {
    pub fn new(law: G711Law, ptime_ms: u32) -> Self {
        let frame = (8 * ptime_ms) as usize;
        Self {
            law,
            frame,
            plc: Repeater::new(frame),
        }
    }
}

impl AudioCodec for G711 {
    fn info(&self) -> CodecInfo {
        CodecInfo {
            name: match self.law {
                G711Law::Mu => "PCMU",
                G711Law::A => "PCMA",
            },
            rtp_clock_rate: 8000,
            pcm_rate: 8000,
            frame_samples: self.frame,
            frame_ticks: self.frame as u32,
            max_payload: self.frame,
        }
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_len(out, pcm.len())?;
        let enc = match self.law {
            G711Law::Mu => linear_to_ulaw,
            G711Law::A => linear_to_alaw,
        };
        for (o, &s) in out.iter_mut().zip(pcm) {
            *o = enc(s);
        }
        Ok(pcm.len())
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_len(out, payload.len())?;
        let table = match self.law {
            G711Law::Mu => &ULAW_DEC,
            G711Law::A => &ALAW_DEC,
        };
        for (o, &c) in out.iter_mut().zip(payload) {
            *o = table[usize::from(c)];
        }
        self.plc.good(&out[..payload.len()]);
        Ok(payload.len())
    }

    fn conceal(&mut self, _next: Option<&[u8]>, out: &mut [i16]) -> Result<usize, CodecError> {
        check_len(out, self.frame)?;
        Ok(self.plc.conceal(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the G.711 tables (Table 2a μ-law, Table 1a A-law decoder outputs, scaled
    /// to 16 bits as every PCM toolchain does).
    #[test]
    fn known_vectors() {
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0xfe), 8);
        assert_eq!(ulaw_to_linear(0xef), 132); // first step of segment 1
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn decode_then_encode_is_identity() {
        for c in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "A-law {c:#x}");
            // μ-law has two zeros (0x7f, 0xff); both encode back as +0.
            let expect = if c == 0x7f { 0xff } else { c };
            assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), expect, "μ-law {c:#x}");
        }
    }

    /// Every 16-bit input: the quantisation error stays within half the step of its segment
    /// and the code sequence is monotonic.
    #[test]
    fn error_bounded_and_monotonic_over_all_inputs() {
        let mut prev_u = i32::MIN;
        let mut prev_a = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(x)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(x)));
            let xi = i32::from(x);
            // Logarithmic quantiser: half a step is about 1/32 of the magnitude (plus the
            // linear first segment); beyond ±32124 the codes clip.
            if xi.abs() <= 32_000 {
                let bound = xi.abs() / 28 + 9;
                assert!((u - xi).abs() <= bound, "μ-law {x} -> {u}");
                assert!((a - xi).abs() <= bound, "A-law {x} -> {a}");
            }
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {x}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn frame_round_trip_and_plc() {
        for law in [G711Law::Mu, G711Law::A] {
            let mut c = G711::new(law, 20);
            let pcm: Vec<i16> = (0..160)
                .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
                .collect();
            let mut enc = [0u8; 160];
            assert_eq!(c.encode(&pcm, &mut enc).unwrap(), 160);
            let mut dec = [0i16; 160];
            assert_eq!(c.decode(&enc, &mut dec).unwrap(), 160);
            for (a, b) in pcm.iter().zip(&dec) {
                assert!((a - b).abs() <= 256, "{a} vs {b}");
            }
            let mut plc = [0i16; 160];
            assert_eq!(c.conceal(None, &mut plc).unwrap(), 160);
            assert!(plc.iter().zip(&dec).all(|(p, d)| p.abs() <= d.abs()));
            assert!(plc.iter().any(|&p| p != 0));
        }
    }
}
