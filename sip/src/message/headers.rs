//! An ordered list of raw header fields. Values stay as received (folding removed) and are parsed
//! on demand by the typed accessors, so a message that is only routed or answered pays for the
//! few headers it actually reads.

use bytes::Bytes;

use super::header_name::HeaderName;

/// One header field line (or one of several comma-joined values kept as one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: Bytes,
}

/// Header fields in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            list: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.list.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Puts a header before all others (a proxy's or a UAC's own Via goes on top).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.list.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// First value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.list.iter().find(|h| &h.name == name).map(|h| &h.value)
    }

    /// First value of `name` as text (header values the stack interprets are ASCII/UTF-8).
    pub fn get_str(&self, name: &HeaderName) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every field line named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.list
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.list.iter().filter(|h| &h.name == name).count()
    }

    /// Replaces every `name` with one value, at the position of the first one (or at the end).
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        match self.list.iter().position(|h| h.name == name) {
            Some(i) => {
                self.list[i].value = value;
                let mut seen = 0usize;
                self.list.retain(|h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(name, value),
        }
    }

    /// Replaces the value of the first field line named `name` (e.g. stamping the top Via).
    pub fn replace_first(&mut self, name: &HeaderName, value: impl Into<Bytes>) {
        if let Some(h) = self.list.iter_mut().find(|h| &h.name == name) {
            h.value = value.into();
        }
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.list.retain(|h| &h.name != name);
    }

    /// Removes the first field line named `name` (the top Via of a forwarded response).
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<Bytes> {
        let i = self.list.iter().position(|h| &h.name == name)?;
        Some(self.list.remove(i).value)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
