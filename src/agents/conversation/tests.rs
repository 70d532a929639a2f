//! Scripted conversations on a virtual clock: every branch the caller can take.

use super::*;
use serde_json::json;
use time::macros::date;

struct Sim {
    conv: Conversation,
    now: Instant,
    said: Vec<String>,
    stops: usize,
    hung_up: bool,
}

fn question(key: &str, kind: QuestionType, choices: &[&str]) -> Question {
    Question {
        choices: choices.iter().map(|c| c.to_string()).collect(),
        ..Question::new(key, &format!("What is your {key}?"), kind)
    }
}

impl Sim {
    fn new(questions: Vec<Question>, first_speaker: FirstSpeaker) -> Self {
        let script = Script {
            greeting: Some("Hello.".into()),
            questions,
            closing: "Goodbye.".into(),
            first_speaker,
            no_input: Duration::from_secs(5),
            inter_digit: Duration::from_secs(3),
            max_duration: Duration::from_secs(300),
            today: date!(2026 - 12 - 04),
        };
        let mut sim = Sim {
            conv: Conversation::new(script),
            now: Instant::now(),
            said: Vec::new(),
            stops: 0,
            hung_up: false,
        };
        sim.conv.start(sim.now);
        sim.drain();
        sim
    }

    fn drain(&mut self) {
        while let Some(action) = self.conv.poll_action() {
            match action {
                Action::Say(text) => self.said.push(text),
                Action::StopSpeaking => self.stops += 1,
                Action::HangUp => self.hung_up = true,
            }
        }
    }

    fn last_said(&self) -> &str {
        self.said.last().map(String::as_str).unwrap_or_default()
    }

    /// Plays out whatever is being said.
    fn played(&mut self) -> &mut Self {
        self.now += Duration::from_secs(2);
        self.conv.playout_done(self.now);
        self.drain();
        self
    }

    fn says(&mut self, text: &str, value: Option<AnswerValue>, confidence: f32) -> &mut Self {
        self.conv.caller_started();
        self.conv.caller_talking();
        self.drain();
        self.now += Duration::from_millis(1500);
        let (turn, _) = self.conv.listening();
        self.conv.heard(
            Heard {
                turn,
                text: text.into(),
                value,
                confidence,
            },
            self.now,
        );
        self.drain();
        self
    }

    fn keys(&mut self, keys: &str) -> &mut Self {
        for d in keys.chars() {
            self.now += Duration::from_millis(300);
            self.conv.dtmf(d, self.now);
            self.drain();
        }
        self
    }

    fn wait(&mut self, secs: u64) -> &mut Self {
        let until = self.now + Duration::from_secs(secs);
        while let Some(at) = self.conv.poll_timeout().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            self.conv.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
        self
    }

    fn answer(&self, key: &str) -> (Option<Value>, Option<Method>) {
        let c = self.conv.captured().iter().find(|c| c.key == key).unwrap();
        (c.value.clone(), c.method)
    }
}

fn yes() -> Option<AnswerValue> {
    Some(AnswerValue::Bool(true))
}
fn no() -> Option<AnswerValue> {
    Some(AnswerValue::Bool(false))
}
fn text(s: &str) -> Option<AnswerValue> {
    Some(AnswerValue::Text(s.into()))
}

#[test]
fn greets_asks_each_question_closes_and_hangs_up() {
    let mut sim = Sim::new(
        vec![
            question("reason", QuestionType::Free, &[]),
            question("book", QuestionType::YesNo, &[]),
        ],
        FirstSpeaker::Agent,
    );
    assert_eq!(sim.said, vec!["Hello."]);
    sim.played();
    assert_eq!(sim.last_said(), "What is your reason?");
    assert_eq!(sim.conv.listening().1.unwrap().key, "reason");
    sim.played()
        .says("My bill is wrong", text("My bill is wrong"), 0.9);
    assert_eq!(sim.last_said(), "What is your book?");
    sim.played().says("Yes please", yes(), 0.8);
    assert_eq!(sim.last_said(), "Goodbye.");
    assert!(!sim.hung_up);
    sim.played();
    assert!(sim.hung_up && sim.conv.is_done());
    assert_eq!(
        sim.answer("reason"),
        (Some(json!("My bill is wrong")), Some(Method::Speech))
    );
    assert_eq!(
        sim.answer("book"),
        (Some(json!(true)), Some(Method::Speech))
    );
}

