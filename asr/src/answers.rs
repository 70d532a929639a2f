//! Typed answers: what to ask the recognizer for each answer type, and how to turn its output
//! into a normalized value with a confidence.
//!
//! Closed sets (yes/no, choice) are decided from the transcript when it says so plainly and by
//! closed-set scoring otherwise; the scores always supply the confidence. Open types (digits,
//! date, time, amount, spelling) are parsed from the transcript; their confidence is the
//! decoder's mean token probability, and agents should read them back (docs/asr.md).

use serde::Serialize;

use crate::error::AsrError;
use crate::numbers::parse_number;
use crate::transcriber::Recognition;

/// The declared type of a question's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerType {
    Free,
    YesNo,
    Digits,
    Date,
    Time,
    Amount,
    Spelling,
    Choice(Vec<String>),
}

impl AnswerType {
    /// Parses a config/CLI type name; `choice` needs the allowed options.
    pub fn parse(name: &str, choices: &[String]) -> Result<Self, AsrError> {
        let choices: Vec<String> = choices
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        Ok(match name {
            "free" | "" => AnswerType::Free,
            "yes_no" => AnswerType::YesNo,
            "digits" => AnswerType::Digits,
            "date" => AnswerType::Date,
            "time" => AnswerType::Time,
            "amount" => AnswerType::Amount,
            "spelling" => AnswerType::Spelling,
            "choice" if choices.is_empty() => return Err(AsrError::NoChoices),
            "choice" => AnswerType::Choice(choices),
            other => return Err(AsrError::UnknownAnswerType(other.to_string())),
        })
    }
}

/// A normalized answer value: a boolean for yes/no, otherwise a string (digit string, ISO
/// date or `--MM-DD` without a year, `HH:MM`, decimal amount, upper-case letters, the option).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnswerValue {
    Bool(bool),
    Text(String),
}

/// The recognized value (None: nothing usable was said) and how sure we are (0–1).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub value: Option<AnswerValue>,
    pub confidence: f32,
}

const YES_WORDS: [&str; 7] = [
    "Yes",
    "Yeah",
    "Yep",
    "Sure",
    "Correct",
    "Okay",
    "Absolutely",
];
const NO_WORDS: [&str; 5] = ["No", "Nope", "Nah", "Not", "Negative"];
const NEGATIONS: [&str; 9] = [
    "no",
    "nope",
    "nah",
    "not",
    "don't",
    "dont",
    "negative",
    "never",
    "incorrect",
];
// "please" alone is how "yes, please" often survives a telephone line; "no, please don't"
// is still a no because negations win.
const AFFIRMATIONS: [&str; 15] = [
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "correct",
    "right",
    "absolutely",
    "okay",
    "ok",
    "fine",
    "definitely",
    "certainly",
    "ahead",
    "please",
];

/// An example answer appended to the question in the decoder prompt, nudging whisper towards
/// the written form the normalizers read (digits, "10:30 am", letters with hyphens). The
/// examples avoid the values in our fixtures so they cannot leak into the measurements.
pub fn format_hint(answer_type: &AnswerType) -> Option<&'static str> {
    match answer_type {
        AnswerType::Digits => Some("6 0 3 8."),
        AnswerType::Date => Some("September 9th, 2024."),
        AnswerType::Time => Some("11:45 am."),
        // No cents: with "$75.20" whisper copied ".20" into answers without cents.
        AnswerType::Amount => Some("$75."),
        // No example for spelling: on unclear audio whisper repeated the example verbatim.
        AnswerType::Spelling | AnswerType::Free | AnswerType::YesNo | AnswerType::Choice(_) => None,
    }
}

