//! Configuration: a TOML file overlaid with `VOXBRIDGE__SECTION__KEY` environment variables.
//!
//! Every struct denies unknown fields so a typo is an error that names the key's full path
//! (`orgs[0].agents[1].dirction`), never a silently ignored setting.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::domain::{AgentKind, Direction, FirstSpeaker, Question};
use crate::outcome::RetryWait;
use crate::phone::PhoneNormalizer;

mod env;

pub const DEFAULT_CONFIG_PATH: &str = "config/voxbridge.toml";
const ENV_PREFIX: &str = "VOXBRIDGE__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub media: MediaConfig,
    pub asr: Option<AsrConfig>,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub telephony: TelephonyConfig,
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(default)]
    pub orgs: Vec<OrgConfig>,
    /// Voices for agents to speak with, beyond (or overriding) the built-in ones.
    #[serde(default)]
    pub voices: BTreeMap<String, VoiceConfig>,
    /// Remote neural text-to-speech for voices with `engine = "remote"`.
    pub tts: Option<TtsConfig>,
    #[serde(default)]
    pub billing: BillingConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    pub rounding: Rounding,
}

/// How a call's talk time (answer to hang-up) is drawn from the org's minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// Each started minute counts whole, as most carriers bill.
    #[default]
    Minute,
    /// By the second; the pool's minutes used are the started minutes of all the seconds.
    Second,
}

