//! One outbound attempt, start to end: the INVITE to the outbound trunk with our SDP offer
//! (digest answered by the SIP endpoint), ringing, the ring timeout (CANCEL → `no_answer`),
//! and once answered the same media and conversation as an inbound call. The dispatcher
//! books what it returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use voxbridge_sip::auth::Credentials;
use voxbridge_sip::driver::SipHandle;
use voxbridge_sip::endpoint::{CallEvent, CallRef, PlaceCall, Transport};
use voxbridge_sip::message::HeaderName;
use voxbridge_sip::sdp::Negotiated;

use super::talk::{builtin_agent, local_ip_towards, offer_media, Talk};
use super::{Admission, CallServices};
use crate::config::{self, TrunkConfig};
use crate::dispatcher::{AttemptOutcome, AttemptProgress, Dialer};
use crate::domain::{Agent, Call};
use crate::outcome::Outcome;

/// How long a CANCEL may take to end the INVITE (a 487, or the INVITE's own timeout at 32 s)
/// before the attempt is given up locally.
const CANCEL_GRACE: Duration = Duration::from_secs(40);

/// Carries the VoxBridge call id in every INVITE.
const CALL_ID_HEADER: &[u8] = b"X-VoxBridge-Call-Id";

/// Places the dispatcher's calls through `[telephony] outbound_trunk`.
pub(crate) struct SipDialer {
    services: Arc<CallServices>,
    trunk: TrunkConfig,
    ring_timeout: Duration,
}

impl SipDialer {
    pub(crate) fn new(
        services: Arc<CallServices>,
        trunk: TrunkConfig,
        ring_timeout: Duration,
    ) -> Self {
        Self {
            services,
            trunk,
            ring_timeout,
        }
    }

    /// The trunk's address, looked up for every attempt so DNS changes are followed.
    async fn trunk_addr(&self) -> Result<SocketAddr, AttemptOutcome> {
        let host = self.trunk.host.as_str();
        let found = tokio::net::lookup_host((host, self.trunk.port)).await;
        match found.map(|mut addrs| addrs.next()) {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) => Err(trunk_trouble(&format!("{host} has no address"))),
            Err(e) => Err(trunk_trouble(&format!("cannot resolve {host}: {e}"))),
        }
    }

    async fn agent(&self, call: &Call) -> Result<Agent, AttemptOutcome> {
        let Some(agent_id) = call.agent_id else {
            return Err(failed(Outcome::Internal, None));
        };
        match self.services.store.agent(call.org_id, agent_id).await {
            Ok(Some(agent)) => Ok(agent),
            Ok(None) => {
                tracing::warn!(call = %call.id, %agent_id, "the call's agent no longer exists");
                Err(failed(Outcome::Internal, None))
            }
            Err(e) => {
                tracing::warn!(error = %e, call = %call.id, "reading the call's agent failed");
                Err(failed(Outcome::Internal, None))
            }
        }
    }

    fn place(&self, call: &Call, peer: SocketAddr, admission: &Admission) -> PlaceCall {
        let local_ip = self
            .services
            .media_ip
            .unwrap_or_else(|| local_ip_towards(peer));
        let host = match self.trunk.port {
            5060 => self.trunk.host.clone(),
            port => format!("{}:{port}", self.trunk.host),
        };
        let from_user = self.trunk.from_number.as_deref().unwrap_or("anonymous");
        PlaceCall {
            peer,
            transport: match self.trunk.transport {
                config::Transport::Udp => Transport::Udp,
                config::Transport::Tcp => Transport::Tcp,
            },
            target: format!("sip:{}@{host}", call.to),
            from: format!("sip:{from_user}@{}", self.services.sip_host(local_ip)),
            credentials: self
                .trunk
                .username
                .clone()
                .zip(self.trunk.password.clone())
                .map(|(username, password)| Credentials { username, password }),
            media: offer_media(local_ip, admission),
            // The carrier's logs (and tests counting INVITEs per call) can name our call.
            headers: vec![(HeaderName::from_wire(CALL_ID_HEADER), call.id.to_string())],
        }
    }

    async fn attempt(&self, call: &Call, progress: AttemptProgress) -> AttemptOutcome {
        let agent = match self.agent(call).await {
            Ok(agent) => agent,
            Err(outcome) => return outcome,
        };
        let peer = match self.trunk_addr().await {
            Ok(peer) => peer,
            Err(outcome) => return outcome,
        };
        let admission = match self.services.admit() {
            Ok(admission) => admission,
            Err(Outcome::NoCapacity) => {
                tracing::info!(call = %call.id, "no capacity (RTP ports or transcription) to dial; the call waits");
                return AttemptOutcome::NotPlaced;
            }
            Err(outcome) => return failed(outcome, None),
        };
        if !progress.may_dial() {
            // The server is stopping, or the lease may have run out: the call goes back to
            // the queue (if still ours) for another node or a later try.
            return AttemptOutcome::NotPlaced;
        }
        let placed = match self
            .services
            .sip
            .place_call(self.place(call, peer, &admission))
            .await
        {
            Ok(placed) => placed,
            Err(e) => return trunk_trouble(&e.to_string()),
        };
        let mut line = Line {
            sip: &self.services.sip,
            call: placed.call,
            events: placed.events,
            open: true,
        };
        metrics::counter!("voxbridge_sip_outbound_invites_total").increment(1);
        let mut hang_up = progress.hang_up();
        let negotiated = match line.ring(self.ring_timeout, &progress, &mut hang_up).await {
            Ok(negotiated) => negotiated,
            Err(outcome) => return outcome,
        };
        let answered_at = progress.answered(Some(200));
        tracing::info!(call = %call.id, to = %call.to, codec = ?negotiated.codec, "outbound call answered");
        let talk = Talk {
            services: &self.services,
            call_id: call.id,
            negotiated: &negotiated,
            agent: builtin_agent(&agent, call, answered_at.date()),
            hang_up,
        };
        let media = match talk.start_media(admission.ports) {
            Ok(media) => media,
            Err(e) => {
                tracing::error!(error = %e, call = %call.id, "starting media failed; hanging up");
                return failed(Outcome::Internal, Some(200));
            }
        };
        let outcome = talk
            .converse(
                media,
                line.call,
                &mut line.events,
                admission.transcription,
                "outbound",
            )
            .await;
        // The conversation ended the dialog (BYE sent or received).
        line.open = false;
        AttemptOutcome::Completed {
            ended_at: outcome.ended_at,
            end_reason: outcome.reason,
            transcript: outcome.transcript,
            analysis: outcome.analysis,
            quality: outcome.quality,
        }
    }
}

