//! SIP glue for `voxbridge serve`: runs the SIP endpoint on `[sip] listen` (UDP and TCP; the
//! driver answers OPTIONS itself), routes every inbound INVITE through the store, admits it
//! against capacity (RTP ports, transcription) and answers it with media. Each answered call
//! runs as its own task ([`inbound_call`]); SIP events reach it through [`LiveCalls`].

mod inbound_call;
mod outbound_call;
mod session;
mod talk;
mod transcription;
pub mod utterances;

pub use transcription::Sizing;
use transcription::Transcription;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use voxbridge_asr::AsrError;
use voxbridge_media::ports::PortError;
use voxbridge_media::runtime::{MediaPorts, MediaRuntime, MediaRuntimeConfig, RuntimeError};
use voxbridge_sip::driver::{self, DriverConfig, SipHandle};
use voxbridge_sip::endpoint::{CallEvent, CallRef, Event, IncomingCall, RateLimit};
use voxbridge_sip::message::HeaderName;

use crate::agents::conversation::DEFAULT_CLOSING;
use crate::agents::tts::Tts;
use crate::config::{AsrConfig, Config, MediaConfig, Rounding};
use crate::dispatcher::Dialer;
use crate::inbound::{InboundRouter, Route};
use crate::limits::{CallLimits, CallSlot};
use crate::outcome::Outcome;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    #[error("cannot listen for SIP on {addr}: {source}")]
    SipBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the media threads: {0}")]
    Media(#[from] RuntimeError),
    #[error("[asr] model: {0}")]
    Asr(#[from] AsrError),
    #[error("media.record_dir {path}: {source}")]
    RecordDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What this node's calls hold of its capacity, for `/readyz`.
#[derive(Debug, Default, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct CapacityReport {
    pub rtp_port_pairs_in_use: usize,
    pub rtp_port_pairs: usize,
    /// Calls holding an `[asr] max_calls` slot, and the slots (0 without transcription).
    pub transcribed_calls: usize,
    pub transcription_slots: usize,
    /// How the slots were set: `configured`, `calibrated` at start-up, or `fallback` after a
    /// failed calibration (absent without transcription).
    pub transcription_sizing: Option<Sizing>,
    /// Calibration's time to recognize a 3.4 s utterance on one recognizer, in ms.
    pub calibrated_utterance_ms: Option<u64>,
    /// Utterances being recognized and waiting for a recognizer.
    pub recognizing: usize,
    pub recognition_queue: usize,
    /// The 95th percentile of how long utterances waited for a recognizer, in ms: the latest
    /// (up to 64) taken in the last 30 s and those waiting now.
    pub recognition_wait_p95_ms: u64,
    /// Above this p95 wait new calls are refused (503) until the recognizers catch up.
    pub recognition_wait_limit_ms: u64,
    /// Utterances recognized with one decode instead of two because others were waiting.
    pub second_opinions_skipped: usize,
    /// Pairs of waiting utterances recognized in one decode (`[asr] pair_utterances`), and
    /// pairs whose text could not be told apart, so each was recognized again alone.
    pub utterance_pairs: usize,
    pub utterance_pairs_split: usize,
}

impl CapacityReport {
    /// Sets the capacity gauges, for a `/metrics` scrape.
    pub fn record_metrics(&self) {
        let gauges = [
            (
                "voxbridge_rtp_port_pairs_in_use",
                self.rtp_port_pairs_in_use as f64,
            ),
            ("voxbridge_rtp_port_pairs", self.rtp_port_pairs as f64),
            ("voxbridge_asr_calls", self.transcribed_calls as f64),
            (
                "voxbridge_asr_call_capacity",
                self.transcription_slots as f64,
            ),
            ("voxbridge_asr_recognizing", self.recognizing as f64),
            ("voxbridge_asr_queue_depth", self.recognition_queue as f64),
            (
                "voxbridge_asr_queue_wait_p95_seconds",
                self.recognition_wait_p95_ms as f64 / 1e3,
            ),
            (
                "voxbridge_asr_queue_wait_limit_seconds",
                self.recognition_wait_limit_ms as f64 / 1e3,
            ),
        ];
        for (name, value) in gauges {
            metrics::gauge!(name).set(value);
        }
        let counters = [
            (
                "voxbridge_asr_second_opinions_skipped_total",
                self.second_opinions_skipped,
            ),
            ("voxbridge_asr_utterance_pairs_total", self.utterance_pairs),
            (
                "voxbridge_asr_utterance_pairs_split_total",
                self.utterance_pairs_split,
            ),
        ];
        for (name, value) in counters {
            metrics::counter!(name).absolute(value as u64);
        }
    }
}

/// A view of the running telephony's capacity.
#[derive(Clone)]
pub struct Capacity(Arc<CallServices>);

impl Capacity {
    pub fn report(&self) -> CapacityReport {
        let (in_use, pairs) = self.0.media.port_usage();
        let mut report = CapacityReport {
            rtp_port_pairs_in_use: in_use,
            rtp_port_pairs: pairs,
            // Without transcription: no slots, nothing recognizing.
            ..CapacityReport::default()
        };
        if let Some(asr) = &self.0.asr {
            asr.report(&mut report);
        }
        report
    }
}

/// What answering a call needs, shared by the call tasks.
pub(crate) struct CallServices {
    sip: SipHandle,
    store: Store,
    media: MediaRuntime,
    asr: Option<Transcription>,
    /// The agents' voices.
    tts: Tts,
    /// The address put in SDP; `None` when listening on a wildcard address without
    /// `public_addr` (then the local address towards each caller is used).
    media_ip: Option<IpAddr>,
    /// `[media]`: per-call tuning, recording, RTP timeout.
    media_config: MediaConfig,
    /// `[billing] rounding`: how talk time is drawn from the org's minutes.
    rounding: Rounding,
    /// The caps on calls at once, shared with the dispatcher.
    limits: CallLimits,
    live: LiveCalls,
    /// Turns true when the server shuts down: live calls are hung up and stored, new ones
    /// refused with 503 (another node takes them).
    stop: watch::Receiver<bool>,
}

impl CallServices {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Our SIP address as seen from a peer that reaches us at `local_ip` (From, Contact).
    fn sip_host(&self, local_ip: IpAddr) -> String {
        SocketAddr::new(local_ip, self.sip.local_addr().port()).to_string()
    }
}

/// SIP events of answered calls, by call, to the task running each.
#[derive(Clone, Default)]
pub(crate) struct LiveCalls(Arc<Mutex<HashMap<CallRef, mpsc::UnboundedSender<CallEvent>>>>);

impl LiveCalls {
    fn register(&self, call: CallRef) -> mpsc::UnboundedReceiver<CallEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut calls) = self.0.lock() {
            calls.insert(call, tx);
        }
        rx
    }

    fn remove(&self, call: CallRef) {
        if let Ok(mut calls) = self.0.lock() {
            calls.remove(&call);
        }
    }

    /// Hands the event back when no task runs the call (refused calls, or already finished).
    fn deliver(&self, call: CallRef, event: CallEvent) -> Result<(), CallEvent> {
        let Ok(calls) = self.0.lock() else {
            return Err(event);
        };
        match calls.get(&call) {
            Some(tx) => tx.send(event).map_err(|unsent| unsent.0),
            None => Err(event),
        }
    }
}

