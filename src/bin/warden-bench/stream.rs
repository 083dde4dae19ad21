//! A client connection, plain or TLS (HTTP/1.1 by ALPN), one type for
//! every reader and webhook sender, so that a fan-out runs unchanged over
//! either (issue 23).
//!
//! Invariant: Nagle is off on both (requests and events go out whole).

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// A connection to the server under test: plain TCP (`Left`) or TLS over
/// TCP (`Right`, boxed: the TLS state is large); tokio-util's `Either`
/// delegates the I/O traits.
pub type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// Connects to `addr`, over TLS when `tls` is given.
pub async fn connect(addr: SocketAddr, tls: Option<&TlsConnector>) -> io::Result<Stream> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        None => Either::Left(tcp),
        Some(tls) => {
            let name = crate::transport::server_name();
            Either::Right(Box::new(tls.connect(name, tcp).await?))
        }
    })
}
