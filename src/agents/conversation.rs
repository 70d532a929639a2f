//! The builtin agent's side of a call as a sans-IO state machine: events in (the call started,
//! a prompt finished playing, the caller started talking, what the caller said, a key pressed,
//! time passing), actions out (say this, stop talking, hang up).
//!
//! The script is greeting → each question in order → closing → hang up. Each question gets one
//! re-ask on silence or an unusable answer. Open values (digits, dates, times, amounts,
//! spelling) and choices not clearly heard are read back for a yes/no confirmation; a "no", a
//! low-confidence recognition or a second failure moves to the keypad, which also answers
//! yes/no (1/2), choices (by position) and number-like questions at any time. The driver owns audio, clocks and recognition; this
//! decides only what to say next, which is why it can be tested on a virtual clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;
use time::Date;
use voxbridge_asr::AnswerValue;

use super::answers::{self, Method};
use super::template;
use crate::domain::{Agent, Analysis, FirstSpeaker, Question, QuestionType, MAX_VALUE_LENGTH};

/// Below this confidence an open value is not read back but asked for on the keypad. On the
/// asr fixtures every rightly heard value scored 0.35 or more and half the wrong ones below
/// 0.3; the read-back catches the rest.
const READ_BACK_MIN: f32 = 0.3;
/// Below this a recognized choice is read back for a yes before it is kept: a wrong option
/// taken as heard is worse than one more turn. Clear answers score above 0.99; misheard ones
/// ("Sales." heard as "Fereal", matched to "technical support") scored up to 0.71
/// (benches/answer_loop.rs).
const CHOICE_SURE: f32 = 0.9;
/// A "yes" to a read-back below this is not taken: the value goes to the keypad instead. A
/// clear yes or no scores above 0.99; a value stored as confirmed must have been confirmed.
const CONFIRM_MIN: f32 = 0.8;

const NOT_HEARD: &str = "Sorry, I didn't catch that.";
const NOT_VALID: &str = "Sorry, I didn't understand that.";
const KEYPAD: &str = "Let's use the keypad instead.";
const TRY_AGAIN: &str = "Sorry, let's try that again.";
/// How long an agent that lets the callee speak first waits for their hello.
const HELLO_WAIT: Duration = Duration::from_secs(3);
const OUT_OF_TIME: &str = "I'm sorry, we've run out of time for this call. Goodbye.";

/// Everything the conversation needs, with the call's context already filled in.
#[derive(Debug, Clone)]
pub struct Script {
    pub greeting: Option<String>,
    pub questions: Vec<Question>,
    pub closing: String,
    pub first_speaker: FirstSpeaker,
    /// How long to wait for an answer after a prompt has played (and for the callee's hello
    /// when the caller speaks first).
    pub no_input: Duration,
    /// Keypad entry ends this long after the last key (without `#`).
    pub inter_digit: Duration,
    /// The agent closes the call politely after this long.
    pub max_duration: Duration,
    /// The call's date, for dates said without a year.
    pub today: Date,
}

/// Said after the last question when the agent has no `closing`.
pub const DEFAULT_CLOSING: &str = "Thank you for calling. Goodbye.";
pub const DEFAULT_NO_INPUT_MS: u64 = 5000;
/// The silence that ends a caller's turn: short enough for a 700 ms turn, long enough to
/// bridge the pause between words.
pub const DEFAULT_END_OF_TURN_MS: u64 = 400;
pub const DEFAULT_MAX_DURATION_SECONDS: u64 = 900;
const INTER_DIGIT: Duration = Duration::from_secs(4);

impl Script {
    /// `agent`'s script with `{{key}}` placeholders filled from the call's `context`.
    pub fn for_agent(agent: &Agent, context: Option<&Value>, today: Date) -> Self {
        let fill = |text: &str| template::render(text, context);
        let turns = &agent.turns;
        Script {
            greeting: agent.greeting.as_deref().map(fill),
            questions: agent
                .questions
                .iter()
                .map(|q| Question {
                    ask: fill(&q.ask),
                    ..q.clone()
                })
                .collect(),
            closing: fill(turns.closing.as_deref().unwrap_or(DEFAULT_CLOSING)),
            first_speaker: turns.first_speaker,
            no_input: Duration::from_millis(turns.no_input_ms.unwrap_or(DEFAULT_NO_INPUT_MS)),
            inter_digit: INTER_DIGIT,
            max_duration: Duration::from_secs(
                turns
                    .max_duration_seconds
                    .unwrap_or(DEFAULT_MAX_DURATION_SECONDS),
            ),
            today,
        }
    }
}

