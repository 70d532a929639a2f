//! The evaluation-set manifest written by scripts/gen-asr-fixtures.sh (tab-separated:
//! file, answer_type, choices, question, reference, value). Used by the tests and benches.

use std::path::{Path, PathBuf};

/// One labelled clip.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledClip {
    pub path: PathBuf,
    /// `free`, `yes_no`, `digits`, …
    pub answer_type: String,
    pub choices: Vec<String>,
    pub question: String,
    pub reference: String,
    /// The expected normalized value ("true", "4719", "2026-03-05", …); empty for free text.
    pub value: String,
}

/// Reads `dir/manifest.tsv`.
pub fn read_manifest(dir: &Path) -> std::io::Result<Vec<LabelledClip>> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv"))?;
    let mut clips = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, answer_type, choices, question, reference, value] = fields[..] else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("manifest.tsv line {}: expected 6 fields", n + 1),
            ));
        };
        clips.push(LabelledClip {
            path: dir.join(file),
            answer_type: answer_type.to_string(),
            choices: choices
                .split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            question: question.to_string(),
            reference: reference.to_string(),
            value: value.to_string(),
        });
    }
    Ok(clips)
}
