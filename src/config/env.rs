//! `VOXBRIDGE__SECTION__KEY[__KEY…]` overrides on top of the TOML file. A value from the
//! environment is text and takes the type of the key it sets when the config is read: a phone
//! number, key or password that looks like a number stays a string, `PORT=5070` becomes a
//! number, `ENABLED=true` a boolean, and a list or table key reads the text as TOML
//! (`["a", "b"]`, `{ x = 1 }`) or, for a list, as comma-separated items. Numeric segments
//! index arrays; the next index after the last one adds an element, so a whole `[[trunks]]`
//! entry can come from the environment alone.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// The config tree: the file's values, and texts from the environment awaiting their type.
#[derive(Debug, Clone)]
pub(super) enum Node {
    /// A value from the file, typed by TOML.
    File(toml::Value),
    /// Text from an environment variable.
    Env(String),
    Table(BTreeMap<String, Node>),
    Array(Vec<Node>),
}

impl From<toml::Value> for Node {
    fn from(value: toml::Value) -> Self {
        match value {
            toml::Value::Table(t) => {
                Node::Table(t.into_iter().map(|(k, v)| (k, v.into())).collect())
            }
            toml::Value::Array(a) => Node::Array(a.into_iter().map(Node::from).collect()),
            scalar => Node::File(scalar),
        }
    }
}

impl Node {
    /// Sets the key at `path` (`TELEPHONY__ENABLED`, `TRUNKS__0__HOST`) to `text`, making the
    /// tables and array elements on the way.
    pub(super) fn set(&mut self, path: &str, text: String) -> Result<(), String> {
        let segments: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            return Err("empty key segment".into());
        }
        let mut node = self;
        for (i, seg) in segments.iter().enumerate() {
            // What a missing step is made as: an array if the next segment indexes one.
            let next_is_index = segments
                .get(i + 1)
                .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
            let fresh = || match next_is_index {
                true => Node::Array(Vec::new()),
                false => Node::Table(BTreeMap::new()),
            };
            node = match node {
                Node::Table(t) => t.entry(seg.clone()).or_insert_with(fresh),
                Node::Array(items) => {
                    let idx: usize = seg
                        .parse()
                        .map_err(|_| format!("{seg:?} is not an array index"))?;
                    if idx == items.len() {
                        items.push(fresh());
                    }
                    let len = items.len();
                    items.get_mut(idx).ok_or_else(|| {
                        format!("index {idx} skips ahead: the array has {len} elements")
                    })?
                }
                _ => return Err(format!("{seg:?} is inside a value that is not a table")),
            };
        }
        *node = Node::Env(text);
        Ok(())
    }

    /// Environment text read as TOML (for keys that take a list or a table).
    fn env_as_toml(text: &str) -> Option<Node> {
        format!("v = {text}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .map(Node::from)
    }

    fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Error>
    where
        T::Err: Display,
    {
        text.trim()
            .parse()
            .map_err(|e| de::Error::custom(format!("{text:?} is not {what}: {e}")))
    }
}

/// Typed reads: environment text parsed as the key's type; everything else as TOML says.
macro_rules! typed {
    ($($method:ident => $visit:ident, $ty:ty, $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self {
                Node::Env(text) => visitor.$visit(Node::parse::<$ty>(&text, $what)?),
                other => other.deserialize_any(visitor),
            }
        })*
    };
}

