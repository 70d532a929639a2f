//! One answered inbound call, start to end: the SDP answer, the call's media, the caller's
//! speech transcribed utterance by utterance, and at the end the call stored with its
//! transcript and media quality (`call.answered`, then `call.ended`).
//!
//! The agent's side of the conversation (speech synthesis, scripts, WebSocket bots) is not
//! wired yet: the agent listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use voxbridge_asr::{AsrError, Question};
use voxbridge_media::codec::CodecKind;
use voxbridge_media::pipeline::{CallMediaConfig, MediaEvent};
use voxbridge_media::rtp::SourcePolicy;
use voxbridge_media::runtime::{CallEvent as MediaCallEvent, CallHandle};
use voxbridge_media::vad::VadEvent;
use voxbridge_sip::endpoint::{CallEvent, EndReason as SipEnd, IncomingCall};
use voxbridge_sip::sdp::{Codec, Direction as SdpDirection, LocalMedia, Negotiated};

use super::utterances::{Utterance, UtteranceCutter};
use super::{stopped, Admission, CallServices};
use crate::config::{MediaConfig, RtpSource};
use crate::domain::{
    new_id, now, Call, CallStatus, Direction, EndReason, EventType, Speaker, TranscriptEntry,
};
use crate::inbound::Route;
use crate::store::Transition;

/// How long an utterance waits for a free recognizer before it is given up.
const RECOGNIZER_PATIENCE: Duration = Duration::from_secs(10);
const RECOGNIZER_RETRY: Duration = Duration::from_millis(100);
/// Attempts to store the ended call before giving up (the store may be briefly unavailable).
const STORE_ATTEMPTS: u32 = 5;

