//! Token counts and estimates.
//!
//! The provider's reported usage is always preferred; the byte-based estimates fill in when an
//! upstream reports none (a cut stream) and are marked `usage_source = "estimated"`.
//! [`count_text`] counts with OpenAI's `o200k_base` BPE (tiktoken-rs) for context-length
//! routing, in bounded time: whitespace-free runs over [`LONG_RUN`] bytes (where BPE is
//! superlinear, openai/tiktoken#195) are estimated from their length, and text past
//! [`COUNTED_BYTES`] is extrapolated from the rate measured on what was counted.

/// About four bytes of English text per token (OpenAI's rule of thumb).
const BYTES_PER_TOKEN: u64 = 4;

/// Estimate the tokens of a JSON value (messages, prompt or input) from its serialised length,
/// discounting roughly a quarter of it as JSON structure.
pub fn estimate_from_json_len(len: usize) -> u64 {
    let text_bytes = (len as u64).saturating_mul(3) / 4;
    text_bytes.div_ceil(BYTES_PER_TOKEN)
}

/// Estimate generated tokens from what a stream carried: most servers send about one token per
/// delta, some batch several, so take the larger of the two readings.
pub fn estimate_output(deltas: u64, text_bytes: u64) -> u64 {
    deltas.max(text_bytes.div_ceil(BYTES_PER_TOKEN))
}

/// Runs without whitespace longer than this are estimated, not encoded.
pub const LONG_RUN: usize = 256;
/// At most this much text is encoded per call; the rest is extrapolated.
pub const COUNTED_BYTES: usize = 64 * 1024;

/// Load the tokenizer now (it takes a moment the first time), off the request path.
pub fn warm_up() {
    let _ = tiktoken_rs::o200k_base_singleton();
}

/// Tokens of `text` (o200k_base), in time bounded by [`COUNTED_BYTES`].
pub fn count_text(text: &str) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let mut tokens = 0u64;
    let mut counted = 0usize;
    let mut chunk_start = 0usize;
    let mut run_start: Option<usize> = None;
    let flush = |from: usize, to: usize, tokens: &mut u64| {
        if to > from {
            *tokens += bpe.encode_ordinary(&text[from..to]).len() as u64;
        }
    };
    for (i, ch) in text.char_indices() {
        if counted + (i - chunk_start) >= COUNTED_BYTES {
            match run_start {
                Some(start) if i - start > LONG_RUN => {
                    flush(chunk_start, start, &mut tokens);
                    tokens += ((i - start) as u64).div_ceil(BYTES_PER_TOKEN);
                }
                _ => flush(chunk_start, i, &mut tokens),
            }
            counted += i - chunk_start;
            let rate = tokens as f64 / counted.max(1) as f64;
            return tokens + (rate * (text.len() - i) as f64).ceil() as u64;
        }
        if ch.is_whitespace() {
            if let Some(start) = run_start.take() {
                if i - start > LONG_RUN {
                    flush(chunk_start, start, &mut tokens);
                    tokens += ((i - start) as u64).div_ceil(BYTES_PER_TOKEN);
                    counted += i - chunk_start;
                    chunk_start = i;
                }
            }
        } else if run_start.is_none() {
            run_start = Some(i);
        }
    }
    let end = text.len();
    match run_start {
        Some(start) if end - start > LONG_RUN => {
            flush(chunk_start, start, &mut tokens);
            tokens += ((end - start) as u64).div_ceil(BYTES_PER_TOKEN);
        }
        _ => flush(chunk_start, end, &mut tokens),
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_tokenizer_on_plain_text() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let exact = tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(&text)
            .len() as u64;
        assert_eq!(count_text(&text), exact);
        assert_eq!(count_text(""), 0);
    }

    #[test]
    fn pathological_input_is_estimated_in_bounded_time() {
        // 1 MB without whitespace: BPE would be very slow; this is a length estimate.
        let text = "a".repeat(1_000_000);
        assert_eq!(count_text(&text), 250_000);
        let big = "word ".repeat(400_000); // 2 MB of ordinary text: counted, then extrapolated
        let n = count_text(&big);
        assert!((380_000..=420_000).contains(&n), "{n}");
    }

    #[test]
    fn estimates_are_monotonic_and_bounded() {
        assert_eq!(estimate_from_json_len(0), 0);
        assert!(estimate_from_json_len(400) >= 50);
        assert!(estimate_from_json_len(400) <= 100);
        assert_eq!(estimate_output(10, 8), 10);
        assert_eq!(estimate_output(2, 400), 100);
    }
}
