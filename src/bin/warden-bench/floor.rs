//! The floor: what fan-out costs this machine's kernel when a server does
//! nothing else. `warden-bench --serve-floor ADDR` answers every
//! `GET /api/events` with an SSE head and keeps the socket; every
//! `POST /webhooks/livekit` has its body written as one `data:` line to every
//! kept socket, by two writer threads (one per core) with plain `write`. No
//! auth, no verification, no JSON, no async runtime, no HTTP library: the
//! fan-out figures of this target are the kernel's share of the same work.
//!
//! Invariants: the webhook is answered after the frame is handed to the
//! writers, as Warden answers after publishing; a socket whose write would
//! block (a stalled reader) is dropped at once, never waited for.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context as _, Result};

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
cache-control: no-cache\r\nconnection: close\r\n\r\n";

/// Writer threads: one per core of the benchmark machine.
const WRITERS: usize = 2;

/// Subscribers' sockets; `None` once dropped.
type Subs = Arc<RwLock<Vec<Option<TcpStream>>>>;

/// Serves until killed.
pub fn serve(addr: SocketAddr) -> Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    // Warden's backlog, so a connect burst costs both the same.
    sock.listen(4096)?;
    let listener: TcpListener = sock.into();
    let subs: Subs = Arc::default();
    let writers: Vec<mpsc::Sender<Arc<[u8]>>> = (0..WRITERS)
        .map(|k| {
            let (tx, rx) = mpsc::channel::<Arc<[u8]>>();
            let subs = subs.clone();
            std::thread::spawn(move || write_share(k, &subs, &rx));
            tx
        })
        .collect();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(e) = admit(stream, &subs, &writers) {
            eprintln!("floor: {e}");
        }
    }
    Ok(())
}

/// Writes each frame to sockets `k`, `k + WRITERS`, …; drops those that fail.
fn write_share(k: usize, subs: &Subs, frames: &mpsc::Receiver<Arc<[u8]>>) {
    for frame in frames {
        let mut failed = Vec::new();
        {
            let subs = subs.read().unwrap_or_else(|p| p.into_inner());
            for (i, s) in subs.iter().enumerate().skip(k).step_by(WRITERS) {
                if let Some(mut s) = s.as_ref()
                    && !matches!(s.write(&frame), Ok(n) if n == frame.len())
                {
                    failed.push(i);
                }
            }
        }
        if !failed.is_empty() {
            let mut subs = subs.write().unwrap_or_else(|p| p.into_inner());
            for i in failed {
                subs[i] = None;
            }
        }
    }
}

/// One request head.
struct Request {
    method: String,
    path: String,
    body_len: usize,
}

/// Reads the first request: a stream is kept, anything else gets a thread
/// that serves the connection's requests.
fn admit(mut stream: TcpStream, subs: &Subs, writers: &[mpsc::Sender<Arc<[u8]>>]) -> Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::with_capacity(1024);
    let first = read_request(&mut stream, &mut buf)?;
    if first.method == "GET" && first.path.starts_with("/api/events") {
        stream.write_all(SSE_HEAD)?;
        stream.set_nonblocking(true)?;
        subs.write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Some(stream));
        return Ok(());
    }
    let writers = writers.to_vec();
    std::thread::spawn(move || {
        let mut req = first;
        while answer(&mut stream, &mut buf, &req, &writers).is_ok() {
            match read_request(&mut stream, &mut buf) {
                Ok(r) => req = r,
                Err(_) => return,
            }
        }
    });
    Ok(())
}

/// Reads one request head and removes it from `buf`'s front.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Request> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let status = req
            .parse(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if let httparse::Status::Complete(len) = status {
            let body_len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let out = Request {
                method: req.method.unwrap_or_default().to_owned(),
                path: req.path.unwrap_or_default().to_owned(),
                body_len,
            };
            buf.drain(..len);
            return Ok(out);
        }
        read_more(stream, buf)?;
    }
}

fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk)? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        n => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Answers one request on a kept-alive connection; a webhook's body goes to
/// every stream as one `data:` line (the benchmark's bodies are one line).
fn answer(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    req: &Request,
    writers: &[mpsc::Sender<Arc<[u8]>>],
) -> io::Result<()> {
    while buf.len() < req.body_len {
        read_more(stream, buf)?;
    }
    if req.method == "POST" && req.path == "/webhooks/livekit" {
        let mut frame = Vec::with_capacity(req.body_len + 8);
        frame.extend_from_slice(b"data: ");
        frame.extend_from_slice(&buf[..req.body_len]);
        frame.extend_from_slice(b"\n\n");
        let frame: Arc<[u8]> = frame.into();
        for w in writers {
            let _ = w.send(frame.clone());
        }
    }
    buf.drain(..req.body_len);
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
}