/// A call's hold on capacity: its RTP ports and, with transcription on, an `[asr] max_calls`
/// slot; an inbound call's place under the caps too (the dispatcher holds an outbound call's).
/// Dropping it gives everything back.
pub(crate) struct Admission {
    ports: MediaPorts,
    transcription: Option<OwnedSemaphorePermit>,
    _place: Option<CallSlot>,
}

impl CallServices {
    /// Calls that could be admitted now, none while the node is stopping.
    fn room(&self) -> usize {
        if self.stopping() {
            return 0;
        }
        let (in_use, pairs) = self.media.port_usage();
        let ports = pairs.saturating_sub(in_use);
        self.asr.as_ref().map_or(ports, |asr| ports.min(asr.room()))
    }

    fn admit(&self) -> Result<Admission, Outcome> {
        let transcription = self.asr.as_ref().map(Transcription::admit).transpose()?;
        let ports = self.media.reserve().map_err(|e| match e {
            RuntimeError::Ports(PortError::Exhausted { .. }) => {
                metrics::counter!("voxbridge_calls_refused_total", "reason" => "rtp_ports")
                    .increment(1);
                Outcome::NoCapacity
            }
            other => {
                tracing::error!(error = %other, "reserving RTP ports failed");
                Outcome::Internal
            }
        })?;
        Ok(Admission {
            ports,
            transcription,
            _place: None,
        })
    }

    /// An inbound call's admission: its place under the node's, trunk's and org's caps, then
    /// media and transcription capacity.
    fn admit_inbound(&self, route: &Route) -> Result<Admission, Outcome> {
        let place = self
            .limits
            .take(route.org.id, &route.trunk)
            .map_err(|limit| {
                metrics::counter!("voxbridge_calls_refused_total", "reason" => limit.as_str())
                    .increment(1);
                Outcome::NoCapacity
            })?;
        let admission = self.admit()?;
        Ok(Admission {
            _place: Some(place),
            ..admission
        })
    }
}

