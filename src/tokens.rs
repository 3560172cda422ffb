//! Token estimates for when no tokenizer's answer is available.
//!
//! The provider's reported usage is always preferred; these estimates fill in when an upstream
//! reports none (a cut stream) and are marked `usage_source = "estimated"`. They are O(1) or
//! O(n) over bytes, so pathological input cannot stall a worker.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_are_monotonic_and_bounded() {
        assert_eq!(estimate_from_json_len(0), 0);
        assert!(estimate_from_json_len(400) >= 50);
        assert!(estimate_from_json_len(400) <= 100);
        assert_eq!(estimate_output(10, 8), 10);
        assert_eq!(estimate_output(2, 400), 100);
    }
}
