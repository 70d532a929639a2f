//! Repetition guard: a shortened encoder context occasionally makes whisper loop on a phrase
//! ("the the the …"). A phrase said three or more times in a row is collapsed to one; people
//! rarely do that, decoder loops always do.

const MAX_PHRASE_WORDS: usize = 8;
const MIN_RUN: usize = 3;

fn key(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Collapses runs of ≥ 3 consecutive repetitions of the same 1–8 word phrase.
pub fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|w| key(w)).collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        for n in 1..=MAX_PHRASE_WORDS {
            let mut reps = 1;
            while i + (reps + 1) * n <= words.len()
                && keys[i..i + n] == keys[i + reps * n..i + (reps + 1) * n]
            {
                reps += 1;
            }
            if reps >= MIN_RUN {
                out.extend_from_slice(&words[i..i + n]);
                i += reps * n;
                skipped = true;
                break;
            }
        }
        if !skipped {
            out.push(words[i]);
            i += 1;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_word_and_phrase_loops() {
        assert_eq!(collapse_repeats("yes yes yes yes"), "yes");
        assert_eq!(
            collapse_repeats("I said thank you, thank you. thank you thank you"),
            "I said thank you,"
        );
    }

    #[test]
    fn keeps_ordinary_doubles() {
        assert_eq!(
            collapse_repeats("no no I meant five five"),
            "no no I meant five five"
        );
        assert_eq!(collapse_repeats(""), "");
    }
}