impl<'de> de::Deserializer<'de> for Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::File(value) => value.deserialize_any(visitor).map_err(de::Error::custom),
            Node::Env(text) => visitor.visit_string(text),
            Node::Table(t) => visitor.visit_map(MapDeserializer::new(t.into_iter())),
            Node::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter())),
        }
    }

    typed! {
        deserialize_bool => visit_bool, bool, "true or false";
        deserialize_i8 => visit_i8, i8, "a number";
        deserialize_i16 => visit_i16, i16, "a number";
        deserialize_i32 => visit_i32, i32, "a number";
        deserialize_i64 => visit_i64, i64, "a number";
        deserialize_u8 => visit_u8, u8, "a number";
        deserialize_u16 => visit_u16, u16, "a number";
        deserialize_u32 => visit_u32, u32, "a number";
        deserialize_u64 => visit_u64, u64, "a number";
        deserialize_f32 => visit_f32, f32, "a number";
        deserialize_f64 => visit_f64, f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Env(text) => match Node::env_as_toml(&text) {
                Some(list @ Node::Array(_)) => list.deserialize_any(visitor),
                // `a, b, c`: each item keeps its text, typed by the list's element type.
                _ => {
                    let items = text
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| Node::Env(item.to_owned()));
                    visitor.visit_seq(SeqDeserializer::new(items))
                }
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Env(text) => match Node::env_as_toml(&text) {
                Some(table @ Node::Table(_)) => table.deserialize_any(visitor),
                _ => Err(de::Error::custom(format!("{text:?} is not a TOML table"))),
            },
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Node::Env(text) => visitor.visit_enum(text.into_deserializer()),
            Node::File(value) => value
                .deserialize_enum(name, variants, visitor)
                .map_err(de::Error::custom),
            other => other.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Node {
    type Deserializer = Node;

    fn into_deserializer(self) -> Node {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Trunk {
        host: String,
        #[serde(default)]
        port: u16,
        from_number: Option<String>,
        #[serde(default)]
        enabled: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Root {
        #[serde(default)]
        trunks: Vec<Trunk>,
        #[serde(default)]
        numbers: Vec<String>,
        #[serde(default)]
        ports: Vec<u16>,
    }

    fn read(file: &str, env: &[(&str, &str)]) -> Result<Root, String> {
        let mut root = Node::from(toml::Value::Table(
            file.parse().map_err(|e| format!("{e}"))?,
        ));
        for (path, text) in env {
            root.set(path, text.to_string())?;
        }
        Root::deserialize(root).map_err(|e| e.to_string())
    }

    #[test]
    fn environment_text_takes_the_type_of_the_key_it_sets() {
        let env = [
            ("TRUNKS__0__HOST", "127.0.0.1"),
            ("TRUNKS__0__PORT", "5070"),
            ("TRUNKS__0__FROM_NUMBER", "12025550100"),
            ("TRUNKS__0__ENABLED", "true"),
            ("NUMBERS", "+12025550142, 2025550143"),
            ("PORTS", "[5060, 5061]"),
        ];
        let root = read("", &env).unwrap();
        assert_eq!(
            root.trunks,
            [Trunk {
                host: "127.0.0.1".into(),
                port: 5070,
                from_number: Some("12025550100".into()),
                enabled: true,
            }]
        );
        assert_eq!(root.numbers, ["+12025550142", "2025550143"]);
        assert_eq!(root.ports, [5060, 5061]);
    }

    #[test]
    fn overrides_change_file_values_and_add_array_elements_in_order() {
        let file = "[[trunks]]\nhost = \"a\"\nport = 1\n";
        let root = read(file, &[("TRUNKS__0__PORT", "2"), ("TRUNKS__1__HOST", "b")]).unwrap();
        assert_eq!(root.trunks[0].port, 2);
        assert_eq!(root.trunks[1].host, "b");
        let skipped = read(file, &[("TRUNKS__2__HOST", "c")]).unwrap_err();
        assert!(skipped.contains("skips ahead"), "{skipped}");
    }

    #[test]
    fn text_that_does_not_fit_the_key_is_an_error_naming_it() {
        let err = read("", &[("TRUNKS__0__HOST", "h"), ("TRUNKS__0__PORT", "x")]).unwrap_err();
        assert!(err.contains("\"x\" is not a number"), "{err}");
        let err = read(
            "",
            &[("TRUNKS__0__HOST", "h"), ("TRUNKS__0__ENABLED", "yes")],
        )
        .unwrap_err();
        assert!(err.contains("true or false"), "{err}");
        let err = read("", &[("TRUNKS__0__HOST", "h"), ("TRUNKS__0__BOGUS", "1")]).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }
}
