//! The plain-HTTP listener that only redirects to https (`server.redirect_listen`).
//!
//! `Location` is built from `server.public_url` or, without one, from the
//! https listener's own address — never from the request's `Host` header,
//! which the client writes (an open redirect to any host otherwise). When
//! the https listener is bound to an unspecified address (`0.0.0.0`, `::`),
//! the address the client reached this listener on stands in for it: that
//! comes from the socket, not from the client.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::http::{StatusCode, header};

/// The local address a connection was accepted on (set by the accept loop).
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub SocketAddr);

/// A router that answers every request with 308 to the same path on https.
/// `https` is the address of the https listener.
pub fn redirect_router(public_url: Option<String>, https: SocketAddr) -> Router {
    Router::new().fallback(move |req: axum::extract::Request| {
        let public = public_url.clone();
        async move {
            let base = match public {
                Some(b) => b.trim_end_matches('/').to_owned(),
                None => {
                    let reached = req.extensions().get::<LocalAddr>().map(|l| l.0.ip());
                    origin(https, reached)
                }
            };
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, format!("{base}{path}"))],
            )
        }
    })
}

/// `https://host[:port]` for the https listener `https`; `reached` is the
/// local address of the redirected connection, used when `https` is unspecified.
fn origin(https: SocketAddr, reached: Option<IpAddr>) -> String {
    let ip = match (https.ip().is_unspecified(), reached) {
        (true, Some(ip)) => ip.to_canonical(),
        _ => https.ip(),
    };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    match https.port() {
        443 => format!("https://{host}"),
        port => format!("https://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[tokio::test]
    async fn the_public_url_wins_and_the_host_header_is_ignored() {
        use tower::ServiceExt as _;
        let router = redirect_router(Some("https://w.example.com/".into()), addr("0.0.0.0:8443"));
        let req = axum::http::Request::get("/x?y=1")
            .header("host", "evil.example")
            .body(axum::body::Body::empty())
            .expect("request");
        let resp = router.oneshot(req).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://w.example.com/x?y=1"
        );
    }

    #[test]
    fn the_origin_comes_from_the_listener_never_the_client() {
        assert_eq!(origin(addr("192.0.2.1:443"), None), "https://192.0.2.1");
        assert_eq!(
            origin(
                addr("192.0.2.1:8443"),
                Some("198.51.100.1".parse().expect("ip"))
            ),
            "https://192.0.2.1:8443",
            "a specific listen address wins"
        );
        assert_eq!(
            origin(
                addr("0.0.0.0:8443"),
                Some("::ffff:192.0.2.9".parse().expect("ip"))
            ),
            "https://192.0.2.9:8443"
        );
        assert_eq!(
            origin(addr("[::]:443"), Some("2001:db8::1".parse().expect("ip"))),
            "https://[2001:db8::1]"
        );
    }
}