impl Rounding {
    /// The seconds billed for a call that talked `seconds`.
    pub fn billed_seconds(self, seconds: i64) -> i64 {
        let seconds = seconds.max(0);
        match self {
            Rounding::Minute => (seconds + 59) / 60 * 60,
            Rounding::Second => seconds,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    /// Connections in the pool (PostgreSQL) or readers (SQLite, which has one writer).
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/voxbridge.db".into(),
            max_connections: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub listen: SocketAddr,
    /// Address advertised in Via/Contact/SDP; defaults to the listen address.
    pub public_addr: Option<IpAddr>,
    /// Requests per second one source may send (trunks' `inbound_cidrs` are exempt).
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: f64,
    /// How long a source over the limit is ignored.
    pub ban_seconds: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_addr: None,
            rate_limit_per_second: 50.0,
            rate_limit_burst: 100.0,
            ban_seconds: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Media shard threads (each an epoll loop serving its share of the calls); 0 = one per core.
    pub threads: usize,
    /// Run the media threads SCHED_FIFO at this priority (1–99; needs CAP_SYS_NICE).
    pub realtime_priority: Option<i32>,
    /// `latch`: the first RTP packet fixes the caller's address (symmetric RTP through NAT);
    /// `strict`: only the address in the caller's SDP is accepted.
    pub source: RtpSource,
    /// Silence that ends an utterance (end of turn, barge-in end), in ms.
    pub vad_hangover_ms: u64,
    /// Bounds of the adaptive jitter buffer's target delay, in ms.
    pub jitter_min_ms: u64,
    pub jitter_max_ms: u64,
    /// Low-level noise instead of digital silence while the agent is quiet (callers hear a
    /// dead line as a dropped call).
    pub comfort_noise: bool,
    /// Hang up a call from which no RTP arrived for this long (the caller's side vanished
    /// without a BYE); 0 disables. Not applied while the caller holds the call.
    pub rtp_timeout_seconds: u64,
    /// Record every answered call as a stereo WAV (caller left, agent right) named
    /// `<call id>.wav` in this directory. Absent: no recording.
    pub record_dir: Option<PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtp_port_min: 20000,
            rtp_port_max: 30000,
            threads: 0,
            realtime_priority: None,
            source: RtpSource::Latch,
            vad_hangover_ms: 600,
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            comfort_noise: true,
            rtp_timeout_seconds: 60,
            record_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AsrConfig {
    /// A ggml whisper model. Absent: transcription is off.
    pub model: Option<PathBuf>,
    /// A second model for typed answers (yes/no, choices, digits …); absent: `model` decodes
    /// them too. The defaults pair the q8_0 model (free speech, 28 % less CPU) with the f16
    /// one here, which got 4 more of 126 typed answers right.
    #[serde(default)]
    pub answer_model: Option<PathBuf>,
    #[serde(default = "default_asr_threads")]
    pub threads: usize,
    #[serde(default = "default_language")]
    pub language: String,
    /// Recognitions running at once (one whisper state each); more utterances wait in a
    /// priority queue.
    #[serde(default = "default_asr_concurrency")]
    pub max_concurrent: usize,
    /// Calls transcribed at once; an INVITE beyond it is answered 503 + Retry-After. `"auto"`
    /// (the default) times the engine at start-up and takes the talking calls this machine
    /// recognizes within `latency_target_ms`; a number pins it.
    #[serde(default)]
    pub max_calls: MaxCalls,
    /// End of utterance → text, p95, in ms. `max_calls = "auto"` is sized for it, and while
    /// the recognizers' recent queue wait puts it out of reach, new calls are refused.
    #[serde(default = "default_latency_target_ms")]
    pub latency_target_ms: u64,
    /// While utterances wait for a recognizer, recognize two short free-form ones in one
    /// decode: a quarter less CPU each under load, within a WER point (docs/asr.md).
    #[serde(default = "default_true")]
    pub pair_utterances: bool,
}

/// `[asr] max_calls`: measured at start-up, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxCalls {
    #[default]
    Auto,
    Fixed(usize),
}

impl Serialize for MaxCalls {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxCalls::Auto => serializer.serialize_str("auto"),
            MaxCalls::Fixed(n) => serializer.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for MaxCalls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MaxCalls;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\" or a number of calls")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<MaxCalls, E> {
                usize::try_from(n)
                    .map(MaxCalls::Fixed)
                    .map_err(|_| E::custom("too many calls"))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<MaxCalls, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("a number of calls cannot be negative"))
                    .and_then(|n| self.visit_u64(n))
            }
            // Environment values arrive as text: "auto" or digits.
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<MaxCalls, E> {
                match text.trim() {
                    "auto" => Ok(MaxCalls::Auto),
                    digits => digits
                        .parse()
                        .map(MaxCalls::Fixed)
                        .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(text), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One decoder thread per job: with more threads than cores whisper.cpp's workers spin, and a
/// 2-thread job cost 6× the CPU per second of speech of a 1-thread job (docs/asr.md).
fn default_asr_threads() -> usize {
    1
}
fn default_language() -> String {
    "en".into()
}
fn default_asr_concurrency() -> usize {
    2
}
fn default_latency_target_ms() -> u64 {
    1_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Lets webhooks reach loopback/private addresses (development and tests only).
    pub allow_private_targets: bool,
    pub timeout_seconds: u64,
    /// Deliveries in flight at once, across all targets.
    pub max_in_flight: usize,
    /// Delay before the first retry; each further retry doubles it, capped at one hour.
    pub first_retry_seconds: u64,
    /// How long a failing event keeps being retried before it is marked failed.
    pub retry_for_hours: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_seconds: 10,
            max_in_flight: 64,
            first_retry_seconds: 5,
            retry_for_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelephonyConfig {
    /// false: outbound calls stay `queued` (no dispatcher runs).
    pub enabled: bool,
    pub outbound_trunk: Option<String>,
    /// Region for numbers written without a country code (ISO 3166 alpha-2).
    pub default_region: String,
    /// Calls at once on this node, inbound and outbound together.
    pub max_concurrent_calls: usize,
    /// Outbound INVITEs per second from this node (a trunk may set fewer).
    pub calls_per_second: u32,
    /// How long an outbound call may ring before it is canceled as `no_answer`.
    pub ring_timeout_seconds: u64,
    /// How long a dialling node's claim on a call outlives its last heartbeat (renewed every
    /// third of it): after a crash, its calls are retried or failed within about this long.
    pub lease_seconds: u64,
    pub retry: RetryConfig,
}

/// `[telephony.retry]`: the wait before a failed attempt is dialed again, by why it failed.
/// Each doubles with every further failure of the call (up to a day), spread by 20 % either way.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// After busy (486, 600).
    pub busy_seconds: u64,
    /// After no answer (ring timeout, 408, 480).
    pub no_answer_seconds: u64,
    /// After carrier trouble (403, 5xx, no response) or a failure here.
    pub trunk_error_seconds: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            busy_seconds: 300,
            no_answer_seconds: 900,
            trunk_error_seconds: 60,
        }
    }
}

impl RetryConfig {
    /// How long before retry number `failures` of a call that failed with `wait`.
    pub fn backoff(&self, wait: RetryWait) -> Backoff {
        let seconds = match wait {
            RetryWait::Busy => self.busy_seconds,
            RetryWait::NoAnswer => self.no_answer_seconds,
            RetryWait::Trouble => self.trunk_error_seconds,
        };
        Backoff {
            first: Duration::from_secs(seconds),
            max: Duration::from_secs(24 * 3600),
            jitter: 0.2,
        }
    }
}

impl Default for TelephonyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            outbound_trunk: None,
            default_region: "US".into(),
            max_concurrent_calls: 100,
            calls_per_second: 10,
            ring_timeout_seconds: 30,
            lease_seconds: 30,
            retry: RetryConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpSource {
    Latch,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    pub host: String,
    #[serde(default = "default_sip_port")]
    pub port: u16,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sources allowed to send INVITEs through this trunk.
    #[serde(default)]
    pub inbound_cidrs: Vec<IpNet>,
    pub from_number: Option<String>,
    /// The carrier's cap on new outbound calls per second (this node's share of it).
    pub calls_per_second: Option<u32>,
    /// The carrier's cap on calls at once through this trunk, inbound and outbound.
    pub max_concurrent: Option<usize>,
}

fn default_sip_port() -> u16 {
    5060
}
fn default_transport() -> Transport {
    Transport::Udp
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub minutes_included: i64,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default)]
    pub numbers: Vec<String>,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// The org's cap on calls at once, inbound and outbound (unlimited when absent).
    pub max_concurrent_calls: Option<usize>,
}

