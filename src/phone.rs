//! E.164 normalization of dialled numbers and DIDs.

use phonenumber::country::Id as Region;
use phonenumber::Mode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("{0:?} is not a known region code (use ISO 3166 alpha-2, e.g. \"US\")")]
    UnknownRegion(String),
    #[error("is empty")]
    Empty,
    #[error("contains letters or symbols; use digits, optionally with a leading + and spaces, dashes, dots or parentheses")]
    BadCharacters,
    #[error("cannot be parsed as a phone number ({0})")]
    Unparseable(String),
    #[error("is not a valid number{0}")]
    Invalid(String),
}

/// Normalizes numbers to E.164, reading numbers without a country code in `default_region`.
#[derive(Debug, Clone, Copy)]
pub struct PhoneNormalizer {
    region: Region,
}

impl PhoneNormalizer {
    pub fn new(default_region: &str) -> Result<Self, PhoneError> {
        let region = default_region
            .to_ascii_uppercase()
            .parse::<Region>()
            .map_err(|_| PhoneError::UnknownRegion(default_region.to_owned()))?;
        Ok(Self { region })
    }

    pub fn normalize(&self, input: &str) -> Result<String, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        // libphonenumber reads vanity letters (1-800-FLOWERS) as digits; a dialler should not guess.
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')');
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if !body.chars().all(allowed) {
            return Err(PhoneError::BadCharacters);
        }
        let parsed = phonenumber::parse(Some(self.region), trimmed)
            .map_err(|e| PhoneError::Unparseable(e.to_string()))?;
        if !phonenumber::is_valid(&parsed) {
            let scope = if trimmed.starts_with('+') {
                String::new()
            } else {
                format!(
                    " in region {:?} (write it with + and its country code if it is foreign)",
                    self.region
                )
            };
            return Err(PhoneError::Invalid(scope));
        }
        Ok(parsed.format().mode(Mode::E164).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> PhoneNormalizer {
        PhoneNormalizer::new("US").unwrap()
    }

    #[test]
    fn national_and_international_forms_normalize_to_e164() {
        for input in [
            "(202) 555-0142",
            "202.555.0142",
            "+1 202 555 0142",
            "  +12025550142 ",
        ] {
            assert_eq!(us().normalize(input).unwrap(), "+12025550142", "{input}");
        }
        assert_eq!(us().normalize("+44 20 7946 0958").unwrap(), "+442079460958");
    }

    #[test]
    fn undiallable_numbers_are_refused_with_a_reason() {
        assert_eq!(
            us().normalize("1-800-FLOWERS"),
            Err(PhoneError::BadCharacters)
        );
        assert_eq!(us().normalize(""), Err(PhoneError::Empty));
        assert!(matches!(
            us().normalize("12"),
            Err(PhoneError::Invalid(_) | PhoneError::Unparseable(_))
        ));
        // A UK national number is not valid in the US plan.
        assert!(matches!(
            us().normalize("020 7946 0958"),
            Err(PhoneError::Invalid(_))
        ));
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!(PhoneNormalizer::new("XX").is_err());
        assert!(PhoneNormalizer::new("gb").is_ok());
    }
}