pub(super) async fn run(
    services: Arc<CallServices>,
    incoming: IncomingCall,
    route: Route,
    admission: Admission,
) {
    let sip_call = incoming.call;
    let local = LocalMedia {
        addr: services
            .media_ip
            .unwrap_or_else(|| local_ip_towards(incoming.source)),
        port: admission.ports.pair().rtp,
        // G.711 first: a fraction of Opus's CPU, and the audio the recognizer is tuned for.
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        telephone_event: true,
        ptime: 20,
        direction: SdpDirection::SendRecv,
    };
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
    let mut call = answered_call(&incoming, &route);
    let Admission {
        ports,
        transcription,
    } = admission;
    let record = services
        .media_config
        .record_dir
        .as_ref()
        .map(|dir| dir.join(format!("{}.wav", call.id)));
    let tuned = media_config(&negotiated, &services.media_config);
    let media = match services.media.start(ports, tuned, record) {
        Ok(media) => media,
        Err(e) => return abandon(&services, &incoming, "starting media", &e).await,
    };
    if let Err(e) = services.store.insert_answered_call(&call).await {
        return abandon(&services, &incoming, "storing the answered call", &e).await;
    }
    metrics::counter!("voxbridge_sip_inbound_total", "status" => "200").increment(1);
    metrics::gauge!("voxbridge_calls_active", "direction" => "inbound").increment(1.0);
    tracing::info!(call = %call.id, call_id = %incoming.call_id, org = %route.org.slug, agent = %route.agent.slug, codec = ?negotiated.codec, "inbound call answered");

    let narrowband = matches!(negotiated.codec, Codec::Pcmu | Codec::Pcma);
    let listener = Listener {
        services: services.clone(),
        narrowband,
        transcribing: transcription.is_some(),
    };
    let outcome = listener.converse(media, &mut sip_events).await;
    drop(transcription);
    services.live.remove(sip_call);
    if !outcome.dialog_ended {
        let _ = services.sip.hangup(sip_call).await;
    }
    metrics::gauge!("voxbridge_calls_active", "direction" => "inbound").decrement(1.0);

    let ended_at = now();
    let answered_at = call.answered_at.unwrap_or(ended_at);
    let millis =
        i64::try_from((ended_at - answered_at).whole_milliseconds().max(0)).unwrap_or(i64::MAX);
    call.status = CallStatus::Completed;
    call.ended_at = Some(ended_at);
    // Started seconds: a call of 0.2 s lasted 1 s, as carriers count.
    call.duration_seconds = Some(millis.saturating_add(999) / 1000);
    call.end_reason = Some(outcome.reason);
    call.transcript = outcome.transcript;
    call.quality = outcome.quality;
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
fn answered_call(incoming: &IncomingCall, route: &Route) -> Call {
    let at = now();
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

/// The call's media settings: what SDP agreed, tuned by `[media]`.
fn media_config(negotiated: &Negotiated, tuning: &MediaConfig) -> CallMediaConfig {
    let codec = match negotiated.codec {
        Codec::Pcmu => CodecKind::Pcmu,
        Codec::Pcma => CodecKind::Pcma,
        Codec::Opus => CodecKind::Opus,
    };
    let mut config = CallMediaConfig::new(codec, negotiated.payload_type, negotiated.remote);
    config.dtmf_payload_type = negotiated.telephone_event_pt;
    config.ptime_ms = negotiated.ptime;
    config.source_policy = match tuning.source {
        RtpSource::Latch => SourcePolicy::Latch,
        RtpSource::Strict => SourcePolicy::Strict,
    };
    config.vad.hangover = Duration::from_millis(tuning.vad_hangover_ms);
    config.jitter_min_delay = Duration::from_millis(tuning.jitter_min_ms);
    config.jitter_max_delay = Duration::from_millis(tuning.jitter_max_ms);
    config.comfort_noise = tuning.comfort_noise;
    config
}

/// Whether we send media in this direction (not when the caller holds us).
fn sends(direction: SdpDirection) -> bool {
    matches!(direction, SdpDirection::SendRecv | SdpDirection::SendOnly)
}

/// Whether the caller sends us media with our direction `direction` (not while they hold).
fn receives(direction: SdpDirection) -> bool {
    matches!(direction, SdpDirection::SendRecv | SdpDirection::RecvOnly)
}

/// Notices a caller whose RTP stopped without a BYE (a crashed phone, a lost network): such a
/// call would otherwise hold its ports and transcription slot until `max_call_duration`.
struct RtpWatch {
    timeout: Option<Duration>,
    expecting: bool,
    packets: u64,
    quiet_since: Instant,
}

impl RtpWatch {
    fn new(timeout: Option<Duration>) -> Self {
        RtpWatch {
            timeout,
            expecting: true,
            packets: 0,
            quiet_since: Instant::now(),
        }
    }

    fn enabled(&self) -> bool {
        self.timeout.is_some()
    }

    /// A quarter of the timeout: the hang-up comes at most 25 % late.
    fn check_every(&self) -> Duration {
        self.timeout
            .map_or(Duration::from_secs(3600), |t| t / 4)
            .max(Duration::from_millis(250))
    }

    fn expect_rtp(&mut self, expecting: bool) {
        self.expecting = expecting;
        self.quiet_since = Instant::now();
    }

    /// `received` is the call's packet count so far.
    fn timed_out(&mut self, received: u64, now: Instant) -> bool {
        if received != self.packets || !self.expecting {
            self.packets = received;
            self.quiet_since = now;
            return false;
        }
        self.timeout
            .is_some_and(|t| now.duration_since(self.quiet_since) >= t)
    }
}

/// The local address the kernel would use to reach `peer`: what SDP must carry when SIP listens
/// on a wildcard address and no `public_addr` is set. Connecting a UDP socket sends nothing.
fn local_ip_towards(peer: SocketAddr) -> IpAddr {
    let unspecified: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    UdpSocket::bind(unspecified)
        .and_then(|socket| {
            socket.connect(peer)?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, %peer, "no route to the caller; advertising loopback media");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        })
}

fn end_reason(reason: &SipEnd) -> EndReason {
    match reason {
        SipEnd::RemoteBye => EndReason::CallerHangup,
        SipEnd::LocalBye => EndReason::AgentHangup,
        SipEnd::MaxDuration => EndReason::Timeout,
        SipEnd::Unanswered => EndReason::NoAnswer,
        SipEnd::AckTimeout => EndReason::Error,
    }
}

struct Outcome {
    reason: EndReason,
    /// SIP already ended the dialog (BYE either way, max duration); otherwise we must hang up.
    dialog_ended: bool,
    transcript: Vec<TranscriptEntry>,
    quality: Option<serde_json::Value>,
}

/// The agent's ear: caller audio cut into utterances by the VAD and recognized off the media
/// threads.
struct Listener {
    services: Arc<CallServices>,
    narrowband: bool,
    transcribing: bool,
}

impl Listener {
    async fn converse(
        &self,
        mut media: CallHandle,
        sip_events: &mut mpsc::UnboundedReceiver<CallEvent>,
    ) -> Outcome {
        let (done, mut results) = mpsc::unbounded_channel();
        let mut cutter = UtteranceCutter::default();
        let mut pending = 0usize;
        let mut transcript = Vec::new();
        let mut stop = self.services.stop.clone();
        let timeout = self.services.media_config.rtp_timeout_seconds;
        let mut silence = RtpWatch::new((timeout > 0).then(|| Duration::from_secs(timeout)));
        let mut check = tokio::time::interval(silence.check_every());
        let (reason, dialog_ended) = loop {
            tokio::select! {
                event = sip_events.recv() => match event {
                    Some(CallEvent::Ended { reason }) => break (end_reason(&reason), true),
                    Some(CallEvent::MediaUpdated { negotiated }) => {
                        let _ = media.set_remote(negotiated.remote, None);
                        let _ = media.set_sending(sends(negotiated.direction));
                        silence.expect_rtp(receives(negotiated.direction));
                    }
                    Some(_) => {}
                    None => break (EndReason::Error, false),
                },
                event = media.recv() => {
                    let utterance = match event {
                        Some(MediaCallEvent::Audio(frame)) => cutter.frame(&frame.pcm),
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechStart))) => {
                            cutter.speech_started();
                            None
                        }
                        Some(MediaCallEvent::Media(MediaEvent::Vad(VadEvent::SpeechEnd))) => {
                            cutter.speech_ended()
                        }
                        Some(MediaCallEvent::Media(_)) => None,
                        // The media threads dropped the call: nothing more can be heard.
                        None => break (EndReason::Error, false),
                    };
                    if let Some(utterance) = utterance {
                        pending += self.submit(utterance, &done);
                    }
                }
                Some(entry) = results.recv() => {
                    pending -= 1;
                    transcript.extend(entry);
                }
                // The server is shutting down: our side hangs up.
                () = stopped(&mut stop) => break (EndReason::AgentHangup, false),
                _ = check.tick(), if silence.enabled() => {
                    let received = media.quality().await.map_or(0, |q| q.packets_received);
                    if silence.timed_out(received, Instant::now()) {
                        tracing::info!("no RTP from the caller; hanging up");
                        break (EndReason::Timeout, false);
                    }
                }
            }
        };
        let quality = media
            .hangup()
            .await
            .ok()
            .and_then(|q| serde_json::to_value(q).ok());
        if let Some(utterance) = cutter.finish() {
            pending += self.submit(utterance, &done);
        }
        // Speech still being recognized belongs to the transcript; wait for it, bounded.
        let give_up = Instant::now() + RECOGNIZER_PATIENCE * 2;
        while pending > 0 {
            match tokio::time::timeout_at(give_up, results.recv()).await {
                Ok(Some(entry)) => {
                    pending -= 1;
                    transcript.extend(entry);
                }
                _ => break,
            }
        }
        transcript.sort_by_key(|entry: &TranscriptEntry| entry.start_ms);
        Outcome {
            reason,
            dialog_ended,
            transcript,
            quality,
        }
    }

    /// Starts recognizing `utterance`; the entry (or `None`) arrives on `done`. Returns how many
    /// results to expect (0 without transcription).
    fn submit(
        &self,
        utterance: Utterance,
        done: &mpsc::UnboundedSender<Option<TranscriptEntry>>,
    ) -> usize {
        if !self.transcribing {
            return 0;
        }
        let (services, done) = (self.services.clone(), done.clone());
        let audio = utterance.model_input(self.narrowband);
        let end_of_speech = Instant::now();
        tokio::spawn(async move {
            let text = recognize(&services, audio).await;
            if text.is_some() {
                metrics::histogram!("voxbridge_asr_utterance_seconds")
                    .record(end_of_speech.elapsed().as_secs_f64());
            }
            let entry = text.map(|text| TranscriptEntry {
                role: Speaker::Caller,
                text,
                start_ms: utterance.start_ms,
                end_ms: utterance.end_ms,
            });
            let _ = done.send(entry);
        });
        1
    }
}

