//! The wire dialects: the two clients and backends speak (OpenAI's and Anthropic's), and
//! the backends' [`Wire`], which adds Gemini's.
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

/// What a backend speaks on the wire: one of the client dialects, or Google's Gemini API
/// (spoken only by backends; its clients are served through Chat Completions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Wire {
    pub fn label(self) -> &'static str {
        match self {
            Wire::OpenAi => "openai",
            Wire::Anthropic => "anthropic",
            Wire::Gemini => "gemini",
        }
    }

    /// The client dialect this wire is, when it is one.
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Wire::OpenAi => Some(Dialect::OpenAi),
            Wire::Anthropic => Some(Dialect::Anthropic),
            Wire::Gemini => None,
        }
    }

    /// Whether a client speaking `client` is served without translation.
    pub fn speaks(self, client: Dialect) -> bool {
        self.dialect() == Some(client)
    }
}