/// What the caller said, as recognized for the question the conversation was listening for.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The [`Conversation::listening`] turn the utterance was recognized for.
    pub turn: u64,
    pub text: String,
    pub value: Option<AnswerValue>,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Speak this once what is playing now has finished (nothing is playing when it comes: the
    /// conversation waits for [`Conversation::playout_done`] between prompts).
    Say(String),
    /// Barge-in: drop what is still queued for playout.
    StopSpeaking,
    HangUp,
}

/// One question's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub key: String,
    /// The normalized value; `None` when the question went unanswered.
    pub value: Option<Value>,
    /// What the caller said or keyed for it.
    pub text: Option<String>,
    pub method: Option<Method>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting for the callee's hello before greeting.
    AwaitHello,
    Greeting,
    /// Question `q`'s prompt is playing or its answer awaited.
    Answer {
        q: usize,
    },
    /// The read-back of a candidate answer is playing or its confirmation awaited.
    Confirm {
        q: usize,
        value: Value,
        text: String,
    },
    /// Keypad entry for question `q`.
    Keypad {
        q: usize,
        keys: String,
    },
    Closing,
    Done,
}

pub struct Conversation {
    script: Script,
    phase: Phase,
    /// Re-asks used on the current question (each step allows one).
    retries: u32,
    speaking: bool,
    /// The caller is talking, or what they said is being recognized: no silence timer then.
    caller_turn: bool,
    /// Increments whenever what an utterance answers changes, so a late recognition of an old
    /// turn is not taken as the answer to a newer question.
    turn: u64,
    deadline: Option<Instant>,
    ends_at: Option<Instant>,
    captured: Vec<Captured>,
    actions: VecDeque<Action>,
}

impl Conversation {
    pub fn new(script: Script) -> Self {
        let captured = script
            .questions
            .iter()
            .map(|q| Captured {
                key: q.key.clone(),
                value: None,
                text: None,
                method: None,
            })
            .collect();
        Conversation {
            script,
            phase: Phase::AwaitHello,
            retries: 0,
            speaking: false,
            caller_turn: false,
            turn: 0,
            deadline: None,
            ends_at: None,
            captured,
            actions: VecDeque::new(),
        }
    }

