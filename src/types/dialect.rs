//! The wire dialects: the two error and header conventions clients expect (OpenAI's and
//! Anthropic's), and the [`Wire`] formats bodies are written in.
//!
//! A leaf of the module graph: errors, config, translation and limits headers all name it.

/// Which wire dialect the client speaks, and so which error shape it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    OpenAi,
    Anthropic,
}

impl Dialect {
    pub fn label(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        }
    }
}

/// The wire format a request or response body is written in: OpenAI's classic APIs (Chat
/// Completions, completions, embeddings), Anthropic's Messages, OpenAI's Responses, or
/// Google's Gemini API (spoken only by backends). Chat Completions is the hub translations
/// go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Responses,
    Gemini,
}

impl Wire {
    pub fn label(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Responses => "openai_responses",
            Wire::Gemini => "gemini",
        }
    }
}
