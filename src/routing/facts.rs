//! What routing rules look at in a request: the estimated prompt tokens, the last user
//! message, top-level JSON fields and headers. Read from the raw body without building a
//! whole JSON tree, and only for models that have rules or context windows.

use crate::wire::tokens;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// The request as rules see it.
pub struct Facts<'a> {
    pub headers: &'a http::HeaderMap,
    /// Top-level fields of the body, raw.
    fields: HashMap<Cow<'a, str>, &'a RawValue>,
    /// Prompt tokens (o200k_base) plus `max_tokens`; 0 when not needed.
    pub prompt_tokens: u64,
    /// The last user message's text, lowercased.
    pub last_user: String,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// The text of a `content` (a string, or an array of parts) or a `prompt`.
fn text_of(raw: &RawValue) -> String {
    let s = raw.get().trim_start();
    if s.starts_with('"') {
        return serde_json::from_str::<Cow<str>>(s)
            .map(Cow::into_owned)
            .unwrap_or_default();
    }
    if s.starts_with('[') {
        if let Ok(parts) = serde_json::from_str::<Vec<Part>>(s) {
            return parts
                .into_iter()
                .filter_map(|p| p.text)
                .collect::<Vec<_>>()
                .join("\n");
        }
        if let Ok(strings) = serde_json::from_str::<Vec<Cow<str>>>(s) {
            return strings.join("\n");
        }
    }
    String::new()
}

impl<'a> Facts<'a> {
    pub fn read(
        body: &'a [u8],
        headers: &'a http::HeaderMap,
        max_tokens: Option<u64>,
        count_tokens: bool,
    ) -> Facts<'a> {
        let fields: HashMap<Cow<'a, str>, &'a RawValue> =
            serde_json::from_slice(body).unwrap_or_default();
        let messages: Vec<Message> = fields
            .get("messages")
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
            .unwrap_or_default();
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m.role.as_deref() == Some("user"))
            .and_then(|m| m.content)
            .map(|c| text_of(c).to_lowercase())
            .unwrap_or_default();
        let prompt_tokens = if count_tokens {
            // About 4 tokens of framing per chat message (OpenAI's cookbook figure).
            let chat: u64 = messages
                .iter()
                .map(|m| 4 + m.content.map_or(0, |c| tokens::count_text(&text_of(c))))
                .sum();
            let prompt = fields
                .get("prompt")
                .map_or(0, |p| tokens::count_text(&text_of(p)));
            let tools = fields
                .get("tools")
                .map_or(0, |t| tokens::count_text(t.get()));
            // Anthropic's system prompt sits beside the messages.
            let system = fields
                .get("system")
                .map_or(0, |s| tokens::count_text(&text_of(s)));
            chat + prompt + tools + system + max_tokens.unwrap_or(0)
        } else {
            0
        };
        Facts {
            headers,
            fields,
            prompt_tokens,
            last_user,
        }
    }

    /// A top-level field, if present and not null.
    pub fn field(&self, name: &str) -> Option<serde_json::Value> {
        let raw = self.fields.get(name)?;
        serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .filter(|v| !v.is_null())
    }
}
