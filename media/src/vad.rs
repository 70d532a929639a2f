//! Voice activity detection on 20 ms frames, producing speech start/end events with an
//! onset guard and a configurable hangover (the end-of-utterance and barge-in signals).
//!
//! Three frame classifiers are available; the default was chosen by measurement on the
//! speech-in-noise fixtures (tests/vad_fixtures.rs, numbers in docs/media.md):
//! - `FixedEnergy`: frame level above an absolute threshold. Fails as soon as the line is
//!   noisy (every frame is "speech" at 10 dB SNR).
//! - `AdaptiveEnergy`: level above a tracked noise floor by `snr_db`.
//! - `AdaptiveBand`: the same on the 300–2500 Hz band, which discards mains hum, DC and much
//!   of the noise outside the band where speech carries its energy.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VadMethod {
    FixedEnergy { threshold_dbfs: f32 },
    AdaptiveEnergy { snr_db: f32 },
    AdaptiveBand { snr_db: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    pub method: VadMethod,
    pub sample_rate: u32,
    pub frame: Duration,
    /// Speech must persist this long before `SpeechStart` (rejects clicks).
    pub onset: Duration,
    /// Silence must persist this long before `SpeechEnd` (bridges pauses between words).
    pub hangover: Duration,
}

impl VadConfig {
    pub fn new(sample_rate: u32) -> Self {
        Self {
            method: VadMethod::AdaptiveBand { snr_db: 9.0 },
            sample_rate,
            frame: Duration::from_millis(20),
            onset: Duration::from_millis(60),
            hangover: Duration::from_millis(600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech began `onset` ago (the frames before the event are part of the utterance).
    SpeechStart,
    /// Speech ended `hangover` ago.
    SpeechEnd,
}

/// Levels below this are digital silence whatever the noise floor says.
const ABSOLUTE_FLOOR_DB: f32 = -60.0;
/// Noise floor rise per frame while above it: slow, so speech does not drag it up.
const FLOOR_RISE_DB: f32 = 0.03;

#[derive(Debug, Clone)]
pub struct Vad {
    cfg: VadConfig,
    onset_frames: u32,
    hangover_frames: u32,
    floor_db: Option<f32>,
    band: BandPass,
    speaking: bool,
    run: u32,
}

impl Vad {
    pub fn new(cfg: VadConfig) -> Self {
        let frame_ms = cfg.frame.as_millis().max(1) as u32;
        Self {
            onset_frames: (cfg.onset.as_millis() as u32).div_ceil(frame_ms).max(1),
            hangover_frames: (cfg.hangover.as_millis() as u32).div_ceil(frame_ms).max(1),
            floor_db: None,
            band: BandPass::new(cfg.sample_rate),
            speaking: false,
            run: 0,
            cfg,
        }
    }

    pub fn is_speech(&self) -> bool {
        self.speaking
    }

    /// Classifies one frame and returns a start/end transition, if any.
    pub fn process(&mut self, frame: &[i16]) -> Option<VadEvent> {
        let active = self.classify(frame);
        if active == self.speaking {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.speaking {
            self.hangover_frames
        } else {
            self.onset_frames
        };
        if self.run < needed {
            return None;
        }
        self.run = 0;
        self.speaking = active;
        Some(if active {
            VadEvent::SpeechStart
        } else {
            VadEvent::SpeechEnd
        })
    }

    fn classify(&mut self, frame: &[i16]) -> bool {
        match self.cfg.method {
            VadMethod::FixedEnergy { threshold_dbfs } => {
                level_db(frame.iter().copied()) > threshold_dbfs
            }
            VadMethod::AdaptiveEnergy { snr_db } => {
                let level = level_db(frame.iter().copied());
                self.above_floor(level, snr_db)
            }
            VadMethod::AdaptiveBand { snr_db } => {
                let band = &mut self.band;
                let level = level_db(frame.iter().map(|&s| band.filter(s)));
                self.above_floor(level, snr_db)
            }
        }
    }

    /// Tracks the noise floor (falls at once, rises slowly) and tests `level` against it.
    fn above_floor(&mut self, level: f32, snr_db: f32) -> bool {
        let floor = self.floor_db.get_or_insert(level);
        let active = level > ABSOLUTE_FLOOR_DB && level > *floor + snr_db;
        if level < *floor {
            *floor = level;
        } else {
            *floor += FLOOR_RISE_DB;
        }
        active
    }
}

fn level_db(samples: impl Iterator<Item = i16>) -> f32 {
    let (mut sum, mut n) = (0f32, 0u32);
    for s in samples {
        let x = f32::from(s);
        sum += x * x;
        n += 1;
    }
    let ms = sum / n.max(1) as f32 / (32768.0 * 32768.0);
    10.0 * (ms + 1e-12).log10()
}

/// One-pole high-pass (300 Hz) followed by one-pole low-pass (2.5 kHz).
#[derive(Debug, Clone)]
struct BandPass {
    hp_a: f32,
    lp_a: f32,
    x1: f32,
    hp_y: f32,
    lp_y: f32,
}

impl BandPass {
    fn new(rate: u32) -> Self {
        let coeff = |fc: f32| (-2.0 * std::f32::consts::PI * fc / rate as f32).exp();
        Self {
            hp_a: coeff(300.0),
            lp_a: coeff(2500.0),
            x1: 0.0,
            hp_y: 0.0,
            lp_y: 0.0,
        }
    }

    fn filter(&mut self, s: i16) -> i16 {
        let x = f32::from(s);
        self.hp_y = self.hp_a * (self.hp_y + x - self.x1);
        self.x1 = x;
        self.lp_y = (1.0 - self.lp_a) * self.hp_y + self.lp_a * self.lp_y;
        self.lp_y as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f64 * 0.39).sin() * amp) as i16)
            .collect()
    }

    #[test]
    fn onset_and_hangover_shape_the_events() {
        let mut cfg = VadConfig::new(16_000);
        // Broadband level so frame boundaries are exact (the band filter has a tail).
        cfg.method = VadMethod::AdaptiveEnergy { snr_db: 9.0 };
        let mut v = Vad::new(cfg);
        let quiet = tone(30.0, 320);
        let loud = tone(8000.0, 320);
        let mut events = vec![];
        let frames = std::iter::repeat_n(&quiet, 20)
            .chain(std::iter::repeat_n(&loud, 1)) // a click: shorter than onset
            .chain(std::iter::repeat_n(&quiet, 10))
            .chain(std::iter::repeat_n(&loud, 20))
            .chain(std::iter::repeat_n(&quiet, 10)) // a pause shorter than hangover
            .chain(std::iter::repeat_n(&loud, 5))
            .chain(std::iter::repeat_n(&quiet, 40));
        for (i, f) in frames.enumerate() {
            if let Some(e) = v.process(f) {
                events.push((i, e));
            }
        }
        // Start 3 frames into the speech at frame 31; end 30 frames after it stops at 66.
        assert_eq!(
            events,
            vec![(33, VadEvent::SpeechStart), (95, VadEvent::SpeechEnd)]
        );
    }
}