/// Candidates to score for a type, and the class each candidate belongs to.
pub fn candidates(answer_type: &AnswerType) -> (Vec<String>, Vec<usize>) {
    match answer_type {
        AnswerType::YesNo => {
            let words = YES_WORDS.iter().chain(NO_WORDS.iter());
            let classes = (0..YES_WORDS.len())
                .map(|_| 0)
                .chain((0..NO_WORDS.len()).map(|_| 1));
            (words.map(|w| w.to_string()).collect(), classes.collect())
        }
        AnswerType::Choice(choices) => {
            // Whisper capitalizes the first word of an utterance, but multi-token capitalized
            // words score low; summing both spellings per option measured better calibrated
            // (a wrong pick had confidence 0.58 instead of 0.93 with capitalized only), for
            // ~25 % more latency.
            let mut words = Vec::new();
            let mut classes = Vec::new();
            for (i, choice) in choices.iter().enumerate() {
                words.push(capitalize(choice));
                words.push(choice.to_lowercase());
                classes.extend([i, i]);
            }
            (words, classes)
        }
        _ => (Vec::new(), Vec::new()),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Lower-case words with digits, `:` and `.` kept (for times and amounts) and other
/// punctuation removed.
fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace("a.m.", "am")
        .replace("p.m.", "pm")
        .replace([',', '!', '?', ';', '-', '"'], " ")
        .split_whitespace()
        .map(|t| t.trim_matches('.').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Posterior of each class: softmax over the per-class log-sum-exp of candidate scores.
fn class_posteriors(logprobs: &[f32], classes: &[usize], n_classes: usize) -> Vec<f32> {
    let mut per_class = vec![f32::NEG_INFINITY; n_classes];
    for (&lp, &c) in logprobs.iter().zip(classes) {
        if let Some(slot) = per_class.get_mut(c) {
            let (a, b) = (slot.max(lp), slot.min(lp));
            *slot = if a == f32::NEG_INFINITY {
                a
            } else {
                a + (b - a).exp().ln_1p()
            };
        }
    }
    let max = per_class.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; n_classes];
    }
    let exp: Vec<f32> = per_class.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

fn argmax(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
}

/// Yes/no from plain words: any negation wins ("absolutely not", "no, that's fine").
fn yes_no_from_text(text: &str) -> Option<bool> {
    let words = tokens(text);
    if words.iter().any(|w| NEGATIONS.contains(&w.as_str())) {
        Some(false)
    } else if words.iter().any(|w| AFFIRMATIONS.contains(&w.as_str())) {
        Some(true)
    } else {
        None
    }
}

/// Equal, or equal up to a plural "s" ("cancellation" said for "cancellations").
fn same_word(a: &str, b: &str) -> bool {
    a == b || a.strip_suffix('s') == Some(b) || b.strip_suffix('s') == Some(a)
}

/// How much a heard word looks like an option's word: 1 for the same word, else the share of
/// letters left unchanged by the edit distance. Misheard options are often near misses in
/// spelling ("Congratulations!" for "Cancellations."), which the closed-set scores, biased
/// towards options of few tokens, do not recover.
fn word_similarity(heard: &str, option: &str) -> f32 {
    if same_word(heard, option) {
        return 1.0;
    }
    let (a, b): (Vec<char>, Vec<char>) = (heard.chars().collect(), option.chars().collect());
    let longer = a.len().max(b.len()).max(1);
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    1.0 - row[b.len()] as f32 / longer as f32
}

/// The choice whose words best appear in the transcript: the mean over its words of the best
/// similarity to a heard word must reach one half (half the words said exactly, or all of them
/// with at least half of their letters right).
fn choice_from_text(text: &str, choices: &[String]) -> Option<usize> {
    let said = tokens(text);
    let mut best: Option<(usize, f32)> = None;
    for (i, choice) in choices.iter().enumerate() {
        let words = tokens(choice);
        if words.is_empty() {
            continue;
        }
        let matched: f32 = words
            .iter()
            .map(|w| {
                said.iter()
                    .map(|s| word_similarity(s, w))
                    .fold(0.0, f32::max)
            })
            .sum();
        let share = matched / words.len() as f32;
        let better = best.is_none_or(|(_, s)| share > s);
        if share >= 0.5 && better {
            best = Some((i, share));
        }
    }
    best.map(|(i, _)| i)
}

/// How a closed-set answer (yes/no, choice) is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedSetMethod {
    /// From the transcript's words only.
    Text,
    /// Highest closed-set score only.
    Scores,
    /// Transcript when it is decisive, scores otherwise (our default: best measured).
    Hybrid,
}

/// Turns a recognition into a typed answer.
pub fn interpret(answer_type: &AnswerType, recognition: &Recognition) -> Answer {
    interpret_with(answer_type, recognition, ClosedSetMethod::Hybrid)
}

/// [`interpret`] with an explicit closed-set method (benchmarks compare them).
pub fn interpret_with(
    answer_type: &AnswerType,
    recognition: &Recognition,
    method: ClosedSetMethod,
) -> Answer {
    // A transcript that is just the prompt's format example is whisper echoing its prompt
    // over unclear audio, not an answer.
    if format_hint(answer_type).is_some_and(|hint| tokens(hint) == tokens(&recognition.text)) {
        return Answer {
            value: None,
            confidence: 0.0,
        };
    }
    let from_text = method != ClosedSetMethod::Scores;
    let from_scores = method != ClosedSetMethod::Text;
    let text = recognition.text.as_str();
    let open = |value: Option<String>| Answer {
        confidence: if value.is_some() {
            recognition.confidence
        } else {
            0.0
        },
        value: value.map(AnswerValue::Text),
    };
    match answer_type {
        AnswerType::Free => open((!text.is_empty()).then(|| text.to_string())),
        AnswerType::YesNo => {
            let (_, classes) = candidates(answer_type);
            let post = class_posteriors(&recognition.candidate_logprobs, &classes, 2);
            let scored = argmax(&post).map(|c| c == 0).filter(|_| from_scores);
            let value = yes_no_from_text(text).filter(|_| from_text).or(scored);
            Answer {
                confidence: value.map_or(0.0, |yes| post[usize::from(!yes)]),
                value: value.map(AnswerValue::Bool),
            }
        }
        AnswerType::Choice(choices) => {
            let (_, classes) = candidates(answer_type);
            let post = class_posteriors(&recognition.candidate_logprobs, &classes, choices.len());
            let pick = choice_from_text(text, choices)
                .filter(|_| from_text)
                .or_else(|| argmax(&post).filter(|_| from_scores));
            Answer {
                confidence: pick.map_or(0.0, |i| post[i]),
                value: pick.map(|i| AnswerValue::Text(choices[i].clone())),
            }
        }
        AnswerType::Digits => open(digits(text)),
        AnswerType::Date => open(date(text)),
        AnswerType::Time => open(time(text)),
        AnswerType::Amount => open(amount(text)),
        AnswerType::Spelling => open(spelling(text)),
    }
}

fn as_strs(words: &[String]) -> Vec<&str> {
    words.iter().map(String::as_str).collect()
}

/// Digit string: digits as written, single digit words ("oh" = 0), "double"/"triple" repeats,
/// and larger number words as their decimal value ("forty seven" = 47).
pub fn digits(text: &str) -> Option<String> {
    let words = tokens(text);
    let words = as_strs(&words);
    let mut out = String::new();
    let mut repeat = 1;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        match w {
            "double" => repeat = 2,
            "triple" => repeat = 3,
            _ if w.chars().all(|c| c.is_ascii_digit()) => {
                out.push_str(&w.repeat(repeat));
                repeat = 1;
            }
            _ => {
                if let Some((value, used)) = parse_number(&words[i..]) {
                    out.push_str(&value.to_string().repeat(repeat));
                    repeat = 1;
                    i += used;
                    continue;
                }
            }
        }
        i += 1;
    }
    (!out.is_empty()).then_some(out)
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == word || (word.len() >= 3 && m.starts_with(word)))
        .map(|i| i as u32 + 1)
}

