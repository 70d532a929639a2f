//! Speech recognition for calls: the engine, and admission by what it can carry.
//!
//! A call is admitted only while two things hold: a call slot is free (`[asr] max_calls`,
//! measured at start-up by default) and the recognizers are keeping up (their recent p95
//! queue wait leaves room for the latency target). The first is what this machine carries in
//! a typical call mix; the second catches what the typical mix does not (callers who talk more,
//! a slower machine than at start-up, a neighbour on the host): beyond it a new caller gets
//! 503 + Retry-After, and the calls already up keep their latency.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use voxbridge_asr::capacity::usable_cores;
use voxbridge_asr::{AsrError, Calibration, SpeechEngine};

use super::CapacityReport;
use crate::config::{AsrConfig, MaxCalls};
use crate::outcome::Outcome;

/// The window of recognition queue waits admission and `/readyz` look at.
const RECENT_WAITS: Duration = Duration::from_secs(30);

/// Calls per recognizer when calibration fails: below what the slowest machine measured so far
/// carries (4.5 per recognizer, docs/asr.md).
const FALLBACK_CALLS_PER_RECOGNIZER: usize = 2;

/// How `max_calls` was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sizing {
    /// A number in `[asr] max_calls`.
    Configured,
    /// Measured at start-up (`max_calls = "auto"`).
    Calibrated,
    /// `"auto"`, but calibration failed: a conservative fixed figure.
    Fallback,
}

pub(crate) struct Transcription {
    pub(super) engine: SpeechEngine,
    calls: Arc<Semaphore>,
    max_calls: usize,
    sizing: Sizing,
    calibration: Option<Calibration>,
    /// New calls are refused while the recent p95 queue wait is above this.
    wait_limit: Duration,
}

impl Transcription {
    /// Loads the model (blocking work, off the runtime) and, with `max_calls = "auto"`, times
    /// it to size the call limit.
    pub(super) async fn start(
        config: &AsrConfig,
        model: &std::path::Path,
    ) -> Result<Self, AsrError> {
        // More recognitions at once than cores only time-slice them: each takes longer and
        // ggml's spinning threads waste the rest (docs/asr.md).
        let cores = usable_cores();
        if config.max_concurrent > cores {
            tracing::info!(
                max_concurrent = config.max_concurrent,
                cores,
                "fewer cores than [asr] max_concurrent: running one recognition per core"
            );
        }
        let engine_config = voxbridge_asr::AsrConfig {
            threads: config.threads,
            max_concurrent: config.max_concurrent.min(cores),
            language: config.language.clone(),
            latency_target: Some(Duration::from_millis(config.latency_target_ms)),
            answer_model: config.answer_model.clone(),
            pair_utterances: config.pair_utterances,
            ..voxbridge_asr::AsrConfig::new(model)
        };
        let target = Duration::from_millis(config.latency_target_ms);
        let max_calls = config.max_calls;
        let (engine, calibration) = tokio::task::spawn_blocking(move || {
            let engine = SpeechEngine::load(engine_config)?;
            let calibration = (max_calls == MaxCalls::Auto).then(|| engine.calibrate(target));
            Ok::<_, AsrError>((engine, calibration))
        })
        .await
        .map_err(|e| AsrError::Engine(Box::new(e)))??;
        let recognizers = engine.pool().capacity();
        let (max_calls, sizing, calibration) = size(config.max_calls, calibration, recognizers);
        let wait_limit = wait_limit(target, calibration.as_ref());
        match &calibration {
            Some(c) => tracing::info!(
                calls = max_calls,
                recognizers = c.recognizers,
                utterance_ms = c.utterance.as_millis() as u64,
                recognized_in_ms = c.service.as_millis() as u64,
                target_ms = target.as_millis() as u64,
                "speech recognition calibrated"
            ),
            None => tracing::info!(calls = max_calls, ?sizing, "speech recognition call limit"),
        }
        Ok(Transcription {
            engine,
            calls: Arc::new(Semaphore::new(max_calls)),
            max_calls,
            sizing,
            calibration,
            wait_limit,
        })
    }

