//! A connection with bytes put back in front of it: the request head the edge read (and
//! anything after it) is served again to Pingora's parser, on plain and TLS connections alike.
//! Every other part of Pingora's transport interface passes through to the connection.
//! It also holds the request boundary: Pingora reads this request and no further (when the
//! framing gives its length), so the next request on the connection comes back to the edge
//! to be checked, and a client closing during the response is still seen.
//! (Pingora's own `rewind` exists only on its plain TCP stream, not on TLS.)

use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Bytes read past the current request are kept for the next one up to this much; beyond
/// it the connection is not read until the request ends.
const STASH_CAP: usize = 64 * 1024;

#[derive(Debug)]
pub struct Prefixed {
    prefix: Bytes,
    inner: Stream,
    /// Bytes of this request still to come from the connection after the prefix; `None`
    /// when its end is not known up front (a chunked body).
    left: Option<u64>,
    /// Bytes that arrived after this request's end: the start of the next one.
    stash: BytesMut,
    /// How long any write may make no progress (a client that does not read). Pingora
    /// times its body writes, but not all of its writes (ending a chunked body, flushing
    /// at close), so the bound is kept here, on every write.
    close_within: Duration,
    /// Armed while a write is waiting on the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Prefixed {
    /// `bytes` were read from `inner`; the request they begin ends at `request_end` (from
    /// the start of `bytes`), when known. Pingora is handed the request and no more, so a
    /// pipelined next request stays here for the edge to check.
    pub fn new(
        inner: Stream,
        mut bytes: Bytes,
        request_end: Option<u64>,
        close_within: Duration,
    ) -> Prefixed {
        let (left, stash) = match request_end {
            Some(end) if end <= bytes.len() as u64 => {
                let rest = bytes.split_off(end as usize);
                (Some(0), BytesMut::from(&rest[..]))
            }
            Some(end) => (Some(end - bytes.len() as u64), BytesMut::new()),
            None => (None, BytesMut::new()),
        };
        Prefixed {
            prefix: bytes,
            inner,
            left,
            stash,
            close_within,
            stalled: None,
        }
    }

    /// The connection, and the bytes already read of what follows on it.
    pub fn into_parts(self) -> (Stream, BytesMut) {
        let mut rest = BytesMut::from(&self.prefix[..]);
        rest.extend_from_slice(&self.stash);
        (self.inner, rest)
    }

    /// At the request's end: keep watching the connection, so a client that closes is
    /// still seen (EOF), while bytes of a next request are kept back (pending).
    fn poll_past_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 4096];
        while self.stash.len() < STASH_CAP {
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    return if self.stash.is_empty() {
                        Poll::Ready(Ok(()))
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Ok(())) => self.stash.extend_from_slice(rb.filled()),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Pending
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        match this.left {
            None => Pin::new(&mut this.inner).poll_read(cx, buf),
            Some(0) => this.poll_past_end(cx),
            Some(left) if left >= buf.remaining() as u64 => {
                let before = buf.filled().len();
                let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
                this.left = Some(left - (buf.filled().len() - before) as u64);
                polled
            }
            Some(left) => {
                // The request's last bytes: read no further than its end (in pieces of at
                // most a stack buffer, rather than an allocation per request).
                let mut tail = [0u8; 8192];
                let n = (left as usize).min(tail.len());
                let mut rb = ReadBuf::new(&mut tail[..n]);
                let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
                buf.put_slice(rb.filled());
                this.left = Some(left - rb.filled().len() as u64);
                polled
            }
        }
    }
}

impl Prefixed {
    /// Pass a write's poll through, failing it once it has waited `close_within`.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut Stream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let within = self.close_within;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(within)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, |s, cx| s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Prefixed {
    async fn shutdown(&mut self) {
        if tokio::time::timeout(self.close_within, self.inner.shutdown())
            .await
            .is_err()
        {
            log::debug!("a client that does not read was closed without a clean shutdown");
        }
    }
}

impl UniqueID for Prefixed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Prefixed {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Prefixed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Prefixed {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Prefixed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Prefixed {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.prefix.len() >= buf.len() {
            buf.copy_from_slice(&self.prefix[..buf.len()]);
            return Ok(true);
        }
        // Peeking past what was put back is not offered.
        Ok(false)
    }
}
