//! A minimal HTTP/1.1 client over raw TCP, cheap enough for 20 000 sockets:
//! keep-alive request/response for webhooks, and SSE streams decoded by hand
//! (chunked transfer coding, `data:` lines scanned for the run's event ids).
//!
//! Invariant: nothing here allocates per event on the hot path except the
//! line buffer, which is reused; a malformed response is an error, never a
//! silent success.

use std::io;
use std::net::SocketAddr;

use aho_corasick::AhoCorasick;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use crate::stream::Stream;

/// The parts of a response head the benchmark needs.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, if given.
    pub content_length: Option<usize>,
    /// `Connection: close`.
    pub close: bool,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses a head at the start of `buf`: `Ok(None)` while incomplete, else
/// the head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err(bad("response head over 64 KiB"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => head.chunked = value.contains("chunked"),
            "content-length" => head.content_length = value.parse().ok(),
            "connection" => head.close = value.contains("close"),
            _ => {}
        }
    }
    Ok(Some((head, end + 4)))
}

/// Reads from `stream` until `buf` holds a whole head; removes it from `buf`
/// (what follows stays: the start of the body).
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Head> {
    loop {
        if let Some((head, len)) = parse_head(buf)? {
            buf.drain(..len);
            return Ok(head);
        }
        if read_more(stream, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Sends `request` and reads the answer's head (30 s at most): the head,
/// and what came after it (the start of the body).
pub async fn send_for_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &[u8],
) -> io::Result<(Head, Vec<u8>)> {
    stream.write_all(request).await?;
    // Over TLS a write may leave a record in the session: send it before waiting.
    stream.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    let head = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        read_head(stream, &mut buf),
    )
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok((head, buf))
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.reserve(8192);
    stream.read_buf(buf).await
}

/// A keep-alive connection for request/response traffic.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    decoder: Chunked,
    scratch: Vec<u8>,
}

impl Conn {
    /// Connects with Nagle off (requests are written in one piece anyway),
    /// over TLS when `tls` is given.
    pub async fn connect(addr: SocketAddr, tls: Option<&TlsConnector>) -> io::Result<Self> {
        let stream = crate::stream::connect(addr, tls).await?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
            decoder: Chunked::default(),
            scratch: Vec::new(),
        })
    }

    /// Sends one whole request and reads its whole response: the status, and
    /// whether the server keeps the connection open.
    pub async fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        self.stream.flush().await?;
        let head = read_head(&mut self.stream, &mut self.buf).await?;
        if let Some(len) = head.content_length {
            while self.buf.len() < len {
                if read_more(&mut self.stream, &mut self.buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            self.buf.drain(..len);
        } else if head.chunked {
            self.decoder = Chunked::default();
            loop {
                let used = self.decoder.feed(&self.buf, &mut self.scratch)?;
                self.buf.drain(..used);
                self.scratch.clear();
                if self.decoder.done() {
                    break;
                }
                if read_more(&mut self.stream, &mut self.buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        } else {
            // No framing: the body ends with the connection.
            return Ok((head.status, false));
        }
        Ok((head.status, !head.close))
    }
}

/// `POST path` with a body, as LiveKit's webhook notifier sends it.
pub fn post(addr: SocketAddr, path: &str, auth: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/webhook+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// `GET path`, optionally with a bearer token.
pub fn get(addr: SocketAddr, path: &str, bearer: Option<&str>) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}\r\n")
        .into_bytes()
}

/// Incremental decoder of the chunked transfer coding.
#[derive(Default)]
pub struct Chunked {
    /// Bytes of chunk data still to come, or `None` while reading a size line.
    remaining: Option<usize>,
    /// CRLF still to skip after a chunk's data.
    crlf: usize,
    /// The size line read so far.
    size_line: Vec<u8>,
    /// The zero-size chunk was seen.
    done: bool,
}

impl Chunked {
    /// Decodes what it can of `input` into `out`; returns how much of
    /// `input` it consumed (everything, unless the last chunk ended).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut i = 0;
        while i < input.len() && !self.done {
            if self.crlf > 0 {
                self.crlf -= 1;
                i += 1;
            } else if let Some(rem) = self.remaining {
                let take = rem.min(input.len() - i);
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                self.remaining = (rem > take).then_some(rem - take);
                if self.remaining.is_none() {
                    self.crlf = 2;
                }
            } else {
                let b = input[i];
                i += 1;
                if b == b'\n' {
                    let size = self.parse_size()?;
                    // The last chunk's trailer (CRLF) is not read: the stream is over.
                    self.done = size == 0;
                    self.remaining = (size > 0).then_some(size);
                } else if self.size_line.len() < 64 {
                    self.size_line.push(b);
                } else {
                    return Err(bad("chunk size line too long"));
                }
            }
        }
        Ok(i)
    }

    fn parse_size(&mut self) -> io::Result<usize> {
        let line = std::str::from_utf8(&self.size_line).map_err(|_| bad("bad chunk size"))?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| bad("bad chunk size"))?;
        self.size_line.clear();
        Ok(size)
    }

    /// The terminating zero-size chunk was decoded.
    pub fn done(&self) -> bool {
        self.done
    }
}

