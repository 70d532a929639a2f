//! The agent's side of a call before encoding: a bounded queue of 16 kHz PCM that the pacer
//! drains one frame per tick, comfort noise when the agent is quiet, and talk-spurt tracking
//! for the RTP marker bit.

use std::collections::VecDeque;
use std::time::Duration;

use super::PIPELINE_RATE;

/// Comfort noise level: about -66 dBFS, audible as "line open", never as hiss.
const COMFORT_NOISE_AMPLITUDE: i32 = 24;

pub(super) struct AgentAudio {
    queue: VecDeque<i16>,
    max_samples: usize,
    /// The frame most recently taken (what went out; the recorder's right channel).
    frame: Vec<i16>,
    comfort_noise: bool,
    talking: bool,
    noise_state: u32,
}

impl AgentAudio {
    pub(super) fn new(
        frame_samples: usize,
        max_queue: Duration,
        comfort_noise: bool,
        seed: u32,
    ) -> Self {
        Self {
            queue: VecDeque::with_capacity(PIPELINE_RATE as usize),
            max_samples: (max_queue.as_millis() as usize) * PIPELINE_RATE as usize / 1000,
            frame: vec![0; frame_samples],
            comfort_noise,
            talking: false,
            noise_state: seed | 1,
        }
    }

    /// Queues PCM; returns how many samples were accepted.
    pub(super) fn push(&mut self, pcm: &[i16]) -> usize {
        let room = self.max_samples.saturating_sub(self.queue.len());
        let n = room.min(pcm.len());
        self.queue.extend(&pcm[..n]);
        n
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(super) fn queued(&self) -> Duration {
        Duration::from_micros(self.queue.len() as u64 * 1_000_000 / u64::from(PIPELINE_RATE))
    }

    pub(super) fn frame(&self) -> &[i16] {
        &self.frame
    }

    /// Fills the next frame (queued audio, else comfort noise or silence); returns whether
    /// it starts a talk spurt (RFC 3551 §4.1: marker on the first packet after silence).
    pub(super) fn next_frame(&mut self) -> bool {
        let take = self.frame.len().min(self.queue.len());
        let voiced = take > 0;
        for (dst, src) in self.frame.iter_mut().zip(self.queue.drain(..take)) {
            *dst = src;
        }
        if voiced {
            self.frame[take..].fill(0);
        } else if self.comfort_noise {
            self.fill_comfort_noise();
        } else {
            self.frame.fill(0);
        }
        let spurt_start = voiced && !self.talking;
        self.talking = voiced;
        spurt_start
    }

    /// Silence in the recording while DTMF replaces audio.
    pub(super) fn mute_frame(&mut self) {
        self.frame.fill(0);
    }

    fn fill_comfort_noise(&mut self) {
        for s in &mut self.frame {
            // xorshift32: cheap, and every call gets its own sequence from its seed.
            self.noise_state ^= self.noise_state << 13;
            self.noise_state ^= self.noise_state >> 17;
            self.noise_state ^= self.noise_state << 5;
            *s = ((self.noise_state >> 16) as i32 % (2 * COMFORT_NOISE_AMPLITUDE + 1)
                - COMFORT_NOISE_AMPLITUDE) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_only_at_spurt_start_and_queue_bounded() {
        let mut a = AgentAudio::new(320, Duration::from_millis(100), true, 5);
        assert_eq!(a.push(&[1000; 2000]), 1600, "100 ms at 16 kHz");
        assert!(a.next_frame());
        assert!(!a.next_frame());
        a.clear();
        assert!(!a.next_frame(), "comfort noise is not a spurt");
        assert!(a
            .frame()
            .iter()
            .all(|&s| i32::from(s).abs() <= COMFORT_NOISE_AMPLITUDE));
        assert!(a.frame().iter().any(|&s| s != 0));
        a.push(&[5; 100]);
        assert!(a.next_frame());
        assert_eq!(&a.frame()[98..102], &[5, 5, 0, 0], "a short tail is padded");
    }
}
