//! Packet loss concealment for codecs without their own: repeat the last good frame with a
//! gain ramping down to silence over three frames, so a single loss is barely audible and a
//! burst fades out instead of buzzing.

const FADE_FRAMES: u32 = 3;

#[derive(Debug, Clone)]
pub struct Repeater {
    last: Vec<i16>,
    /// Consecutive concealed frames so far.
    run: u32,
}

impl Repeater {
    pub fn new(frame_samples: usize) -> Self {
        Self {
            last: vec![0; frame_samples],
            run: 0,
        }
    }

    /// Remembers a decoded frame.
    pub fn good(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(self.last.len());
        self.last[..n].copy_from_slice(&pcm[..n]);
        self.last[n..].fill(0);
        self.run = 0;
    }

    /// Writes one concealment frame into `out` (which holds at least one frame).
    pub fn conceal(&mut self, out: &mut [i16]) -> usize {
        let n = self.last.len() as i64;
        let run = i64::from(self.run.min(FADE_FRAMES));
        self.run = self.run.saturating_add(1);
        let total = i64::from(FADE_FRAMES) * n;
        for (i, (o, &s)) in out.iter_mut().zip(&self.last).enumerate() {
            let remaining = ((i64::from(FADE_FRAMES) - run) * n - i as i64).max(0);
            *o = (i64::from(s) * remaining / total) as i16;
        }
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fades_to_silence() {
        let mut r = Repeater::new(4);
        r.good(&[1000; 4]);
        let mut out = [0i16; 4];
        r.conceal(&mut out);
        assert!(out[0] > 900 && out[3] > 600 && out[3] < out[0], "{out:?}");
        r.conceal(&mut out);
        r.conceal(&mut out);
        assert!(out[3] < 100, "{out:?}");
        r.conceal(&mut out);
        assert_eq!(out, [0; 4]);
    }
}
