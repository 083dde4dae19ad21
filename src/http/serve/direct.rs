//! SSE streams written straight to the socket, without hyper's buffers.
//!
//! hyper's HTTP/1 connection keeps an 8 KiB read buffer and an 8 KiB write
//! buffer for as long as the connection lives; for tens of thousands of idle
//! SSE streams that was nearly all of Warden's memory (BENCH.md, "Idle
//! memory", has the figures). So on plain HTTP the first request head of each connection
//! is read here, into a small buffer, and parsed with `httparse` (hyper's
//! own parser):
//!
//! - a `GET /api/events` without a body is run through the same router
//!   (every layer: client address, request log, security headers, auth,
//!   admission) and its response written here: the head, then each body
//!   chunk straight from the hub's shared `Bytes` to the socket, with
//!   nothing kept between events. The connection closes when the stream
//!   ends (`Connection: close`); an error answer closes it too;
//! - anything else — another route or method, a body, an oversized, slow or
//!   malformed head, more pipelined bytes — goes to hyper with the bytes
//!   already read put back in front, and is served exactly as before.
//!
//! The stream keeps hyper's promises: a write that cannot finish within the
//! write timeout ends the connection (a client that stopped reading), a
//! peer that closes is noticed at once (the socket is watched for EOF while
//! the stream waits for events), and shutdown waits for the stream to end
//! (the hub closes every stream).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::ConnectInfo;
use axum::http::{self, HeaderName, HeaderValue, Method, Request, Version, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The only request line this path serves; everything else goes to hyper.
const PATH: &[u8] = b"GET /api/events";

/// Most headers parsed in a head (hyper's default is 100).
const MAX_HEADERS: usize = 100;

/// Bytes a client may send on a stream (it should send none) before it is cut.
const MAX_STRAY_BYTES: usize = 16 * 1024;

/// Largest non-stream answer (an error) collected before it is written.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the first bytes of a connection turned out to be.
pub(super) enum First {
    /// `GET /api/events`, parsed, with no bytes after the head.
    Events(Box<Request<Body>>),
    /// Anything else: these bytes, then the rest of the socket, go to hyper.
    Other(Vec<u8>),
    /// The peer closed or failed before sending a request.
    Gone,
}

/// Reads until the first request head is known to be an event stream
/// request (or known not to be one). The caller bounds the time.
pub(super) async fn read_first(stream: &TcpStream, max_head: usize) -> First {
    let mut buf: Vec<u8> = Vec::new();
    loop {
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
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return First::Gone,
        }
        let seen = buf.len().min(PATH.len());
        if buf[..seen] != PATH[..seen] || buf.len() > max_head {
            return First::Other(buf);
        }
        match parse(&buf) {
            Parsed::Partial => {}
            Parsed::Events(req) => return First::Events(req),
            Parsed::Other => return First::Other(buf),
        }
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
    let Some(path) = head
        .path
        .filter(|p| *p == "/api/events" || p.starts_with("/api/events?"))
    else {
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

/// Runs the event stream request through the router and writes the answer's
/// head: `Some` stream to pump when it is the event stream. Boxed by the
/// caller, so that none of this is part of the long-lived task.
pub(super) async fn start(
    stream: TcpStream,
    req: Box<Request<Body>>,
    peer: std::net::SocketAddr,
    router: axum::Router,
    write_timeout: Duration,
    keep: Keep,
) -> Option<Pump> {
    use tower::ServiceExt as _;
    let mut req = *req;
    let version = req.version();
    req.extensions_mut().insert(ConnectInfo(peer));
    if let Ok(local) = stream.local_addr() {
        req.extensions_mut().insert(super::LocalAddr(local));
    }
    let Ok(resp) = router.oneshot(req).await;
    let is_stream = resp.status() == http::StatusCode::OK
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let (parts, body) = resp.into_parts();
    if !is_stream {
        answer(stream, parts, body, version, write_timeout).await;
        return None;
    }
    let chunked = version == Version::HTTP_11;
    let head = encode_head(&parts, version, chunked.then_some("chunked"), None);
    let mut out = Out {
        stream,
        write_timeout,
        stray: 0,
    };
    out.write([&head, b"", b""]).await.ok()?;
    Some(Pump {
        out,
        body,
        chunked,
        _keep: keep,
    })
}

/// What a stream holds for its whole life besides its socket.
pub(super) struct Keep {
    /// Shutdown waits for this stream.
    pub(super) _watcher: super::DrainWatch,
    /// Its place among its client's connections.
    pub(super) _pass: super::gate::Pass,
}

/// An event stream whose head is written: its body goes to the socket.
pub(super) struct Pump {
    out: Out,
    body: Body,
    chunked: bool,
    _keep: Keep,
}

impl Pump {
    /// Writes each body chunk as it comes until the stream ends or the peer
    /// leaves. Only what waits for the next event is held between events.
    pub(super) async fn run(mut self) {
        loop {
            let written = match self.out.next(&mut self.body).await {
                Next::Data(data) if data.is_empty() => continue,
                Next::Data(data) if self.chunked => {
                    let size = ChunkSize::new(data.len());
                    self.out.try_write([size.as_bytes(), &data, b"\r\n"])
                }
                Next::Data(data) => self.out.try_write([&data, b"", b""]),
                Next::End => {
                    // Boxed, like every rare wait: not part of the idle state.
                    Box::pin(self.out.finish(self.chunked)).await;
                    return;
                }
                Next::Gone => return,
            };
            let finished = match written {
                Ok(None) => Ok(()),
                Ok(Some(rest)) => Box::pin(self.out.write_slowly(rest)).await,
                Err(e) => Err(e),
            };
            if finished.is_err() {
                return;
            }
        }
    }
}

/// A non-stream answer (an error): written whole, then the connection closes.
async fn answer(
    mut stream: TcpStream,
    parts: http::response::Parts,
    body: Body,
    version: Version,
    write_timeout: Duration,
) {
    let bytes = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let head = encode_head(&parts, version, None, Some(bytes.len()));
    let write = async {
        use tokio::io::AsyncWriteExt as _;
        stream.write_all(&head).await?;
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(write_timeout, write).await;
}

/// The response head; `Connection: close`, as the connection ends with the answer.
fn encode_head(
    parts: &http::response::Parts,
    version: Version,
    transfer_encoding: Option<&str>,
    content_length: Option<usize>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::CONTENT_LENGTH
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(te) = transfer_encoding {
        out.extend_from_slice(b"transfer-encoding: ");
        out.extend_from_slice(te.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = content_length {
        out.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// `<hex size>\r\n`, the head of one chunk, without allocating.
struct ChunkSize {
    buf: [u8; 18],
    start: usize,
}

impl ChunkSize {
    fn new(mut len: usize) -> Self {
        let mut buf = [0u8; 18];
        buf[16] = b'\r';
        buf[17] = b'\n';
        let mut start = 16;
        loop {
            start -= 1;
            buf[start] = b"0123456789abcdef"[len & 0xf];
            len >>= 4;
            if len == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// What the stream does next.
enum Next {
    Data(Bytes),
    End,
    Gone,
}

/// The socket of a stream being served.
struct Out {
    stream: TcpStream,
    write_timeout: Duration,
    stray: usize,
}

impl Out {
    /// The next body chunk, while watching the socket for the peer leaving.
    async fn next(&mut self, body: &mut Body) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx, body)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, body: &mut Body) -> Poll<Next> {
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(_)) => return Poll::Ready(Next::Gone),
                Poll::Ready(Ok(())) => {
                    let mut scratch = [0u8; 512];
                    match self.stream.try_read(&mut scratch) {
                        Ok(0) => return Poll::Ready(Next::Gone),
                        Ok(n) => {
                            // A client has nothing to say on a stream; a
                            // little is tolerated, a flood ends it.
                            self.stray += n;
                            if self.stray > MAX_STRAY_BYTES {
                                return Poll::Ready(Next::Gone);
                            }
                        }
                        // Readiness was cleared; the next poll re-registers.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Poll::Ready(Next::Gone),
                    }
                }
            }
        }
        loop {
            return match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(Next::End),
                Poll::Ready(Some(Err(_))) => Poll::Ready(Next::Gone),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Next::Data(data)),
                    // Trailers: nothing to send on HTTP/1.
                    Err(_) => continue,
                },
            };
        }
    }

    /// Writes what fits of `bufs` now: one `writev`, no allocation, no
    /// timer. Returns the rest if the socket buffer is full.
    fn try_write(&mut self, bufs: [&[u8]; 3]) -> io::Result<Option<Vec<u8>>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let slices = bufs.map(IoSlice::new);
        let written = match self.stream.try_write_vectored(&slices) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        Ok((written < total).then(|| remainder(&bufs, written)))
    }

    /// Writes all of `bufs`, waiting if it has to.
    async fn write(&mut self, bufs: [&[u8]; 3]) -> io::Result<()> {
        match self.try_write(bufs)? {
            None => Ok(()),
            Some(rest) => self.write_slowly(rest).await,
        }
    }

    /// Ends the stream: the last chunk, then the connection.
    async fn finish(&mut self, chunked: bool) {
        if chunked {
            let _ = self.write([b"0\r\n\r\n", b"", b""]).await;
        }
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await;
    }

    /// The rest of a write that did not fit in the socket buffer, within
    /// the write timeout: a client that is not reading is cut when it runs out.
    async fn write_slowly(&mut self, rest: Vec<u8>) -> io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        match tokio::time::timeout(self.write_timeout, self.stream.write_all(&rest)).await {
            Ok(res) => res,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// The bytes of `bufs` after the first `skip`, in one buffer.
fn remainder(bufs: &[&[u8]], mut skip: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        out.extend_from_slice(&b[skip..]);
        skip = 0;
    }
    out
}

/// A socket with bytes already read from it put back in front.
pub(super) struct Rewound {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
}

impl Rewound {
    pub(super) fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl AsyncRead for Rewound {
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

impl AsyncWrite for Rewound {
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
    use axum::http::Response;

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
                proptest::prop_assert!(bytes.starts_with(PATH));
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
    fn the_remainder_skips_what_was_written() {
        let bufs: [&[u8]; 3] = [b"3\r\n", b"abc", b"\r\n"];
        assert_eq!(remainder(&bufs, 0), b"3\r\nabc\r\n");
        assert_eq!(remainder(&bufs, 4), b"bc\r\n");
        assert_eq!(remainder(&bufs, 6), b"\r\n");
        assert_eq!(remainder(&bufs, 8), b"");
    }

    #[test]
    fn heads_close_the_connection_and_frame_the_body() {
        let resp = Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("connection", "keep-alive")
            .body(())
            .map(|r| r.into_parts().0);
        let Ok(parts) = resp else {
            panic!("a valid response")
        };
        let head = String::from_utf8(encode_head(&parts, Version::HTTP_11, Some("chunked"), None))
            .unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-type: text/event-stream\r\n"));
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert!(head.contains("\r\ndate: "));
        assert!(head.ends_with("connection: close\r\n\r\n"));
        assert!(!head.contains("keep-alive"));
        assert_eq!(ChunkSize::new(255).as_bytes(), b"ff\r\n");
        assert_eq!(ChunkSize::new(0).as_bytes(), b"0\r\n");
        assert_eq!(
            ChunkSize::new(usize::MAX).as_bytes(),
            b"ffffffffffffffff\r\n"
        );
    }
}
