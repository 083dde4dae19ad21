use rustls::crypto::cipher::{AeadKey, InboundOpaqueMessage, Iv};
use rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384;

use super::*;

const KEY: [u8; 32] = [7; 32];
const IV: [u8; 12] = [3; 12];

fn seal_from(seq: u64) -> Seal {
    let secrets = ConnectionTrafficSecrets::Aes256Gcm {
        key: AeadKey::from(KEY),
        iv: Iv::from(IV),
    };
    Seal::new(TLS13_AES_256_GCM_SHA384, secrets, seq).expect("seal")
}

/// Opens the records in `wire` with the suite's decrypter from sequence
/// number `seq`: their types and plaintexts.
pub(in crate::http::serve) fn open(mut wire: Vec<u8>, mut seq: u64) -> Vec<(ContentType, Vec<u8>)> {
    let SupportedCipherSuite::Tls13(suite) = TLS13_AES_256_GCM_SHA384 else {
        unreachable!()
    };
    let mut decrypter = suite.aead_alg.decrypter(AeadKey::from(KEY), Iv::from(IV));
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        assert_eq!(
            wire[at], 23,
            "TLS 1.3 records are all application_data outside"
        );
        assert_eq!(&wire[at + 1..at + 3], &[3, 3]);
        let len = usize::from(u16::from_be_bytes([wire[at + 3], wire[at + 4]]));
        let payload = &mut wire[at + 5..at + 5 + len];
        let msg = InboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        );
        let plain = decrypter.decrypt(msg, seq).expect("a record that opens");
        out.push((plain.typ, plain.payload.to_vec()));
        seq += 1;
        at += 5 + len;
    }
    out
}

/// `tcp` with the test key's sealer, from sequence number 0.
pub(in crate::http::serve) fn sealed(tcp: TcpStream) -> Sock {
    Sock {
        tcp,
        seal: Some(Box::new(seal_from(0))),
    }
}

#[test]
fn a_write_is_sealed_into_records_of_at_most_16_kib_in_sequence() {
    let mut seal = seal_from(5);
    let a = vec![b'a'; 10_000];
    let b = vec![b'b'; 30_000];
    let wire = seal
        .seal(ContentType::ApplicationData, &[&a, &b, b"\r\n"])
        .expect("sealed");
    let records = open(wire, 5);
    let sizes: Vec<usize> = records.iter().map(|(_, p)| p.len()).collect();
    assert_eq!(sizes, [16_384, 16_384, 7_234]);
    let joined: Vec<u8> = records.into_iter().flat_map(|(_, p)| p).collect();
    assert_eq!(joined, [a, b, b"\r\n".to_vec()].concat());
    assert_eq!(seal.seq, 8);
    // The next write goes on from there.
    let wire = seal
        .seal(ContentType::ApplicationData, &[b"next", b"", b""])
        .expect("sealed");
    assert_eq!(
        open(wire, 8),
        [(ContentType::ApplicationData, b"next".to_vec())]
    );
}

#[test]
fn an_alert_is_sealed_with_its_own_type() {
    let mut seal = seal_from(0);
    let wire = seal
        .seal(ContentType::Alert, &[&[1, 0], b"", b""])
        .expect("sealed");
    assert_eq!(open(wire, 0), [(ContentType::Alert, vec![1, 0])]);
}

#[test]
fn a_key_that_sealed_its_limit_seals_no_more() {
    let mut seal = seal_from(0);
    seal.limit = 2;
    for _ in 0..2 {
        seal.seal(ContentType::ApplicationData, &[b"x", b"", b""])
            .expect("within the limit");
    }
    let err = seal
        .seal(ContentType::ApplicationData, &[b"x", b"", b""])
        .expect_err("past the limit");
    assert!(err.to_string().contains("limit"), "{err}");
    // Nothing to write is nothing sealed, at any count.
    assert!(
        seal.seal(ContentType::ApplicationData, &[b"", b"", b""])
            .expect("empty")
            .is_empty()
    );
}
