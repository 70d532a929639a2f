//! The dispatcher: the only component that turns a queued call into a dial. It claims due
//! calls under a lease, dials them through a [`Dialer`] within the configured rate and
//! concurrency, and books each attempt's outcome (retry, `failed`, `completed`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::clock::Clock;
use crate::config::{Rounding, TelephonyConfig};
use crate::domain::{Analysis, Call, CallStatus, EndReason, EventType, TranscriptEntry};
use crate::outcome::Outcome;
use crate::store::{started_seconds, Store, Transition};

/// How long a claimed call stays ours without a heartbeat.
const LEASE: Duration = Duration::from_secs(30);
const HEARTBEAT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(500);
const RETRY_CLAIM: Duration = Duration::from_millis(50);

/// What one dial attempt came to.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    /// The callee answered and the conversation ran to its end.
    Completed {
        ended_at: OffsetDateTime,
        end_reason: EndReason,
        transcript: Vec<TranscriptEntry>,
        analysis: Option<Analysis>,
        /// Media quality (docs/media.md), as stored with the call.
        quality: Option<serde_json::Value>,
    },
    /// The attempt failed before or while connecting (busy, no answer, trunk error, …).
    Failed {
        outcome: Outcome,
        sip_status: Option<u16>,
    },
}

/// What a dialer reports while an attempt runs.
#[derive(Debug, Clone, Copy)]
enum Progress {
    Ringing(OffsetDateTime),
    Answered(OffsetDateTime, Option<u16>),
}

/// Between the dispatcher and a dialer during one attempt: the dialer tells how it goes
/// (ringing, stored as `ringing_at`; answered, and the call shows `in_progress`), and hears
/// when to hang up (the call was canceled while talking, or the server is stopping).
pub struct AttemptProgress {
    progress: mpsc::UnboundedSender<Progress>,
    hang_up: watch::Receiver<bool>,
    /// The dispatcher's clock: it stamps when the phone rang and when it was answered.
    clock: Clock,
}

impl AttemptProgress {
    // The dispatcher may have stopped listening (canceled call); nothing to tell then.
    pub fn ringing(&self) {
        let _ = self.progress.send(Progress::Ringing(self.clock.now()));
    }

    /// Reports the answer and returns its time (the call's `answered_at`).
    pub fn answered(&self, sip_status: Option<u16>) -> OffsetDateTime {
        let at = self.clock.now();
        let _ = self.progress.send(Progress::Answered(at, sip_status));
        at
    }

    /// Turns true when the dialer should end the call and return its outcome.
    pub fn hang_up(&self) -> watch::Receiver<bool> {
        self.hang_up.clone()
    }
}

/// Places calls. Implemented by the telephony layer; the dispatcher knows nothing of SIP.
#[async_trait]
pub trait Dialer: Send + Sync + 'static {
    /// Dials `call.to` for `call` and returns when the attempt is over. Dropping the future
    /// hangs up (used when the call is canceled before it is answered).
    async fn dial(&self, call: &Call, progress: AttemptProgress) -> AttemptOutcome;

    /// How many more calls could be dialed now (media ports, speech recognition). Due calls
    /// beyond it stay queued, not claimed, so a busy node makes them wait rather than fail.
    fn room(&self) -> usize {
        usize::MAX
    }
}

