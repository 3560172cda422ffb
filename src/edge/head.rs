//! The strict check of an HTTP/1.x request head, on the raw bytes, before Pingora parses them.
//! A pure function of the bytes read so far: it says "more", "this head is fine and this long",
//! or why it is refused. Pingora (through httparse) is lenient where request smuggling lives:
//! it takes `Transfer-Encoding` over `Content-Length` when both come, bare LF line ends, tabs
//! around values. An edge must refuse those outright (RFC 9112 §6.1, §6.3, §5.1), so this is
//! written out by hand: httparse has no strict mode for them.

use crate::types::dialect::Dialect;
pub use crate::types::refusal::Rejection;

/// The caps a head must stay under.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_request_line: usize,
    pub allow_underscores: bool,
}

/// A complete, acceptable head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadInfo {
    /// Bytes of the head, its blank line included.
    pub len: usize,
    pub dialect: Dialect,
    pub body: BodyFraming,
}

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` bytes (0 when neither header came).
    Length(u64),
    Chunked,
}

impl HeadInfo {
    /// Where this request ends on the connection, when its framing says so up front.
    pub fn request_end(&self) -> Option<u64> {
        match self.body {
            BodyFraming::Length(n) => (self.len as u64).checked_add(n),
            BodyFraming::Chunked => None,
        }
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_spaces(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ').unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ').map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Check the bytes read so far. `Ok(None)`: the head is not complete yet (and within caps).
pub fn check(buf: &[u8], limits: &HeadLimits) -> Result<Option<HeadInfo>, Rejection> {
    // Empty lines before a request are ignored (RFC 9112 §2.2).
    let skip = buf.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
    let rest = &buf[skip..];
    let Some(line_end) = memchr::memchr(b'\n', rest) else {
        if rest.len() > limits.max_request_line {
            return Err(Rejection::RequestLineTooLong);
        }
        return Ok(None);
    };
    if line_end == 0 || rest[line_end - 1] != b'\r' {
        return Err(Rejection::BareLineFeed);
    }
    if line_end - 1 > limits.max_request_line {
        return Err(Rejection::RequestLineTooLong);
    }
    let scan_to = rest.len().min(limits.max_head_bytes.saturating_add(4));
    let end = memchr::memmem::find(&rest[..scan_to], b"\r\n\r\n");
    // A LF without its CR anywhere in what we have ends the matter early.
    let seen = end.map_or(scan_to, |e| e + 4);
    if memchr::memchr_iter(b'\n', &rest[..seen]).any(|i| i == 0 || rest[i - 1] != b'\r') {
        return Err(Rejection::BareLineFeed);
    }
    let Some(end) = end else {
        if rest.len() > limits.max_head_bytes {
            return Err(Rejection::HeadTooLarge);
        }
        return Ok(None);
    };
    if end + 4 > limits.max_head_bytes {
        return Err(Rejection::HeadTooLarge);
    }
    let head = &rest[..end];
    let request_line = &head[..line_end - 1];
    let line = parse_request_line(request_line)?;
    // The field lines, each with its CRLF (the last one's is the first half of the blank
    // line), so that exactly one CR is taken off each and a stray CR stays in its value.
    let fields = &rest[(line_end + 1).min(end + 2)..end + 2];
    let body = check_fields(fields, &line, limits)?;
    Ok(Some(HeadInfo {
        body,
        len: skip + end + 4,
        dialect: dialect_of_target(line.target),
    }))
}

/// The dialect a request target asks for: Anthropic's API under `/v1/messages`.
fn dialect_of_target(target: &[u8]) -> Dialect {
    if target.starts_with(b"/v1/messages") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    }
}

/// The dialect of a head that may be partial or refused, by its target (what the client
/// should get its error in).
pub fn dialect_of(buf: &[u8]) -> Dialect {
    let line = buf.split(|b| *b == b'\n').next().unwrap_or(&[]);
    dialect_of_target(line.split(|b| *b == b' ').nth(1).unwrap_or(&[]))
}

struct RequestLine<'a> {
    target: &'a [u8],
    http10: bool,
}

fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, Rejection> {
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::BadRequestLine);
    };
    let target_ok = !target.is_empty() && target.iter().all(|b| (0x21..0x7f).contains(b));
    if method.is_empty() || !method.iter().all(|b| is_token(*b)) || !target_ok {
        return Err(Rejection::BadRequestLine);
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(Rejection::BadRequestLine),
    };
    Ok(RequestLine { target, http10 })
}

/// What the framing headers said.
#[derive(Default)]
struct Framing<'a> {
    lengths: usize,
    length: u64,
    chunked: usize,
    hosts: usize,
    host: &'a [u8],
}

fn check_fields(
    fields: &[u8],
    line: &RequestLine<'_>,
    limits: &HeadLimits,
) -> Result<BodyFraming, Rejection> {
    let mut framing = Framing::default();
    let mut count = 0usize;
    let lines = fields
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty());
    for field in lines {
        count += 1;
        if count > limits.max_headers {
            return Err(Rejection::TooManyHeaders);
        }
        if field[0] == b' ' || field[0] == b'\t' {
            return Err(Rejection::ObsFold);
        }
        let colon = memchr::memchr(b':', field).ok_or(Rejection::BadHeaderName)?;
        let (name, value) = (&field[..colon], &field[colon + 1..]);
        if name.is_empty() || !name.iter().all(|b| is_token(*b)) {
            return Err(Rejection::BadHeaderName);
        }
        if !limits.allow_underscores && name.contains(&b'_') {
            return Err(Rejection::UnderscoreInName);
        }
        let bad_byte = value
            .iter()
            .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f);
        if bad_byte || (!value.is_ascii() && std::str::from_utf8(value).is_err()) {
            return Err(Rejection::BadHeaderValue);
        }
        check_framing(name, value, &mut framing)?;
    }
    if framing.lengths > 0 && framing.chunked > 0 {
        return Err(Rejection::LengthAndChunked);
    }
    if framing.chunked > 0 && line.http10 {
        return Err(Rejection::TransferEncodingOnHttp10);
    }
    match (framing.hosts, line.http10) {
        (0, false) => return Err(Rejection::MissingHost),
        (0 | 1, _) => {}
        _ => return Err(Rejection::DuplicateHost),
    }
    if let Some(authority) = absolute_authority(line.target) {
        if !authority.eq_ignore_ascii_case(framing.host) {
            return Err(Rejection::ForeignTarget);
        }
    }
    Ok(if framing.chunked > 0 {
        BodyFraming::Chunked
    } else {
        BodyFraming::Length(framing.length)
    })
}

fn check_framing<'a>(name: &[u8], value: &'a [u8], f: &mut Framing<'a>) -> Result<(), Rejection> {
    if name.eq_ignore_ascii_case(b"content-length") {
        f.lengths += 1;
        if f.lengths > 1 {
            return Err(Rejection::DuplicateLength);
        }
        let v = trim_spaces(value);
        if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
            return Err(Rejection::BadLength);
        }
        f.length = v.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'));
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        f.chunked += 1;
        if f.chunked > 1 || !trim_spaces(value).eq_ignore_ascii_case(b"chunked") {
            return Err(Rejection::BadTransferEncoding);
        }
    } else if name.eq_ignore_ascii_case(b"host") {
        f.hosts += 1;
        f.host = trim_spaces(value);
    } else if name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"http2-settings")
    {
        return Err(Rejection::Upgrade);
    }
    Ok(())
}

/// The authority of an absolute-form target (`http://host:port/path`).
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    let lower = |p: &[u8]| target.len() >= p.len() && target[..p.len()].eq_ignore_ascii_case(p);
    let rest = if lower(b"http://") {
        &target[7..]
    } else if lower(b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|b| b"/?#".contains(b))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests;
