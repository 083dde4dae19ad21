//! The smaller holes: the session cookie, `/?token=`, `/metrics` for remote
//! clients, `status --url`, names and event ids, key and pepper files.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use crate::keys::Home;
use crate::support::{self, Binary, Sse};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `Set-Cookie` of signing in with `token`, sending `headers`.
async fn sign_in_cookie(base: &str, token: &str, headers: &[(&str, &str)]) -> String {
    let mut req = no_redirects()
        .post(format!("{base}/api/auth/session"))
        .json(&json!({"token": token}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("sign in");
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned()
}

#[tokio::test]
async fn the_session_cookie_is_secure_whenever_the_client_came_over_tls() {
    let token = support::list_token();
    let proxied = support::spawn("server: {trusted_proxies: [127.0.0.1]}").await;
    let https = [("x-forwarded-proto", "https")];
    assert!(
        sign_in_cookie(&proxied.url, &token, &https)
            .await
            .ends_with("; Secure")
    );
    assert!(
        !sign_in_cookie(&proxied.url, &token, &[])
            .await
            .contains("Secure")
    );
    let r = no_redirects()
        .get(format!("{}/?token={token}", proxied.url))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("link");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .expect("c")
            .ends_with("; Secure")
    );
    let r = no_redirects()
        .delete(format!("{}/api/auth/session", proxied.url))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("sign out");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .expect("c")
            .ends_with("; Secure")
    );
    proxied.stop().await;
    // From a peer that is not a trusted proxy, the header means nothing.
    let direct = support::spawn("").await;
    assert!(
        !sign_in_cookie(&direct.url, &token, &https)
            .await
            .contains("Secure")
    );
    direct.stop().await;
    let public = support::spawn("server: {public_url: \"https://warden.example.com\"}").await;
    assert!(
        sign_in_cookie(&public.url, &token, &[])
            .await
            .ends_with("; Secure")
    );
    public.stop().await;
    let tls = super::tls_server("").await;
    let r = super::insecure_client()
        .post(format!("{}/api/auth/session", tls.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("sign in over TLS");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .expect("c")
            .ends_with("; Secure")
    );
}

#[tokio::test]
async fn a_link_token_that_does_not_verify_leaves_the_session_alone() {
    let s = support::spawn("suspicious_activity: {max_failed_attempts: 3}").await;
    let foreign = support::access_token(
        "APIforeign1234",
        "x".repeat(43).as_str(),
        "m",
        json!({"roomList": true}),
        600,
    );
    let ticket_like = "wt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for bad in ["garbage", foreign.as_str(), ticket_like] {
        let r = no_redirects()
            .get(format!("{}/?token={bad}", s.url))
            .header("cookie", "warden_token=the-existing-session")
            .send()
            .await
            .expect("link");
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/?signin=refused", "{bad}");
        assert!(
            r.headers().get("set-cookie").is_none(),
            "{bad}: the session was replaced"
        );
    }
    // Each refused link counted as a failed authentication: locked out now.
    let r = support::client()
        .get(format!("{}/api/rooms", s.url))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("rooms");
    assert_eq!(r.status(), 403);
    s.stop().await;
}