/// A year after the day: "2026", "twenty twenty six", "two thousand twenty five".
fn year(words: &[&str]) -> Option<u32> {
    let (first, used) = parse_number(words)?;
    if (1900..=2199).contains(&first) {
        // "twenty twenty five" is often written "2020, 25".
        if first % 100 == first / 100 {
            if let Some((second, _)) = parse_number(&words[used..]).filter(|(s, _)| *s < 100) {
                return u32::try_from(first / 100 * 100 + second).ok();
            }
        }
        return u32::try_from(first).ok();
    }
    if (19..=21).contains(&first) {
        let (second, _) = parse_number(&words[used..])?;
        if second < 100 {
            return u32::try_from(first * 100 + second).ok();
        }
    }
    None
}

/// ISO date "YYYY-MM-DD", or "--MM-DD" (ISO 8601 without year) when no year was said.
pub fn date(text: &str) -> Option<String> {
    let words = tokens(text);
    let words = as_strs(&words);
    let m_at = words.iter().position(|w| month(w).is_some())?;
    let m = month(words[m_at])?;
    // "March fifth" or "the fifth of March".
    let after = parse_number(&words[m_at + 1..]).map(|(d, used)| (d, m_at + 1 + used));
    let before = words[..m_at]
        .iter()
        .rposition(|w| *w != "of" && *w != "the")
        .and_then(|i| parse_number(&words[i..m_at]).map(|(d, _)| (d, m_at + 1)));
    let (day, rest) = after.filter(|(d, _)| (1..=31).contains(d)).or(before)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some(match year(&words[rest.min(words.len())..]) {
        Some(y) => format!("{y:04}-{m:02}-{day:02}"),
        None => format!("--{m:02}-{day:02}"),
    })
}

