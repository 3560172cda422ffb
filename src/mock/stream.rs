//! Writing a stream's events with a script's pacing and faults, for every dialect.

use super::http1::ChunkedWriter;
use super::script::{Fault, Script};
use serde_json::Value;
use tokio::net::TcpStream;

/// How a stream's body ends after its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `data: [DONE]` (OpenAI).
    Done,
    /// Nothing more (Anthropic's `message_stop`, Gemini's last response).
    Plain,
}

/// Write a stream's events with the script's pacing and faults: the dialect's `first_error`
/// event instead of the stream (`fault=first_error`), or a cut, reset, stall or garbage
/// after `cut_after` events. Returns whether the connection was cut.
pub async fn write_stream(
    stream: &mut TcpStream,
    script: &Script,
    events: &[(Option<&str>, Value)],
    first_error: (Option<&str>, Value),
    ending: Ending,
) -> std::io::Result<bool> {
    let mut w = ChunkedWriter::start(stream, script.split).await?;
    if script.fault == Some(Fault::FirstError) {
        w.event(first_error.0, &first_error.1).await?;
        end_body(&mut w, ending).await?;
        return Ok(false);
    }
    let cut_at = matches!(
        script.fault,
        Some(Fault::Cut | Fault::Reset | Fault::Stall | Fault::Garbage)
    )
    .then_some(script.cut_after);
    for (sent, (name, ev)) in events.iter().enumerate() {
        if cut_at == Some(sent as u64) {
            if script.fault == Some(Fault::Reset) {
                w.reset()?;
            }
            if script.fault == Some(Fault::Garbage) {
                let mut junk = b"data: ".to_vec();
                junk.extend((0..10 * 1024 * 1024).map(|i| [0xff, 0xfe, b'a', 0xc3][i % 4]));
                for piece in junk.chunks(64 * 1024) {
                    w.raw(piece).await?;
                }
            }
            if script.fault == Some(Fault::Stall) {
                // Keep the connection open and silent until the client gives up.
                w.stall().await;
            }
            return Ok(true);
        }
        if sent > 0 && !script.itl.is_zero() {
            tokio::time::sleep(script.itl).await;
        }
        w.event(*name, ev).await?;
    }
    end_body(&mut w, ending).await?;
    Ok(false)
}

async fn end_body(w: &mut ChunkedWriter<'_>, ending: Ending) -> std::io::Result<()> {
    match ending {
        Ending::Done => w.done().await,
        Ending::Plain => w.end().await,
    }
}
