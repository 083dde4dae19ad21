//! The hyper service of a connection: the router, with the connection's
//! addresses in each request, and each request counted in the connection's
//! [`Track`] — open from the call until its response body is dropped, its
//! own body read or not.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};

use super::conn::{Open, Track};
use super::redirect::LocalAddr;

/// The hyper service of one connection: the router, with the connection's
/// addresses in each request and each request counted as open.
#[derive(Clone)]
pub(super) struct Svc {
    pub(super) router: Router,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) track: Arc<Track>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Svc {
    type Response = hyper::Response<Tracked>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: hyper::Request<Incoming>) -> Answer {
        let open = self.track.begin(req.body().is_end_stream());
        let track = self.track.clone();
        let mut req = req.map(|inner| Body::new(Counted { inner, track }));
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(LocalAddr(self.local));
        let fut = tower::Service::call(&mut self.router.clone(), req);
        Answer {
            fut,
            open: Some(open),
        }
    }
}

/// The router's answer, still counted as open.
pub(super) struct Answer {
    fut: axum::routing::future::RouteFuture<Infallible>,
    open: Option<Open>,
}

impl Future for Answer {
    type Output = Result<hyper::Response<Tracked>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Ok(resp) = std::task::ready!(Pin::new(&mut this.fut).poll(cx));
        let open = this.open.take();
        Poll::Ready(Ok(resp.map(|body| Tracked { body, _open: open })))
    }
}

/// A response body that keeps its request open until it is dropped.
pub(super) struct Tracked {
    body: Body,
    _open: Option<Open>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that tells the [`Track`] when it has been read, or dropped unread.
struct Counted {
    inner: Incoming,
    track: Arc<Track>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(res, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.track.body_done();
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.track.body_done();
    }
}