/// 24-hour "HH:MM".
pub fn time(text: &str) -> Option<String> {
    // "10am" / "3:30pm" → "10 am" / "3:30 pm".
    let words: Vec<String> = tokens(text)
        .into_iter()
        .flat_map(|w| {
            let split = ["am", "pm"].iter().find_map(|suffix| {
                w.strip_suffix(suffix)
                    .filter(|head| head.ends_with(|c: char| c.is_ascii_digit()))
                    .map(|head| vec![head.to_string(), suffix.to_string()])
            });
            split.unwrap_or_else(|| vec![w])
        })
        .collect();
    let joined = format!(" {} ", words.join(" "));
    if joined.contains(" noon ") || joined.contains(" midday ") {
        return Some("12:00".into());
    }
    if joined.contains(" midnight ") {
        return Some("00:00".into());
    }
    let pm = ["pm", "afternoon", "evening", "tonight"]
        .iter()
        .any(|w| words.iter().any(|x| x == w));
    let am = ["am", "morning"]
        .iter()
        .any(|w| words.iter().any(|x| x == w));
    let words = as_strs(&words);
    let mut hour = None;
    let mut minute = 0;
    for (i, w) in words.iter().enumerate() {
        // "3:30", "3.30".
        if let Some((h, m)) = w.split_once([':', '.']) {
            if let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) {
                hour = Some(h);
                minute = m;
                break;
            }
        }
        let relative = match *w {
            "half" => Some(30),
            "quarter" => Some(15),
            _ => None,
        };
        if let Some(offset) = relative {
            let dir = words.get(i + 1).copied();
            let target = words.get(i + 2..).and_then(parse_number);
            if let (Some(dir @ ("past" | "after" | "to" | "till")), Some((h, _))) = (dir, target) {
                let h = u32::try_from(h).ok()?;
                (hour, minute) = if matches!(dir, "to" | "till") {
                    (Some((h + 11) % 12), 60 - offset)
                } else {
                    (Some(h), offset)
                };
                break;
            }
        }
        if let Some((h, used)) = parse_number(&words[i..]) {
            if (1..=24).contains(&h) {
                hour = u32::try_from(h).ok();
                if let Some((m, _)) = parse_number(&words[i + used..]) {
                    if m < 60 {
                        minute = u32::try_from(m).ok()?;
                    }
                }
                break;
            }
        }
    }
    let mut hour = hour?;
    if pm && hour < 12 {
        hour += 12;
    }
    if am && hour == 12 {
        hour = 0;
    }
    (hour < 24 && minute < 60).then(|| format!("{hour:02}:{minute:02}"))
}

