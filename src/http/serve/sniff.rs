//! The first bytes of each request on an HTTP/1.1 connection: is it an event stream?
//!
//! hyper's HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB write
//! buffer for as long as the connection lives; for tens of thousands of idle
//! SSE streams that was nearly all of Warden's memory (BENCH.md, "Idle
//! memory", has the figures). So on HTTP/1.1, plain or TLS, each request head is first
//! read here, into a small buffer, and parsed with `httparse` (hyper's own
//! parser): a `GET` of [`EVENTS_PATH`] without a body, with nothing after it,
//! is served by [`super::pump`]; anything else — another route or method, a
//! body, an oversized, slow or malformed head, more pipelined bytes — goes
//! to hyper with the bytes already read put back in front ([`Rewound`]).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http::EVENTS_PATH;

/// Most headers parsed in a head (hyper's default is 100).
const MAX_HEADERS: usize = 100;

/// What the next bytes of a connection turned out to be.
pub(super) enum First {
    /// A `GET` of the stream, parsed, with no bytes after the head.
    Events(Box<Request<Body>>),
    /// Anything else: these bytes, then the rest of the socket, go to hyper.
    Other(Vec<u8>),
    /// The peer closed or failed before sending a request.
    Gone,
}

/// Whether `buf` may still be the start of `GET /api/events`.
fn could_be_events(buf: &[u8]) -> bool {
    let line = [b"GET ".as_slice(), EVENTS_PATH.as_bytes()];
    let mut rest = buf;
    for part in line {
        let n = rest.len().min(part.len());
        if rest[..n] != part[..n] {
            return false;
        }
        rest = &rest[n..];
    }
    true
}

/// Reads, after the bytes already in `buf`, until the request head is known
/// to be an event stream request (or known not to be one). The caller
/// bounds the time.
pub(super) async fn read_head(stream: &TcpStream, mut buf: Vec<u8>, max_head: usize) -> First {
    loop {
        if let Some(known) = classify(&mut buf, max_head) {
            return known;
        }
        if stream.readable().await.is_err() {
            return First::Gone;
        }
        // On the thread's stack, not in the connection's future.
        let mut chunk = [0u8; 2048];
        match stream.try_read(&mut chunk) {
            Ok(0) if buf.is_empty() => return First::Gone,
            // EOF inside a head: hyper answers or closes as it always did.
            Ok(0) => return First::Other(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return First::Gone,
        }
    }
}

/// [`read_head`] through a TLS stream (or any reader).
pub(super) async fn read_head_from<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
    max_head: usize,
) -> First {
    use tokio::io::AsyncReadExt as _;
    loop {
        if let Some(known) = classify(&mut buf, max_head) {
            return known;
        }
        let mut chunk = [0u8; 2048];
        match stream.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => return First::Gone,
            Ok(0) => return First::Other(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return First::Gone,
        }
    }
}

/// What the bytes read so far are, once that is known.
fn classify(buf: &mut Vec<u8>, max_head: usize) -> Option<First> {
    if buf.is_empty() {
        return None;
    }
    if !could_be_events(buf) || buf.len() > max_head {
        return Some(First::Other(std::mem::take(buf)));
    }
    match parse(buf) {
        Parsed::Partial => None,
        Parsed::Events(req) => Some(First::Events(req)),
        Parsed::Other => Some(First::Other(std::mem::take(buf))),
    }
}

enum Parsed {
    Partial,
    Events(Box<Request<Body>>),
    Other,
}

/// Parses a complete head into a request for the router, if it is a plain
/// `GET /api/events[?…]` with nothing after it.
fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if len != buf.len() || head.method != Some("GET") {
        return Parsed::Other;
    }
    let Some(path) = head.path.filter(|p| {
        p.strip_prefix(EVENTS_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
    }) else {
        return Parsed::Other;
    };
    let version = match head.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Parsed::Other,
    };
    let mut builder = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(version);
    for h in head.headers.iter() {
        let name = h.name.as_bytes();
        // A body or a protocol switch is hyper's business.
        if name.eq_ignore_ascii_case(b"content-length") && h.value != b"0"
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Other;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        builder = builder.header(name, value);
    }
    match builder.body(Body::empty()) {
        Ok(req) => Parsed::Events(Box::new(req)),
        Err(_) => Parsed::Other,
    }
}

