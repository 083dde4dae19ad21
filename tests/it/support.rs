//! Test support: start Warden for real and talk to it.
//!
//! [`spawn`] runs the library's server in-process on `127.0.0.1:0` (fast, and
//! the test can reach into its state); [`Binary`] runs the built `warden`
//! binary in a temporary working directory (for what only a process shows:
//! exit codes, stdout/stderr, signals). Tokens and webhook signatures are made
//! here (`hs256`, independent of Warden's signer) exactly as LiveKit makes them; interoperability
//! with LiveKit's own SDKs is proven separately.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use warden::app::AppState;
use warden::clock::Clock;
use warden::config::{self, Config, Env};
use warden::redact::Masker;

/// A key known to test servers.
pub const KEY: &str = "APItestKey2345";
/// Its secret (43 base62 characters, like livekit-server generate-keys).
pub const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";

/// Installs the TLS crypto provider reqwest needs (once per process).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client that never uses a proxy.
pub fn client() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An in-process server.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// The server's state.
    pub state: AppState,
    /// Its working directory (data, logs).
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

/// The test configuration: `yaml` over defaults, data under a temp dir, keys from `env`.
pub fn config(dir: &Path, yaml: &str, env: &[(&str, &str)]) -> Config {
    let base = format!(
        "storage: {{path: {db}}}\nlivekit: {{keys_file: {keys}}}\nlogging: {{security_log_file: {log}}}\n",
        db = dir.join("data/warden.db").display(),
        keys = dir.join("data/keys.yaml").display(),
        log = dir.join("logs/security.log").display(),
    );
    let mut value: serde_json::Value = json!({});
    for doc in [base.as_str(), yaml] {
        // An empty document is no override; a broken one fails the test (it
        // must never run on defaults — with their data directory — instead).
        let v: serde_json::Value = serde_norway::from_str(doc)
            .unwrap_or_else(|e| panic!("test YAML does not parse: {e}\n{doc}"));
        if !v.is_null() {
            merge(&mut value, v);
        }
    }
    let text = serde_norway::to_string(&value).expect("yaml");
    let mut pairs: Vec<(String, String)> = vec![
        ("LIVEKIT_API_KEY".into(), KEY.into()),
        ("LIVEKIT_API_SECRET".into(), SECRET.into()),
    ];
    pairs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    config::from_yaml(&text, &Env::from_pairs(pairs)).expect("test config is valid")
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Starts Warden in-process with `yaml` over the test defaults.
pub async fn spawn(yaml: &str) -> TestServer {
    spawn_with(yaml, &[]).await
}

/// Starts Warden in-process with extra environment (keys etc.).
pub async fn spawn_with(yaml: &str, env: &[(&str, &str)]) -> TestServer {
    spawn_clocked(yaml, env, Clock::system()).await
}

/// Starts Warden in-process with extra environment and the given clock (e.g.
/// one manual clock shared by several nodes).
pub async fn spawn_clocked(yaml: &str, env: &[(&str, &str)], clock: Clock) -> TestServer {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), yaml, env);
    let (state, _report) = AppState::build(cfg, clock, Masker::new()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    let task = tokio::spawn(async move {
        let _ = warden::run(st, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    TestServer {
        url,
        state,
        dir,
        stop: Some(tx),
        task: Some(task),
    }
}

/// The standard padded base64 of SHA-256(body), as LiveKit's `sha256` claim.
pub fn body_hash(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// A compact HS256 JWT, assembled here independently of Warden's own signer
/// (header `{"alg":"HS256","typ":"JWT"}`, as LiveKit's SDKs write it).
pub fn hs256(claims: &Value, secret: &str) -> String {
    use hmac::Mac as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signed = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64(&mac.finalize().into_bytes()))
}

/// The claims of an HS256 `token` whose signature verifies under `secret`
/// (checked here with `hmac`, not with Warden's verifier), else `None`.
pub fn hs256_claims(token: &str, secret: &str) -> Option<Value> {
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, sig) = token.rsplit_once('.')?;
    let (header, payload) = signed.split_once('.')?;
    let header: Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
    if header["alg"] != "HS256" {
        return None;
    }
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    mac.verify_slice(&b64.decode(sig).ok()?).ok()?;
    serde_json::from_slice(&b64.decode(payload).ok()?).ok()
}

/// A webhook signature exactly as livekit-server makes it.
pub fn sign_webhook(body: &[u8], key: &str, secret: &str) -> String {
    let t = now();
    let claims = json!({"iss": key, "nbf": t, "iat": t, "exp": t + 300, "sha256": body_hash(body)});
    hs256(&claims, secret)
}

/// A LiveKit access token with the given `video` grant.
pub fn access_token(
    key: &str,
    secret: &str,
    identity: &str,
    video: Value,
    ttl_secs: i64,
) -> String {
    let t = now();
    let claims =
        json!({"iss": key, "sub": identity, "nbf": t, "exp": t + ttl_secs, "video": video});
    hs256(&claims, secret)
}

/// A token that may watch every room.
pub fn list_token() -> String {
    access_token(KEY, SECRET, "dash", json!({"roomList": true}), 3600)
}

/// An admin token.
pub fn admin_token() -> String {
    access_token(
        KEY,
        SECRET,
        "admin",
        json!({"roomAdmin": true, "roomCreate": true}),
        3600,
    )
}

/// A random suffix.
pub fn rand_hex() -> String {
    let mut b = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

/// The built binary, run in a temporary working directory.
pub struct Binary {
    /// Working directory.
    pub dir: tempfile::TempDir,
    /// Environment (LIVEKIT_*, WARDEN_* from the parent are not inherited).
    pub env: Vec<(String, String)>,
}

impl Binary {
    /// A fresh working directory with no configuration and the test key in the environment.
    pub fn new() -> Self {
        let env = vec![
            ("LIVEKIT_API_KEY".into(), KEY.into()),
            ("LIVEKIT_API_SECRET".into(), SECRET.into()),
        ];
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            env,
        }
    }

    /// A working directory with no keys in the environment.
    pub fn without_keys() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            env: Vec::new(),
        }
    }

    /// Path of the binary.
    pub fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_warden"))
    }

    /// A command in the working directory with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::path());
        c.args(args).current_dir(self.dir.path()).env_clear();
        for k in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs a command to completion with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warden");
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait")
    }

    /// Writes `config/security.yaml` (found by default from the working directory).
    pub fn write_config(&self, yaml: &str) {
        let p = self.dir.path().join("config");
        std::fs::create_dir_all(&p).expect("mkdir");
        std::fs::write(p.join("security.yaml"), yaml).expect("write config");
    }

    /// Starts `warden serve` on a free port; returns once it listens.
    pub fn serve(&self, extra: &[&str]) -> Served {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        self.serve_command(self.command(&args))
    }

    /// [`Binary::serve`] in a process whose open-file limit is `nofile`
    /// (soft and hard, as `ulimit -n` sets them).
    pub fn serve_with_nofile(&self, nofile: u32, extra: &[&str]) -> Served {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(Self::path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(self.dir.path())
            .env_clear();
        for k in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(k) {
                c.env(k, v);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        self.serve_command(c)
    }

    fn serve_command(&self, mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let err_buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let eb = err_buf.clone();
        std::thread::spawn(move || {
            let mut s = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                eb.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out_buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let ob = out_buf.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut sent = false;
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut all = ob.lock().expect("lock");
                all.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&all).to_string();
                if !sent && let Some(i) = text.find("listening on http") {
                    let rest = &text[i + "listening on ".len()..];
                    if let Some(end) = rest.find('\n') {
                        let _ = tx.send(rest[..end].trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "warden did not start: {}",
                    String::from_utf8_lossy(&err_buf.lock().expect("lock"))
                )
            });
        Served {
            child,
            url,
            out: out_buf,
            err: err_buf,
        }
    }
}

/// A running `warden serve`.
pub struct Served {
    /// The process.
    pub child: Child,
    /// Base URL.
    pub url: String,
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Served {
    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }

    /// Everything written to stdout and stderr so far.
    pub fn output(&self) -> String {
        let out = String::from_utf8_lossy(&self.out.lock().expect("lock")).to_string();
        let err = String::from_utf8_lossy(&self.err.lock().expect("lock")).to_string();
        format!("{out}{err}")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server-sent event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    /// `id:` field.
    pub id: Option<String>,
    /// `event:` field (`message` when absent).
    pub event: String,
    /// `data:` lines joined.
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// A test SSE client over a real socket.
pub struct Sse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    resp: Option<reqwest::Response>,
    buf: String,
    /// Comment lines seen (e.g. ` ping`).
    pub comments: Vec<String>,
    /// Body of a refusal.
    pub body: String,
}

impl Sse {
    /// `GET {base}/api/events` with a roomList token: every room.
    pub async fn watch_all(base: &str) -> Sse {
        Sse::open(&format!("{base}/api/events"), Some(&list_token()), &[]).await
    }

    /// Opens `url` (path and query included) with optional bearer token and headers.
    pub async fn open(url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Sse {
        let c = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Sse::open_with(&c, url, token, headers).await
    }

    /// [`Sse::open`] with the given client (a source address, a CA of its own).
    pub async fn open_with(
        c: &reqwest::Client,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Sse {
        let mut req = c.get(url).header("accept", "text/event-stream");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = c
            .execute(req.build().expect("request"))
            .await
            .expect("connect");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if status == 200 {
            Sse {
                status,
                headers,
                resp: Some(resp),
                buf: String::new(),
                comments: Vec::new(),
                body: String::new(),
            }
        } else {
            let body = resp.text().await.unwrap_or_default();
            Sse {
                status,
                headers,
                resp: None,
                buf: String::new(),
                comments: Vec::new(),
                body,
            }
        }
    }

    /// The next event within `timeout`; `None` on timeout or end of stream.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.parse_one() {
                return Some(ev);
            }
            let resp = self.resp.as_mut()?;
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    self.resp = None;
                    return self.parse_one();
                }
                Err(_) => return None,
            }
        }
    }

    /// The next event named `name` (others are skipped).
    pub async fn next_named(&mut self, name: &str, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = self.next(left).await?;
            if ev.event == name {
                return Some(ev);
            }
        }
    }

    /// Collects events for `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Some(ev) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            out.push(ev);
        }
        out
    }

    /// True once the server has ended the stream.
    pub fn ended(&self) -> bool {
        self.resp.is_none()
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.find("\n\n")?;
            let block: String = self.buf[..end].to_owned();
            self.buf.drain(..end + 2);
            let (mut id, mut event, mut data) = (None, String::from("message"), Vec::new());
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(':') {
                    self.comments.push(c.to_owned());
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim_start().to_owned());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if !data.is_empty() {
                return Some(SseEvent {
                    id,
                    event,
                    data: data.join("\n"),
                });
            }
        }
    }
}