    /// The call is answered and media flows.
    pub fn start(&mut self, now: Instant) {
        self.ends_at = Some(now + self.script.max_duration);
        match self.script.first_speaker {
            FirstSpeaker::Agent => self.greet(),
            FirstSpeaker::Caller => {
                self.deadline = Some(now + self.script.no_input.min(HELLO_WAIT))
            }
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Conversation::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.deadline.filter(|_| !self.caller_turn), self.ends_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .filter(|_| self.phase != Phase::Done)
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The answers so far, one per question in script order.
    pub fn captured(&self) -> &[Captured] {
        &self.captured
    }

    /// The answers as stored and sent with `call.analyzed`: every question's key, null when
    /// unanswered.
    pub fn analysis(&self) -> Analysis {
        let mut analysis = Analysis::default();
        for c in &self.captured {
            analysis
                .answers
                .insert(c.key.clone(), c.value.clone().unwrap_or(Value::Null));
            if let Some(text) = &c.text {
                analysis.answer_text.insert(c.key.clone(), text.clone());
            }
            if let Some(method) = c.method {
                analysis.answer_method.insert(c.key.clone(), method);
            }
        }
        analysis
    }

    /// What the next utterance should be recognized as: the turn token and the question (with
    /// `Free` for anything that is not an answer), or the confirmation's yes/no.
    pub fn listening(&self) -> (u64, Option<Question>) {
        let question = match &self.phase {
            Phase::Answer { q } => self.script.questions.get(*q).cloned(),
            Phase::Confirm { q, .. } => self
                .script
                .questions
                .get(*q)
                .map(|q| Question::new(&q.key, "Is that right?", QuestionType::YesNo)),
            _ => None,
        };
        (self.turn, question)
    }

    /// The prompt that was playing has been played out.
    pub fn playout_done(&mut self, now: Instant) {
        if !self.speaking {
            return;
        }
        self.speaking = false;
        match self.phase {
            Phase::Greeting => self.ask(0, None),
            Phase::Closing => self.finish(),
            _ => self.deadline = Some(now + self.listen_window()),
        }
    }

    /// The caller started making sound (speech, or noise the VAD took for it): no silence
    /// timer runs while it is heard and recognized.
    pub fn caller_started(&mut self) {
        self.caller_turn = true;
    }

    /// The caller is talking (voiced speech, not a cough or a click): barge in on a prompt
    /// (except the closing line).
    pub fn caller_talking(&mut self) {
        self.caller_turn = true;
        if self.speaking && !matches!(self.phase, Phase::Closing | Phase::Done) {
            self.speaking = false;
            self.actions.push_back(Action::StopSpeaking);
        }
    }

    /// What the caller said (possibly nothing intelligible) at the end of their turn.
    pub fn heard(&mut self, heard: Heard, now: Instant) {
        self.caller_turn = false;
        if self.speaking {
            // Spoke and finished while a prompt played on (no barge-in): the prompt goes on.
            return;
        }
        let current = heard.turn == self.turn;
        match self.phase.clone() {
            Phase::AwaitHello => self.greet(),
            // An interrupted greeting: the caller had their say; the script goes on.
            Phase::Greeting => self.ask(0, None),
            Phase::Answer { q } if current => self.answer(q, heard),
            Phase::Confirm { q, value, text } if current => match heard.value {
                Some(AnswerValue::Bool(true)) if heard.confidence >= CONFIRM_MIN => {
                    self.keep(q, value, text, Method::ReadBackConfirmed)
                }
                Some(AnswerValue::Bool(_)) => self.denied(q),
                _ => self.retry_or_keypad(q),
            },
            _ => {
                if self.deadline.is_none() && !matches!(self.phase, Phase::Closing | Phase::Done) {
                    self.deadline = Some(now + self.listen_window());
                }
            }
        }
    }

    /// A key pressed on the caller's phone (RFC 4733). `#` ends an entry and `*` starts it
    /// over; the letter keys A–D, which no ordinary phone has, are ignored.
    pub fn dtmf(&mut self, digit: char, now: Instant) {
        if !matches!(digit, '0'..='9' | '*' | '#') {
            return;
        }
        let q = match &self.phase {
            Phase::Answer { q } | Phase::Confirm { q, .. } | Phase::Keypad { q, .. } => *q,
            _ => return,
        };
        let Some(question) = self.script.questions.get(q).cloned() else {
            return;
        };
        if !answers::keyable(question.kind) {
            return;
        }
        let one_key = matches!(question.kind, QuestionType::YesNo | QuestionType::Choice);
        if !matches!(self.phase, Phase::Keypad { .. }) && matches!(digit, '*' | '#') {
            // Nothing keyed yet: nothing to end or start over.
            return;
        }
        if self.speaking {
            self.speaking = false;
            self.actions.push_back(Action::StopSpeaking);
        }
        let max_keys = question.max_length.unwrap_or(MAX_VALUE_LENGTH) as usize;
        match (&mut self.phase, digit) {
            (Phase::Confirm { value, text, .. }, '1') => {
                let (value, text) = (value.clone(), text.clone());
                self.keep(q, value, text, Method::ReadBackConfirmed);
            }
            (Phase::Confirm { .. }, '2') => self.keypad(q, None),
            (Phase::Keypad { keys, .. }, '#') => {
                let keys = std::mem::take(keys);
                self.keyed(q, &keys);
            }
            (Phase::Keypad { keys, .. }, '*') => {
                keys.clear();
                self.deadline = Some(now + self.script.no_input * 2);
            }
            // One key answers yes/no and choices, whenever it comes.
            (_, d) if one_key => self.keyed(q, &d.to_string()),
            (Phase::Keypad { keys, .. }, d) => {
                keys.push(d);
                if keys.len() >= max_keys {
                    // As many keys as the answer can have: the entry is complete.
                    let keys = std::mem::take(keys);
                    self.keyed(q, &keys);
                } else {
                    self.deadline = Some(now + self.script.inter_digit);
                }
            }
            // The first key of a longer value: collect the rest.
            (_, d) => {
                self.turn += 1;
                self.phase = Phase::Keypad {
                    q,
                    keys: String::new(),
                };
                self.dtmf(d, now);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ends_at.is_some_and(|end| now >= end)
            && !matches!(self.phase, Phase::Closing | Phase::Done)
        {
            self.ends_at = None;
            self.close(Some(OUT_OF_TIME.to_string()));
            return;
        }
        if self.caller_turn || self.deadline.is_none_or(|d| now < d) {
            return;
        }
        self.deadline = None;
        match self.phase.clone() {
            Phase::AwaitHello => self.greet(),
            Phase::Answer { q } => self.retry_or_skip(q, NOT_HEARD),
            Phase::Confirm { q, .. } => self.retry_or_keypad(q),
            Phase::Keypad { q, keys } => self.keyed(q, &keys),
            _ => {}
        }
    }

    fn listen_window(&self) -> Duration {
        match self.phase {
            // The keypad instruction takes longer to act on than a spoken answer.
            Phase::Keypad { .. } => self.script.no_input * 2,
            _ => self.script.no_input,
        }
    }

    fn say(&mut self, text: String) {
        if self.speaking {
            self.actions.push_back(Action::StopSpeaking);
        }
        self.speaking = true;
        self.deadline = None;
        self.actions.push_back(Action::Say(text));
    }

    fn greet(&mut self) {
        self.deadline = None;
        match self
            .script
            .greeting
            .clone()
            .filter(|g| !g.trim().is_empty())
        {
            Some(greeting) => {
                self.phase = Phase::Greeting;
                self.say(greeting);
            }
            None => self.ask(0, None),
        }
    }

    /// Asks question `q` (or closes after the last one), after `prefix` when re-asking.
    fn ask(&mut self, q: usize, prefix: Option<&str>) {
        let Some(question) = self.script.questions.get(q) else {
            return self.close(None);
        };
        let text = match prefix {
            None => question.ask.clone(),
            // A re-ask says how to answer, so the second try has a better chance.
            Some(prefix) => match question.kind {
                QuestionType::YesNo | QuestionType::Choice => format!(
                    "{prefix} {} You can also {}.",
                    question.ask,
                    answers::keypad_hint(question)
                ),
                _ => format!("{prefix} {}", question.ask),
            },
        };
        if prefix.is_none() {
            self.retries = 0;
        }
        self.turn += 1;
        self.phase = Phase::Answer { q };
        self.say(text);
    }

    fn answer(&mut self, q: usize, heard: Heard) {
        let Some(question) = self.script.questions.get(q).cloned() else {
            return;
        };
        let value = heard
            .value
            .as_ref()
            .and_then(|v| answers::from_speech(&question, v, self.script.today));
        let text = heard.text.trim().to_string();
        match (question.kind, value) {
            (QuestionType::Free, _) if !text.is_empty() => {
                self.keep(q, Value::String(text.clone()), text, Method::Speech)
            }
            (QuestionType::YesNo, Some(v)) => self.keep(q, v, text, Method::Speech),
            (QuestionType::Choice, Some(v)) if heard.confidence >= CHOICE_SURE => {
                self.keep(q, v, text, Method::Speech)
            }
            (QuestionType::Choice, Some(v)) => self.read_back(q, v, text),
            (kind, Some(v)) if answers::is_open(kind) => {
                if heard.confidence >= READ_BACK_MIN || !answers::keyable(kind) {
                    self.read_back(q, v, text);
                } else {
                    self.keypad(q, Some(KEYPAD));
                }
            }
            _ if text.is_empty() => self.retry_or_skip(q, NOT_HEARD),
            _ => self.retry_or_skip(q, NOT_VALID),
        }
    }

    fn read_back(&mut self, q: usize, value: Value, text: String) {
        let Some(question) = self.script.questions.get(q) else {
            return;
        };
        let spoken = answers::read_back(question.kind, &value);
        self.turn += 1;
        self.phase = Phase::Confirm { q, value, text };
        self.say(format!("I heard {spoken}. Is that right?"));
    }

    /// Switches question `q` to the keypad, with one retry of its own.
    fn keypad(&mut self, q: usize, prefix: Option<&str>) {
        let Some(question) = self.script.questions.get(q) else {
            return;
        };
        if !answers::keyable(question.kind) {
            return self.skip(q);
        }
        let hint = answers::keypad_hint(question);
        let text = match prefix {
            Some(prefix) => format!("{prefix} Please {hint}."),
            None => format!("Please {hint}."),
        };
        if !matches!(self.phase, Phase::Keypad { .. }) {
            self.retries = 0;
        }
        self.turn += 1;
        self.phase = Phase::Keypad {
            q,
            keys: String::new(),
        };
        self.say(text);
    }

    fn keyed(&mut self, q: usize, keys: &str) {
        let Some(question) = self.script.questions.get(q).cloned() else {
            return;
        };
        match answers::from_dtmf(&question, keys, self.script.today) {
            Some(value) => self.keep(q, value, keys.to_string(), Method::Dtmf),
            None if self.retries == 0 => {
                self.retries += 1;
                let prefix = if keys.is_empty() {
                    NOT_HEARD
                } else {
                    NOT_VALID
                };
                match question.kind {
                    QuestionType::YesNo | QuestionType::Choice => self.ask(q, Some(prefix)),
                    _ => self.keypad(q, Some(prefix)),
                }
            }
            None => self.skip(q),
        }
    }

    fn retry_or_skip(&mut self, q: usize, prefix: &str) {
        if self.retries == 0 {
            self.retries += 1;
            self.ask(q, Some(prefix));
        } else if self
            .script
            .questions
            .get(q)
            .is_some_and(|question| answers::is_open(question.kind))
        {
            self.keypad(q, Some(KEYPAD));
        } else {
            self.skip(q);
        }
    }

    /// The caller said the read-back is wrong (or said yes too faintly to be sure): the keypad
    /// when it can answer, else the question once more by voice, then unanswered.
    fn denied(&mut self, q: usize) {
        let kind = self.script.questions.get(q).map(|question| question.kind);
        if kind.is_some_and(answers::keyable) {
            self.keypad(q, Some(KEYPAD));
        } else if self.retries == 0 {
            self.retries += 1;
            self.ask(q, Some(TRY_AGAIN));
        } else {
            self.skip(q);
        }
    }

    fn retry_or_keypad(&mut self, q: usize) {
        if let (0, Phase::Confirm { value, text, .. }) = (self.retries, self.phase.clone()) {
            self.retries += 1;
            self.read_back(q, value, text);
        } else {
            self.keypad(q, Some(KEYPAD));
        }
    }

    fn keep(&mut self, q: usize, value: Value, text: String, method: Method) {
        if let Some(slot) = self.captured.get_mut(q) {
            slot.value = Some(value);
            slot.text = Some(text);
            slot.method = Some(method);
        }
        self.ask(q + 1, None);
    }

    /// Leaves question `q` unanswered and moves on.
    fn skip(&mut self, q: usize) {
        self.ask(q + 1, None);
    }

    fn close(&mut self, text: Option<String>) {
        self.turn += 1;
        self.phase = Phase::Closing;
        self.deadline = None;
        let text = text.unwrap_or_else(|| self.script.closing.clone());
        if text.trim().is_empty() {
            return self.finish();
        }
        self.say(text);
    }

    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.deadline = None;
        self.actions.push_back(Action::HangUp);
    }
}

#[cfg(test)]
mod tests;
