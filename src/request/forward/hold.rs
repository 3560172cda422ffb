//! What the forwarder reads before it commits, so the engine can still fail over: a stream up
//! to its first content event (or an error event first, or the first-token deadline), and a
//! 400's error body (a context overflow can go to a larger window). Both are bounded: past
//! [`HOLD_LIMIT`] bytes the response is committed as it is.

use super::within;
use crate::attempt::overflow::is_context_overflow;
use crate::attempt::{Clock, Clocks, Failure};
use crate::wire::meter::SseMeter;
use crate::wire::sse::{Framer, Piece};
use bytes::Bytes;
use pingora::protocols::http::client::HttpSession;

/// Most bytes held before committing.
const HOLD_LIMIT: usize = 64 * 1024;

/// A stream's beginning, held.
pub struct FirstContent {
    pub chunks: Vec<Bytes>,
    /// An error event came before any content.
    pub is_error: bool,
}

/// Read until the first content event (text, tool-call arguments, reasoning), an error event,
/// the end of the stream, or [`HOLD_LIMIT`]. Each read waits the idle clock, and all of them
/// together at most until the first-token deadline.
pub async fn first_content(
    upstream: &mut HttpSession,
    clocks: &Clocks,
) -> Result<FirstContent, Failure> {
    let mut chunks = Vec::new();
    let mut framer = Framer::new(HOLD_LIMIT);
    let mut meter = SseMeter::new(false);
    let mut verdict = None;
    let mut seen = 0;
    while verdict.is_none() && seen < HOLD_LIMIT {
        let read = within(clocks, Clock::Idle, upstream.read_response_body());
        let chunk = match clocks.first_token_by {
            Some(by) => match tokio::time::timeout_at(by.into(), read).await {
                Ok(r) => r?,
                Err(_) => return Err(Failure::TimedOut(Clock::FirstToken)),
            },
            None => read.await?,
        };
        let Some(chunk) = chunk else { break };
        seen += chunk.len();
        framer.feed(&chunk, |piece| {
            if verdict.is_some() {
                return;
            }
            verdict = match piece {
                Piece::Event(e) if e.is_error() => Some(true),
                Piece::Event(e) => {
                    // The meter knows content (and the end) in both dialects.
                    let _unchanged = meter.feed(e.raw);
                    (meter.saw_content() || meter.done).then_some(false)
                }
                Piece::Oversized(_) => Some(false),
            };
        });
        chunks.push(chunk);
    }
    Ok(FirstContent {
        chunks,
        is_error: verdict.unwrap_or(false),
    })
}

/// A 400's body, held.
pub struct ErrorBody {
    pub chunks: Vec<Bytes>,
    pub context_overflow: bool,
}

/// Read a 400's body (up to [`HOLD_LIMIT`]) and say whether it is a context overflow.
pub async fn error_body(upstream: &mut HttpSession, clocks: &Clocks) -> Result<ErrorBody, Failure> {
    let mut chunks = Vec::new();
    let mut body = Vec::new();
    let mut complete = false;
    while body.len() < HOLD_LIMIT {
        match within(clocks, Clock::Idle, upstream.read_response_body()).await? {
            Some(chunk) => {
                body.extend_from_slice(&chunk);
                chunks.push(chunk);
            }
            None => {
                complete = true;
                break;
            }
        }
    }
    Ok(ErrorBody {
        chunks,
        context_overflow: complete && is_context_overflow(&body),
    })
}