#[test]
fn silence_is_re_asked_once_then_left_unanswered() {
    let mut sim = Sim::new(
        vec![
            question("book", QuestionType::YesNo, &[]),
            question("reason", QuestionType::Free, &[]),
        ],
        FirstSpeaker::Agent,
    );
    sim.played().played().wait(4);
    assert_eq!(sim.said.len(), 2, "no re-ask before the timeout");
    sim.wait(2);
    assert!(sim
        .last_said()
        .starts_with("Sorry, I didn't catch that. What is your book?"));
    assert!(sim.last_said().contains("press 1 for yes or 2 for no"));
    sim.played().wait(6);
    assert_eq!(sim.last_said(), "What is your reason?");
    assert_eq!(sim.answer("book"), (None, None));
}

#[test]
fn barge_in_stops_the_prompt_and_the_utterance_answers_it() {
    let mut sim = Sim::new(
        vec![question("book", QuestionType::YesNo, &[])],
        FirstSpeaker::Agent,
    );
    sim.played(); // greeting done; the question is playing
    sim.says("yes", yes(), 0.9);
    assert_eq!(sim.stops, 1);
    assert_eq!(
        sim.answer("book"),
        (Some(json!(true)), Some(Method::Speech))
    );
    assert_eq!(sim.last_said(), "Goodbye.");
}

#[test]
fn talking_over_the_greeting_interrupts_it_and_the_script_goes_on() {
    let mut sim = Sim::new(
        vec![question("book", QuestionType::YesNo, &[])],
        FirstSpeaker::Agent,
    );
    sim.says(
        "hello is this the bank",
        text("hello is this the bank"),
        0.9,
    );
    assert_eq!(sim.stops, 1);
    assert_eq!(sim.last_said(), "What is your book?");
}

#[test]
fn open_values_are_read_back_and_kept_when_confirmed() {
    let mut sim = Sim::new(
        vec![question("account", QuestionType::Digits, &[])],
        FirstSpeaker::Agent,
    );
    sim.played()
        .played()
        .says("four eight two seven", text("4827"), 0.7);
    assert_eq!(sim.last_said(), "I heard 4 8 2 7. Is that right?");
    assert_eq!(sim.conv.listening().1.unwrap().kind, QuestionType::YesNo);
    sim.played().says("yes", yes(), 0.9);
    assert_eq!(
        sim.answer("account"),
        (Some(json!("4827")), Some(Method::ReadBackConfirmed))
    );
}

#[test]
fn a_denied_read_back_switches_to_the_keypad() {
    let mut sim = Sim::new(
        vec![question("account", QuestionType::Digits, &[])],
        FirstSpeaker::Agent,
    );
    sim.played()
        .played()
        .says("four eight two", text("482"), 0.7);
    sim.played().says("no", no(), 0.9);
    assert!(
        sim.last_said().contains("key it in on your keypad"),
        "{}",
        sim.last_said()
    );
    sim.played().keys("48271936#");
    assert_eq!(
        sim.answer("account"),
        (Some(json!("48271936")), Some(Method::Dtmf))
    );
    assert_eq!(sim.last_said(), "Goodbye.");
}