/// An agent as the config and `POST /v1/agents` describe it.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub slug: String,
    pub name: String,
    pub direction: Direction,
    #[serde(default = "default_voice")]
    pub voice: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub kind: AgentKind,
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub greeting: Option<String>,
    #[serde(default)]
    pub questions: Vec<Question>,
    pub closing: Option<String>,
    #[serde(default)]
    pub first_speaker: FirstSpeaker,
    pub end_of_turn_ms: Option<u64>,
    pub no_input_ms: Option<u64>,
    pub max_duration_seconds: Option<u64>,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default)]
    pub default: bool,
}

impl AgentConfig {
    pub fn into_agent(self, id: uuid::Uuid, org_id: uuid::Uuid) -> crate::domain::Agent {
        crate::domain::Agent {
            id,
            org_id,
            slug: self.slug,
            name: self.name,
            direction: self.direction,
            voice: self.voice,
            prompt: self.prompt,
            kind: self.kind,
            url: self.url,
            protocol: self.protocol,
            greeting: self.greeting,
            questions: self.questions,
            turns: crate::domain::TurnSettings {
                closing: self.closing,
                first_speaker: self.first_speaker,
                end_of_turn_ms: self.end_of_turn_ms,
                no_input_ms: self.no_input_ms,
                max_duration_seconds: self.max_duration_seconds,
            },
            active: self.active,
            default: self.default,
        }
    }
}

fn default_voice() -> String {
    "neutral".into()
}
fn default_true() -> bool {
    true
}

