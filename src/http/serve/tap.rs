//! The socket under a hyper connection, watched (see [`Tap`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::Track;

/// A socket whose reads tell the [`Track`] when a head starts on an idle connection.
///
/// With [`Tap::handing_back`], it also ends hyper's connection between two
/// requests so that the socket can be served by the direct path again: when
/// hyper reads while no request is open and nothing of the next one has
/// arrived, and everything hyper wrote has been flushed (hyper's last call
/// was a completed `poll_flush`, which it makes only with its write buffer
/// empty), the read answers end-of-file. hyper takes that as a client
/// closing an idle connection and ends cleanly, giving back the socket and
/// whatever it read ahead (`without_shutdown`, `into_parts`).
pub(super) struct Tap<S> {
    inner: S,
    track: Arc<Track>,
    hand_back: bool,
    /// End-of-file was answered: the connection is handed back.
    handed_back: bool,
    /// A read found hyper between requests; the next flush confirms it.
    armed: bool,
    /// hyper's last write call was a completed flush.
    flushed: bool,
    /// The read waiting for that flush.
    reader: Option<std::task::Waker>,
}

impl<S> Tap<S> {
    pub(super) fn new(inner: S, track: Arc<Track>) -> Self {
        Self {
            inner,
            track,
            hand_back: false,
            handed_back: false,
            armed: false,
            flushed: true,
            reader: None,
        }
    }

    /// Ends hyper's HTTP/1 connection between requests (see the type's docs).
    pub(super) fn handing_back(mut self) -> Self {
        self.hand_back = true;
        self
    }

    /// Whether the connection was handed back.
    pub(super) fn handed_back(&self) -> bool {
        self.handed_back
    }

    pub(super) fn into_inner(self) -> S {
        self.inner
    }

    fn wrote(&mut self) {
        self.flushed = false;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.hand_back && self.track.between_requests() {
            if self.armed && self.flushed {
                self.handed_back = true;
                return Poll::Ready(Ok(()));
            }
            // hyper flushes after this read in the same turn; the flush
            // wakes this read (or the wake below does, if nothing was left).
            self.armed = true;
            self.reader = Some(cx.waker().clone());
            if self.flushed {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        self.armed = false;
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.track.bytes_read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.wrote();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.wrote();
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(res, Poll::Ready(Ok(()))) {
            self.flushed = true;
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
        res
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
