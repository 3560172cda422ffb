//! The typed reasons the edge refuses a connection or request with ([`crate::edge`]): a leaf,
//! so errors and metrics can name them without depending on the edge.

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    RequestLineTooLong,
    HeadTooLarge,
    TooManyHeaders,
    BadRequestLine,
    BareLineFeed,
    ObsFold,
    BadHeaderName,
    UnderscoreInName,
    BadHeaderValue,
    LengthAndChunked,
    DuplicateLength,
    BadLength,
    BadTransferEncoding,
    TransferEncodingOnHttp10,
    Upgrade,
    MissingHost,
    DuplicateHost,
    ForeignTarget,
}

impl Rejection {
    pub fn status(self) -> u16 {
        match self {
            Rejection::RequestLineTooLong => 414,
            Rejection::HeadTooLarge | Rejection::TooManyHeaders => 431,
            Rejection::BadRequestLine
            | Rejection::BareLineFeed
            | Rejection::ObsFold
            | Rejection::BadHeaderName
            | Rejection::UnderscoreInName
            | Rejection::BadHeaderValue
            | Rejection::LengthAndChunked
            | Rejection::DuplicateLength
            | Rejection::BadLength
            | Rejection::BadTransferEncoding
            | Rejection::TransferEncodingOnHttp10
            | Rejection::Upgrade
            | Rejection::MissingHost
            | Rejection::DuplicateHost
            | Rejection::ForeignTarget => 400,
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::RequestLineTooLong => "request_line_too_long",
            Rejection::HeadTooLarge => "headers_too_large",
            Rejection::TooManyHeaders => "too_many_headers",
            Rejection::BadRequestLine => "bad_request_line",
            Rejection::BareLineFeed => "bare_lf",
            Rejection::ObsFold => "obs_fold",
            Rejection::BadHeaderName => "bad_header_name",
            Rejection::UnderscoreInName => "underscore_in_header_name",
            Rejection::BadHeaderValue => "bad_header_value",
            Rejection::LengthAndChunked => "content_length_and_chunked",
            Rejection::DuplicateLength => "duplicate_content_length",
            Rejection::BadLength => "bad_content_length",
            Rejection::BadTransferEncoding => "bad_transfer_encoding",
            Rejection::TransferEncodingOnHttp10 => "transfer_encoding_on_http10",
            Rejection::Upgrade => "upgrade",
            Rejection::MissingHost => "missing_host",
            Rejection::DuplicateHost => "duplicate_host",
            Rejection::ForeignTarget => "foreign_target",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::RequestLineTooLong => "The request line is too long.",
            Rejection::HeadTooLarge => "The request headers are too large.",
            Rejection::TooManyHeaders => "The request has too many headers.",
            Rejection::BadRequestLine => {
                "The request line is malformed (expected `METHOD target HTTP/1.1`)."
            }
            Rejection::BareLineFeed => "Request lines must end with CRLF, not a bare LF.",
            Rejection::ObsFold => "Folded header lines (obs-fold) are not accepted.",
            Rejection::BadHeaderName => "A header name is malformed.",
            Rejection::UnderscoreInName => "Header names with underscores are not accepted.",
            Rejection::BadHeaderValue => {
                "A header value holds a control character or invalid UTF-8."
            }
            Rejection::LengthAndChunked => {
                "A request may not carry both Content-Length and Transfer-Encoding."
            }
            Rejection::DuplicateLength => "A request may carry only one Content-Length.",
            Rejection::BadLength => "Content-Length must be a plain decimal number.",
            Rejection::BadTransferEncoding => "Transfer-Encoding must be exactly `chunked`.",
            Rejection::TransferEncodingOnHttp10 => {
                "HTTP/1.0 requests may not use Transfer-Encoding."
            }
            Rejection::Upgrade => "Protocol upgrades (Upgrade, h2c) are not offered on this port.",
            Rejection::MissingHost => "An HTTP/1.1 request needs a Host header.",
            Rejection::DuplicateHost => "A request may carry only one Host header.",
            Rejection::ForeignTarget => "The absolute request target names another host.",
        }
    }
}

/// Which cap shed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// `edge.max_connections`.
    Connections,
    /// `edge.max_connections_per_ip`.
    ClientConnections,
    /// `edge.max_requests_in_flight`.
    InFlight,
    /// `edge.shed_above_memory_mb`.
    Memory,
}

impl Shed {
    pub fn label(self) -> &'static str {
        match self {
            Shed::Connections => "connections",
            Shed::ClientConnections => "client_connections",
            Shed::InFlight => "in_flight",
            Shed::Memory => "memory",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Shed::Connections => {
                "The gateway has too many open connections right now. Please retry shortly."
            }
            Shed::ClientConnections => {
                "Too many open connections from your address. Please retry shortly."
            }
            Shed::InFlight | Shed::Memory => {
                "The gateway is overloaded right now. Please retry shortly."
            }
        }
    }
}
