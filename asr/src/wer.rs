//! Word error rate with the normalization telephone transcripts need: case, punctuation,
//! digits vs number words ("5" = "five"), "$5" = "five dollars", "3:30" = "three thirty".

use crate::numbers::{number_to_words, ordinal_to_words};

/// Lower-case words with numbers spelled out and punctuation removed.
pub fn normalize(text: &str) -> Vec<String> {
    let spaced = text
        .to_lowercase()
        .replace("a.m.", "am")
        .replace("p.m.", "pm")
        .replace(['-', '/', ':', ','], " ");
    let mut words = Vec::new();
    for raw in spaced.split_whitespace() {
        let dollars = raw.starts_with('$');
        let percent = raw.ends_with('%');
        let token: String = raw
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '\'' || *c == '.')
            .collect();
        let token = token.trim_matches(|c| c == '.' || c == '\'');
        if token.is_empty() {
            continue;
        }
        push_token(token, &mut words);
        if dollars {
            words.push("dollars".into());
        }
        if percent {
            words.push("percent".into());
        }
    }
    words
}

fn push_token(token: &str, words: &mut Vec<String>) {
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    let rest = &token[digits.len()..];
    let spoken = match digits.parse::<u64>() {
        Ok(n) if rest.is_empty() => Some(number_to_words(n)),
        Ok(n) if matches!(rest, "st" | "nd" | "rd" | "th") => Some(ordinal_to_words(n)),
        Ok(n) => rest
            .strip_prefix('.')
            .filter(|cents| cents.chars().all(|c| c.is_ascii_digit()))
            .map(|cents| {
                let mut s = number_to_words(n);
                for c in cents.chars() {
                    s.push_str(" point ");
                    s.push(c);
                }
                s
            }),
        Err(_) => None,
    };
    match spoken {
        Some(s) => words.extend(s.split_whitespace().map(String::from)),
        None => words.push(token.replace('.', "")),
    }
}

/// Word-level edit distance between two normalized word lists.
pub fn edit_distance(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = prev[j] + usize::from(r != h);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hypothesis.len()]
}

/// Accumulates errors over many utterances: corpus WER = total edits / total reference words.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct WerTally {
    pub errors: usize,
    pub reference_words: usize,
}

impl WerTally {
    pub fn add(&mut self, reference: &str, hypothesis: &str) {
        let r = normalize(reference);
        self.errors += edit_distance(&r, &normalize(hypothesis));
        self.reference_words += r.len();
    }

    pub fn wer(&self) -> f64 {
        if self.reference_words == 0 {
            0.0
        } else {
            self.errors as f64 / self.reference_words as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_numbers_case_and_punctuation() {
        assert_eq!(
            normalize("Call me after 5 o'clock!"),
            ["call", "me", "after", "five", "o'clock"]
        );
        assert_eq!(normalize("It's $42."), ["it's", "forty", "two", "dollars"]);
        assert_eq!(normalize("At 3:30 p.m."), ["at", "three", "thirty", "pm"]);
        assert_eq!(normalize("the 12th"), ["the", "twelfth"]);
    }

    #[test]
    fn counts_substitutions_insertions_deletions() {
        let mut t = WerTally::default();
        t.add("the cat sat", "the bat sat down");
        assert_eq!((t.errors, t.reference_words), (2, 3));
        t.add("Five dogs.", "5 dogs");
        assert_eq!((t.errors, t.reference_words), (2, 5));
        assert!((t.wer() - 0.4).abs() < 1e-9);
    }
}
