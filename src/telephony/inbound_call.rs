//! One answered inbound call, start to end: the SDP answer, the conversation with the org's
//! agent ([`super::talk`]), and at the end the call stored with its transcript, answers and
//! media quality (`call.answered`, then `call.ended` and, when the agent asked anything,
//! `call.analyzed`).

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use voxbridge_sip::endpoint::IncomingCall;

use super::talk::{builtin_agent, local_ip_towards, offer_media, Talk};
use super::{Admission, CallServices};
use crate::domain::{new_id, Call, CallStatus, Direction, EventType};
use crate::inbound::Route;
use crate::store::{started_seconds, Transition};

/// Attempts to store the ended call before giving up (the store may be briefly unavailable).
const STORE_ATTEMPTS: u32 = 5;

pub(super) async fn run(
    services: Arc<CallServices>,
    incoming: IncomingCall,
    route: Route,
    admission: Admission,
) {
    let sip_call = incoming.call;
    let local = offer_media(
        services
            .media_ip
            .unwrap_or_else(|| local_ip_towards(incoming.source)),
        &admission,
    );
    let mut sip_events = services.live.register(sip_call);
    let negotiated = match services.sip.answer(sip_call, local).await {
        Ok(negotiated) => negotiated,
        Err(e) => {
            // 488 was sent when no codec matched; otherwise the caller went away.
            tracing::info!(error = %e, call_id = %incoming.call_id, "inbound call not answered");
            services.live.remove(sip_call);
            return;
        }
    };
    let answered_at = services.store.clock().now();
    let mut call = answered_call(&incoming, &route, answered_at);
    let agent = builtin_agent(&route.agent, &call, answered_at.date());
    let talk = Talk {
        services: &services,
        call_id: call.id,
        negotiated: &negotiated,
        agent,
        hang_up: services.stop.clone(),
    };
    let media = match talk.start_media(admission.ports) {
        Ok(media) => media,
        Err(e) => return abandon(&services, &incoming, "starting media", &e).await,
    };
    if let Err(e) = services.store.insert_answered_call(&call).await {
        return abandon(&services, &incoming, "storing the answered call", &e).await;
    }
    metrics::counter!("voxbridge_sip_inbound_total", "status" => "200").increment(1);
    tracing::info!(call = %call.id, call_id = %incoming.call_id, org = %route.org.slug, agent = %route.agent.slug, codec = ?negotiated.codec, "inbound call answered");
    let outcome = talk
        .converse(
            media,
            sip_call,
            &mut sip_events,
            admission.transcription,
            "inbound",
        )
        .await;
    services.live.remove(sip_call);

    let ended_at = outcome.ended_at;
    let answered_at = call.answered_at.unwrap_or(ended_at);
    call.status = CallStatus::Completed;
    call.ended_at = Some(ended_at);
    call.duration_seconds = Some(started_seconds(answered_at, ended_at));
    call.end_reason = Some(outcome.reason);
    call.transcript = outcome.transcript;
    call.quality = outcome.quality;
    call.analysis = outcome.analysis;
    store_ended(&services, &call).await;
}

/// Hangs up an answered call that cannot go on (nothing was stored for it).
async fn abandon(
    services: &CallServices,
    incoming: &IncomingCall,
    step: &str,
    error: &(dyn std::fmt::Display + Sync),
) {
    tracing::error!(%error, call_id = %incoming.call_id, "{step} failed; hanging up");
    let _ = services.sip.hangup(incoming.call).await;
    services.live.remove(incoming.call);
}

/// The call record of an inbound call answered now.
fn answered_call(incoming: &IncomingCall, route: &Route, at: OffsetDateTime) -> Call {
    Call {
        id: new_id(),
        org_id: route.org.id,
        agent_id: Some(route.agent.id),
        direction: Direction::Inbound,
        status: CallStatus::InProgress,
        to: route.did.clone(),
        from: incoming.caller.clone(),
        context: None,
        webhook_url: None,
        schedule_at: None,
        max_attempts: 1,
        attempts: 1,
        created_at: at,
        ringing_at: None,
        answered_at: Some(at),
        ended_at: None,
        duration_seconds: None,
        end_reason: None,
        sip_status: Some(200),
        transcript: Vec::new(),
        analysis: None,
        quality: None,
        next_attempt_at: at,
    }
}

/// Stores the ended call with its `call.ended` event (and `call.analyzed` when it has answers)
/// and bills its minutes, retrying while the store is unavailable: losing the end of a call
/// would lose its transcript and its bill.
async fn store_ended(services: &CallServices, call: &Call) {
    let events: &[EventType] = match call.analysis {
        Some(_) => &[EventType::Ended, EventType::Analyzed],
        None => &[EventType::Ended],
    };
    let transition = Transition {
        call,
        from: CallStatus::InProgress,
        lease_owner: None,
        events,
        charge_seconds: call.billed_seconds(services.rounding),
    };
    for attempt in 1..=STORE_ATTEMPTS {
        match services.store.transition(&transition).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::error!(call = %call.id, "the ended call is no longer in progress; not stored");
                return;
            }
            Err(e) if attempt < STORE_ATTEMPTS => {
                tracing::warn!(error = %e, call = %call.id, attempt, "storing the ended call failed; retrying");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
            Err(e) => tracing::error!(error = %e, call = %call.id, "storing the ended call failed"),
        }
    }
}