/// Decodes one SSE response body and reports every benchmark event id in
/// its `data:` lines (Node batches several events into one line).
pub struct SseScanner {
    chunked: Option<Chunked>,
    pending: Vec<u8>,
    decoded: Vec<u8>,
    finder: AhoCorasick,
    marker_len: usize,
    /// `data:` lines seen.
    pub data_lines: u64,
    /// The server ended the body.
    pub ended: bool,
}

impl SseScanner {
    /// A scanner for a body with this framing, looking for `marker` + digits.
    pub fn new(head: &Head, marker: &str) -> Self {
        Self {
            chunked: head.chunked.then(Chunked::default),
            pending: Vec::new(),
            decoded: Vec::new(),
            finder: AhoCorasick::new([marker]).expect("one literal pattern always builds"),
            marker_len: marker.len(),
            data_lines: 0,
            ended: false,
        }
    }

    /// Feeds raw bytes from the socket; calls `found` with each sequence
    /// number in the complete lines they finish.
    pub fn feed(&mut self, raw: &[u8], mut found: impl FnMut(u64)) -> io::Result<()> {
        match &mut self.chunked {
            Some(dec) => {
                dec.feed(raw, &mut self.decoded)?;
                self.ended = dec.done();
            }
            None => self.decoded.extend_from_slice(raw),
        }
        let Some(last_nl) = self.decoded.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        // Only complete lines are scanned: an id split across reads is seen once, whole.
        self.pending.clear();
        self.pending.extend_from_slice(&self.decoded[last_nl + 1..]);
        self.decoded.truncate(last_nl + 1);
        for line in self.decoded.split(|&b| b == b'\n') {
            if !line.starts_with(b"data:") {
                continue;
            }
            self.data_lines += 1;
            for m in self.finder.find_iter(line) {
                let digits = &line[m.start() + self.marker_len..];
                let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
                if let Some(seq) = std::str::from_utf8(&digits[..n])
                    .ok()
                    .and_then(|s| s.parse().ok())
                {
                    found(seq);
                }
            }
        }
        std::mem::swap(&mut self.decoded, &mut self.pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_sse_split_anywhere_yields_every_id_once() {
        let body = b"data: {\"id\":\"EV_btagx12\"}\n\n: ping\n\ndata: [{\"id\":\"EV_btagx13\"},{\"id\":\"EV_btagx14\"}]\n\n";
        let mut wire = Vec::new();
        for part in body.chunks(7) {
            wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for split in 1..wire.len() {
            let head = Head {
                status: 200,
                chunked: true,
                content_length: None,
                close: false,
            };
            let mut scan = SseScanner::new(&head, "EV_btagx");
            let mut seen = Vec::new();
            for piece in wire.chunks(split) {
                scan.feed(piece, |s| seen.push(s)).expect("valid framing");
            }
            assert_eq!(seen, vec![12, 13, 14], "split {split}");
            assert!(scan.ended);
            assert_eq!(scan.data_lines, 2);
        }
    }

    #[test]
    fn head_parses_status_and_framing() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 5\r\nConnection: close\r\n\r\nhello";
        let (head, len) = parse_head(raw).expect("valid").expect("complete");
        assert_eq!(head.status, 429);
        assert_eq!(head.content_length, Some(5));
        assert!(head.close && !head.chunked);
        assert_eq!(&raw[len..], b"hello");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").expect("valid").is_none());
    }
}
