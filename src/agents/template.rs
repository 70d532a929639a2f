//! `{{key}}` placeholders in an agent's texts, filled from the call's `context`.
//!
//! A placeholder that the context cannot fill is an error before the call is placed (422 for an
//! outbound request, `check-config` for an inbound agent, whose calls carry no context), never
//! a prompt that reads "Hi {{name}}" to a caller.

use serde_json::Value;

use crate::domain::Question;

/// The keys `text` refers to, in order of first use.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let key = after[..close].trim();
        if !keys.contains(&key) {
            keys.push(key);
        }
        rest = &after[close + 2..];
    }
    keys
}

/// Every text of an agent that is spoken: greeting, questions, closing.
pub fn agent_texts<'a>(
    greeting: Option<&'a str>,
    questions: &'a [Question],
    closing: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    greeting
        .into_iter()
        .chain(questions.iter().map(|q| q.ask.as_str()))
        .chain(closing)
}

/// The first key among `texts` that `context` (an object) lacks.
pub fn first_missing<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    context: Option<&Value>,
) -> Option<&'a str> {
    texts
        .into_iter()
        .flat_map(placeholders)
        .find(|key| lookup(context, key).is_none())
}

/// `text` with every placeholder replaced by the context's value (strings as they are, numbers
/// and booleans as JSON prints them). Unknown keys are left empty; callers check first with
/// [`first_missing`].
pub fn render(text: &str, context: Option<&Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        out.push_str(&rest[..open]);
        match lookup(context, after[..close].trim()) {
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
            None => {}
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup<'v>(context: Option<&'v Value>, key: &str) -> Option<&'v Value> {
    context?.get(key).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_context_values() {
        let ctx = json!({"name": "Ann", "n": 3, "vip": true});
        assert_eq!(
            render("Hi {{name}}, {{ n }} items, vip {{vip}}.", Some(&ctx)),
            "Hi Ann, 3 items, vip true."
        );
        assert_eq!(render("no placeholders", None), "no placeholders");
        assert_eq!(render("dangling {{name", Some(&ctx)), "dangling {{name");
    }

    #[test]
    fn finds_missing_keys() {
        let ctx = json!({"name": "Ann", "gone": null});
        assert_eq!(placeholders("{{a}} {{b}} {{a}}"), vec!["a", "b"]);
        assert_eq!(first_missing(["Hi {{name}}"], Some(&ctx)), None);
        assert_eq!(
            first_missing(["Hi {{name}}", "Your {{order}}"], Some(&ctx)),
            Some("order")
        );
        assert_eq!(first_missing(["{{gone}}"], Some(&ctx)), Some("gone"));
        assert_eq!(first_missing(["Hi {{name}}"], None), Some("name"));
    }
}
