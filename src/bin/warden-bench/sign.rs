//! Credentials and payloads exactly as LiveKit makes them: webhook signatures
//! (HS256 JWT, `iss` = API key, `sha256` claim = padded base64 of SHA-256 over
//! the body), access tokens for Warden, dashboard tokens for the Node peer,
//! and `participant_joined` bodies in protobuf-JSON with a unique event id.
//!
//! Invariant: every event id of a run carries the run's tag, so a subscriber
//! recognises the benchmark's events by the marker `EV_b<tag>x` followed by
//! the sequence number, whatever JSON surrounds it.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::Rng as _;
use sha2::{Digest, Sha256};

/// `{"alg":"HS256","typ":"JWT"}`, base64url: the same for every token.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The API key, its secret and the Node peer's dashboard secret for one run.
/// No `Debug`: the secrets are throwaway but still never printed.
pub struct Keys {
    /// The LiveKit API key (also the webhook `iss`).
    pub api_key: String,
    api_secret: String,
    jwt_secret: String,
}

impl Keys {
    /// Fresh random secrets, 43 base62 characters as `livekit-server generate-keys` makes them.
    pub fn generate() -> Self {
        Self {
            api_key: "APIbenchKey2345".to_owned(),
            api_secret: random_base62(43),
            jwt_secret: random_base62(43),
        }
    }

    /// The API secret (to hand to the servers' environment).
    pub fn api_secret(&self) -> &str {
        &self.api_secret
    }

    /// The Node peer's `JWT_SECRET`.
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// The `Authorization` value LiveKit sends with `body` at `now` (Unix seconds).
    pub fn webhook_auth(&self, body: &[u8], now: i64) -> String {
        let digest = STANDARD.encode(Sha256::digest(body));
        let payload = format!(
            r#"{{"iss":"{}","nbf":{now},"iat":{now},"exp":{},"sha256":"{digest}"}}"#,
            self.api_key,
            now + 300
        );
        hs256(self.api_secret.as_bytes(), &payload)
    }

    /// A LiveKit access token allowed to watch every room (`video.roomList`).
    pub fn warden_token(&self, sub: &str, now: i64) -> String {
        let payload = format!(
            r#"{{"iss":"{}","sub":"{sub}","nbf":{now},"exp":{},"video":{{"roomList":true}}}}"#,
            self.api_key,
            now + 3600
        );
        hs256(self.api_secret.as_bytes(), &payload)
    }

    /// The Node peer's dashboard token (as its `sign.mjs sse` makes it).
    pub fn node_token(&self, sub: &str, now: i64) -> String {
        let payload = format!(
            r#"{{"iss":"{}","sub":"{sub}","nbf":{now},"exp":{},"video":{{"roomList":true,"roomAdmin":true}}}}"#,
            self.api_key,
            now + 3600
        );
        hs256(self.jwt_secret.as_bytes(), &payload)
    }
}

/// An HS256 JWT over `payload_json`.
fn hs256(secret: &[u8], payload_json: &str) -> String {
    let mut token = String::with_capacity(64 + payload_json.len() * 2);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload_json, &mut token);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    token
}

fn random_base62(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A random lowercase hex tag that makes a run's event ids unique.
pub fn run_tag() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

/// The bytes that precede the sequence number in every event id of `tag`.
pub fn marker(tag: &str) -> String {
    format!("EV_b{tag}x")
}

/// A LiveKit `participant_joined` webhook body (protobuf-JSON: camelCase,
/// int64 as strings) whose event id is `EV_b<tag>x<seq>`. Participants cycle
/// through 1 000 sids so the servers' room state stays bounded.
pub fn webhook_body(tag: &str, seq: u64, now: i64) -> String {
    let p = seq % 1000;
    let mut body = String::with_capacity(420);
    let _ = write!(
        body,
        concat!(
            r#"{{"event":"participant_joined","room":{{"sid":"RM_bench{tag}","name":"bench-room","#,
            r#""emptyTimeout":300,"creationTime":"{now}"}},"participant":{{"sid":"PA_bench{p}","#,
            r#""identity":"bench-user-{p}","name":"Bench participant {p}","state":"ACTIVE","#,
            r#""joinedAt":"{now}"}},"id":"{marker}{seq}","createdAt":"{now}"}}"#
        ),
        tag = tag,
        now = now,
        p = p,
        marker = marker(tag),
        seq = seq
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signature_verifies_with_wardens_hs256() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys = Keys::generate();
        let body = webhook_body("abc", 7, 1_700_000_000);
        let token = keys.webhook_auth(body.as_bytes(), 1_700_000_000);
        let (signed, sig) = token.rsplit_once('.').expect("three segments");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url signature");
        assert!(
            warden::token::jws::hs256_verifies(
                signed.as_bytes(),
                &sig,
                keys.api_secret().as_bytes()
            ),
            "valid signature"
        );
        let payload = signed.split('.').nth(1).expect("payload");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
                .expect("json claims");
        let want = STANDARD.encode(Sha256::digest(body.as_bytes()));
        assert_eq!(claims["sha256"], want);
        assert_eq!(claims["iss"], keys.api_key);
        assert_eq!(claims["exp"], 1_700_000_300);
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("json body");
        assert_eq!(parsed["id"], "EV_babcx7");
    }
}
