//! Whisper's sound annotations: on noise, music or tones it writes "[Music]", "*BEEP*",
//! "(coughs)" or "[BLANK_AUDIO]" instead of words. They are not what the caller said: in a
//! transcript they read as speech, and an agent would take "*BEEP*" as an answer.

/// `text` without bracketed, parenthesized or starred spans, whitespace tidied. An opening mark
/// that is never closed is kept, with what follows it.
pub fn without_sound_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The span being skipped: its closing mark and where it started in `text`.
    let mut open: Option<(char, usize)> = None;
    for (at, c) in text.char_indices() {
        match open {
            Some((end, _)) if c == end => open = None,
            Some(_) => {}
            None => match c {
                '[' => open = Some((']', at)),
                '(' => open = Some((')', at)),
                '*' => open = Some(('*', at)),
                _ => out.push(c),
            },
        }
    }
    if let Some((_, start)) = open {
        out.push_str(&text[start..]);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::without_sound_tags;

    #[test]
    fn sound_annotations_are_not_speech() {
        for tag in [
            "[Music]",
            "*BEEP*",
            "(upbeat music)",
            "[BLANK_AUDIO]",
            " [Music] *BEEP* ",
        ] {
            assert_eq!(without_sound_tags(tag), "", "{tag}");
        }
        assert_eq!(
            without_sound_tags("[Music] I would like to pay. (coughs) Thanks."),
            "I would like to pay. Thanks."
        );
        assert_eq!(without_sound_tags("It costs 5 * 3"), "It costs 5 * 3");
        assert_eq!(without_sound_tags("no tags at all"), "no tags at all");
    }
}
