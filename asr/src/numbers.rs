//! Spoken numbers: number words → values (for typed answers) and values → words (for WER
//! normalization, so "5" and "five" count as the same word).

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const ORDINAL_UNITS: [&str; 20] = [
    "zeroth",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
];
const ORDINAL_TENS: [&str; 10] = [
    "",
    "",
    "twentieth",
    "thirtieth",
    "fortieth",
    "fiftieth",
    "sixtieth",
    "seventieth",
    "eightieth",
    "ninetieth",
];

/// Value of a single number word below 100 ("seven", "forty", "twelfth"), and whether it is a
/// tens word that may take a unit after it.
fn small_word(word: &str) -> Option<(u64, bool)> {
    if word == "oh" || word == "o" {
        return Some((0, false));
    }
    if let Some(i) = UNITS.iter().position(|&w| w == word) {
        return Some((i as u64, false));
    }
    if let Some(i) = ORDINAL_UNITS.iter().position(|&w| w == word) {
        return Some((i as u64, false));
    }
    if let Some(i) = TENS.iter().position(|&w| !w.is_empty() && w == word) {
        return Some((i as u64 * 10, true));
    }
    if let Some(i) = ORDINAL_TENS
        .iter()
        .position(|&w| !w.is_empty() && w == word)
    {
        return Some((i as u64 * 10, false));
    }
    // "5", "12th", "3rd".
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    let rest = &word[digits.len()..];
    if !digits.is_empty() && matches!(rest, "" | "st" | "nd" | "rd" | "th") {
        return digits.parse().ok().map(|v| (v, false));
    }
    None
}

/// Parses a cardinal or ordinal at the start of `words` ("two hundred and five", "twenty
/// first", "1500"). Returns the value and how many words it used.
pub fn parse_number(words: &[&str]) -> Option<(u64, usize)> {
    let mut total = 0u64;
    let mut current = 0u64;
    let mut used = 0;
    let mut any = false;
    let mut leading_zero = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some((v, takes_unit)) = small_word(w) {
            if any && current % 100 != 0 && current % 10 != 0 {
                break; // "five six" is two numbers
            }
            if any && current % 100 != 0 && v >= 10 {
                break; // "twenty thirty"
            }
            if leading_zero {
                break; // "oh six" is read digit by digit, not as six
            }
            leading_zero = v == 0 && current == 0 && total == 0;
            current += v;
            any = true;
            i += 1;
            used = i;
            if takes_unit {
                if let Some((u, false)) = words.get(i).and_then(|w| small_word(w)) {
                    if (1..10).contains(&u) {
                        current += u;
                        i += 1;
                        used = i;
                    }
                }
            }
            continue;
        }
        match w {
            "hundred" if any => {
                current = current.max(1) * 100;
                i += 1;
                used = i;
            }
            "thousand" | "million" if any => {
                let scale = if w == "thousand" { 1_000 } else { 1_000_000 };
                total += current.max(1) * scale;
                current = 0;
                i += 1;
                used = i;
            }
            "and" if any && words.get(i + 1).and_then(|w| small_word(w)).is_some() => i += 1,
            _ => break,
        }
    }
    any.then_some((total + current, used))
}

/// English words for `n` ("forty two", "one hundred five").
pub fn number_to_words(n: u64) -> String {
    fn below_thousand(n: u64, out: &mut Vec<&'static str>) {
        if n >= 100 {
            out.push(UNITS[(n / 100) as usize]);
            out.push("hundred");
        }
        let r = n % 100;
        if r >= 20 {
            out.push(TENS[(r / 10) as usize]);
            if r % 10 != 0 {
                out.push(UNITS[(r % 10) as usize]);
            }
        } else if r > 0 || n == 0 {
            out.push(UNITS[r as usize]);
        }
    }
    let mut out = Vec::new();
    let mut rest = n;
    for (scale, name) in [
        (1_000_000_000u64, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ] {
        if rest >= scale {
            below_thousand((rest / scale) % 1000, &mut out);
            out.push(name);
            rest %= scale;
        }
    }
    if rest > 0 || out.is_empty() {
        below_thousand(rest, &mut out);
    }
    out.join(" ")
}

/// Ordinal words for 1–99 ("fifth", "twenty first"); other values fall back to cardinals.
pub fn ordinal_to_words(n: u64) -> String {
    match n {
        0..=19 => ORDINAL_UNITS[n as usize].to_string(),
        20..=99 if n % 10 == 0 => ORDINAL_TENS[(n / 10) as usize].to_string(),
        20..=99 => format!(
            "{} {}",
            TENS[(n / 10) as usize],
            ORDINAL_UNITS[(n % 10) as usize]
        ),
        _ => number_to_words(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<(u64, usize)> {
        parse_number(&s.split(' ').collect::<Vec<_>>())
    }

    #[test]
    fn parses_cardinals_and_ordinals() {
        assert_eq!(parse("forty two dollars"), Some((42, 2)));
        assert_eq!(parse("one hundred and twenty"), Some((120, 4)));
        assert_eq!(parse("two thousand twenty six"), Some((2026, 4)));
        assert_eq!(parse("twenty first"), Some((21, 2)));
        assert_eq!(parse("12th of june"), Some((12, 1)));
        assert_eq!(parse("five six"), Some((5, 1)));
        assert_eq!(parse("twenty thirty"), Some((20, 1)));
        assert_eq!(parse("and five"), None);
        assert_eq!(parse("oh six"), Some((0, 1)));
        assert_eq!(parse("two thousand five"), Some((2005, 3)));
    }

    #[test]
    fn writes_words() {
        assert_eq!(number_to_words(0), "zero");
        assert_eq!(number_to_words(42), "forty two");
        assert_eq!(number_to_words(105), "one hundred five");
        assert_eq!(number_to_words(2026), "two thousand twenty six");
        assert_eq!(ordinal_to_words(5), "fifth");
        assert_eq!(ordinal_to_words(21), "twenty first");
    }
}
