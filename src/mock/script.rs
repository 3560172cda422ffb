//! What a mock response should do: timing, length and scripted faults.
//!
//! A script is `key=value` pairs separated by commas. It comes from the server's defaults, then
//! a `/_mock/<script>/` prefix on the request path (so one provider's `base_url` can be a
//! failing backend), then the `x-mock` request header (so a provider's `headers` or a test can
//! set it per request), then what the requested model name carries after `@`
//! (`mock-small@status=500`: one upstream model of a backend fails). Later sources override
//! earlier ones.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Read the request, then close the connection without answering.
    Refuse,
    /// Never answer; wait until the client goes away.
    Hang,
    /// Stream `cut_after` events, then close without finishing the body.
    Cut,
    /// Stream `cut_after` events, then reset the connection (RST).
    Reset,
    /// Answer 200 `text/event-stream` whose first event is an error.
    FirstError,
    /// Stream `cut_after` events, then go silent with the connection open.
    Stall,
    /// Stream `cut_after` events, then 10 MB of invalid UTF-8 with no newline, then close.
    Garbage,
    /// Answer 400: the prompt does not fit the context window (in the path's dialect).
    ContextOverflow,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub ttft: Duration,
    pub itl: Duration,
    /// Output tokens to generate (one per stream delta).
    pub tokens: u64,
    /// Answer with this error status instead of a completion.
    pub status: Option<u16>,
    pub fault: Option<Fault>,
    pub cut_after: u64,
    /// Apply `status`/`fault` only to the first N requests with the same path prefix.
    pub times: Option<u64>,
    /// Report usage (JSON `usage`, and the stream's usage chunk when asked for).
    pub usage: bool,
    /// Override the reported prompt tokens.
    pub prompt_tokens: Option<u64>,
    /// Split every SSE event across two writes.
    pub split: bool,
    /// `Retry-After` (seconds) sent with an error status (429 defaults to 1).
    pub retry_after: Option<u64>,
    /// Answer 503 to everything under this path prefix for this long after its first request.
    pub outage: Option<Duration>,
    /// `GET /v1/models` answers 200 whatever `status`/`outage` say, as a provider whose model
    /// list is served apart from its failing inference endpoints does.
    pub models_ok: bool,
    /// Answer 400 to a prefilled last assistant turn (`continue_final_message`, or an
    /// Anthropic assistant prefix), as a backend whose template does not take one does.
    pub no_prefill: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            tokens: 16,
            status: None,
            fault: None,
            cut_after: 3,
            times: None,
            usage: true,
            prompt_tokens: None,
            split: false,
            retry_after: None,
            outage: None,
            models_ok: false,
            no_prefill: false,
        }
    }
}

impl Script {
    /// Apply `k=v,k=v` on top of this script. Unknown keys or bad values are errors.
    pub fn apply(&mut self, text: &str) -> Result<(), String> {
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("mock script item `{pair}` is not key=value"))?;
            let num = || {
                v.parse::<u64>()
                    .map_err(|_| format!("mock script `{k}` needs a number, not `{v}`"))
            };
            match k {
                "ttft_ms" => self.ttft = Duration::from_millis(num()?),
                "itl_ms" => self.itl = Duration::from_millis(num()?),
                "tokens" => self.tokens = num()?,
                "status" => self.status = Some(num()? as u16),
                "cut_after" => self.cut_after = num()?,
                "times" => self.times = Some(num()?),
                "usage" => self.usage = num()? != 0,
                "prompt_tokens" => self.prompt_tokens = Some(num()?),
                "split" => self.split = num()? != 0,
                "retry_after" => self.retry_after = Some(num()?),
                "outage_ms" => self.outage = Some(Duration::from_millis(num()?)),
                "models_ok" => self.models_ok = num()? != 0,
                "no_prefill" => self.no_prefill = num()? != 0,
                "fault" => {
                    self.fault = Some(match v {
                        "refuse" => Fault::Refuse,
                        "hang" => Fault::Hang,
                        "cut" => Fault::Cut,
                        "reset" => Fault::Reset,
                        "stall" => Fault::Stall,
                        "garbage" => Fault::Garbage,
                        "first_error" => Fault::FirstError,
                        "context" => Fault::ContextOverflow,
                        _ => return Err(format!("unknown mock fault `{v}`")),
                    })
                }
                _ => return Err(format!("unknown mock script key `{k}`")),
            }
        }
        Ok(())
    }

    /// Forget the fault and status (used once `times` is spent).
    pub fn healthy(mut self) -> Self {
        self.status = None;
        self.fault = None;
        self
    }
}

/// Split `/_mock/<script>/rest` into (`Some(script)`, `/rest`).
pub fn split_path(path: &str) -> (Option<&str>, &str) {
    match path.strip_prefix("/_mock/") {
        Some(rest) => match rest.find('/') {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), "/"),
        },
        None => (None, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_layer_and_reject_nonsense() {
        let mut s = Script::default();
        s.apply("ttft_ms=50, tokens=3,fault=cut,cut_after=2")
            .unwrap();
        assert_eq!(s.ttft, Duration::from_millis(50));
        assert_eq!(s.tokens, 3);
        assert_eq!(s.fault, Some(Fault::Cut));
        assert!(s.apply("tokens=x").is_err());
        assert!(s.apply("bogus=1").is_err());
        assert!(s.apply("fault=melt").is_err());
    }

    #[test]
    fn path_prefix_is_split_off() {
        assert_eq!(
            split_path("/_mock/status=503/v1/chat/completions"),
            (Some("status=503"), "/v1/chat/completions")
        );
        assert_eq!(split_path("/v1/models"), (None, "/v1/models"));
    }
}
