//! Typed, on-demand accessors over raw headers.

use super::header_name::HeaderName;
use super::headers::Headers;
use super::method::CSeq;
use super::name_addr::NameAddr;
use super::text::{parse_u32, split_list, SyntaxError};
use super::via::Via;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("invalid {0} header: {1}")]
    Invalid(&'static str, SyntaxError),
}

impl Headers {
    fn text(&self, name: &HeaderName, label: &'static str) -> Result<&str, HeaderError> {
        let raw = self.get(name).ok_or(HeaderError::Missing(label))?;
        std::str::from_utf8(raw).map_err(|_| HeaderError::Invalid(label, SyntaxError::Encoding))
    }

    /// The topmost Via value (first element of the first Via line).
    pub fn via_top(&self) -> Result<Via<'_>, HeaderError> {
        let text = self.text(&HeaderName::Via, "Via")?;
        let first = split_list(text).next().unwrap_or_default();
        Via::parse(first).map_err(|e| HeaderError::Invalid("Via", e))
    }

    /// Every Via value in order, across lines and commas.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, HeaderError>> {
        self.get_all(&HeaderName::Via).flat_map(|raw| {
            let items: Vec<Result<Via<'_>, HeaderError>> = match std::str::from_utf8(raw) {
                Ok(t) => split_list(t)
                    .map(|v| Via::parse(v).map_err(|e| HeaderError::Invalid("Via", e)))
                    .collect(),
                Err(_) => vec![Err(HeaderError::Invalid("Via", SyntaxError::Encoding))],
            };
            items
        })
    }

    pub fn call_id(&self) -> Result<&str, HeaderError> {
        let v = self.text(&HeaderName::CallId, "Call-ID")?;
        if v.is_empty() || v.bytes().any(|c| c.is_ascii_whitespace()) {
            return Err(HeaderError::Invalid("Call-ID", SyntaxError::Param));
        }
        Ok(v)
    }

    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        CSeq::parse(self.text(&HeaderName::CSeq, "CSeq")?)
            .map_err(|e| HeaderError::Invalid("CSeq", e))
    }

    pub fn from_hdr(&self) -> Result<NameAddr<'_>, HeaderError> {
        NameAddr::parse(self.text(&HeaderName::From, "From")?)
            .map_err(|e| HeaderError::Invalid("From", e))
    }

    pub fn to_hdr(&self) -> Result<NameAddr<'_>, HeaderError> {
        NameAddr::parse(self.text(&HeaderName::To, "To")?)
            .map_err(|e| HeaderError::Invalid("To", e))
    }

    /// The first Contact address (a dialog's remote target).
    pub fn contact(&self) -> Result<NameAddr<'_>, HeaderError> {
        let text = self.text(&HeaderName::Contact, "Contact")?;
        let first = split_list(text).next().unwrap_or_default();
        NameAddr::parse(first).map_err(|e| HeaderError::Invalid("Contact", e))
    }

    /// All values of a list-valued address header (Route, Record-Route), in order.
    pub fn name_addrs<'a>(
        &'a self,
        name: &'a HeaderName,
    ) -> Result<Vec<NameAddr<'a>>, HeaderError> {
        let mut out = Vec::new();
        for raw in self.get_all(name) {
            let text = std::str::from_utf8(raw)
                .map_err(|_| HeaderError::Invalid("Route", SyntaxError::Encoding))?;
            for item in split_list(text) {
                out.push(NameAddr::parse(item).map_err(|e| HeaderError::Invalid("Route", e))?);
            }
        }
        Ok(out)
    }

    pub fn max_forwards(&self) -> Result<u32, HeaderError> {
        parse_u32(self.text(&HeaderName::MaxForwards, "Max-Forwards")?)
            .map_err(|e| HeaderError::Invalid("Max-Forwards", e))
    }

    /// Whether a comma-list header (Require, Supported) names `option` (case-insensitive).
    pub fn has_option(&self, name: &HeaderName, option: &str) -> bool {
        self.get_all(name)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(split_list)
            .any(|o| o.eq_ignore_ascii_case(option))
    }
}
