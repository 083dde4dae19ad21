//! HTTP/1.1 framing for the directly served answers: the response head,
//! chunk sizes, and what is left of a partial write.

use axum::http::{self, Version, header};

/// The response head; `Connection: close`, as the connection ends with the answer.
pub(super) fn encode_head(
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
pub(super) struct ChunkSize {
    buf: [u8; 18],
    start: usize,
}

impl ChunkSize {
    pub(super) fn new(mut len: usize) -> Self {
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

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The bytes of `bufs` after the first `skip`, in one buffer.
pub(super) fn remainder(bufs: &[&[u8]], mut skip: usize) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Response;

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
