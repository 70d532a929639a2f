//! Typed answers as the agent stores them: normalized values from speech or DTMF, and the
//! words used to read an open value back to the caller.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Date, Month};
use voxbridge_asr::AnswerValue;

use crate::domain::{Question, QuestionType};

/// Amounts are stored with this currency (the recognizer hears "dollars").
const CURRENCY: &str = "USD";
/// Keyed amounts up to 9,999,999,999.99: a bound, not a business rule.
const MAX_AMOUNT_KEYS: usize = 12;

/// How an answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Recognized from speech and taken as heard (yes/no, choices, free text).
    Speech,
    /// Recognized from speech, read back and confirmed by the caller.
    ReadBackConfirmed,
    /// Keyed on the phone's keypad (RFC 4733).
    Dtmf,
}

/// Whether an answer of this type is read back before it is kept (values the recognizer gets
/// wrong too often to take as heard).
pub fn is_open(kind: QuestionType) -> bool {
    matches!(
        kind,
        QuestionType::Digits
            | QuestionType::Date
            | QuestionType::Time
            | QuestionType::Amount
            | QuestionType::Spelling
    )
}

/// The recognizer's view of a question: primed with what was asked, typed by its answer type
/// (free speech when nothing is being asked).
pub fn recognizer_question(question: Option<&Question>) -> voxbridge_asr::Question {
    let Some(q) = question else {
        return voxbridge_asr::Question::free();
    };
    // Config and API validation admit only types and choices the recognizer accepts.
    match voxbridge_asr::AnswerType::parse(q.kind.as_str(), &q.choices) {
        Ok(answer_type) => voxbridge_asr::Question::asked(&q.ask, answer_type),
        Err(_) => voxbridge_asr::Question::free(),
    }
}

/// Whether the keypad can answer this type.
pub fn keyable(kind: QuestionType) -> bool {
    !matches!(kind, QuestionType::Free | QuestionType::Spelling)
}

/// The stored value of a recognized answer; `today` resolves dates said without a year.
pub fn from_speech(question: &Question, value: &AnswerValue, today: Date) -> Option<Value> {
    match (question.kind, value) {
        (QuestionType::YesNo, AnswerValue::Bool(b)) => Some(Value::Bool(*b)),
        (QuestionType::Digits | QuestionType::Spelling, AnswerValue::Text(v)) => {
            let v = v.trim();
            (!v.is_empty() && question.fits(v.chars().count())).then(|| Value::String(v.into()))
        }
        (QuestionType::Amount, AnswerValue::Text(v)) => amount(v),
        (QuestionType::Date, AnswerValue::Text(v)) => match v.strip_prefix("--") {
            Some(month_day) => next_date(month_day, today),
            None => Some(Value::String(v.clone())),
        },
        (_, AnswerValue::Text(v)) if !v.trim().is_empty() => Some(Value::String(v.clone())),
        _ => None,
    }
}

/// The value keyed for `question`: 1/2 for yes/no, a position for a choice, the digits of a
/// number, YYYYMMDD or MMDD for a date, HHMM for a time, dollars and cents for an amount (the
/// last two keys are the cents, as payment lines ask: `*` cannot be the decimal point because
/// it starts the entry over). `None` when the keys do not make a valid answer.
pub fn from_dtmf(question: &Question, keys: &str, today: Date) -> Option<Value> {
    let all_digits = !keys.is_empty() && keys.bytes().all(|b| b.is_ascii_digit());
    match question.kind {
        QuestionType::YesNo => match keys {
            "1" => Some(Value::Bool(true)),
            "2" => Some(Value::Bool(false)),
            _ => None,
        },
        QuestionType::Choice => {
            let position: usize = keys.parse().ok()?;
            let choice = question.choices.get(position.checked_sub(1)?)?;
            Some(Value::String(choice.clone()))
        }
        QuestionType::Digits if all_digits && question.fits(keys.len()) => {
            Some(Value::String(keys.to_string()))
        }
        QuestionType::Date if all_digits && keys.len() == 8 => {
            let (year, month_day) = keys.split_at(4);
            let date = ymd(year.parse().ok()?, &month_day[..2], &month_day[2..])?;
            Some(Value::String(date.to_string()))
        }
        QuestionType::Date if all_digits && keys.len() == 4 => {
            next_date(&format!("{}-{}", &keys[..2], &keys[2..]), today)
        }
        QuestionType::Time if all_digits && (3..=4).contains(&keys.len()) => {
            let (hours, minutes) = keys.split_at(keys.len() - 2);
            let (h, m): (u8, u8) = (hours.parse().ok()?, minutes.parse().ok()?);
            (h < 24 && m < 60).then(|| Value::String(format!("{h:02}:{m:02}")))
        }
        QuestionType::Amount if all_digits && keys.len() <= MAX_AMOUNT_KEYS => {
            let (dollars, cents) = keys.split_at(keys.len().saturating_sub(2));
            let dollars = if dollars.is_empty() { "0" } else { dollars };
            amount(&format!("{dollars}.{cents:0>2}"))
        }
        _ => None,
    }
}

