//! The dispatcher: the only component that turns a queued call into a dial. It claims due
//! calls under a lease, dials them through a [`Dialer`] within the configured rate and
//! concurrency, and books each attempt's outcome (retry, `failed`, `completed`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::{Rounding, TelephonyConfig};
use crate::domain::{
    now, to_millis, Analysis, Call, CallStatus, EndReason, EventType, TranscriptEntry,
};
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
}

impl AttemptProgress {
    // The dispatcher may have stopped listening (canceled call); nothing to tell then.
    pub fn ringing(&self, at: OffsetDateTime) {
        let _ = self.progress.send(Progress::Ringing(at));
    }

    pub fn answered(&self, at: OffsetDateTime, sip_status: Option<u16>) {
        let _ = self.progress.send(Progress::Answered(at, sip_status));
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
        let slots = Arc::new(Semaphore::new(this.config.max_concurrent_calls));
        let mut pacer = Pacer::new(this.config.calls_per_second);
        let mut attempts = JoinSet::new();
        let mut last_recovery = tokio::time::Instant::now() - LEASE;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if last_recovery.elapsed() >= LEASE / 3 {
                last_recovery = tokio::time::Instant::now();
                this.recover_expired().await;
            }
            let room = u32::try_from(this.dialer.room()).unwrap_or(u32::MAX);
            let budget = pacer
                .available()
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
            if claimed_any && pacer.available() > 0 && slots.available_permits() > 0 {
                continue;
            }
            let wait = if pacer.available() == 0 {
                pacer.until_next()
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
                _ = tokio::time::sleep(wait.max(Duration::from_millis(1)).min(POLL)) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        while attempts.join_next().await.is_some() {}
    }

    /// How long until the next queued call comes due. One already due that the claim just
    /// did not get (it failed, or another node holds the row) is retried shortly, not in a spin.
    async fn until_next_due(&self) -> Duration {
        match self.store.next_due_ms().await {
            Ok(Some(due)) => match u64::try_from(due - to_millis(now())) {
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
        let now_ms = to_millis(now());
        let lease_until = now_ms + LEASE.as_millis() as i64;
        match self
            .store
            .claim_due_calls(&self.node, now_ms, lease_until, i64::from(budget))
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
        match self.store.fail_expired_leases(to_millis(now())).await {
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
        };
        let dial = dialer.dial(&dialled, progress);
        tokio::pin!(dial);
        let mut status = CallStatus::Calling;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let outcome = loop {
            let check = async {
                tokio::select! {
                    _ = heartbeat.tick() => {}
                    () = self.store.call_canceled() => {}
                }
            };
            tokio::select! {
                outcome = &mut dial => break outcome,
                Some(progress) = progress_rx.recv() => {
                    status = self.progressed(&mut call, status, progress).await;
                }
                () = check, if !*hang_up.borrow() => {
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
        let lease_until = to_millis(now()) + LEASE.as_millis() as i64;
        match self.store.heartbeat(call.id, &self.node, lease_until).await {
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
                    call.next_attempt_at = now() + backoff.delay(call.attempts, rand::random());
                    events.push(EventType::Queued);
                } else {
                    call.status = CallStatus::Failed;
                    call.ended_at = Some(now());
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

/// A token bucket for `calls_per_second`, holding at most one second of burst.
struct Pacer {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl Pacer {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            tokens: rate,
            last: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
    }

    fn available(&mut self) -> u32 {
        self.refill();
        self.tokens.floor() as u32
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    fn until_next(&mut self) -> Duration {
        self.refill();
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

    #[tokio::test(start_paused = true)]
    async fn pacer_allows_the_configured_rate() {
        let mut pacer = Pacer::new(10);
        assert_eq!(pacer.available(), 10);
        for _ in 0..10 {
            pacer.take();
        }
        assert_eq!(pacer.available(), 0);
        assert_eq!(pacer.until_next(), Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(pacer.available(), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(pacer.available(), 10, "burst is capped at one second");
    }
}
