//! The socket under a directly served stream: plain TCP, or TLS over it.
//! tokio-util's `Either` delegates the I/O traits; the pump matches the two
//! sides where they are written differently.

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// A plain (`Left`) or TLS (`Right`, the TLS state boxed: a plain stream
/// stays small) connection.
pub(super) type Sock = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The TCP socket underneath.
pub(super) fn tcp(sock: &Sock) -> &TcpStream {
    match sock {
        Either::Left(s) => s,
        Either::Right(s) => s.get_ref().0,
    }
}
