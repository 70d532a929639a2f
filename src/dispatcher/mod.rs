//! The dispatcher: the only component that turns a queued call into a dial. It claims due
//! calls under a lease, dials them through a [`Dialer`] within the configured rate and the
//! node's caps ([`CallLimits`]), and books each attempt's outcome (retry, `failed`,
//! `completed`). A due call that finds no capacity waits in the queue; it does not fail.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

mod pacing;

use pacing::{budget, DialRate, Holdup, Pacer, TrunkGate, Verdict};

use crate::clock::{millis, Clock};
use crate::config::{Rounding, TelephonyConfig};
use crate::domain::{Analysis, Call, CallStatus, EndReason, EventType, TranscriptEntry};
use crate::limits::{CallLimits, Limit, OutboundRoom};
use crate::outcome::{Outcome, RetryWait};
use crate::store::{started_seconds, Store, Transition};

const POLL: Duration = Duration::from_millis(500);
const RETRY_CLAIM: Duration = Duration::from_millis(50);
/// A claimed call the node found no capacity for goes back to the queue, due this much later
/// (not at once: the claim would only fail again).
const GIVE_BACK_DELAY: Duration = Duration::from_secs(1);
/// How often the waiting-calls gauges are recounted (one query) while calls wait.
const COUNT_WAITING: Duration = Duration::from_secs(1);

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
    /// Nothing was sent: the node had no capacity for the call after all (media ports,
    /// speech recognition). The call waits in the queue again; no attempt is counted.
    NotPlaced,
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
    lease: Lease,
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

    /// Whether the INVITE may go out now: the server is not stopping, and the lease on the
    /// call surely still holds. Asked right before sending: an attempt that was slow to get
    /// there (a busy database, a starved CPU) may have lost the call to another node's
    /// recovery, and must then not ring the callee a second time. Returning
    /// [`AttemptOutcome::NotPlaced`] after a `false` gives the call back if it is still ours.
    pub fn may_dial(&self) -> bool {
        !*self.hang_up.borrow() && self.lease.holds(self.clock.now_ms())
    }
}

/// Until when (ms since the epoch, on this node's clock) a claimed call is surely still this
/// node's: the lease it last wrote, less a margin for the clocks of the nodes that might
/// recover it. Shared by an attempt and its dialer.
#[derive(Clone)]
struct Lease {
    until_ms: Arc<AtomicI64>,
    margin_ms: i64,
}

impl Lease {
    fn holds(&self, now_ms: i64) -> bool {
        now_ms < self.lapses_at()
    }

    fn renewed(&self, until_ms: i64) {
        self.until_ms.store(until_ms, Ordering::Relaxed);
    }