/// The running SIP side.
pub struct Telephony {
    pub sip: SipHandle,
    /// Places outbound calls through `[telephony] outbound_trunk` (when one is set).
    pub dialer: Option<Arc<dyn Dialer>>,
    pub capacity: Capacity,
}

/// Binds the SIP endpoint, starts the media threads (and loads the speech model when `[asr]`
/// names one), and starts answering on a task in `tasks`. When `stop` turns true that task
/// hangs up and stores every live call, then ends.
pub async fn start(
    config: &Config,
    router: InboundRouter,
    store: Store,
    limits: CallLimits,
    stop: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<Telephony, TelephonyError> {
    let mut media_config = MediaRuntimeConfig::new(
        config.sip.listen.ip(),
        config.media.rtp_port_min,
        config.media.rtp_port_max,
    );
    if config.media.threads > 0 {
        media_config.threads = config.media.threads;
    }
    media_config.realtime_priority = config.media.realtime_priority;
    let media = MediaRuntime::new(media_config)?;
    if let Some(dir) = &config.media.record_dir {
        // Found out now, not by the first caller whose recording cannot be written.
        std::fs::create_dir_all(dir).map_err(|source| TelephonyError::RecordDir {
            path: dir.clone(),
            source,
        })?;
    }
    let asr = match config.asr.as_ref() {
        Some(
            asr @ AsrConfig {
                model: Some(model), ..
            },
        ) => Some(Transcription::start(asr, model).await?),
        _ => None,
    };

    let mut driver_config = DriverConfig::new(config.sip.listen);
    driver_config.advertised = config
        .sip
        .public_addr
        .map(|ip| SocketAddr::new(ip, config.sip.listen.port()));
    // A trunk carries many calls from one address; only unknown sources are rate limited.
    // That includes a trunk we only dial out through: at a few hundred calls at once its
    // BYEs alone would exceed the limit and get it banned.
    let trunk_hosts = config
        .trunks
        .iter()
        .filter_map(|t| t.host.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
    driver_config.endpoint.rate_limit = Some(RateLimit {
        per_second: config.sip.rate_limit_per_second,
        burst: config.sip.rate_limit_burst,
        ban: Duration::from_secs(config.sip.ban_seconds),
        exempt: config
            .trunks
            .iter()
            .flat_map(|t| t.inbound_cidrs.iter().copied())
            .chain(trunk_hosts)
            .map(|net| (net.network(), net.prefix_len()))
            .collect(),
    });
    let (sip, events) =
        driver::start(driver_config)
            .await
            .map_err(|source| TelephonyError::SipBind {
                addr: config.sip.listen,
                source,
            })?;
    let listen_ip = config.sip.listen.ip();
    let tts = Tts::new(&config.voices, config.tts.as_ref());
    tasks.spawn(warm_up(tts.clone(), prompts(config)));
    let services = Arc::new(CallServices {
        sip: sip.clone(),
        store,
        media,
        asr,
        tts,
        media_ip: config
            .sip
            .public_addr
            .or((!listen_ip.is_unspecified()).then_some(listen_ip)),
        media_config: config.media.clone(),
        rounding: config.billing.rounding,
        limits,
        live: LiveCalls::default(),
        stop: stop.clone(),
    });
    let outbound_trunk = config.telephony.outbound_trunk.as_ref();
    let dialer = outbound_trunk
        .and_then(|name| config.trunks.iter().find(|t| &t.name == name))
        .map(|trunk| -> Arc<dyn Dialer> {
            Arc::new(outbound_call::SipDialer::new(
                services.clone(),
                trunk.clone(),
                Duration::from_secs(config.telephony.ring_timeout_seconds),
            ))
        });
    let capacity = Capacity(services.clone());
    tasks.spawn(route_incoming(services, events, Arc::new(router), stop));
    Ok(Telephony {
        sip,
        dialer,
        capacity,
    })
}

/// The fixed prompts of the configured builtin agents, with their voices: what every call to
/// them says before anything depends on the caller or the call's context.
fn prompts(config: &Config) -> Vec<(String, String)> {
    let agents = config.orgs.iter().flat_map(|org| &org.agents);
    agents
        .filter(|a| a.active && a.kind == crate::domain::AgentKind::Builtin)
        .filter(|a| a.greeting.is_some() || !a.questions.is_empty())
        .flat_map(|a| {
            let closing = a.closing.as_deref().unwrap_or(DEFAULT_CLOSING);
            crate::agents::template::agent_texts(a.greeting.as_deref(), &a.questions, Some(closing))
                .filter(|text| crate::agents::template::placeholders(text).is_empty())
                .map(|text| (a.voice.clone(), text.to_owned()))
        })
        .collect()
}

/// Synthesizes `prompts` into the cache at start-up, so the first caller's greeting costs no
/// more than the thousandth's, and a speech engine that cannot run is reported now, loudly,
/// rather than as silent calls.
async fn warm_up(tts: Tts, prompts: Vec<(String, String)>) {
    for (voice, text) in prompts {
        if let Err(e) = tts.speak(&voice, &text).await {
            tracing::error!(voice, error = %e, "speech synthesis does not work: agents will be silent");
            return;
        }
    }
}

/// The SIP event loop. Each INVITE is handled on a task of its own (routing awaits the store;
/// this loop must keep draining); after `stop` it runs until those tasks have finished, still
/// delivering the SIP events that end their calls.
async fn route_incoming(
    services: Arc<CallServices>,
    mut events: mpsc::Receiver<Event>,
    router: Arc<InboundRouter>,
    mut stop: watch::Receiver<bool>,
) {
    let mut calls = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Incoming(call)) => {
                    let (services, router) = (services.clone(), router.clone());
                    calls.spawn(async move { answer_incoming(services, &router, *call).await });
                }
                Some(Event::Call(call, event)) => {
                    if let Err(event) = services.live.deliver(call, event) {
                        // The ends of refused calls, or events after the call's task finished.
                        tracing::debug!(call = call.0, ?event, "call event without a live call");
                    }
                }
                None => break,
            },
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                tracing::info!(calls = calls.len(), "shutting down: hanging up live calls");
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
        if stopping && calls.is_empty() {
            break;
        }
    }
}

