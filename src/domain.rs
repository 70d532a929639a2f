//! The records VoxBridge keeps: organizations, agents, calls and their vocabularies.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Declares a string enum with its wire names and `as_str`/`parse` in one place, so the
/// database, the API and the config all spell each value the same way.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(Direction { Inbound = "inbound", Outbound = "outbound" });

wire_enum!(
    /// `queued → calling → in_progress → completed | failed`, and `canceled`.
    CallStatus {
        Queued = "queued",
        Calling = "calling",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Canceled = "canceled",
    }
);

impl CallStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CallStatus::Completed | CallStatus::Failed | CallStatus::Canceled
        )
    }
}

wire_enum!(EndReason {
    CallerHangup = "caller_hangup",
    AgentHangup = "agent_hangup",
    Busy = "busy",
    NoAnswer = "no_answer",
    Rejected = "rejected",
    InvalidNumber = "invalid_number",
    TrunkError = "trunk_error",
    Timeout = "timeout",
    Canceled = "canceled",
    QuotaExhausted = "quota_exhausted",
    Error = "error",
});

wire_enum!(
    #[derive(Default)]
    AgentKind {
        #[default]
        Builtin = "builtin",
        Websocket = "websocket",
    }
);

wire_enum!(
    /// Who talks first once a call is answered: inbound agents greet at once; outbound ones
    /// often wait for the callee's "hello".
    #[derive(Default)]
    FirstSpeaker {
        #[default]
        Agent = "agent",
        Caller = "caller",
    }
);

wire_enum!(
    #[derive(Default)]
    QuestionType {
    #[default]
    Free = "free",
    YesNo = "yes_no",
    Digits = "digits",
    Date = "date",
    Time = "time",
    Amount = "amount",
    Spelling = "spelling",
    Choice = "choice",
});