/// Body of a LiveKit `participant_joined` (camelCase protobuf JSON, int64 as strings).
pub fn participant_joined(
    room: &str,
    room_sid: &str,
    psid: &str,
    identity: &str,
    name: &str,
) -> Vec<u8> {
    let t = now();
    serde_json::to_vec(&json!({
        "event": "participant_joined",
        "room": {"sid": room_sid, "name": room, "emptyTimeout": 300, "creationTime": (t - 30).to_string(), "numParticipants": 1},
        "participant": {"sid": psid, "identity": identity, "name": name, "state": "ACTIVE", "joinedAt": (t - 5).to_string()},
        "id": format!("EV_{}", rand_hex()),
        "createdAt": t.to_string(),
    }))
    .expect("json")
}

/// Body of a LiveKit `room_started`.
pub fn room_started(room: &str, room_sid: &str) -> Vec<u8> {
    let t = now();
    serde_json::to_vec(&json!({
        "event": "room_started",
        "room": {"sid": room_sid, "name": room, "emptyTimeout": 300, "creationTime": t.to_string()},
        "id": format!("EV_{}", rand_hex()),
        "createdAt": t.to_string(),
    }))
    .expect("json")
}

/// Reads from `c` until `want` has appeared `times` times in `seen`:
/// `false` when the peer closes or 10 s pass first.
pub async fn read_until<S: tokio::io::AsyncRead + Unpin>(
    c: &mut S,
    seen: &mut String,
    want: &str,
    times: usize,
) -> bool {
    use tokio::io::AsyncReadExt as _;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.matches(want).count() < times {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return false,
        }
    }
    true
}

/// A raw HTTP/1.1 request for the event stream with [`list_token`].
pub fn events_request(host: &str) -> String {
    format!(
        "GET /api/events?token={} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n",
        list_token()
    )
}

/// POSTs a correctly signed webhook; returns the status.
pub async fn deliver(base: &str, body: &[u8]) -> u16 {
    deliver_signed(&client(), base, body, &sign_webhook(body, KEY, SECRET)).await
}

/// POSTs a webhook with `authorization` through `client`; returns the status.
pub async fn deliver_signed(
    client: &reqwest::Client,
    base: &str,
    body: &[u8],
    authorization: &str,
) -> u16 {
    client
        .post(format!("{base}/webhooks/livekit"))
        .header("authorization", authorization)
        .header("content-type", "application/webhook+json")
        .body(body.to_vec())
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}