/// Decimal amount with two places: "$25.50", "twenty five dollars and fifty cents".
pub fn amount(text: &str) -> Option<String> {
    let words = tokens(text);
    let words = as_strs(&words);
    for (i, w) in words.iter().enumerate() {
        let numeric = w.trim_start_matches('$').replace(',', "");
        if let Some((whole, frac)) = numeric.split_once('.') {
            if let (Ok(d), Ok(c)) = (whole.parse::<u64>(), frac.parse::<u64>()) {
                if frac.len() <= 2 {
                    let cents = if frac.len() == 1 { c * 10 } else { c };
                    return Some(format!("{d}.{cents:02}"));
                }
            }
        }
        if let Ok(d) = numeric.parse::<u64>() {
            let cents = cents_after(&words[i + 1..]).unwrap_or(0);
            return Some(format!("{d}.{cents:02}"));
        }
        if let Some((d, used)) = parse_number(&words[i..]) {
            let cents = cents_after(&words[i + used..]).unwrap_or(0);
            return Some(format!("{d}.{cents:02}"));
        }
    }
    None
}

/// "dollars and fifty cents" → 50.
fn cents_after(words: &[&str]) -> Option<u64> {
    let mut rest = words;
    if let Some(("dollars" | "dollar" | "bucks", tail)) = rest.split_first().map(|(w, t)| (*w, t)) {
        rest = tail;
    }
    if let Some((&"and", tail)) = rest.split_first() {
        rest = tail;
    }
    let (c, used) = parse_number(rest)?;
    let unit = rest.get(used).copied();
    (c < 100 && matches!(unit, Some("cents" | "cent"))).then_some(c)
}

const NATO: [&str; 26] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "x-ray", "yankee", "zulu",
];