#[test]
fn low_confidence_goes_straight_to_the_keypad_and_keys_end_on_a_pause() {
    let mut sim = Sim::new(
        vec![question("account", QuestionType::Digits, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("for ate", text("48"), 0.2);
    assert!(sim.last_said().starts_with("Let's use the keypad instead."));
    sim.played().keys("123").wait(4);
    assert_eq!(
        sim.answer("account"),
        (Some(json!("123")), Some(Method::Dtmf))
    );
}

#[test]
fn the_keypad_answers_yes_no_and_choices_by_position_at_any_time() {
    let mut sim = Sim::new(
        vec![
            question("book", QuestionType::YesNo, &[]),
            question(
                "topic",
                QuestionType::Choice,
                &["billing", "technical", "other"],
            ),
        ],
        FirstSpeaker::Agent,
    );
    sim.played().keys("2");
    assert_eq!(sim.stops, 1, "a key interrupts the prompt");
    assert_eq!(sim.answer("book"), (Some(json!(false)), Some(Method::Dtmf)));
    sim.played().keys("2");
    assert_eq!(
        sim.answer("topic"),
        (Some(json!("technical")), Some(Method::Dtmf))
    );
}

#[test]
fn random_keys_are_re_asked_once() {
    let mut sim = Sim::new(
        vec![question(
            "topic",
            QuestionType::Choice,
            &["billing", "technical"],
        )],
        FirstSpeaker::Agent,
    );
    sim.played().played().keys("9");
    assert!(sim
        .last_said()
        .starts_with("Sorry, I didn't understand that."));
    assert!(sim
        .last_said()
        .contains("press 1 for billing, 2 for technical"));
    sim.played().keys("7");
    assert_eq!(sim.answer("topic"), (None, None));
    assert_eq!(sim.last_said(), "Goodbye.");
}

#[test]
fn weak_choices_are_read_back_and_a_denial_goes_to_the_keypad() {
    let mut sim = Sim::new(
        vec![
            question("topic", QuestionType::Choice, &["billing", "technical"]),
            question("other", QuestionType::Choice, &["billing", "technical"]),
        ],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("bolling", text("billing"), 0.6);
    assert_eq!(sim.last_said(), "I heard billing. Is that right?");
    sim.played().says("yes", yes(), 0.99);
    assert_eq!(
        sim.answer("topic"),
        (Some(json!("billing")), Some(Method::ReadBackConfirmed))
    );
    // Misheard: the caller says no and picks on the keypad.
    sim.played().says("fereal", text("billing"), 0.6);
    sim.played().says("no", no(), 0.99);
    assert!(
        sim.last_said()
            .contains("press 1 for billing, 2 for technical"),
        "{}",
        sim.last_said()
    );
    sim.played().keys("2");
    assert_eq!(
        sim.answer("other"),
        (Some(json!("technical")), Some(Method::Dtmf))
    );
}

#[test]
fn noise_and_unparseable_answers_fall_back_to_the_keypad_for_open_values() {
    let mut sim = Sim::new(
        vec![question("when", QuestionType::Date, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("", None, 0.0);
    assert!(sim.last_said().starts_with("Sorry, I didn't catch that."));
    sim.played().says("banana", None, 0.5);
    assert!(
        sim.last_said().contains("eight digits"),
        "{}",
        sim.last_said()
    );
    sim.played().keys("20261210#");
    assert_eq!(
        sim.answer("when"),
        (Some(json!("2026-12-10")), Some(Method::Dtmf))
    );
}

#[test]
fn a_stale_recognition_does_not_answer_the_next_question() {
    let mut sim = Sim::new(
        vec![
            question("book", QuestionType::YesNo, &[]),
            question("other", QuestionType::YesNo, &[]),
        ],
        FirstSpeaker::Agent,
    );
    sim.played().played();
    let (old_turn, _) = sim.conv.listening();
    sim.conv.caller_talking();
    sim.keys("1"); // answered by key while the speech is still being recognized
    sim.played();
    sim.conv.heard(
        Heard {
            turn: old_turn,
            text: "no".into(),
            value: no(),
            confidence: 0.9,
        },
        sim.now,
    );
    sim.drain();
    assert_eq!(sim.answer("book"), (Some(json!(true)), Some(Method::Dtmf)));
    assert_eq!(sim.answer("other"), (None, None));
}

#[test]
fn the_caller_may_speak_first() {
    let mut sim = Sim::new(vec![], FirstSpeaker::Caller);
    assert!(sim.said.is_empty());
    sim.says("hello?", text("hello?"), 0.9);
    assert_eq!(sim.said, vec!["Hello."]);

    let mut quiet = Sim::new(vec![], FirstSpeaker::Caller);
    quiet.wait(3);
    assert_eq!(
        quiet.said,
        vec!["Hello."],
        "greets after a short wait for the hello"
    );
}

#[test]
fn the_maximum_duration_ends_politely() {
    let mut sim = Sim::new(
        vec![question("reason", QuestionType::Free, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played();
    sim.conv.caller_talking(); // a caller who never stops talking
    sim.wait(400);
    assert!(sim.last_said().contains("run out of time"));
    sim.played();
    assert!(sim.hung_up);
}

fn sized(key: &str, kind: QuestionType, min: u32, max: u32) -> Question {
    Question {
        min_length: Some(min),
        max_length: Some(max),
        ..question(key, kind, &[])
    }
}

#[test]
fn keypad_entry_star_starts_over_letters_are_ignored_and_a_full_entry_ends_itself() {
    let mut sim = Sim::new(
        vec![
            sized("account", QuestionType::Digits, 6, 6),
            question("pin", QuestionType::Digits, &[]),
        ],
        FirstSpeaker::Agent,
    );
    // Keys while the question plays: accepted at once, before any read-back.
    sim.played().keys("12A*");
    assert_eq!(sim.stops, 1, "the first key stops the prompt");
    sim.keys("4D82719");
    assert_eq!(
        sim.answer("account"),
        (Some(json!("482719")), Some(Method::Dtmf)),
        "six keys end a six-digit entry without #"
    );
    assert_eq!(sim.last_said(), "What is your pin?");
}

#[test]
fn an_empty_or_too_long_keypad_entry_is_asked_once_more_then_left_unanswered() {
    let mut sim = Sim::new(
        vec![
            sized("code", QuestionType::Digits, 1, 4),
            question("total", QuestionType::Amount, &[]),
        ],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("uh", None, 0.0);
    sim.played().says("hmm", None, 0.0);
    assert!(sim.last_said().starts_with("Let's use the keypad"));
    sim.played().keys("#");
    assert!(
        sim.last_said().starts_with("Sorry, I didn't catch that."),
        "{}",
        sim.last_said()
    );
    sim.played().keys("12").wait(4);
    assert_eq!(sim.answer("code"), (Some(json!("12")), Some(Method::Dtmf)));

    // An amount of 13 keys is more than any answer can be: asked again, then given up.
    sim.played().keys("1234567890123#");
    assert!(sim
        .last_said()
        .starts_with("Sorry, I didn't understand that."));
    assert!(sim.last_said().contains("2 5 0 0 for 25 dollars"));
    sim.played().keys("1234567890123#");
    assert_eq!(sim.answer("total"), (None, None));
    assert_eq!(sim.last_said(), "Goodbye.");
}

#[test]
fn a_keyed_amount_ends_in_cents() {
    let mut sim = Sim::new(
        vec![question("total", QuestionType::Amount, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().keys("12050#");
    assert_eq!(
        sim.answer("total"),
        (
            Some(json!({"value": "120.50", "currency": "USD"})),
            Some(Method::Dtmf)
        )
    );
}

#[test]
fn a_caller_who_denies_every_read_back_is_not_asked_forever() {
    // Spelling cannot be keyed: a denial re-asks by voice once, the second leaves it.
    let mut sim = Sim::new(
        vec![question("code", QuestionType::Spelling, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("K J 7 Q", text("KJ7Q"), 0.9);
    assert_eq!(sim.last_said(), "I heard K J 7 Q. Is that right?");
    sim.played().says("no", no(), 0.99);
    assert!(sim.last_said().starts_with("Sorry, let's try that again."));
    sim.played().says("K J 7 Q", text("KJ7Q"), 0.9);
    sim.played().says("no", no(), 0.99);
    assert_eq!(sim.answer("code"), (None, None));
    assert_eq!(sim.last_said(), "Goodbye.");

    // Digits: the denial moves to the keypad; nothing keyed twice leaves it unanswered.
    let mut sim = Sim::new(
        vec![question("account", QuestionType::Digits, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("four two", text("42"), 0.9);
    sim.played().says("no", no(), 0.99);
    sim.played().wait(11);
    assert!(sim
        .last_said()
        .starts_with("Sorry, I didn't catch that. Please key"));
    sim.played().wait(11);
    assert_eq!(sim.answer("account"), (None, None));
    assert!(sim.hung_up || sim.last_said() == "Goodbye.");
}

#[test]
fn a_faint_yes_to_a_read_back_is_not_taken_as_confirmation() {
    let mut sim = Sim::new(
        vec![question("account", QuestionType::Digits, &[])],
        FirstSpeaker::Agent,
    );
    sim.played().played().says("four two", text("42"), 0.9);
    sim.played().says("yeah", yes(), 0.6);
    assert!(sim.last_said().starts_with("Let's use the keypad"));
    assert_eq!(sim.answer("account"), (None, None));
    sim.played().keys("4827#");
    assert_eq!(
        sim.answer("account"),
        (Some(json!("4827")), Some(Method::Dtmf))
    );
}

#[test]
fn a_caller_who_talks_over_every_prompt_still_gets_through_the_script() {
    let mut sim = Sim::new(
        vec![
            question("book", QuestionType::YesNo, &[]),
            question("account", QuestionType::Digits, &[]),
        ],
        FirstSpeaker::Agent,
    );
    // Each prompt is cut off by talk that answers nothing.
    for _ in 0..12 {
        if sim.hung_up || sim.last_said() == "Goodbye." {
            break;
        }
        sim.says("blah blah", None, 0.0);
        sim.wait(11);
    }
    assert!(sim.stops >= 4, "barged in {} times", sim.stops);
    assert_eq!(sim.answer("book"), (None, None));
    assert_eq!(sim.answer("account"), (None, None));
    assert_eq!(sim.last_said(), "Goodbye.");
}

#[test]
fn sound_without_voiced_speech_does_not_cut_the_prompt() {
    let mut sim = Sim::new(
        vec![question("book", QuestionType::YesNo, &[])],
        FirstSpeaker::Agent,
    );
    sim.played();
    // A cough during the question: heard as sound, recognized as nothing useful.
    sim.conv.caller_started();
    sim.drain();
    let (turn, _) = sim.conv.listening();
    sim.conv.heard(
        Heard {
            turn,
            text: String::new(),
            value: None,
            confidence: 0.0,
        },
        sim.now,
    );
    sim.drain();
    assert_eq!(sim.stops, 0);
    assert_eq!(sim.last_said(), "What is your book?", "still asking");
    sim.played().says("yes", yes(), 0.99);
    assert_eq!(
        sim.answer("book"),
        (Some(json!(true)), Some(Method::Speech))
    );
}
