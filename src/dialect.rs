//! The two wire dialects clients and backends speak: OpenAI's and Anthropic's.
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