/// Upper-case letters: single letters ("S M I T H", "S-M-I-T-H"), NATO words, "double L";
/// a plain word ("Smith") when no letters were spelled.
pub fn spelling(text: &str) -> Option<String> {
    let words = tokens(text);
    let mut out = String::new();
    let mut repeat = 1;
    for w in &words {
        let mut chars = w.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => {
                out.extend(std::iter::repeat_n(c.to_ascii_uppercase(), repeat));
                repeat = 1;
            }
            _ if w == "double" => repeat = 2,
            _ if NATO.contains(&w.as_str()) => {
                let c = w.chars().next().unwrap_or('?').to_ascii_uppercase();
                out.extend(std::iter::repeat_n(c, repeat));
                repeat = 1;
            }
            _ => {}
        }
    }
    if out.len() < 2 {
        // Nothing spelled letter by letter: the longest plain word is the best guess.
        let word = words
            .iter()
            .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
            .max_by_key(|w| w.len())?;
        out = word.to_ascii_uppercase();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str, logprobs: Vec<f32>) -> Recognition {
        Recognition {
            text: text.into(),
            segments: Vec::new(),
            confidence: 0.9,
            candidate_logprobs: logprobs,
            queue_wait: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn parses_type_names() {
        assert_eq!(AnswerType::parse("yes_no", &[]).unwrap(), AnswerType::YesNo);
        assert!(matches!(
            AnswerType::parse("choice", &[]),
            Err(AsrError::NoChoices)
        ));
        assert!(matches!(
            AnswerType::parse("colour", &[]),
            Err(AsrError::UnknownAnswerType(_))
        ));
    }

    #[test]
    fn yes_no_prefers_plain_words_and_takes_confidence_from_scores() {
        let (cands, _) = candidates(&AnswerType::YesNo);
        let mut lp = vec![-10.0; cands.len()];
        lp[0] = -0.1; // "Yes" scored high
        let a = interpret(&AnswerType::YesNo, &rec("Absolutely not.", lp.clone()));
        assert_eq!(a.value, Some(AnswerValue::Bool(false)));
        assert!(a.confidence < 0.01);
        let a = interpret(&AnswerType::YesNo, &rec("Mm.", lp));
        assert_eq!(a.value, Some(AnswerValue::Bool(true)));
        assert!(a.confidence > 0.99);
    }

    #[test]
    fn choice_matches_words_then_scores() {
        let t =
            AnswerType::parse("choice", &["billing".into(), "technical support".into()]).unwrap();
        let a = interpret(&t, &rec("I need technical support.", vec![-1.0; 4]));
        assert_eq!(a.value, Some(AnswerValue::Text("technical support".into())));
        let a = interpret(&t, &rec("Hmm.", vec![-5.0, -5.0, -0.5, -3.0]));
        assert_eq!(a.value, Some(AnswerValue::Text("technical support".into())));
        let t = AnswerType::parse("choice", &["sales".into(), "cancellations".into()]).unwrap();
        let a = interpret(&t, &rec("I want cancellation.", vec![-1.0; 4]));
        assert_eq!(a.value, Some(AnswerValue::Text("cancellations".into())));
        // A near miss in spelling beats scores that favour the shorter option…
        let a = interpret(&t, &rec("Congratulations!", vec![-1.0, -1.0, -9.0, -9.0]));
        assert_eq!(a.value, Some(AnswerValue::Text("cancellations".into())));
        // …but words sharing only a few letters with an option leave the choice to the scores.
        let t = AnswerType::parse("choice", &["billing".into(), "sales".into()]).unwrap();
        let a = interpret(&t, &rec("Build, clean!", vec![-9.0, -9.0, -1.0, -1.0]));
        assert_eq!(a.value, Some(AnswerValue::Text("sales".into())));
    }

    #[test]
    fn word_similarity_is_the_share_of_letters_kept() {
        assert_eq!(word_similarity("sales", "sales"), 1.0);
        assert_eq!(word_similarity("cancellation", "cancellations"), 1.0);
        assert!((word_similarity("sails", "sales") - 0.6).abs() < 1e-6);
        assert_eq!(word_similarity("hey", ""), 0.0);
        assert_eq!(word_similarity("", "hey"), 0.0);
    }

    #[test]
    fn an_echoed_format_example_is_no_answer() {
        let a = interpret(&AnswerType::Digits, &rec("6 0 3 8.", Vec::new()));
        assert_eq!(a.value, None);
        let a = interpret(&AnswerType::Digits, &rec("6 0 3 9.", Vec::new()));
        assert_eq!(a.value, Some(AnswerValue::Text("6039".into())));
    }

    #[test]
    fn open_types_normalize() {
        assert_eq!(digits("Four seven one nine.").as_deref(), Some("4719"));
        assert_eq!(digits("9-0-6-1-2").as_deref(), Some("90612"));
        assert_eq!(digits("nine oh six double two").as_deref(), Some("90622"));
        assert_eq!(date("March 5th, 2026.").as_deref(), Some("2026-03-05"));
        assert_eq!(date("The twelfth of June.").as_deref(), Some("--06-12"));
        assert_eq!(
            date("December first, twenty twenty five").as_deref(),
            Some("2025-12-01")
        );
        assert_eq!(date("December 1, 2020, 25").as_deref(), Some("2025-12-01"));
        assert_eq!(time("3:30 in the afternoon").as_deref(), Some("15:30"));
        assert_eq!(time("Ten a.m.").as_deref(), Some("10:00"));
        assert_eq!(time("10AM.").as_deref(), Some("10:00"));
        assert_eq!(time("4.15pm").as_deref(), Some("16:15"));
        assert_eq!(
            time("Half past nine in the morning.").as_deref(),
            Some("09:30")
        );
        assert_eq!(time("quarter to five pm").as_deref(), Some("16:45"));
        assert_eq!(amount("$25.50").as_deref(), Some("25.50"));
        assert_eq!(
            amount("Twenty five dollars and fifty cents.").as_deref(),
            Some("25.50")
        );
        assert_eq!(
            amount("One hundred and twenty dollars.").as_deref(),
            Some("120.00")
        );
        assert_eq!(spelling("S-M-I-T-H.").as_deref(), Some("SMITH"));
        assert_eq!(spelling("k i n g").as_deref(), Some("KING"));
        assert_eq!(spelling("Jones.").as_deref(), Some("JONES"));
        assert_eq!(spelling("double u echo").as_deref(), Some("UUE"));
    }
}