    fn lapses_at(&self) -> i64 {
        self.until_ms.load(Ordering::Relaxed) - self.margin_ms
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
    limits: CallLimits,
    /// The trunk calls are dialled through, and the INVITEs per second it allows.
    trunk: String,
    calls_per_second: u32,
    gate: std::sync::Mutex<TrunkGate>,
}

impl Dispatcher {
    /// `trunk` names the trunk the dialer calls through; `calls_per_second` is the lower of
    /// the node's and the trunk's rate.
    pub fn new(
        store: Store,
        dialer: Arc<dyn Dialer>,
        config: TelephonyConfig,
        rounding: Rounding,
        node: String,
        limits: CallLimits,
        (trunk, calls_per_second): (String, u32),
    ) -> Self {
        Self {
            store,
            dialer,
            config,
            rounding,
            node,
            limits,
            trunk,
            calls_per_second,
            gate: Default::default(),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, TrunkGate> {
        // The gate is a few numbers changed in one statement each: usable after a panic.
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds an attempt's verdict on the carrier to the gate; says so when it closes.
    fn report(&self, verdict: Verdict) {
        let mut gate = self.gate();
        let was_closed = gate.is_closed();
        gate.report(verdict, self.clock().now_ms());
        if gate.is_closed() && !was_closed {
            tracing::warn!(trunk = %self.trunk, "the carrier fails every call; dialling paused, probing with one call at a time");
        } else if was_closed && !gate.is_closed() {
            tracing::info!(trunk = %self.trunk, "the carrier answers again; dialling resumed");
        }
    }

    /// Runs until `shutdown` turns true, then waits for the attempts in progress.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let clock = this.clock().clone();
        let mut pacer = Pacer::new(this.calls_per_second, clock.now_ms());
        let mut dials = DialRate::default();
        let mut attempts = JoinSet::new();
        let mut next_recovery = clock.now_ms();
        let mut next_count = clock.now_ms();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = clock.now_ms();
            if now >= next_recovery {
                next_recovery = now + millis(this.heartbeat());
                this.recover_expired().await;
            }
            let room = this.limits.outbound_room(&this.trunk);
            let gate = this.gate().allows(now);
            let (budget, holdup) = budget(gate, &room, pacer.available(now), this.dialer.room());
            if now >= next_count {
                next_count = now + millis(COUNT_WAITING);
                this.count_waiting(&room, holdup, now).await;
            }
            let (claimed, lease) = if budget > 0 {
                this.claim(budget, &room.full_orgs).await
            } else {
                (Vec::new(), 0)
            };
            let claimed_any = !claimed.is_empty();
            for call in claimed {
                let slot = match this.limits.take(call.org_id, &this.trunk) {
                    Ok(slot) => slot,
                    Err(limit) => {
                        // An inbound call took the place since the room was read.
                        tracing::debug!(call = %call.id, limit = limit.as_str(), "no place for a claimed call");
                        this.give_back(&call, GIVE_BACK_DELAY).await;
                        continue;
                    }
                };
                pacer.take();
                dials.dialled(now);
                this.gate().dialled();
                let (this, shutdown) = (this.clone(), shutdown.clone());
                attempts.spawn(async move {
                    let verdict = this.attempt(call, lease, shutdown).await;
                    drop(slot);
                    this.report(verdict);
                });
            }
            metrics::gauge!("voxbridge_dials_per_second").set(dials.per_second(now));
            while attempts.try_join_next().is_some() {}
            let paced = pacer.available(now) == 0;
            if claimed_any && !paced {
                continue;
            }
            let wait = if holdup == Some(Holdup::TrunkTrouble) {
                this.gate().until_probe(now).unwrap_or(POLL)
            } else if paced {
                pacer.until_next(now)
            } else if budget > 0 {
                // Nothing due now: sleep until the next scheduled call (a new one, or one
                // queued by another node, wakes us or is seen at the poll).
                this.until_next_due().await
            } else {
                // At a cap (a freed slot wakes us) or no media capacity (seen at the poll).
                POLL
            };
            tokio::select! {
                _ = this.store.dispatch_changed() => {}
                // From the `now` this round decided on: time that passed meanwhile counts.
                _ = clock.sleep_until(now + millis(wait.max(Duration::from_millis(1)).min(POLL))) => {}
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
                () = this.limits.freed() => {}
                _ = shutdown.changed() => {}
            }
        }
        while attempts.join_next().await.is_some() {}
    }

    /// Sets `voxbridge_calls_waiting` by reason: due calls of orgs at their cap wait for
    /// their org; the rest wait for whatever holds the whole dispatcher back, if anything.
    async fn count_waiting(&self, room: &OutboundRoom, holdup: Option<Holdup>, now: i64) {
        let mut waiting = [0i64; Holdup::ALL.len()];
        if holdup.is_some() || !room.full_orgs.is_empty() {
            match self.store.due_calls_by_org(now).await {
                Ok(due) => {
                    for (org, calls) in due {
                        let why = if room.full_orgs.contains(&org) {
                            Some(Holdup::Limit(Limit::Org))
                        } else {
                            holdup
                        };
                        if let Some(i) = why.and_then(|h| Holdup::ALL.iter().position(|a| *a == h))
                        {
                            waiting[i] += calls;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "counting the waiting calls failed"),
            }
        }
        for (holdup, calls) in Holdup::ALL.iter().zip(waiting) {
            metrics::gauge!("voxbridge_calls_waiting", "reason" => holdup.as_str())
                .set(calls as f64);
        }
    }

    /// Returns a claimed call, never dialled, to the queue, due after `delay`.
    async fn give_back(&self, call: &Call, delay: Duration) {
        let due = self.clock().now_ms() + millis(delay);
        metrics::counter!("voxbridge_dial_claims_returned_total").increment(1);
        match self.store.release_claim(call, &self.node, due).await {
            Ok(_) => {}
            // Its lease runs out and recovery books it as an error.
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "returning a claimed call failed")
            }
        }
    }

    fn clock(&self) -> &Clock {
        self.store.clock()
    }

    /// When a lease taken now runs out (ms since the epoch).
    fn lease_until(&self) -> i64 {
        self.clock().now_ms() + millis(self.lease())
    }

    /// How long a claimed call stays this node's without a heartbeat (`lease_seconds`).
    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_seconds)
    }