#[async_trait]
impl Dialer for SipDialer {
    async fn dial(&self, call: &Call, progress: AttemptProgress) -> AttemptOutcome {
        self.attempt(call, progress).await
    }

    fn room(&self) -> usize {
        self.services.room()
    }
}

/// A placed call's SIP leg. Dropped while still open (the dispatcher gave up on the attempt:
/// canceled, lease lost), it hangs up: CANCEL while ringing, BYE once answered.
struct Line<'a> {
    sip: &'a SipHandle,
    call: CallRef,
    events: mpsc::UnboundedReceiver<CallEvent>,
    open: bool,
}

impl Line<'_> {
    /// Until the callee answers: ringing is reported, the ring timeout and a hang-up request
    /// cancel, and a final failure becomes the attempt's outcome.
    async fn ring(
        &mut self,
        ring_timeout: Duration,
        progress: &AttemptProgress,
        hang_up: &mut watch::Receiver<bool>,
    ) -> Result<Negotiated, AttemptOutcome> {
        let ring_deadline = Instant::now() + ring_timeout;
        let mut ringing = false;
        // Set once we sent CANCEL: why, and how long we wait for the INVITE to end.
        let mut canceled: Option<(Outcome, Instant)> = None;
        loop {
            let deadline = canceled.map_or(ring_deadline, |(_, until)| until);
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(CallEvent::Progress { status: 180 | 183 }) if !ringing => {
                        ringing = true;
                        progress.ringing();
                    }
                    Some(CallEvent::Answered { negotiated }) => return Ok(negotiated),
                    Some(CallEvent::Failed { status, reason }) => {
                        self.open = false;
                        let outcome = match canceled {
                            Some((why, _)) => why,
                            None => Outcome::of_final_response(status),
                        };
                        tracing::info!(status, reason, ?outcome, "outbound call not answered");
                        return Err(failed(outcome, Some(status)));
                    }
                    // A 2xx after our CANCEL: the endpoint sent ACK and BYE.
                    Some(CallEvent::Ended { .. }) => {
                        self.open = false;
                        let why = canceled.map_or(Outcome::Internal, |(why, _)| why);
                        return Err(failed(why, Some(200)));
                    }
                    Some(_) => {}
                    None => return Err(failed(Outcome::Internal, None)),
                },
                () = tokio::time::sleep_until(deadline) => match canceled {
                    None => {
                        tracing::info!(after = ?ring_timeout, "no answer; canceling");
                        canceled = Some((Outcome::NoAnswer, self.cancel().await));
                    }
                    Some((why, _)) => {
                        tracing::warn!("the trunk never ended the canceled INVITE");
                        return Err(failed(why, None));
                    }
                },
                () = super::stopped(hang_up), if canceled.is_none() => {
                    // The server is stopping: the call goes back to the queue.
                    canceled = Some((Outcome::NoCapacity, self.cancel().await));
                }
            }
        }
    }

    /// Sends CANCEL (or remembers to, until a provisional response) and returns how long to
    /// wait for the INVITE to end.
    async fn cancel(&self) -> Instant {
        let _ = self.sip.hangup(self.call).await;
        Instant::now() + CANCEL_GRACE
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.open {
            self.sip.hangup_detached(self.call);
        }
    }
}

fn failed(outcome: Outcome, sip_status: Option<u16>) -> AttemptOutcome {
    AttemptOutcome::Failed {
        outcome,
        sip_status,
    }
}

fn trunk_trouble(what: &str) -> AttemptOutcome {
    tracing::warn!("outbound trunk: {what}");
    failed(Outcome::TrunkError, None)
}