/// Resolves once `stop` is true; never if the server dropped the sender without stopping.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn answer_incoming(services: Arc<CallServices>, router: &InboundRouter, call: IncomingCall) {
    let admitted = match router.route(call.source.ip(), &call.did).await {
        // A node shutting down sends callers elsewhere.
        Ok(_) if services.stopping() => Err(Outcome::NoCapacity),
        Ok(route) => services
            .admit_inbound(&route)
            .map(|admission| (route, admission)),
        Err(refusal) => Err(refusal),
    };
    match admitted {
        Ok((route, admission)) => inbound_call::run(services, call, route, admission).await,
        Err(refusal) => reject(&services.sip, &call, refusal).await,
    }
}

async fn reject(sip: &SipHandle, call: &IncomingCall, refusal: Outcome) {
    let (status, reason, retry_after) = refusal.sip_response();
    metrics::counter!("voxbridge_sip_inbound_total", "status" => status.to_string()).increment(1);
    tracing::info!(call_id = %call.call_id, did = %call.did, source = %call.source, status, reason, "inbound INVITE refused");
    let headers = retry_after
        .map(|s| vec![(HeaderName::RetryAfter, s.to_string())])
        .unwrap_or_default();
    if let Err(e) = sip
        .reject(call.call, status, Some(reason.to_owned()), headers)
        .await
    {
        tracing::debug!(error = %e, call_id = %call.call_id, "reject failed (the caller may have cancelled)");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn start_up_warms_the_fixed_prompts_of_active_speaking_agents() {
        let toml = r#"
[database]
url = "sqlite://x.db"
[[orgs]]
slug = "a"
name = "A"
[[orgs.agents]]
slug = "support"
name = "S"
direction = "inbound"
voice = "calm_support"
greeting = "Hello."
questions = [{ key = "q", ask = "Shall I book it?", type = "yes_no" }]
[[orgs.agents]]
slug = "caller"
name = "C"
direction = "outbound"
greeting = "Hi {{name}}."
closing = "Bye."
[[orgs.agents]]
slug = "listener"
name = "L"
direction = "inbound"
[[orgs.agents]]
slug = "retired"
name = "R"
direction = "outbound"
greeting = "Old."
active = false
"#;
        let config = Config::from_toml_str(toml, Path::new("t.toml"), std::iter::empty())
            .expect("valid config");
        let prompts = prompts(&config);
        let said: Vec<(&str, &str)> = prompts
            .iter()
            .map(|(v, t)| (v.as_str(), t.as_str()))
            .collect();
        // The outbound agent's greeting needs the call's context; its closing does not.
        assert_eq!(
            said,
            [
                ("calm_support", "Hello."),
                ("calm_support", "Shall I book it?"),
                ("calm_support", DEFAULT_CLOSING),
                ("neutral", "Bye."),
            ]
        );
    }
}