/// The text of one utterance, waiting (not queueing inside the pool) while every recognizer is
/// busy. `None` for silence, errors, or no recognizer within [`RECOGNIZER_PATIENCE`].
async fn recognize(services: &CallServices, audio: Vec<f32>) -> Option<String> {
    let engine = &services.asr.as_ref()?.engine;
    let give_up = Instant::now() + RECOGNIZER_PATIENCE;
    loop {
        let (tx, rx) = oneshot::channel();
        let submitted =
            engine.try_transcribe_utterance(audio.clone(), &Question::free(), move |result| {
                let _ = tx.send(result);
            });
        match submitted {
            Ok(()) => {
                return match rx.await {
                    Ok(Ok(output)) if !output.text.trim().is_empty() => Some(output.text),
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "recognizing an utterance failed");
                        None
                    }
                    Err(_) => None,
                };
            }
            Err(AsrError::Busy(_)) if Instant::now() < give_up => {
                tokio::time::sleep(RECOGNIZER_RETRY).await;
            }
            Err(e) => {
                metrics::counter!("voxbridge_asr_utterances_dropped_total").increment(1);
                tracing::warn!(error = %e, "utterance not recognized");
                return None;
            }
        }
    }
}

/// Stores the ended call with its `call.ended` event and bills its minutes, retrying while the
/// store is unavailable: losing the end of a call would lose its transcript and its bill.
async fn store_ended(services: &CallServices, call: &Call) {
    let transition = Transition {
        call,
        from: CallStatus::InProgress,
        lease_owner: None,
        events: &[EventType::Ended],
        charge_minutes: call.billable_minutes(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_watch_times_out_only_after_silence_while_expecting_media() {
        let start = Instant::now();
        let second = |n: u64| start + Duration::from_secs(n);
        let mut watch = RtpWatch::new(Some(Duration::from_secs(10)));
        watch.quiet_since = start;
        assert!(!watch.timed_out(50, second(5)), "packets flowing");
        assert!(!watch.timed_out(50, second(14)), "9 s quiet");
        assert!(watch.timed_out(50, second(15)), "10 s quiet");

        watch.expect_rtp(false);
        assert!(
            !watch.timed_out(50, second(100)),
            "held: the caller sends nothing"
        );
        watch.expect_rtp(true);
        watch.quiet_since = second(100);
        assert!(!watch.timed_out(60, second(105)));
        assert!(watch.timed_out(60, second(115)));

        let mut off = RtpWatch::new(None);
        assert!(!off.enabled());
        assert!(!off.timed_out(0, second(1_000_000)));
    }
}
