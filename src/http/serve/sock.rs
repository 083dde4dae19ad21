//! The socket under a directly served stream: plain TCP, or TLS over it
//! sealed record by record, with no TLS buffers between events.
//!
//! Over TLS the handshake and the request are rustls's (through
//! tokio-rustls). Once the request is known to be an event stream and
//! everything rustls had to send is flushed, the session's traffic keys are
//! taken out of it (`dangerous_extract_secrets`, the road to kernel TLS) and
//! the rest of the connection is written as TLS records sealed by the
//! negotiated suite's own encrypter from the same crypto provider, with the
//! session's write sequence number carried on. What an idle stream keeps of
//! TLS is that encrypter (the AEAD key) and a counter: rustls's connection,
//! its 4 KiB receive buffer, its key schedule and its decrypter are freed.
//!
//! Nothing the client sends after its request is decrypted: a client has
//! nothing to say on an event stream, so its bytes only count against the
//! stray allowance and its end-of-file ends the stream (a `close_notify`
//! is followed by one). A stream sealing as many records as the suite may
//! carry under one key ends instead of updating the key: the client
//! reconnects with `Last-Event-ID`.

use std::io;

use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage};
use rustls::{ConnectionTrafficSecrets, ContentType, ProtocolVersion, SupportedCipherSuite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Largest plaintext of one TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// Sequence numbers past this are refused by rustls too (`SEQ_SOFT_LIMIT`).
const SEQ_LIMIT: u64 = 0xffff_ffff_ffff_0000;

/// A stream's connection: TCP, and the TLS records' sealer when over TLS
/// (boxed: a plain stream stays as small as it was).
pub(super) struct Sock {
    pub(super) tcp: TcpStream,
    seal: Option<Box<Seal>>,
}

impl Sock {
    pub(super) fn plain(tcp: TcpStream) -> Self {
        Self { tcp, seal: None }
    }

    /// Takes a TLS session whose request was read over to sealed records.
    /// `Err` when it cannot be (the connection is then closed: the client
    /// gets no answer rather than a wrong one): `Err(None)` when the peer
    /// went away first (nothing to report: any client can do that),
    /// `Err(Some(_))` when rustls refused (a configuration that does not
    /// allow it, an unknown suite: worth a warning).
    pub(super) async fn tls(mut tls: TlsStream<TcpStream>) -> Result<Self, Option<rustls::Error>> {
        // What rustls still has to send (session tickets) goes first: its
        // keys may not be taken while records wait in it.
        if tokio::io::AsyncWriteExt::flush(&mut tls).await.is_err() {
            return Err(None);
        }
        let (tcp, session) = tls.into_inner();
        let suite = session
            .negotiated_cipher_suite()
            .ok_or(rustls::Error::HandshakeNotComplete)?;
        let (seq, secrets) = session.dangerous_extract_secrets()?.tx;
        let seal = Seal::new(suite, secrets, seq)?;
        Ok(Self {
            tcp,
            seal: Some(Box::new(seal)),
        })
    }

    /// `bufs` as the bytes to put on the wire: as they are on plain TCP,
    /// sealed into records over TLS.
    pub(super) fn frame<'a>(&mut self, bufs: [&'a [u8]; 3]) -> io::Result<Framed<'a>> {
        match &mut self.seal {
            None => Ok(Framed::Plain(bufs)),
            Some(seal) => seal
                .seal(ContentType::ApplicationData, &bufs)
                .map(Framed::Sealed),
        }
    }

    /// The TLS `close_notify` alert, sealed; nothing on plain TCP.
    pub(super) fn close_notify(&mut self) -> Option<Vec<u8>> {
        // level warning (1), description close_notify (0)
        let alert: [&[u8]; 3] = [&[1, 0], b"", b""];
        self.seal
            .as_mut()
            .and_then(|seal| seal.seal(ContentType::Alert, &alert).ok())
    }
}

/// Bytes ready for the socket.
pub(super) enum Framed<'a> {
    Plain([&'a [u8]; 3]),
    Sealed(Vec<u8>),
}

/// Seals TLS records under the session's write key.
struct Seal {
    encrypter: Box<dyn MessageEncrypter>,
    /// The next record's sequence number.
    seq: u64,
    /// Records this key may seal.
    limit: u64,
}

impl Seal {
    fn new(
        suite: SupportedCipherSuite,
        secrets: ConnectionTrafficSecrets,
        seq: u64,
    ) -> Result<Self, rustls::Error> {
        let unsupported = || rustls::Error::General("unsupported traffic secrets".into());
        let (key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
            | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
            _ => return Err(unsupported()),
        };
        let (encrypter, limit) = match suite {
            SupportedCipherSuite::Tls13(s) => (
                s.aead_alg.encrypter(key, iv),
                s.common.confidentiality_limit,
            ),
            SupportedCipherSuite::Tls12(s) => {
                // The extracted IV is the fixed part followed by the explicit
                // nonce's start, as the key block gave them.
                let shape = s.aead_alg.key_block_shape();
                if shape.fixed_iv_len + shape.explicit_nonce_len != iv.as_ref().len() {
                    return Err(unsupported());
                }
                let (fixed, explicit) = iv.as_ref().split_at(shape.fixed_iv_len);
                (
                    s.aead_alg.encrypter(key, fixed, explicit),
                    s.common.confidentiality_limit,
                )
            }
        };
        Ok(Self {
            encrypter,
            seq,
            limit: limit.min(SEQ_LIMIT),
        })
    }

    /// `bufs` as records of `typ`, at most [`MAX_FRAGMENT`] bytes each.
    fn seal(&mut self, typ: ContentType, bufs: &[&[u8]; 3]) -> io::Result<Vec<u8>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut out = Vec::new();
        let mut start = 0;
        while start < total {
            let end = total.min(start + MAX_FRAGMENT);
            if self.seq >= self.limit {
                return Err(io::Error::other("TLS record limit of the key reached"));
            }
            let msg = OutboundPlainMessage {
                typ,
                version: ProtocolVersion::TLSv1_2,
                payload: OutboundChunks::Multiple {
                    chunks: bufs,
                    start,
                    end,
                },
            };
            let record = self
                .encrypter
                .encrypt(msg, self.seq)
                .map_err(io::Error::other)?
                .encode();
            self.seq += 1;
            if out.is_empty() && end == total {
                return Ok(record);
            }
            out.extend_from_slice(&record);
            start = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests;
