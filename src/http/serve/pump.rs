//! SSE streams written straight to the socket, without hyper's buffers.
//!
//! A stream request recognised by [`super::sniff`] is run through the same
//! router (every layer: client address, request log, security headers,
//! auth, admission) and its response written here: the head, then each body
//! chunk straight from the hub's shared `Bytes` to the socket, with nothing
//! kept between events. The connection closes when the stream ends
//! (`Connection: close`); an error answer closes it too.
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
use axum::http::{self, Request, Version, header};
use bytes::Bytes;
use http_body_util::BodyExt as _;

use super::sock::{Framed, Sock};
use super::wire::{ChunkSize, encode_head, remainder};

/// Bytes a client may send on a stream (it should send none) before it is cut.
const MAX_STRAY_BYTES: usize = 16 * 1024;

/// Largest non-stream answer (an error) collected before it is written.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Runs the event stream request through the router and writes the answer's
/// head: `Some` stream to pump when it is the event stream. Boxed by the
/// caller, so that none of this is part of the long-lived task.
pub(super) async fn start(
    stream: Sock,
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
    if let Ok(local) = stream.tcp.local_addr() {
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
    stream: Sock,
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
    let mut out = Out {
        stream,
        write_timeout,
        stray: 0,
    };
    if out.write([&head, &bytes, b""]).await.is_ok() {
        out.close().await;
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
    stream: Sock,
    write_timeout: Duration,
    stray: usize,
}

impl Out {
    /// The next body chunk, while watching the socket for the peer leaving.
    async fn next(&mut self, body: &mut Body) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx, body)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, body: &mut Body) -> Poll<Next> {
        if let Some(gone) = self.poll_peer(cx) {
            return Poll::Ready(gone);
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

    /// Reads what the peer sent while the stream waits: `Some(Gone)` when it
    /// left (end-of-file, an error) or sent too much. Over TLS the bytes are
    /// not decrypted (see [`super::sock`]): a `close_notify` is followed by
    /// the end of the connection.
    fn poll_peer(&mut self, cx: &mut Context<'_>) -> Option<Next> {
        let tcp = &self.stream.tcp;
        loop {
            let mut scratch = [0u8; 512];
            let read = match tcp.poll_read_ready(cx) {
                Poll::Pending => return None,
                Poll::Ready(Err(_)) => return Some(Next::Gone),
                Poll::Ready(Ok(())) => match tcp.try_read(&mut scratch) {
                    // Readiness was cleared; the next poll re-registers.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => other,
                },
            };
            match read {
                Ok(0) | Err(_) => return Some(Next::Gone),
                Ok(n) => {
                    // A client has nothing to say on a stream; a little is
                    // tolerated, a flood ends it.
                    self.stray += n;
                    if self.stray > MAX_STRAY_BYTES {
                        return Some(Next::Gone);
                    }
                }
            }
        }
    }

    /// Writes what fits of `bufs` now: one `writev` (over TLS, the records
    /// sealed from them), no timer. Returns the rest if the socket buffer is
    /// full.
    fn try_write(&mut self, bufs: [&[u8]; 3]) -> io::Result<Option<Vec<u8>>> {
        let framed = self.stream.frame(bufs)?;
        let tcp = &self.stream.tcp;
        let try_write = |slices: &[IoSlice<'_>]| match tcp.try_write_vectored(slices) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        };
        match framed {
            Framed::Plain(bufs) => {
                let total: usize = bufs.iter().map(|b| b.len()).sum();
                let written = try_write(&bufs.map(IoSlice::new))?;
                Ok((written < total).then(|| remainder(&bufs, written)))
            }
            Framed::Sealed(mut records) => {
                let written = try_write(&[IoSlice::new(&records)])?;
                Ok((written < records.len()).then(|| {
                    records.drain(..written);
                    records
                }))
            }
        }
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
        if chunked && self.write([b"0\r\n\r\n", b"", b""]).await.is_err() {
            return;
        }
        self.close().await;
    }

    /// Closes the connection: TLS's `close_notify` first, then TCP's end.
    async fn close(&mut self) {
        if let Some(alert) = self.stream.close_notify()
            && self.write_slowly(alert).await.is_err()
        {
            return;
        }
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.stream.tcp).await;
    }

    /// The rest of a write that did not fit in the socket buffer (bytes
    /// ready for the wire), within the write timeout: a client that is not
    /// reading is cut when it runs out.
    async fn write_slowly(&mut self, rest: Vec<u8>) -> io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        let write = self.stream.tcp.write_all(&rest);
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(res) => res,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::ContentType;
    use tokio::io::AsyncReadExt as _;

    /// A sealed write the socket cannot take at once (a client with a small
    /// window, slow to read) is finished from where it stopped: the reader
    /// opens every record and gets the plaintext whole, in order.
    #[tokio::test]
    async fn a_sealed_write_taken_in_parts_arrives_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(2048).expect("SO_RCVBUF");
        let mut client = socket.connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .expect("SO_SNDBUF");
        let mut out = Out {
            stream: super::super::sock::tests::sealed(server),
            write_timeout: Duration::from_secs(10),
            stray: 0,
        };
        let head = b"event: big\ndata: ".to_vec();
        let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let rest = out
            .try_write([&head, &body, b"\n\n"])
            .expect("written")
            .expect("the socket took only part of it");
        assert!(!rest.is_empty());
        let reader = tokio::spawn(async move {
            let mut wire = Vec::new();
            client.read_to_end(&mut wire).await.expect("read");
            wire
        });
        out.write_slowly(rest).await.expect("the rest written");
        out.write([b"next", b"", b""]).await.expect("written");
        drop(out);
        let wire = reader.await.expect("reader");
        let records = super::super::sock::tests::open(wire, 0);
        assert!(
            records
                .iter()
                .all(|(t, _)| *t == ContentType::ApplicationData)
        );
        let plain: Vec<u8> = records.into_iter().flat_map(|(_, p)| p).collect();
        assert_eq!(plain, [head, body, b"\n\nnext".to_vec()].concat());
    }
}
