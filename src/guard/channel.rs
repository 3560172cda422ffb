//! One text channel of a live stream (a choice's content, its reasoning or refusal, a tool
//! call's arguments, an Anthropic block): its hold-back, and for JSON text (tool arguments,
//! partial JSON, JSON-mode content) the escape canonicaliser in front of it.

use super::escapes::Canon;
use super::scan::{Hold, Scanner, Verdict};
use super::wire::{BlockKind, Field};

/// One channel.
pub(super) struct Channel {
    /// The choice (OpenAI) or content block (Anthropic) index.
    pub index: u32,
    pub field: Field,
    pub hold: Hold,
    /// JSON text (tool arguments, partial JSON): its needless escapes decoded first.
    canon: Option<Canon>,
}

impl Channel {
    pub fn new(index: u32, field: Field, json_content: bool) -> Channel {
        let json = match field {
            Field::Arguments(_) | Field::Block(BlockKind::ToolInput) => true,
            Field::Content | Field::Block(BlockKind::Text) => json_content,
            _ => false,
        };
        Channel {
            index,
            field,
            hold: Hold::default(),
            canon: json.then(Canon::default),
        }
    }

    /// Feed text (canonicalised first when it is JSON text); `last` also flushes.
    pub fn feed(
        &mut self,
        scanner: &Scanner,
        text: &str,
        last: bool,
        out: &mut String,
        v: &mut Verdict,
    ) {
        match self.canon.as_mut() {
            Some(canon) => {
                let mut decoded = String::with_capacity(text.len());
                canon.feed(text, last, &mut decoded);
                self.hold.feed(scanner, &decoded, out, v);
            }
            None => self.hold.feed(scanner, text, out, v),
        }
        if last {
            self.hold.flush(scanner, out, v);
        }
    }
}