/// "I heard …": the value in words espeak-ng reads naturally.
pub fn read_back(kind: QuestionType, value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("value").and_then(Value::as_str).unwrap_or_default(),
        Value::Bool(true) => "yes",
        Value::Bool(false) => "no",
        _ => "",
    };
    match kind {
        QuestionType::Digits | QuestionType::Spelling => spaced(text),
        QuestionType::Date => spoken_date(text).unwrap_or_else(|| text.to_string()),
        QuestionType::Time => spoken_time(text).unwrap_or_else(|| text.to_string()),
        QuestionType::Amount => spoken_amount(text),
        _ => text.to_string(),
    }
}

/// How to key an answer of this type, for the prompt that switches to the keypad.
pub fn keypad_hint(question: &Question) -> String {
    match question.kind {
        QuestionType::YesNo => "press 1 for yes or 2 for no".into(),
        QuestionType::Choice => {
            let options: Vec<String> = question
                .choices
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} for {c}", i + 1))
                .collect();
            format!("press {}", options.join(", "))
        }
        QuestionType::Date => {
            "key it in as year, month and day, eight digits, then press pound".into()
        }
        QuestionType::Time => {
            "key it in as hours and minutes on a 24 hour clock, then press pound".into()
        }
        QuestionType::Amount => {
            "key the amount in dollars and cents, so 2 5 0 0 for 25 dollars, then press pound"
                .into()
        }
        _ => "key it in on your keypad, then press pound".into(),
    }
}

fn amount(text: &str) -> Option<Value> {
    let (whole, cents) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(cents) || cents.len() > 2 {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let cents = format!("{cents:0<2}");
    Some(json!({"value": format!("{whole}.{cents}"), "currency": CURRENCY}))
}

fn ymd(year: i32, month: &str, day: &str) -> Option<Date> {
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year, month, day.parse().ok()?).ok()
}

/// "MM-DD" as the next such date on or after `today`.
fn next_date(month_day: &str, today: Date) -> Option<Value> {
    let (month, day) = month_day.split_once('-')?;
    let this_year = ymd(today.year(), month, day);
    let date = match this_year {
        Some(d) if d >= today => d,
        _ => ymd(today.year() + 1, month, day)?,
    };
    Some(Value::String(date.to_string()))
}

fn spaced(text: &str) -> String {
    let chars: Vec<String> = text.chars().map(String::from).collect();
    chars.join(" ")
}

fn spoken_date(iso: &str) -> Option<String> {
    let mut parts = iso.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let date = ymd(year, parts.next()?, parts.next()?)?;
    Some(format!("{} {}, {}", date.month(), date.day(), date.year()))
}

fn spoken_time(hh_mm: &str) -> Option<String> {
    let (h, m) = hh_mm.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    let half = if h < 12 { "A M" } else { "P M" };
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    Some(match m {
        0 => format!("{h12} {half}"),
        m => format!("{h12} {m:02} {half}"),
    })
}

