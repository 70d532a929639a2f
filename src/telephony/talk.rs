//! An answered call, the same in both directions: the SDP we offer or answer with, the media
//! tuned for the call's agent, the conversation ([`super::session`]) and the hang-up. Inbound
//! (`inbound_call`) and outbound (`outbound_call`) calls differ only in how they get here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::Instrument;
use voxbridge_media::codec::CodecKind;
use voxbridge_media::pipeline::CallMediaConfig;
use voxbridge_media::rtp::SourcePolicy;
use voxbridge_media::runtime::{CallHandle, MediaPorts, RuntimeError};
use voxbridge_sip::endpoint::{CallEvent, CallRef, EndReason as SipEnd};
use voxbridge_sip::sdp::{Codec, Direction as SdpDirection, LocalMedia, Negotiated};

use super::session::{Agent, Outcome, Session};
use super::{Admission, CallServices};
use crate::agents::conversation::{Script, DEFAULT_END_OF_TURN_MS};
use crate::config::{MediaConfig, RtpSource};
use crate::domain::{AgentKind, Call, EndReason};

/// After this much of the caller's silence the agent starts recognizing what was said, while
/// the end-of-turn silence runs on (see `session::Early`). Longer than most gaps between words,
/// so few early recognitions are wasted on speech that goes on.
const EARLY_RECOGNITION_PAUSE: Duration = Duration::from_millis(160);
/// Voiced speech that barges in on the agent: a vowel's worth (three 20 ms frames with a clear
/// pitch period). A click or a noise burst has none, and most coughs are aperiodic, so they
/// do not cut the agent off; a word's first vowel does, about 60–120 ms after its onset
/// (docs/decisions.md, "Barge-in").
const BARGE_IN_VOICED: Duration = Duration::from_millis(60);
/// A call's offer or answer: our address and RTP port, the codecs we take, and DTMF events.
pub(super) fn offer_media(addr: IpAddr, admission: &Admission) -> LocalMedia {
    LocalMedia {
        addr,
        port: admission.ports.pair().rtp,
        // G.711 first: a fraction of Opus's CPU, and the audio the recognizer is tuned for.
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        telephone_event: true,
        ptime: 20,
        direction: SdpDirection::SendRecv,
    }
}

/// The builtin agent that talks on this call. `None`, and the call is only transcribed, for an
/// agent with nothing to say (no greeting, no questions: a line that takes messages) and for
/// agent kinds not run here yet.
pub(super) fn builtin_agent(
    agent: &crate::domain::Agent,
    call: &Call,
    today: time::Date,
) -> Option<Agent> {
    let silent = agent
        .greeting
        .as_deref()
        .is_none_or(|g| g.trim().is_empty())
        && agent.questions.is_empty();
    (agent.kind == AgentKind::Builtin && !silent).then(|| Agent {
        script: Script::for_agent(agent, call.context.as_ref(), today),
        voice: agent.voice.clone(),
        end_of_turn: Duration::from_millis(
            agent.turns.end_of_turn_ms.unwrap_or(DEFAULT_END_OF_TURN_MS),
        ),
    })
}

/// An answered call's media and conversation, the same in both directions.
pub(super) struct Talk<'a> {
    pub services: &'a Arc<CallServices>,
    pub call_id: uuid::Uuid,
    pub negotiated: &'a Negotiated,
    pub agent: Option<Agent>,
    /// Turns true when our side must hang up.
    pub hang_up: watch::Receiver<bool>,
}

impl Talk<'_> {
    /// Starts the call's media as SDP agreed, tuned for the agent (and recorded when
    /// `[media] record_dir` is set).
    pub fn start_media(&self, ports: MediaPorts) -> Result<CallHandle, RuntimeError> {
        let record = self
            .services
            .media_config
            .record_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.wav", self.call_id)));
        let mut tuned = media_config(self.negotiated, &self.services.media_config);
        // Pauses start early recognitions (with an agent) and cut long speech between words.
        tuned.vad.pause = Some(EARLY_RECOGNITION_PAUSE);
        // Voicing tells words from noise: it lets a caller barge in on the agent, and spares
        // the recognizer clicks, coughs and noise bursts.
        tuned.vad.voiced = Some(BARGE_IN_VOICED);
        if let Some(agent) = &self.agent {
            tuned.vad.hangover = agent.end_of_turn;
        }
        self.services.media.start(ports, tuned, record)
    }

    /// Runs the conversation until either side hangs up, and ends the dialog if SIP has not.
    pub async fn converse(
        self,
        media: CallHandle,
        sip_call: CallRef,
        sip_events: &mut mpsc::UnboundedReceiver<CallEvent>,
        transcription: Option<OwnedSemaphorePermit>,
        direction: &'static str,
    ) -> Outcome {
        metrics::gauge!("voxbridge_calls_active", "direction" => direction).increment(1.0);
        let narrowband = matches!(self.negotiated.codec, Codec::Pcmu | Codec::Pcma);
        let session = Session {
            services: self.services.clone(),
            narrowband,
            transcribing: transcription.is_some(),
            hang_up: self.hang_up,
        };
        // Everything logged about the call (and its recognitions) names it.
        let span = tracing::info_span!("call", id = %self.call_id, direction);
        let outcome = session
            .converse(media, sip_events, self.agent)
            .instrument(span)
            .await;
        drop(transcription);
        if !outcome.dialog_ended {
            let _ = self.services.sip.hangup(sip_call).await;
        }
        metrics::gauge!("voxbridge_calls_active", "direction" => direction).decrement(1.0);
        outcome
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
pub(super) fn sends(direction: SdpDirection) -> bool {
    matches!(direction, SdpDirection::SendRecv | SdpDirection::SendOnly)
}

/// Whether the caller sends us media with our direction `direction` (not while they hold).
pub(super) fn receives(direction: SdpDirection) -> bool {
    matches!(direction, SdpDirection::SendRecv | SdpDirection::RecvOnly)
}

/// Notices a caller whose RTP stopped without a BYE (a crashed phone, a lost network): such a
/// call would otherwise hold its ports and transcription slot until `max_call_duration`.
pub(super) struct RtpWatch {
    timeout: Option<Duration>,
    expecting: bool,
    packets: u64,
    quiet_since: Instant,
}

impl RtpWatch {
    pub(super) fn new(timeout: Option<Duration>) -> Self {
        RtpWatch {
            timeout,
            expecting: true,
            packets: 0,
            quiet_since: Instant::now(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.timeout.is_some()
    }

    /// A quarter of the timeout: the hang-up comes at most 25 % late.
    pub(super) fn check_every(&self) -> Duration {
        self.timeout
            .map_or(Duration::from_secs(3600), |t| t / 4)
            .max(Duration::from_millis(250))
    }

    pub(super) fn expect_rtp(&mut self, expecting: bool) {
        self.expecting = expecting;
        self.quiet_since = Instant::now();
    }

    /// `received` is the call's packet count so far.
    pub(super) fn timed_out(&mut self, received: u64, now: Instant) -> bool {
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
pub(super) fn local_ip_towards(peer: SocketAddr) -> IpAddr {
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

pub(super) fn end_reason(reason: &SipEnd) -> EndReason {
    match reason {
        SipEnd::RemoteBye => EndReason::CallerHangup,
        SipEnd::LocalBye => EndReason::AgentHangup,
        SipEnd::MaxDuration => EndReason::Timeout,
        SipEnd::Unanswered => EndReason::NoAnswer,
        SipEnd::AckTimeout => EndReason::Error,
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