wire_enum!(EventType {
    Queued = "call.queued",
    Calling = "call.calling",
    Answered = "call.answered",
    Ended = "call.ended",
    Analyzed = "call.analyzed",
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub key: String,
    pub ask: String,
    #[serde(default, rename = "type")]
    pub kind: QuestionType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// For `digits` and `spelling`: the fewest characters a valid answer has. A heard value
    /// outside the bounds is asked again instead of read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// For `digits` and `spelling`: the most characters. Keypad entry ends by itself at this
    /// many keys, as IVRs do for a fixed-length number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

/// The longest value a caller can key or spell: a bound on what a call can make us store.
pub const MAX_VALUE_LENGTH: u32 = 64;

impl Question {
    pub fn new(key: &str, ask: &str, kind: QuestionType) -> Self {
        Question {
            key: key.into(),
            ask: ask.into(),
            kind,
            choices: Vec::new(),
            min_length: None,
            max_length: None,
        }
    }

    /// Whether a value of `len` characters fits the question's length bounds.
    pub fn fits(&self, len: usize) -> bool {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        len >= self.min_length.unwrap_or(1) && len <= self.max_length.unwrap_or(MAX_VALUE_LENGTH)
    }
}

/// Choices the recognizer can match and the keypad can pick by position (one key, 1–9), and
/// lengths only where they mean something.
fn question_problem(q: &Question) -> Option<String> {
    if let Some(problem) = length_problem(q) {
        return Some(problem);
    }
    if q.kind != QuestionType::Choice {
        return (!q.choices.is_empty())
            .then(|| format!("choices are only for type choice, not {}", q.kind.as_str()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(c) = q
        .choices
        .iter()
        .find(|c| c.trim().is_empty() || !seen.insert(c.trim().to_lowercase()))
    {
        return Some(format!("choice {c:?} is blank or repeated"));
    }
    match q.choices.len() {
        0 | 1 => Some("type choice needs at least two choices".into()),
        2..=9 => None,
        n => Some(format!(
            "{n} choices; at most 9, so each can be keyed as one digit"
        )),
    }
}

fn length_problem(q: &Question) -> Option<String> {
    if q.min_length.is_none() && q.max_length.is_none() {
        return None;
    }
    if !matches!(q.kind, QuestionType::Digits | QuestionType::Spelling) {
        return Some(format!(
            "min_length and max_length are only for types digits and spelling, not {}",
            q.kind.as_str()
        ));
    }
    let (min, max) = (
        q.min_length.unwrap_or(1),
        q.max_length.unwrap_or(MAX_VALUE_LENGTH),
    );
    if min == 0 || min > max || max > MAX_VALUE_LENGTH {
        return Some(format!(
            "lengths must satisfy 1 <= min_length <= max_length <= {MAX_VALUE_LENGTH} (got {min}..{max})"
        ));
    }
    None
}

/// Checks what serde cannot: websocket agents need a URL, question keys are unique, choices and
/// lengths make sense. Returns the offending field and why.
pub fn validate_agent_shape(
    kind: AgentKind,
    url: Option<&str>,
    questions: &[Question],
) -> Result<(), (&'static str, String)> {
    if kind == AgentKind::Websocket {
        match url {
            Some(u) if u.starts_with("ws://") || u.starts_with("wss://") => {}
            _ => return Err(("url", "websocket agents need a ws:// or wss:// url".into())),
        }
    }
    let mut keys = std::collections::HashSet::new();
    for q in questions {
        if q.key.is_empty() || !keys.insert(q.key.as_str()) {
            return Err((
                "questions",
                format!("question keys must be unique and non-empty ({:?})", q.key),
            ));
        }
        if let Some(problem) = question_problem(q) {
            return Err(("questions", format!("question {:?}: {problem}", q.key)));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Org {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub minutes_included: i64,
    /// Started minutes of `seconds_used`: what the quota counts.
    pub minutes_used: i64,
    /// Talk time billed so far, in seconds (whole minutes each call with `rounding = "minute"`).
    pub seconds_used: i64,
    #[serde(skip)]
    pub webhook_url: Option<String>,
    #[serde(skip)]
    pub webhook_secret: Option<String>,
}

impl Org {
    pub fn quota_exhausted(&self) -> bool {
        self.minutes_used >= self.minutes_included
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    #[serde(skip)]
    pub org_id: Uuid,
    pub slug: String,
    pub name: String,
    pub direction: Direction,
    pub voice: String,
    pub prompt: String,
    pub kind: AgentKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    pub questions: Vec<Question>,
    #[serde(flatten)]
    pub turns: TurnSettings,
    pub active: bool,
    pub default: bool,
}

/// How the builtin agent runs a conversation; every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnSettings {
    /// Said after the last question, before the agent hangs up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing: Option<String>,
    #[serde(default)]
    pub first_speaker: FirstSpeaker,
    /// Silence that ends the caller's turn, in ms (default 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_turn_ms: Option<u64>,
    /// How long the agent waits for an answer before asking again, in ms (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_input_ms: Option<u64>,
    /// The agent closes the call politely after this long, in seconds (default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Speaker {
    Agent,
    Caller,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TranscriptEntry {
    pub role: Speaker,
    pub text: String,
    /// Times from the start of the call's media.
    pub start_ms: u64,
    pub end_ms: u64,
    /// An agent prompt the caller talked over: `text` is what it was saying, `end_ms` when it
    /// stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Analysis {
    /// Normalized answers by question key (boolean, digit string, ISO date, …).
    #[schema(value_type = Object)]
    pub answers: serde_json::Map<String, serde_json::Value>,
    /// What the caller actually said (or keyed), by question key.
    pub answer_text: std::collections::BTreeMap<String, String>,
    /// How each answer was obtained, by question key.
    #[serde(default)]
    pub answer_method: std::collections::BTreeMap<String, crate::agents::answers::Method>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Call {
    pub id: Uuid,
    #[serde(skip)]
    pub org_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub direction: Direction,
    pub status: CallStatus,
    pub to: String,
    pub from: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
    pub webhook_url: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub schedule_at: Option<OffsetDateTime>,
    pub max_attempts: i64,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When the callee's phone started ringing on the latest attempt (outbound).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ringing_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<OffsetDateTime>,
    pub duration_seconds: Option<i64>,
    pub end_reason: Option<EndReason>,
    pub sip_status: Option<i64>,
    pub transcript: Vec<TranscriptEntry>,
    pub analysis: Option<Analysis>,
    /// Media quality of the answered call: `packets_received`, `packets_lost`, `loss_percent`,
    /// `jitter_ms`, `late`, `concealed`, `rtt_ms`, `mos` (estimated, 1–4.5), … (docs/media.md).
    #[schema(value_type = Option<Object>)]
    pub quality: Option<serde_json::Value>,
    /// When the dispatcher may next dial this call (not part of the API).
    #[serde(skip)]
    pub next_attempt_at: OffsetDateTime,
}

impl Call {
    /// Seconds this call draws from the org's pool: its talk time, rounded as configured.
    pub fn billed_seconds(&self, rounding: crate::config::Rounding) -> i64 {
        self.duration_seconds
            .map_or(0, |s| rounding.billed_seconds(s))
    }
}

pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Milliseconds since the Unix epoch: how every time is stored.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