    /// Leases are renewed, and expired ones looked for, three times per lease: a node keeps
    /// its calls through two missed heartbeats (a slow database), and a dead node's calls are
    /// picked up within a lease and a third.
    fn heartbeat(&self) -> Duration {
        self.lease() / 3
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

    /// Claims up to `budget` due calls; returns them and when their lease runs out.
    async fn claim(&self, budget: usize, skip_orgs: &[uuid::Uuid]) -> (Vec<Call>, i64) {
        let now_ms = self.clock().now_ms();
        let until = self.lease_until();
        let limit = i64::try_from(budget).unwrap_or(i64::MAX);
        match self
            .store
            .claim_due_calls(&self.node, now_ms, until, limit, skip_orgs)
            .await
        {
            Ok(calls) => (calls, until),
            Err(e) => {
                tracing::warn!(error = %e, "claiming due calls failed");
                (Vec::new(), until)
            }
        }
    }

    /// Ends the attempts of nodes that stopped heartbeating; calls with attempts left are
    /// retried after the trunk-trouble wait.
    async fn recover_expired(&self) {
        let now = self.clock().now_ms();
        let wait = self.config.retry.backoff(RetryWait::Trouble);
        let retry = now + millis(wait.delay(1, rand::random()));
        match self.store.recover_expired_leases(now, retry).await {
            Ok(calls) if !calls.is_empty() => {
                let retried = calls
                    .iter()
                    .filter(|c| c.status == CallStatus::Queued)
                    .count();
                tracing::warn!(
                    count = calls.len(),
                    retried,
                    "ended attempts whose dispatcher lease expired (a node died or lost the database)"
                );
                metrics::counter!("voxbridge_dial_leases_expired_total")
                    .increment(calls.len() as u64);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "recovering expired leases failed"),
        }
    }

    /// One attempt: check the quota, dial, keep the lease alive, and book the outcome. Returns
    /// what it says about the carrier.
    async fn attempt(
        &self,
        mut call: Call,
        lease_until: i64,
        mut shutdown: watch::Receiver<bool>,
    ) -> Verdict {
        let lease = Lease {
            until_ms: Arc::new(AtomicI64::new(lease_until)),
            margin_ms: millis(self.heartbeat()) / 2,
        };
        metrics::counter!("voxbridge_dial_attempts_total").increment(1);
        match self.store.org(call.org_id).await {
            Ok(Some(org)) if org.quota_exhausted() => {
                let outcome = AttemptOutcome::Failed {
                    outcome: Outcome::QuotaExhausted,
                    sip_status: None,
                };
                self.book(&mut call, CallStatus::Calling, outcome).await;
                return Verdict::Unknown;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "reading the org before dialling failed")
            }
        }
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let (hang_up, hang_up_rx) = watch::channel(*shutdown.borrow());
        let dialer = self.dialer.clone();
        let dialled = call.clone();
        let progress = AttemptProgress {
            progress: progress_tx,
            hang_up: hang_up_rx,
            clock: self.clock().clone(),
            lease: lease.clone(),
        };
        let dial = dialer.dial(&dialled, progress);
        tokio::pin!(dial);
        let mut status = CallStatus::Calling;
        let mut next_heartbeat = self.clock().now_ms() + millis(self.heartbeat());
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
                    next_heartbeat = self.clock().now_ms() + millis(self.heartbeat());
                    if !self.still_ours(&call, &lease).await {
                        if status == CallStatus::Calling {
                            // Canceled or taken over before an answer: dropping `dial` sends
                            // the CANCEL.
                            return Verdict::Unknown;
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
        if let AttemptOutcome::NotPlaced = outcome {
            // Stopping: due at once, for another node to dial.
            let delay = if *shutdown.borrow() {
                Duration::ZERO
            } else {
                GIVE_BACK_DELAY
            };
            self.give_back(&call, delay).await;
            return Verdict::Unknown;
        }
        let verdict = verdict(&outcome);
        self.book(&mut call, status, outcome).await;
        verdict
    }

    /// Extends the lease; false when it is lost: the call was canceled, another node took it
    /// over, or no heartbeat got through before the lease ran out (a database gone for that
    /// long: another node may recover the call, so this one lets go of it).
    async fn still_ours(&self, call: &Call, lease: &Lease) -> bool {
        let until = self.lease_until();
        tokio::select! {
            beat = self.store.heartbeat(call.id, &self.node, until) => match beat {
                Ok(true) => {
                    lease.renewed(until);
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, call = %call.id, "lease heartbeat failed");
                    lease.holds(self.clock().now_ms())
                }
            },
            () = self.clock().sleep_until(lease.lapses_at()) => {
                tracing::warn!(call = %call.id, "no lease heartbeat got through in time; letting the call go");
                false
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
            AttemptOutcome::NotPlaced => return,
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

/// What an attempt's outcome says about the carrier.
fn verdict(outcome: &AttemptOutcome) -> Verdict {
    match outcome {
        AttemptOutcome::Completed { .. } => Verdict::Works,
        AttemptOutcome::Failed { outcome, .. } => match outcome {
            Outcome::TrunkError => Verdict::Trouble,
            Outcome::Busy | Outcome::Rejected | Outcome::NoAnswer | Outcome::InvalidNumber => {
                Verdict::Works
            }
            _ => Verdict::Unknown,
        },
        AttemptOutcome::NotPlaced => Verdict::Unknown,
    }
}