    /// A call slot, or the refusal (counted by reason).
    pub(super) fn admit(&self) -> Result<OwnedSemaphorePermit, Outcome> {
        let refuse = |reason: &'static str| {
            metrics::counter!("voxbridge_calls_refused_total", "reason" => reason).increment(1);
            Outcome::NoCapacity
        };
        if self.overloaded() {
            return Err(refuse("asr_queue_wait"));
        }
        self.calls
            .clone()
            .try_acquire_owned()
            .map_err(|_| refuse("asr_capacity"))
    }

    /// Call slots free now; none while the recognizers are not keeping up.
    pub(super) fn room(&self) -> usize {
        if self.overloaded() {
            0
        } else {
            self.calls.available_permits()
        }
    }

    fn overloaded(&self) -> bool {
        self.engine.pool().recent_wait(0.95, RECENT_WAITS) > self.wait_limit
    }

    /// Fills in the transcription part of `/readyz`'s capacity.
    pub(super) fn report(&self, report: &mut CapacityReport) {
        let pool = self.engine.pool();
        let ms = |d: Duration| d.as_millis() as u64;
        report.transcribed_calls = self.max_calls - self.calls.available_permits();
        report.transcription_slots = self.max_calls;
        report.transcription_sizing = Some(self.sizing);
        report.calibrated_utterance_ms = self.calibration.map(|c| ms(c.service));
        report.recognizing = pool.in_flight();
        report.recognition_queue = pool.queued();
        report.recognition_wait_p95_ms = ms(pool.recent_wait(0.95, RECENT_WAITS));
        report.recognition_wait_limit_ms = ms(self.wait_limit);
        report.second_opinions_skipped = pool.second_opinions_skipped();
        (report.utterance_pairs, report.utterance_pairs_split) = pool.pairs();
    }
}

/// The call limit, from the configuration or calibration; a failed calibration falls back to a
/// conservative figure and says so.
fn size(
    configured: MaxCalls,
    calibration: Option<Result<Calibration, AsrError>>,
    recognizers: usize,
) -> (usize, Sizing, Option<Calibration>) {
    let fallback = FALLBACK_CALLS_PER_RECOGNIZER * recognizers.max(1);
    match (configured, calibration) {
        (MaxCalls::Fixed(n), _) => (n, Sizing::Configured, None),
        (MaxCalls::Auto, Some(Ok(c))) => (c.calls, Sizing::Calibrated, Some(c)),
        (MaxCalls::Auto, Some(Err(e))) => {
            tracing::warn!(error = %e, calls = fallback, "speech recognition calibration failed: using a conservative call limit");
            (fallback, Sizing::Fallback, None)
        }
        (MaxCalls::Auto, None) => (fallback, Sizing::Fallback, None),
    }
}

/// The queue wait that leaves an utterance its recognition time within `target`: the target
/// less the calibrated recognition time, at least a quarter of the target (a machine slower
/// than its target still admits while nothing waits long); half the target uncalibrated.
fn wait_limit(target: Duration, calibration: Option<&Calibration>) -> Duration {
    match calibration {
        Some(c) => target.saturating_sub(c.service).max(target / 4),
        None => target / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(service_ms: u64, calls: usize) -> Calibration {
        Calibration {
            utterance: Duration::from_millis(3_367),
            service: Duration::from_millis(service_ms),
            recognizers: 2,
            calls,
        }
    }

    #[test]
    fn a_number_pins_the_limit_and_auto_takes_the_calibration() {
        let measured = Some(Ok(calibration(560, 9)));
        assert_eq!(
            size(MaxCalls::Fixed(20), measured, 2),
            (20, Sizing::Configured, None)
        );
        let measured = Some(Ok(calibration(560, 9)));
        assert_eq!(
            size(MaxCalls::Auto, measured, 2),
            (9, Sizing::Calibrated, Some(calibration(560, 9)))
        );
    }

    #[test]
    fn a_failed_calibration_falls_back_to_a_conservative_limit() {
        let failed = Some(Err(AsrError::Timeout));
        assert_eq!(size(MaxCalls::Auto, failed, 2), (4, Sizing::Fallback, None));
        assert_eq!(size(MaxCalls::Auto, None, 0), (2, Sizing::Fallback, None));
    }

    #[test]
    fn the_wait_limit_leaves_the_recognition_its_time() {
        let second = Duration::from_secs(1);
        let limit = wait_limit(second, Some(&calibration(560, 9)));
        assert_eq!(limit, Duration::from_millis(440));
        let slow = wait_limit(second, Some(&calibration(1_500, 1)));
        assert_eq!(slow, Duration::from_millis(250));
        assert_eq!(wait_limit(second, None), Duration::from_millis(500));
    }
}
