//! How many talking calls this machine's recognizers carry at a latency target.
//!
//! At start-up the engine is timed on a built-in clip ([`SpeechEngine::calibrate`]); from that
//! service time, the recognizers that can really run at once and a typical call's talk, a
//! queueing model gives the calls whose utterances are recognized within the target (p95).
//! The model is M/M/c (Erlang C): utterances from many independent callers arrive close to a
//! Poisson stream, and taking service times as exponential overstates the waits of what are
//! nearly constant decode times, so the figure errs on the safe side. The running server also
//! watches the real queue wait, which catches what a model of typical calls cannot.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engine::{Question, SpeechEngine};
use crate::error::AsrError;
use crate::frontend::{to_model_input, Upsampler};
use crate::pool::Priority;
use crate::wav::parse_wav;

/// A telephone utterance of typical length (3.4 s, 8 kHz, from the asr fixtures).
const CALIBRATION_CLIP: &[u8] = include_bytes!("../../fixtures/asr/free_09.wav");

/// Timed runs after one warm-up; the median is kept, so one slow run on a noisy machine does
/// not set the capacity.
const CALIBRATION_RUNS: usize = 3;

/// The share of a call's time its caller talks (a conversation with an agent; the capacity
/// bench's callers talk 41 % of the time).
pub const TALK_SHARE: f64 = 0.41;

/// The share of utterances allowed to miss the latency target.
const MISS_SHARE: f64 = 0.05;

/// What calibration measured, and the calls it allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Length of the clip recognized.
    pub utterance: Duration,
    /// Median time to recognize it on one recognizer while every recognizer works.
    pub service: Duration,
    /// Recognizers that can run at once: workers, at most the cores this process may use.
    pub recognizers: usize,
    /// Talking calls carried at the target.
    pub calls: usize,
}

impl SpeechEngine {
    /// Times the engine on the built-in clip and derives the talking calls carried at `target`
    /// (end of utterance → text, p95). Every recognizer that can run at once recognizes the
    /// clip at the same time, a warm-up round and three timed ones, so the time kept is that
    /// of a recognizer while the others are busy too (they share caches and memory bandwidth),
    /// which is the case near capacity. About a second of CPU per core for tiny.en on a slow
    /// core. Run it before calls arrive: it uses the recognizers.
    pub fn calibrate(&self, target: Duration) -> Result<Calibration, AsrError> {
        let pcm = parse_wav(CALIBRATION_CLIP).map_err(|source| AsrError::Wav {
            path: "built-in calibration clip".into(),
            source,
        })?;
        let audio = to_model_input(&pcm, Upsampler::ZeroStuff);
        let request = self.request(&Question::free());
        let recognizers = self.pool().capacity().min(usable_cores());
        let mut times = Vec::with_capacity(CALIBRATION_RUNS * recognizers);
        for round in 0..=CALIBRATION_RUNS {
            let (tx, rx) = mpsc::channel();
            for _ in 0..recognizers {
                let (tx, start) = (tx.clone(), Instant::now());
                self.pool().submit(
                    audio.clone(),
                    request.clone(),
                    Priority::Answer,
                    Box::new(move |result| {
                        // The receiver waits for every job of the round.
                        let _ = tx.send(result.map(|_| start.elapsed()));
                    }),
                )?;
            }
            drop(tx);
            for time in rx.iter().take(recognizers) {
                let time = time?;
                if round > 0 {
                    times.push(time);
                }
            }
        }
        times.sort_unstable();
        // No times: the pool closed under the calibration.
        let service = *times.get(times.len() / 2).ok_or(AsrError::PoolClosed)?;
        let utterance = Duration::from_millis(pcm.duration_ms());
        Ok(Calibration {
            utterance,
            service,
            recognizers,
            calls: talking_calls(service, recognizers, utterance.div_f64(TALK_SHARE), target),
        })
    }
}

/// The cores this process may run on (CPU affinity and cgroup quota included).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most calls, each finishing an utterance every `utterance_every` that takes `service` on
/// one of `recognizers`, for which at most 5 % of utterances wait longer than
/// `target - service` for a recognizer (M/M/c). At least one call: a node that cannot meet the
/// target still takes a call rather than refuse every one.
pub fn talking_calls(
    service: Duration,
    recognizers: usize,
    utterance_every: Duration,
    target: Duration,
) -> usize {
    let wait_budget = target.saturating_sub(service).as_secs_f64();
    let service = service.as_secs_f64();
    let every = utterance_every.as_secs_f64();
    if service <= 0.0 || every <= 0.0 || recognizers == 0 {
        return 1;
    }
    // Beyond c × every / service calls the recognizers cannot keep up at all.
    let bound = (recognizers as f64 * every / service).ceil() as usize;
    (1..=bound)
        .take_while(|&calls| {
            miss_share(calls as f64 / every, service, recognizers, wait_budget) <= MISS_SHARE
        })
        .last()
        .unwrap_or(1)
}

/// P(queue wait > `budget`) in an M/M/c queue with arrival rate `rate` and mean service time
/// `service`: Erlang C × e^(−(cμ − λ)·budget).
fn miss_share(rate: f64, service: f64, servers: usize, budget: f64) -> f64 {
    let load = rate * service;
    let c = servers as f64;
    if load >= c {
        return 1.0;
    }
    // Σ_{k<c} a^k/k!, and a^c/c!, built term by term (no factorial overflow).
    let mut term = 1.0;
    let mut below = 0.0;
    for k in 0..servers {
        below += term;
        term *= load / (k + 1) as f64;
    }
    let queued = term * c / (c - load);
    let erlang_c = queued / (below + queued);
    erlang_c * (-(c / service - rate) * budget).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_old_default_falls_out_of_the_machine_it_was_measured_on() {
        // docs/asr.md: ≈ 0.37 s per 3 s utterance on one thread, 2 recognizers, callers
        // talking 41 % of the time; 20 calls kept every utterance under 0.6 s there.
        let calls = talking_calls(ms(370), 2, ms(7_750), ms(1_000));
        assert!((18..=24).contains(&calls), "{calls}");
    }

    #[test]
    fn capacity_follows_the_recognizers_and_their_speed() {
        let base = talking_calls(ms(370), 2, ms(7_750), ms(1_000));
        assert!(talking_calls(ms(370), 1, ms(7_750), ms(1_000)) < base / 2 + 1);
        assert!(talking_calls(ms(370), 4, ms(7_750), ms(1_000)) > base * 2);
        assert!(talking_calls(ms(740), 2, ms(7_750), ms(1_000)) < base / 2);
    }

    #[test]
    fn a_recognizer_slower_than_the_target_still_takes_one_call() {
        assert_eq!(talking_calls(ms(1_500), 2, ms(7_750), ms(1_000)), 1);
        assert_eq!(talking_calls(Duration::ZERO, 2, ms(7_750), ms(1_000)), 1);
        assert_eq!(talking_calls(ms(300), 0, ms(7_750), ms(1_000)), 1);
    }

    #[test]
    fn erlang_c_matches_the_textbook() {
        // M/M/1 at 50 % load: P(wait > 0) = ρ = 0.5.
        assert!((miss_share(0.5, 1.0, 1, 0.0) - 0.5).abs() < 1e-9);
        // M/M/2, a = 1: C = 1/3.
        assert!((miss_share(1.0, 1.0, 2, 0.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(miss_share(2.0, 1.0, 2, 0.0), 1.0);
    }
}