#[tokio::test]
async fn metrics_for_a_remote_client_pass_the_api_lockout_and_rate_limit() {
    let s = support::spawn(
        "server: {trusted_proxies: [127.0.0.1]}\nsuspicious_activity: {max_failed_attempts: 2, rate_limit_per_minute: 3}",
    )
    .await;
    let c = support::client();
    let get = |xff: &'static str, token: Option<String>| {
        let mut req = c
            .get(format!("{}/metrics", s.url))
            .header("x-forwarded-for", xff);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // Rate limit: the fourth request in a minute is refused, admin or not.
    for _ in 0..3 {
        assert_eq!(
            get("203.0.113.1", Some(support::admin_token()))
                .await
                .expect("m")
                .status(),
            200
        );
    }
    let limited = get("203.0.113.1", Some(support::admin_token()))
        .await
        .expect("m");
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    // Lockout: two failed tokens lock the client out of /metrics too.
    for _ in 0..2 {
        assert_eq!(
            get("203.0.113.2", Some("bad".into()))
                .await
                .expect("m")
                .status(),
            401
        );
    }
    // A token that verifies but is not an admin's does not pass the lockout
    // (only the admin grants do: README, Deviations).
    assert_eq!(
        get("203.0.113.2", Some(support::list_token()))
            .await
            .expect("m")
            .status(),
        403
    );
    // The local scraper is not limited. Behind the trusted (loopback) proxy it
    // is named by the proxy; a request naming no client is the unknown client (#20).
    for _ in 0..5 {
        let r = c
            .get(format!("{}/metrics", s.url))
            .header("x-forwarded-for", "127.0.0.1")
            .send()
            .await
            .expect("m");
        assert_eq!(r.status(), 200);
    }
    s.stop().await;
}

#[test]
fn status_sends_its_admin_token_only_over_https_or_to_loopback() {
    let bin = Binary::new();
    let o = bin.run(&["status", "--url", "http://192.0.2.10:8080"], "");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing to send an admin token over plain http"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn invisible_characters_never_reach_the_stream_and_ids_are_not_merged() {
    let s = support::spawn("").await;
    let mut sse = Sse::watch_all(&s.url).await;
    assert!(
        sse.next_named("snapshot", Duration::from_secs(5))
            .await
            .is_some()
    );
    let name = "Ad\u{E0001}\u{E0061}\u{E007F}min\u{AD}\u{180E}\u{3164}";
    let mut body: serde_json::Value = serde_json::from_slice(&support::participant_joined(
        "r", "RM_inv", "PA_inv", "u", name,
    ))
    .expect("json");
    body["id"] = json!("EV_twin");
    let first = serde_json::to_vec(&body).expect("json");
    body["id"] = json!("EV_twin\u{200B}");
    let twin = serde_json::to_vec(&body).expect("json");
    assert_eq!(support::deliver(&s.url, &first).await, 200);
    assert_eq!(support::deliver(&s.url, &twin).await, 200);
    let events = sse.drain(Duration::from_secs(2)).await;
    let joins: Vec<_> = events
        .iter()
        .filter(|e| e.event == "participant_joined")
        .collect();
    assert_eq!(
        joins.len(),
        2,
        "two ids that differ in a dropped character are two events: {events:?}"
    );
    for e in &joins {
        assert_eq!(
            e.json()["data"]["participant"]["name"],
            "Admin",
            "{}",
            e.data
        );
    }
    s.stop().await;
}

#[test]
fn a_key_file_that_is_a_symlink_is_written_through_or_refused() {
    let home = Home::new("");
    let key_file = home.key_file();
    let data = key_file.parent().expect("dir").to_path_buf();
    let shared = data.join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::write(shared.join("livekit-keys.yaml"), "").expect("target");
    std::fs::set_permissions(
        shared.join("livekit-keys.yaml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("shared/livekit-keys.yaml", &key_file).expect("link");
    let out = home.ok(&["keys", "create"]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("api_key:"))
        .expect("id")
        .trim()
        .to_owned();
    assert!(
        std::fs::symlink_metadata(&key_file)
            .expect("meta")
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let target = std::fs::read_to_string(shared.join("livekit-keys.yaml")).expect("target");
    assert!(
        target.contains(&id),
        "the key was not written at the link's target"
    );
    assert!(home.ok(&["keys", "list"]).contains(&id));
    // A link that loops is refused with one line.
    std::fs::remove_file(&key_file).expect("rm");
    std::os::unix::fs::symlink("keys.yaml", &key_file).expect("loop");
    let o = home.run(&["keys", "create"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_pepper_file_others_can_read_stops_the_server() {
    let bin = Binary::new();
    let data = bin.dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("pepper"), "p".repeat(64)).expect("pepper");
    std::fs::set_permissions(data.join("pepper"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let mut child = bin
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("warden started with a world-readable pepper");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().expect("output");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
}
