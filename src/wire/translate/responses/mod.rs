//! OpenAI's Responses API in front of any backend: a `/v1/responses` request becomes a Chat
//! Completions request ([`request`]), and the chat answer (whatever backend made it, through
//! the other translators) becomes a `response` object ([`response`]) or the Responses event
//! stream ([`stream`]). Backends that serve Responses themselves (`responses = true`) get
//! the request as it came.

pub mod history;
pub mod request;
pub mod response;
pub mod stream;

#[cfg(test)]
mod tests;
