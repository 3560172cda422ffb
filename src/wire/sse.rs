//! The one Server-Sent Events framer: bytes in, complete events out, whatever the chunking.
//!
//! Used by the meter, both stream translators and the forwarder's first-event check. Events
//! end at a blank line (`\n\n`, `\r\n\r\n`, or mixed). It is synchronous and bounded: an event
//! longer than the framer's limit is handed on as [`Piece::Oversized`] bytes, unparsed, until
//! its end, so a garbage stream costs no memory. Events wholly inside one chunk are handed
//! out as slices of that chunk; only a partial event at a chunk's end is copied.
//! (Written here rather than taken from a crate: the SSE crates parse into owned strings per
//! field, and the meter needs the raw bytes of every event to pass or rewrite them.)

use std::borrow::Cow;

/// The default longest event the framer holds.
pub const MAX_EVENT: usize = 1024 * 1024;

/// What the framer hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete event, its blank line included.
    Event(Event<'a>),
    /// Bytes of an event over the limit, passed on as they come.
    Oversized(&'a [u8]),
}

/// The state of the line being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing yet on this line.
    Empty,
    /// Only a `\r` so far.
    Cr,
    Text,
}

#[derive(Debug)]
pub struct Framer {
    max: usize,
    /// The partial event, when it spans chunks.
    pending: Vec<u8>,
    /// The current event is over the limit and is being passed through.
    oversized: bool,
    line: Line,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(MAX_EVENT)
    }
}

impl Framer {
    pub fn new(max: usize) -> Framer {
        Framer {
            max,
            pending: Vec::new(),
            oversized: false,
            line: Line::Empty,
        }
    }

    /// Feed one chunk; `out` gets every event it completes, in order.
    pub fn feed(&mut self, chunk: &[u8], mut out: impl FnMut(Piece<'_>)) {
        let mut start = 0;
        let mut pos = 0;
        while let Some(off) = memchr::memchr(b'\n', &chunk[pos..]) {
            let nl = pos + off;
            let part = &chunk[pos..nl];
            let blank = match self.line {
                Line::Empty => part.is_empty() || part == b"\r",
                Line::Cr => part.is_empty(),
                Line::Text => false,
            };
            self.line = Line::Empty;
            pos = nl + 1;
            if blank {
                self.complete(&chunk[start..pos], &mut out);
                start = pos;
            }
        }
        let part = &chunk[pos..];
        self.line = match (self.line, part) {
            (line, []) => line,
            (Line::Empty, b"\r") => Line::Cr,
            _ => Line::Text,
        };
        self.hold(&chunk[start..], &mut out);
    }

    /// Bytes held for an event that has not ended yet.
    pub fn held_bytes(&self) -> usize {
        self.pending.capacity()
    }

    /// The end of the stream: a last event that lacked its blank line.
    pub fn finish(&mut self, mut out: impl FnMut(Piece<'_>)) {
        if !self.pending.is_empty() {
            out(Piece::Event(Event { raw: &self.pending }));
        }
        self.pending.clear();
        self.oversized = false;
        self.line = Line::Empty;
    }

    /// `tail` ends the current event.
    fn complete(&mut self, tail: &[u8], out: &mut impl FnMut(Piece<'_>)) {
        if self.oversized {
            self.oversized = false;
            out(Piece::Oversized(tail));
        } else if self.pending.is_empty() {
            if tail.len() > self.max {
                out(Piece::Oversized(tail));
            } else {
                out(Piece::Event(Event { raw: tail }));
            }
        } else if self.pending.len() + tail.len() > self.max {
            out(Piece::Oversized(&self.pending));
            out(Piece::Oversized(tail));
            self.pending.clear();
        } else {
            self.pending.extend_from_slice(tail);
            out(Piece::Event(Event { raw: &self.pending }));
            self.pending.clear();
        }
    }

    /// `partial` starts (or continues) an event that has not ended yet.
    fn hold(&mut self, partial: &[u8], out: &mut impl FnMut(Piece<'_>)) {
        if partial.is_empty() {
            return;
        }
        if self.oversized {
            out(Piece::Oversized(partial));
        } else if self.pending.len() + partial.len() > self.max {
            self.oversized = true;
            if !self.pending.is_empty() {
                out(Piece::Oversized(&self.pending));
                self.pending.clear();
            }
            out(Piece::Oversized(partial));
        } else {
            self.pending.extend_from_slice(partial);
        }
    }
}

/// One complete event, as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub raw: &'a [u8],
}

impl<'a> Event<'a> {
    /// Its lines, without line endings (the blank line that ends it excluded).
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest: &'a [u8] = self.raw;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (line, after) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = after;
            Some(line.strip_suffix(b"\r").unwrap_or(line))
        })
        .filter(|l| !l.is_empty())
    }

    /// The value of the first `name:` field (one leading space removed).
    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.lines().find_map(|l| field_value(l, name))
    }

    /// The `event:` name, if any.
    pub fn name(&self) -> Option<&'a [u8]> {
        self.field(b"event")
    }

    /// The `data:` lines joined by `\n` (borrowed when there is one).
    pub fn data(&self) -> Option<Cow<'a, [u8]>> {
        let mut lines = self.lines().filter_map(|l| field_value(l, b"data"));
        let first = lines.next()?;
        match lines.next() {
            None => Some(Cow::Borrowed(first)),
            Some(second) => {
                let mut joined = first.to_vec();
                for l in std::iter::once(second).chain(lines) {
                    joined.push(b'\n');
                    joined.extend_from_slice(l);
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// `event: error`, or a `data:` object with a non-null `error`.
    pub fn is_error(&self) -> bool {
        if self.name().is_some_and(|n| n == b"error") {
            return true;
        }
        let Some(data) = self.data() else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&data)
            .ok()
            .is_some_and(|v| v.get("error").is_some_and(|e| !e.is_null()))
    }
}

fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests;