impl Config {
    /// Reads `path`, applies `VOXBRIDGE__…` overrides from `env`, and validates the result.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path, env)
    }

    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_owned(),
                    message: e.to_string(),
                })?;
        let mut root = env::Node::from(toml::Value::Table(table));
        for (var, value) in env {
            if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
                root.set(rest, value)
                    .map_err(|message| ConfigError::Env { var, message })?;
            }
        }
        let config: Config = serde_path_to_error::deserialize(root).map_err(|e| {
            // The path already ends with an unknown key's name; the message's first line says why.
            let message = e.inner().to_string();
            invalid(
                e.path().to_string(),
                message.lines().next().unwrap_or_default(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.media.rtp_port_min >= self.media.rtp_port_max {
            return Err(invalid(
                "media.rtp_port_min",
                "must be below media.rtp_port_max",
            ));
        }
        if self.media.rtp_port_min % 2 != 0 {
            return Err(invalid(
                "media.rtp_port_min",
                "must be even (RTP uses even ports, RTCP the next odd one)",
            ));
        }
        if !(10..=1000).contains(&self.media.jitter_min_ms)
            || !(self.media.jitter_min_ms..=1000).contains(&self.media.jitter_max_ms)
        {
            return Err(invalid(
                "media.jitter_min_ms",
                "need 10 <= jitter_min_ms <= jitter_max_ms <= 1000",
            ));
        }
        if !(100..=5000).contains(&self.media.vad_hangover_ms) {
            return Err(invalid("media.vad_hangover_ms", "must be 100–5000"));
        }
        if self
            .media
            .realtime_priority
            .is_some_and(|p| !(1..=99).contains(&p))
        {
            return Err(invalid("media.realtime_priority", "must be 1–99"));
        }
        if !(self.sip.rate_limit_per_second > 0.0 && self.sip.rate_limit_burst >= 1.0) {
            return Err(invalid(
                "sip.rate_limit_per_second",
                "rate_limit_per_second must be > 0 and rate_limit_burst >= 1",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if let Some(asr) = &self.asr {
            for (key, model) in [
                ("asr.model", &asr.model),
                ("asr.answer_model", &asr.answer_model),
            ] {
                if let Some(model) = model.as_ref().filter(|m| !m.is_file()) {
                    return Err(invalid(
                        key,
                        format!(
                            "model file {} does not exist (run scripts/fetch-model.sh)",
                            model.display()
                        ),
                    ));
                }
            }
            if asr.threads == 0 || asr.max_concurrent == 0 {
                return Err(invalid(
                    "asr.threads",
                    "asr.threads and asr.max_concurrent must be at least 1",
                ));
            }
            if asr.max_calls == MaxCalls::Fixed(0) {
                return Err(invalid(
                    "asr.max_calls",
                    "must be at least 1 (0 would refuse every call), or \"auto\"",
                ));
            }
            if !(100..=30_000).contains(&asr.latency_target_ms) {
                return Err(invalid("asr.latency_target_ms", "must be 100–30000"));
            }
        }
        let phones = PhoneNormalizer::new(&self.telephony.default_region)
            .map_err(|e| invalid("telephony.default_region", e.to_string()))?;
        self.validate_telephony()?;
        self.validate_trunks(&phones)?;
        self.validate_orgs(&phones)?;
        self.validate_voices()
    }

    fn validate_telephony(&self) -> Result<(), ConfigError> {
        let t = &self.telephony;
        if t.max_concurrent_calls == 0 || t.calls_per_second == 0 {
            return Err(invalid(
                "telephony.calls_per_second",
                "telephony.calls_per_second and max_concurrent_calls must be at least 1",
            ));
        }
        if !(3..=600).contains(&t.lease_seconds) {
            return Err(invalid(
                "telephony.lease_seconds",
                "must be between 3 and 600",
            ));
        }
        if !(1..=600).contains(&t.ring_timeout_seconds) {
            return Err(invalid(
                "telephony.ring_timeout_seconds",
                "must be between 1 and 600",
            ));
        }
        if let Some(trunk) = &t.outbound_trunk {
            let Some((i, trunk)) = self
                .trunks
                .iter()
                .enumerate()
                .find(|(_, tr)| &tr.name == trunk)
            else {
                return Err(invalid(
                    "telephony.outbound_trunk",
                    format!("no [[trunks]] entry is named {trunk:?}"),
                ));
            };
            if t.enabled && trunk.host.trim().is_empty() {
                return Err(invalid(
                    format!("trunks[{i}].host"),
                    "the outbound trunk needs a host to send INVITEs to",
                ));
            }
            if t.enabled && trunk.from_number.is_none() {
                return Err(invalid(
                    format!("trunks[{i}].from_number"),
                    "the outbound trunk needs the number calls come from (carriers refuse anonymous callers)",
                ));
            }
        } else if t.enabled {
            return Err(invalid(
                "telephony.outbound_trunk",
                "required when telephony.enabled = true",
            ));
        }
        Ok(())
    }

    fn validate_trunks(&self, phones: &PhoneNormalizer) -> Result<(), ConfigError> {
        let mut names = HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            if !names.insert(trunk.name.as_str()) {
                return Err(invalid(
                    format!("trunks[{i}].name"),
                    format!("duplicate trunk name {:?}", trunk.name),
                ));
            }
            if trunk.username.is_some() != trunk.password.is_some() {
                return Err(invalid(
                    format!("trunks[{i}].password"),
                    "username and password go together",
                ));
            }
            if let Some(from) = &trunk.from_number {
                phones
                    .normalize(from)
                    .map_err(|e| invalid(format!("trunks[{i}].from_number"), e.to_string()))?;
            }
            if trunk.calls_per_second == Some(0) || trunk.max_concurrent == Some(0) {
                let field = if trunk.calls_per_second == Some(0) {
                    "calls_per_second"
                } else {
                    "max_concurrent"
                };
                return Err(invalid(
                    format!("trunks[{i}].{field}"),
                    "must be at least 1 (leave it out for no cap)",
                ));
            }
        }
        Ok(())
    }

    fn validate_orgs(&self, phones: &PhoneNormalizer) -> Result<(), ConfigError> {
        let mut slugs = HashSet::new();
        let mut keys = HashSet::new();
        let mut numbers = HashSet::new();
        for (i, org) in self.orgs.iter().enumerate() {
            let at = |field: &str| format!("orgs[{i}].{field}");
            if !is_slug(&org.slug) {
                return Err(invalid(at("slug"), "use lowercase letters, digits and '-'"));
            }
            if !slugs.insert(org.slug.as_str()) {
                return Err(invalid(
                    at("slug"),
                    format!("duplicate org slug {:?}", org.slug),
                ));
            }
            if org.max_concurrent_calls == Some(0) {
                return Err(invalid(
                    at("max_concurrent_calls"),
                    "must be at least 1 (leave it out for no cap)",
                ));
            }
            if org.minutes_included < 0 {
                return Err(invalid(at("minutes_included"), "must not be negative"));
            }
            if let Some(secret) = &org.webhook_secret {
                crate::webhooks::signing::SigningKey::from_secret(secret)
                    .map_err(|e| invalid(at("webhook_secret"), e.to_string()))?;
            }
            if let Some(url) = &org.webhook_url {
                crate::webhooks::target::parse_target(url, self.webhooks.allow_private_targets)
                    .map_err(|e| invalid(at("webhook_url"), e.to_string()))?;
            }
            for (k, key) in org.api_keys.iter().enumerate() {
                if key.len() < 16 {
                    return Err(invalid(
                        at(&format!("api_keys[{k}]")),
                        "API keys must be at least 16 characters",
                    ));
                }
                if !keys.insert(key.as_str()) {
                    return Err(invalid(
                        at(&format!("api_keys[{k}]")),
                        "API key is used twice",
                    ));
                }
            }
            for (n, number) in org.numbers.iter().enumerate() {
                let e164 = phones
                    .normalize(number)
                    .map_err(|e| invalid(at(&format!("numbers[{n}]")), e.to_string()))?;
                if !numbers.insert(e164.clone()) {
                    return Err(invalid(
                        at(&format!("numbers[{n}]")),
                        format!("{e164} is mapped twice"),
                    ));
                }
            }
            validate_agents(&org.agents, &at("agents"))?;
        }
        Ok(())
    }
}

fn validate_agents(agents: &[AgentConfig], at: &str) -> Result<(), ConfigError> {
    let mut slugs = HashSet::new();
    let mut defaults = HashSet::new();
    for (a, agent) in agents.iter().enumerate() {
        let key = |field: &str| format!("{at}[{a}].{field}");
        if !is_slug(&agent.slug) {
            return Err(invalid(
                key("slug"),
                "use lowercase letters, digits and '-'",
            ));
        }
        if !slugs.insert(agent.slug.as_str()) {
            return Err(invalid(
                key("slug"),
                format!("duplicate agent slug {:?}", agent.slug),
            ));
        }
        if agent.default && !defaults.insert(agent.direction) {
            return Err(invalid(
                key("default"),
                format!(
                    "agent {:?} is a second default {} agent; mark one per direction",
                    agent.slug,
                    agent.direction.as_str()
                ),
            ));
        }
        crate::domain::validate_agent_shape(agent.kind, agent.url.as_deref(), &agent.questions)
            .map_err(|(field, msg)| {
                invalid(key(field), format!("agent {:?}: {msg}", agent.slug))
            })?;
        if agent.direction == Direction::Inbound {
            let texts = agent
                .greeting
                .iter()
                .map(|g| ("greeting".to_string(), g))
                .chain(
                    agent
                        .questions
                        .iter()
                        .enumerate()
                        .map(|(i, q)| (format!("questions[{i}].ask"), &q.ask)),
                )
                .chain(agent.closing.iter().map(|c| ("closing".to_string(), c)));
            for (field, text) in texts {
                if let Some(name) = crate::agents::template::placeholders(text).first() {
                    return Err(invalid(
                        key(&field),
                        format!(
                            "agent {:?} uses {{{{{name}}}}}, but inbound calls carry no context to fill it",
                            agent.slug
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum VoiceEngine {
    #[default]
    #[serde(rename = "espeak-ng")]
    EspeakNg,
    #[serde(rename = "remote")]
    Remote,
}

/// `[voices.NAME]`: absent settings come from the built-in voice of that name, or `neutral`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    #[serde(default)]
    pub engine: VoiceEngine,
    /// espeak-ng voice (`en-us+f3`), or the remote voice name (default `[tts] voice`).
    pub voice: Option<String>,
    /// Words per minute, 80–450.
    pub rate: Option<u32>,
    /// 0–99.
    pub pitch: Option<u32>,
    /// Amplitude 0–200.
    pub volume: Option<u32>,
}

/// An OpenAI-compatible speech endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TtsConfig {
    /// Full URL of the endpoint (`…/v1/audio/speech`).
    pub url: String,
    pub model: String,
    pub voice: String,
    /// Past this the prompt is spoken by espeak-ng instead.
    #[serde(default = "default_tts_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_tts_timeout_ms() -> u64 {
    3000
}

impl Config {
    fn validate_voices(&self) -> Result<(), ConfigError> {
        if let Some(tts) = &self.tts {
            match url::Url::parse(&tts.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(invalid("tts.url", "must be an http:// or https:// URL")),
            }
            if !(1..=60_000).contains(&tts.timeout_ms) {
                return Err(invalid("tts.timeout_ms", "must be 1–60000"));
            }
        }
        for (name, v) in &self.voices {
            let key = |field: &str| format!("voices.{name}.{field}");
            let out_of = |value: Option<u32>, range: std::ops::RangeInclusive<u32>| {
                value.is_some_and(|x| !range.contains(&x))
            };
            if out_of(v.rate, 80..=450) {
                return Err(invalid(key("rate"), "must be 80–450 words per minute"));
            }
            if out_of(v.pitch, 0..=99) {
                return Err(invalid(key("pitch"), "must be 0–99"));
            }
            if out_of(v.volume, 0..=200) {
                return Err(invalid(key("volume"), "must be 0–200"));
            }
            if v.engine == VoiceEngine::Remote && self.tts.is_none() {
                return Err(invalid(key("engine"), "\"remote\" needs a [tts] section"));
            }
            // The name becomes an espeak-ng argument: letters, digits and `-_+.` only.
            let plain = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
            };
            if v.engine == VoiceEngine::EspeakNg && v.voice.as_deref().is_some_and(|s| !plain(s)) {
                return Err(invalid(
                    key("voice"),
                    "an espeak-ng voice name such as \"en-us+f3\" (espeak-ng --voices=en)",
                ));
            }
        }
        let known = |voice: &str| {
            crate::agents::tts::BUILTIN_VOICES.contains(&voice) || self.voices.contains_key(voice)
        };
        for (i, org) in self.orgs.iter().enumerate() {
            for (a, agent) in org.agents.iter().enumerate() {
                if !known(&agent.voice) {
                    let mut names: Vec<&str> = crate::agents::tts::BUILTIN_VOICES.to_vec();
                    names.extend(self.voices.keys().map(String::as_str));
                    names.sort_unstable();
                    names.dedup();
                    return Err(invalid(
                        format!("orgs[{i}].agents[{a}].voice"),
                        format!(
                            "agent {:?} uses unknown voice {:?}; known voices: {} (or define [voices.{}])",
                            agent.slug,
                            agent.voice,
                            names.join(", "),
                            agent.voice
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::Rounding;

    #[test]
    fn talk_time_is_billed_by_the_started_minute_or_by_the_second() {
        let by_minute = [0, 1, 59, 60, 61, 125, -3].map(|s| Rounding::Minute.billed_seconds(s));
        assert_eq!(by_minute, [0, 60, 60, 60, 120, 180, 0]);
        assert_eq!(Rounding::Second.billed_seconds(61), 61);
    }
}