pub struct Dispatcher {
    store: Store,
    dialer: Arc<dyn Dialer>,
    config: TelephonyConfig,
    /// How answered calls are billed (`[billing] rounding`).
    rounding: Rounding,
    node: String,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        dialer: Arc<dyn Dialer>,
        config: TelephonyConfig,
        rounding: Rounding,
        node: String,
    ) -> Self {
        Self {
            store,
            dialer,
            config,
            rounding,
            node,
        }
    }

    /// Runs until `shutdown` turns true, then waits for the attempts in progress.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let clock = this.clock().clone();
        let slots = Arc::new(Semaphore::new(this.config.max_concurrent_calls));
        let mut pacer = Pacer::new(this.config.calls_per_second, clock.now_ms());
        let mut attempts = JoinSet::new();
        let mut next_recovery = clock.now_ms();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if clock.now_ms() >= next_recovery {
                next_recovery = clock.now_ms() + millis(LEASE / 3);
                this.recover_expired().await;
            }
            let room = u32::try_from(this.dialer.room()).unwrap_or(u32::MAX);
            let budget = pacer
                .available(clock.now_ms())
                .min(slots.available_permits() as u32)
                .min(room);
            let claimed = if budget > 0 {
                this.claim(budget).await
            } else {
                Vec::new()
            };
            let claimed_any = !claimed.is_empty();
            for call in claimed {
                pacer.take();
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (this, shutdown) = (this.clone(), shutdown.clone());
                attempts.spawn(async move {
                    this.attempt(call, shutdown).await;
                    drop(permit);
                });
            }
            while attempts.try_join_next().is_some() {}
            let paced = pacer.available(clock.now_ms()) == 0;
            if claimed_any && !paced && slots.available_permits() > 0 {
                continue;
            }
            let wait = if paced {
                pacer.until_next(clock.now_ms())
            } else if budget > 0 {
                // Nothing due now: sleep until the next scheduled call (a new one, or one
                // queued by another node, wakes us or is seen at the poll).
                this.until_next_due().await
            } else {
                // Every slot taken (a finished attempt wakes us) or no room on the node.
                POLL
            };
            tokio::select! {
                _ = this.store.dispatch_changed() => {}
                _ = clock.sleep(wait.max(Duration::from_millis(1)).min(POLL)) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while attempts.join_next().await.is_some() {}
    }

    fn clock(&self) -> &Clock {
        self.store.clock()
    }

    /// When a lease taken now runs out (ms since the epoch).
    fn lease_until(&self) -> i64 {
        self.clock().now_ms() + millis(LEASE)
    }

    /// How long until the next queued call comes due. One already due that the claim just
    /// did not get (it failed, or another node holds the row) is retried shortly, not in a spin.
    async fn until_next_due(&self) -> Duration {
        match self.store.next_due_ms().await {
            Ok(Some(due)) => match u64::try_from(due - self.clock().now_ms()) {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => RETRY_CLAIM,
            },
            Ok(None) => POLL,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next due call failed");
                POLL
            }
        }
    }

    async fn claim(&self, budget: u32) -> Vec<Call> {
        let now_ms = self.clock().now_ms();
        match self
            .store
            .claim_due_calls(&self.node, now_ms, self.lease_until(), i64::from(budget))
            .await
        {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(error = %e, "claiming due calls failed");
                Vec::new()
            }
        }
    }

    async fn recover_expired(&self) {
        match self.store.fail_expired_leases(self.clock().now_ms()).await {
            Ok(calls) if !calls.is_empty() => {
                tracing::warn!(
                    count = calls.len(),
                    "failed calls whose dispatcher lease expired mid-attempt"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "recovering expired leases failed"),
        }
    }

    /// One attempt: check the quota, dial, keep the lease alive, and book the outcome.
    async fn attempt(&self, mut call: Call, mut shutdown: watch::Receiver<bool>) {
        metrics::counter!("voxbridge_dial_attempts_total").increment(1);
        match self.store.org(call.org_id).await {
            Ok(Some(org)) if org.quota_exhausted() => {
                let outcome = AttemptOutcome::Failed {
                    outcome: Outcome::QuotaExhausted,
                    sip_status: None,
                };
                self.book(&mut call, CallStatus::Calling, outcome).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "reading the org before dialling failed")
            }
        }
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let (hang_up, hang_up_rx) = watch::channel(false);
        let dialer = self.dialer.clone();
        let dialled = call.clone();
        let progress = AttemptProgress {
            progress: progress_tx,
            hang_up: hang_up_rx,
            clock: self.clock().clone(),
        };
        let dial = dialer.dial(&dialled, progress);
        tokio::pin!(dial);
        let mut status = CallStatus::Calling;
        let mut next_heartbeat = self.clock().now_ms() + millis(HEARTBEAT);
        let outcome = loop {
            let check = async {
                tokio::select! {
                    () = self.clock().sleep_until(next_heartbeat) => {}
                    () = self.store.call_canceled() => {}
                }
            };
            tokio::select! {
                outcome = &mut dial => break outcome,
                Some(progress) = progress_rx.recv() => {
                    status = self.progressed(&mut call, status, progress).await;
                }
                () = check, if !*hang_up.borrow() => {
                    next_heartbeat = self.clock().now_ms() + millis(HEARTBEAT);
                    if !self.still_ours(&call).await {
                        if status == CallStatus::Calling {
                            // Canceled or taken over before an answer: dropping `dial` sends
                            // the CANCEL.
                            return;
                        }
                        // Canceled while talking: the dialer says goodbye (BYE) and returns
                        // the conversation, which is kept with the canceled call.
                        hang_up.send_replace(true);
                    }
                }
                () = crate::telephony::stopped(&mut shutdown), if !*hang_up.borrow() => {
                    hang_up.send_replace(true);
                }
            }
        };
        // Progress reported in the same instant the dial returned.
        while let Ok(progress) = progress_rx.try_recv() {
            status = self.progressed(&mut call, status, progress).await;
        }
        self.book(&mut call, status, outcome).await;
    }

    /// Extends the lease; false when the call was canceled or another node took it over.
    async fn still_ours(&self, call: &Call) -> bool {
        match self
            .store
            .heartbeat(call.id, &self.node, self.lease_until())
            .await
        {
            Ok(ours) => ours,
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "lease heartbeat failed");
                true
            }
        }
    }

    async fn progressed(
        &self,
        call: &mut Call,
        status: CallStatus,
        progress: Progress,
    ) -> CallStatus {
        match progress {
            Progress::Ringing(at) if status == CallStatus::Calling && call.ringing_at.is_none() => {
                call.ringing_at = Some(at);
                if let Err(e) = self.store.ringing(call.id, &self.node, at).await {
                    tracing::warn!(error = %e, call = %call.id, "recording the ringing failed");
                }
                status
            }
            Progress::Answered(at, sip_status) if status == CallStatus::Calling => {
                self.answered(call, at, sip_status).await
            }
            _ => status,
        }
    }

    async fn answered(
        &self,
        call: &mut Call,
        at: OffsetDateTime,
        sip_status: Option<u16>,
    ) -> CallStatus {
        call.status = CallStatus::InProgress;
        call.answered_at = Some(at);
        call.sip_status = sip_status.map(i64::from);
        let t = Transition {
            call,
            from: CallStatus::Calling,
            lease_owner: Some(&self.node),
            events: &[EventType::Answered],
            charge_seconds: 0,
        };
        match self.store.transition(&t).await {
            Ok(true) => CallStatus::InProgress,
            Ok(false) => CallStatus::Calling,
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "recording the answer failed");
                CallStatus::Calling
            }
        }
    }

    /// Persists the attempt's outcome: completed (minutes charged), back to queued for a
    /// retry, or failed for good.
    async fn book(&self, call: &mut Call, from: CallStatus, outcome: AttemptOutcome) {
        let mut events: Vec<EventType> = Vec::with_capacity(2);
        let mut charge = 0;
        match outcome {
            AttemptOutcome::Completed {
                ended_at,
                end_reason,
                transcript,
                analysis,
                quality,
            } => {
                call.status = CallStatus::Completed;
                call.quality = quality;
                call.ended_at = Some(ended_at);
                call.end_reason = Some(end_reason);
                let answered = call.answered_at.unwrap_or(ended_at);
                call.duration_seconds = Some(started_seconds(answered, ended_at));
                call.transcript = transcript;
                events.push(EventType::Ended);
                if analysis.is_some() {
                    call.analysis = analysis;
                    events.push(EventType::Analyzed);
                }
                charge = call.billed_seconds(self.rounding);
            }
            AttemptOutcome::Failed {
                outcome,
                sip_status,
            } => {
                call.end_reason = Some(outcome.end_reason());
                call.sip_status = sip_status.map(i64::from).or(call.sip_status);
                let retry = outcome
                    .retry()
                    .filter(|_| call.attempts < call.max_attempts);
                if let Some(wait) = retry {
                    call.status = CallStatus::Queued;
                    let backoff = self.config.retry.backoff(wait);
                    call.next_attempt_at =
                        self.clock().now() + backoff.delay(call.attempts, rand::random());
                    events.push(EventType::Queued);
                } else {
                    call.status = CallStatus::Failed;
                    call.ended_at = Some(self.clock().now());
                    events.push(EventType::Ended);
                }
            }
        }
        metrics::counter!("voxbridge_dial_outcomes_total", "status" => call.status.as_str())
            .increment(1);
        let t = Transition {
            call,
            from,
            lease_owner: Some(&self.node),
            events: &events,
            charge_seconds: charge,
        };
        match self.store.transition(&t).await {
            Ok(true) => {}
            Ok(false) if from == CallStatus::InProgress => {
                // Canceled while talking: the cancel ended and billed it; keep what was said.
                if let Err(e) = self.store.keep_canceled_conversation(call).await {
                    tracing::warn!(error = %e, call = %call.id, "storing the canceled call's transcript failed");
                }
            }
            Ok(false) => {
                tracing::info!(call = %call.id, "call changed during the attempt (canceled?); outcome dropped")
            }
            Err(e) => tracing::error!(error = %e, call = %call.id, "booking the attempt failed"),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A token bucket for `calls_per_second`, holding at most one second of burst. Time is an
/// input (ms since the epoch); a clock set back refills nothing rather than failing.
struct Pacer {
    rate: f64,
    tokens: f64,
    last_ms: i64,
}

impl Pacer {
    fn new(per_second: u32, now_ms: i64) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            tokens: rate,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last_ms = self.last_ms.max(now_ms);
    }

    fn available(&mut self, now_ms: i64) -> u32 {
        self.refill(now_ms);
        self.tokens.floor() as u32
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn until_next(&mut self, now_ms: i64) -> Duration {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pacer;
    use std::time::Duration;

    #[test]
    fn pacer_allows_the_configured_rate() {
        let mut pacer = Pacer::new(10, 5_000);
        assert_eq!(pacer.available(5_000), 10);
        for _ in 0..10 {
            pacer.take();
        }
        assert_eq!(pacer.available(5_000), 0);
        assert_eq!(pacer.until_next(5_000), Duration::from_millis(100));
        assert_eq!(pacer.available(5_250), 2);
        assert_eq!(pacer.available(4_000), 2, "a clock set back adds nothing");
        assert_eq!(pacer.available(15_250), 10, "burst is capped at one second");
    }
}