/// A socket with bytes already read from it put back in front.
pub(super) struct Rewound<S = TcpStream> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewound<S> {
    pub(super) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// The bytes put back and not read yet, and the socket.
    pub(super) fn into_parts(mut self) -> (Vec<u8>, S) {
        self.prefix.drain(..self.pos);
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bodiless_get_of_the_stream_is_taken() {
        let events = |head: &str| matches!(parse(head.as_bytes()), Parsed::Events(_));
        assert!(events("GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(events(
            "GET /api/events?room=a&token=t HTTP/1.1\r\nLast-Event-ID: 1-2\r\n\r\n"
        ));
        assert!(events("GET /api/events HTTP/1.0\r\n\r\n"));
        assert!(events(
            "GET /api/events HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        ));
        for other in [
            "GET /api/eventsx HTTP/1.1\r\n\r\n",
            "GET /api/events/x HTTP/1.1\r\n\r\n",
            "POST /api/events HTTP/1.1\r\n\r\n",
            "GET /api/events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET /api/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /api/events HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            // Pipelined: hyper serves both.
            "GET /api/events HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            "GET /api/events HTTP/1.1\r\nBad Header: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(other.as_bytes()), Parsed::Other),
                "{other:?} must go to hyper"
            );
        }
        assert!(matches!(
            parse(b"GET /api/events HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
    }

    proptest::proptest! {
        /// The head parser faces the network: any bytes give an answer,
        /// never a panic, and only a complete bodiless GET of the stream
        /// is taken (`PROPTEST_CASES=100000` for a long run).
        #[test]
        fn any_bytes_are_classified_without_panicking(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            if let Parsed::Events(req) = parse(&bytes) {
                proptest::prop_assert!(bytes.starts_with(b"GET /api/events"));
                proptest::prop_assert!(bytes.ends_with(b"\r\n\r\n") || bytes.ends_with(b"\n\n"));
                proptest::prop_assert_eq!(req.method(), Method::GET);
                proptest::prop_assert!(req.uri().path() == "/api/events");
            }
        }

        /// Stream requests with arbitrary header values and query strings
        /// parse to the same request, whatever the split of reads.
        #[test]
        fn stream_heads_survive_any_split(
            query in "[a-zA-Z0-9=&%._~-]{0,80}",
            value in "[ -~]{0,120}",
            split in 0usize..200,
        ) {
            let head = format!(
                "GET /api/events?{query} HTTP/1.1\r\nHost: x\r\nX-Any: {value}\r\n\r\n"
            );
            let bytes = head.as_bytes();
            let cut = split.min(bytes.len() - 1);
            proptest::prop_assert!(matches!(parse(&bytes[..cut]), Parsed::Partial | Parsed::Other));
            match parse(bytes) {
                Parsed::Events(req) => {
                    proptest::prop_assert_eq!(req.uri().query().unwrap_or(""), query.as_str());
                    let got = req.headers().get("x-any").map(|v| v.as_bytes().to_vec());
                    proptest::prop_assert_eq!(got, Some(value.trim().as_bytes().to_vec()));
                }
                _ => proptest::prop_assert!(false, "a valid stream head was not taken"),
            }
        }
    }

    #[test]
    fn a_prefix_of_the_stream_line_may_still_be_one() {
        assert!(could_be_events(b""));
        assert!(could_be_events(b"GE"));
        assert!(could_be_events(b"GET /api/ev"));
        assert!(could_be_events(b"GET /api/events?x HTTP/1.1"));
        assert!(!could_be_events(b"POST"));
        assert!(!could_be_events(b"GET /health"));
    }
}
