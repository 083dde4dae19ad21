//! Secrets never reach the logs: a real server, real requests carrying
//! tokens in the query and in `Authorization`, then its whole output searched.

use crate::support::{self, Binary, KEY, SECRET};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_in_query_and_authorization_never_reach_the_log() {
    let bin = Binary::new();
    bin.write_config("logging: {log_level: DEBUG}\n");
    let mut served = bin.serve(&[]);
    let token = support::list_token();
    let c = support::client();
    // A token in the query (a 401 because of the wrong secret, so it is logged at info) …
    let bad = support::access_token(
        KEY,
        "not-the-secret-0123456789012345678901",
        "x",
        serde_json::json!({"roomList": true}),
        60,
    );
    let r = c
        .get(format!("{}/api/rooms?token={bad}&room=demo", served.url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    // … one in Authorization, one in the cookie, one as access_token, and a webhook signature.
    let r = c
        .get(format!("{}/api/rooms", served.url))
        .bearer_auth(&bad)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    let _ = c
        .get(format!("{}/api/rooms?access_token={token}", served.url))
        .send()
        .await
        .expect("req");
    let _ = c
        .get(format!("{}/api/rooms", served.url))
        .header("cookie", format!("warden_token={token}"))
        .send()
        .await;
    let body = br#"{"event":"room_started","room":{"sid":"RM_x","name":"r"}}"#;
    let _ = c
        .post(format!("{}/webhooks/livekit", served.url))
        .header("authorization", support::sign_webhook(body, KEY, SECRET))
        .body(&body[..])
        .send()
        .await;
    served.terminate();
    let out = served.output();
    assert!(
        out.contains("/api/rooms"),
        "requests were not logged at all: {out}"
    );
    assert!(
        out.contains("401"),
        "the refused request is not in the log: {out}"
    );
    for needle in [
        token.as_str(),
        bad.as_str(),
        SECRET,
        "eyJ",
        "token=",
        "access_token=",
    ] {
        assert!(!out.contains(needle), "the log contains {needle:?}:\n{out}");
    }
}
