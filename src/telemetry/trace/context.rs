//! W3C Trace Context: the `traceparent` header read from clients and written upstream, and
//! the sampling decision for a request.

/// A span's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl SpanContext {
    /// Parse `traceparent` (version `00`; a later version is read by its first four fields,
    /// as the spec asks). All-zero ids and malformed values are `None`.
    pub fn parse(header: &str) -> Option<SpanContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || !is_hex(version) {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = decode(trace)?;
        let span_id: [u8; 8] = decode(span)?;
        let [flags]: [u8; 1] = decode(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value naming this span as the parent.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            if self.sampled { "01" } else { "00" }
        )
    }

    /// A child span's context in the same trace.
    pub fn child(&self, span_id: [u8; 8]) -> SpanContext {
        SpanContext { span_id, ..*self }
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !is_hex(s) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A request's trace: its server span, under the client's span when it sent one. A client's
/// sampling flag is followed; otherwise `ratio` decides.
pub fn start(
    traceparent: Option<&str>,
    ratio: f64,
    rng: &mut impl rand::Rng,
) -> (SpanContext, Option<[u8; 8]>) {
    let span_id = nonzero(rng.random());
    match traceparent.and_then(SpanContext::parse) {
        Some(parent) => (parent.child(span_id), Some(parent.span_id)),
        None => {
            let mut trace_id: [u8; 16] = rng.random();
            if trace_id == [0; 16] {
                trace_id[15] = 1;
            }
            let sampled = ratio >= 1.0 || (ratio > 0.0 && rng.random::<f64>() < ratio);
            (
                SpanContext {
                    trace_id,
                    span_id,
                    sampled,
                },
                None,
            )
        }
    }
}

fn nonzero(mut id: [u8; 8]) -> [u8; 8] {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// The span id of attempt `k` of the request span `parent`: distinct per attempt, and known
/// before the attempt is sent (it goes upstream in `traceparent`).
pub fn attempt_span_id(parent: [u8; 8], k: usize) -> [u8; 8] {
    // splitmix64 of the parent id and the attempt number.
    let mut z = u64::from_be_bytes(parent) ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    nonzero((z ^ (z >> 31)).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_values_are_refused() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = SpanContext::parse(h).unwrap();
        assert!(c.sampled);
        assert_eq!(c.header(), h);
        assert!(
            !SpanContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .sampled
        );
        // A future version with more fields is read by its known ones.
        assert!(SpanContext::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        )
        .is_some());
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(SpanContext::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_parent_is_followed_and_attempt_ids_differ() {
        let mut rng = rand::rng();
        let (c, parent) = start(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
            1.0,
            &mut rng,
        );
        assert_eq!(hex::encode(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.map(hex::encode).as_deref(), Some("00f067aa0ba902b7"));
        assert!(!c.sampled, "the client's flag wins over the ratio");
        let (c, parent) = start(None, 0.0, &mut rng);
        assert!(!c.sampled && parent.is_none());
        let ids: std::collections::HashSet<_> =
            (0..100).map(|k| attempt_span_id(c.span_id, k)).collect();
        assert_eq!(ids.len(), 100);
    }
}