fn spoken_amount(value: &str) -> String {
    let (whole, cents) = value.split_once('.').unwrap_or((value, "00"));
    let cents = cents.trim_start_matches('0');
    match (whole, cents) {
        (w, "") => format!("{w} dollars"),
        ("0", c) => format!("{c} cents"),
        (w, c) => format!("{w} dollars and {c} cents"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn question(kind: QuestionType, choices: &[&str]) -> Question {
        Question {
            choices: choices.iter().map(|c| c.to_string()).collect(),
            ..Question::new("k", "?", kind)
        }
    }

    #[test]
    fn speech_values_are_normalized() {
        let today = date!(2026 - 12 - 04);
        let text = |s: &str| AnswerValue::Text(s.into());
        assert_eq!(
            from_speech(
                &question(QuestionType::YesNo, &[]),
                &AnswerValue::Bool(true),
                today
            ),
            Some(json!(true))
        );
        assert_eq!(
            from_speech(&question(QuestionType::Amount, &[]), &text("120.5"), today),
            Some(json!({"value": "120.50", "currency": "USD"}))
        );
        assert_eq!(
            from_speech(&question(QuestionType::Date, &[]), &text("--12-10"), today),
            Some(json!("2026-12-10"))
        );
        assert_eq!(
            from_speech(&question(QuestionType::Date, &[]), &text("--01-02"), today),
            Some(json!("2027-01-02")),
            "a past day means next year's"
        );
        let digits = &question(QuestionType::Digits, &[]);
        assert_eq!(from_speech(digits, &text(" "), today), None);
        let eight = Question {
            min_length: Some(8),
            max_length: Some(8),
            ..digits.clone()
        };
        assert_eq!(
            from_speech(&eight, &text("4827193"), today),
            None,
            "a digit lost"
        );
        assert_eq!(
            from_speech(&eight, &text("48271936"), today),
            Some(json!("48271936"))
        );
    }

    #[test]
    fn keyed_values_are_validated() {
        let today = date!(2026 - 12 - 04);
        let keyed = |kind, keys: &str| from_dtmf(&question(kind, &["a", "b"]), keys, today);
        assert_eq!(keyed(QuestionType::YesNo, "1"), Some(json!(true)));
        assert_eq!(keyed(QuestionType::YesNo, "9"), None);
        assert_eq!(keyed(QuestionType::Choice, "2"), Some(json!("b")));
        assert_eq!(keyed(QuestionType::Choice, "0"), None);
        assert_eq!(keyed(QuestionType::Choice, "3"), None);
        assert_eq!(
            keyed(QuestionType::Digits, "48271936"),
            Some(json!("48271936"))
        );
        assert_eq!(keyed(QuestionType::Digits, ""), None);
        assert_eq!(
            keyed(QuestionType::Date, "20261210"),
            Some(json!("2026-12-10"))
        );
        assert_eq!(keyed(QuestionType::Date, "20261310"), None);
        assert_eq!(keyed(QuestionType::Date, "0102"), Some(json!("2027-01-02")));
        assert_eq!(keyed(QuestionType::Time, "1430"), Some(json!("14:30")));
        assert_eq!(keyed(QuestionType::Time, "930"), Some(json!("09:30")));
        assert_eq!(keyed(QuestionType::Time, "2460"), None);
        assert_eq!(
            keyed(QuestionType::Amount, "12050"),
            Some(json!({"value": "120.50", "currency": "USD"}))
        );
        assert_eq!(
            keyed(QuestionType::Amount, "5"),
            Some(json!({"value": "0.05", "currency": "USD"}))
        );
        assert_eq!(keyed(QuestionType::Amount, "1*2"), None);
        assert_eq!(keyed(QuestionType::Amount, "1234567890123"), None);
        let four = Question {
            max_length: Some(4),
            ..question(QuestionType::Digits, &[])
        };
        assert_eq!(from_dtmf(&four, "12345", today), None, "too long");
        assert_eq!(from_dtmf(&four, "1234", today), Some(json!("1234")));
        assert_eq!(keyed(QuestionType::Spelling, "123"), None);
    }

    #[test]
    fn read_backs_are_speakable() {
        assert_eq!(read_back(QuestionType::Digits, &json!("4827")), "4 8 2 7");
        assert_eq!(
            read_back(QuestionType::Date, &json!("2026-12-10")),
            "December 10, 2026"
        );
        assert_eq!(read_back(QuestionType::Time, &json!("14:30")), "2 30 P M");
        assert_eq!(read_back(QuestionType::Time, &json!("00:00")), "12 A M");
        assert_eq!(
            read_back(
                QuestionType::Amount,
                &json!({"value": "120.50", "currency": "USD"})
            ),
            "120 dollars and 50 cents"
        );
        assert_eq!(
            read_back(QuestionType::Amount, &json!({"value": "7.00"})),
            "7 dollars"
        );
        assert_eq!(read_back(QuestionType::Spelling, &json!("ANN")), "A N N");
    }
}
