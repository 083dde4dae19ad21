//! `warden keys …` end to end: the real binary in a temporary working
//! directory, with a config file and an environment cleared of LIVEKIT_*.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

/// A working directory with `config.yaml` (key file `data/keys.yaml`), removed on drop.
pub struct Home {
    dir: PathBuf,
}

impl Home {
    pub fn new(extra_config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "warden-it-keys-{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cfg = format!(
            "livekit: {{keys_file: data/keys.yaml}}\nstorage: {{path: data/warden.db}}\n{extra_config}"
        );
        std::fs::write(dir.join("config.yaml"), cfg).expect("config");
        Self { dir }
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("data/keys.yaml")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
        c.arg("--config")
            .arg("config.yaml")
            .args(args)
            .current_dir(&self.dir)
            .env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            c.env("PATH", path);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("warden runs")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "warden {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Live keys in the key file (parsed as livekit-server would: a YAML map).
    pub fn key_file_keys(&self) -> Vec<(String, String)> {
        key_file_keys(&self.key_file())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key_file_keys(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("key file");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("key file is YAML");
    let map = doc.as_mapping().expect("key file is a YAML map");
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("string id").to_owned(),
                v.as_str().expect("string secret").to_owned(),
            )
        })
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
}

/// `api_key: …` / `api_secret: …` as printed by create and rotate.
fn new_key(stdout: &str) -> (String, String) {
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("field printed")
    };
    (field("api_key:"), field("api_secret:"))
}

fn list_json(home: &Home) -> Value {
    serde_json::from_str(&home.ok(&["keys", "list", "--json"])).expect("json")
}

fn state_of(list: &Value, id: &str) -> String {
    list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == id)
        .map(|k| k["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[test]
fn create_list_rotate_revoke_export() {
    let home = Home::new("");
    let (first, secret1) = new_key(&home.ok(&["keys", "create"]));
    assert!(first.starts_with("API") && first.len() == 15 && secret1.len() == 43);
    assert_eq!(home.key_file_keys(), vec![(first.clone(), secret1.clone())]);
    assert_eq!(mode(&home.key_file()), 0o600);

    let text = home.ok(&["keys", "list"]);
    assert!(
        text.contains(&first) && text.contains("active") && !text.contains(&secret1),
        "{text}"
    );

    let not_due = home.run(&["keys", "rotate"]);
    assert_eq!(not_due.status.code(), Some(1));
    let err = String::from_utf8_lossy(&not_due.stderr);
    assert!(
        err.contains("not due until") && err.trim().lines().count() == 1,
        "{err}"
    );

    let (second, secret2) = new_key(&home.ok(&["keys", "rotate", "--force"]));
    assert_ne!(second, first);
    let list = list_json(&home);
    assert_eq!(
        (state_of(&list, &first), state_of(&list, &second)),
        ("retiring".into(), "active".into())
    );
    let history: Vec<&str> = list["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(history, vec!["created", "rotated"]);
    assert!(!list.to_string().contains(&secret1) && !list.to_string().contains(&secret2));

    let export: serde_norway::Value =
        serde_norway::from_str(&home.ok(&["keys", "export", "--livekit"])).expect("yaml");
    assert_eq!(
        export.get(first.as_str()).and_then(|v| v.as_str()),
        Some(secret1.as_str()),
        "retiring key exported during the overlap"
    );
    assert_eq!(
        export.get(second.as_str()).and_then(|v| v.as_str()),
        Some(secret2.as_str())
    );

    home.ok(&["keys", "revoke", &first]);
    assert_eq!(
        home.key_file_keys(),
        vec![(second.clone(), secret2)],
        "revoked key leaves the key file"
    );
    assert_eq!(mode(&home.key_file()), 0o600);
    assert_eq!(state_of(&list_json(&home), &first), "revoked");
    let unknown = home.run(&["keys", "revoke", "APIdoesNotExist"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown key id APIdoesNotExist"));
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_one_line() {
    let home = Home::new("");
    home.ok(&["keys", "create"]);
    std::fs::set_permissions(home.key_file(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    for args in [
        &["keys", "list"][..],
        &["token", "create", "--identity", "x", "--grant", "roomList"][..],
    ] {
        let out = home.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("keys.yaml") && err.contains("0644"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn killing_rotations_at_random_moments_never_loses_a_key() {
    let home = Home::new("");
    home.ok(&["keys", "create"]);
    // Kill times spread over a whole rotation (measured here), so kills land
    // before, during and after the writes.
    let started = std::time::Instant::now();
    home.ok(&["keys", "rotate", "--force"]);
    let span = u64::try_from(started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1_000)
        * 5
        / 4;
    let mut rng = rand::rng();
    let (mut killed, mut finished) = (0, 0);
    for round in 0..40 {
        let before: BTreeSet<(String, String)> = home.key_file_keys().into_iter().collect();
        let mut child = home
            .command(&["keys", "rotate", "--force"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..span)));
        let _ = child.kill(); // SIGKILL: no destructor, no cleanup
        let out = child.wait_with_output().expect("reaped");
        let after: BTreeSet<(String, String)> = home.key_file_keys().into_iter().collect();
        assert!(before.is_subset(&after), "round {round}: a key was lost");
        assert_eq!(mode(&home.key_file()), 0o600, "round {round}");
        let meta =
            std::fs::read_to_string(home.dir.join("data/keys.yaml.meta.json")).expect("meta");
        serde_json::from_str::<Value>(&meta)
            .unwrap_or_else(|e| panic!("round {round}: metadata unreadable: {e}"));
        if out.status.success() {
            finished += 1;
            let (id, secret) = new_key(&String::from_utf8_lossy(&out.stdout));
            assert!(
                after.contains(&(id, secret)),
                "round {round}: a printed key is not in the file"
            );
        } else {
            killed += 1;
        }
        // Every state a kill leaves behind loads.
        let list = list_json(&home);
        assert!(list["keys"].as_array().is_some_and(|k| !k.is_empty()));
    }
    eprintln!("rotations killed: {killed}, finished: {finished}");
    // The last round may itself have been killed mid-write: one more writer
    // (which takes the lock) must clean up whatever killed writers left.
    home.ok(&["keys", "rotate", "--force"]);
    let leftovers: Vec<_> = std::fs::read_dir(home.dir.join("data"))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a locked writer cleans up killed writers' temp files"
    );
}

#[test]
fn the_security_example_runs() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_warden"));
    let example = bin.parent().expect("target dir").join("examples/security");
    if !example.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--example", "security"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo");
        assert!(st.success(), "building examples/security failed");
    }
    let out = Command::new(&example)
        .env_clear()
        .output()
        .expect("example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "key format",
        "storage hash",
        "masked",
        "rotated",
        "verified",
        "access",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
fn key_changes_are_audited_first_and_refused_when_the_audit_log_cannot_write() {
    let home = Home::new("");
    home.ok(&["keys", "create"]);
    home.ok(&["keys", "rotate", "--force"]);
    let tail = home.ok(&["audit", "tail", "-n", "10"]);
    let actions: Vec<String> = tail
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "KEY_ROTATION")
        .map(|e| e["details"]["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        actions.contains(&"create".to_owned()) && actions.contains(&"rotate --force".to_owned()),
        "{tail}"
    );
    // An audit store that cannot be written: the rotation is refused, no key changes.
    let before = home.key_file_keys();
    for f in ["data/warden.db-wal", "data/warden.db-shm"] {
        let _ = std::fs::remove_file(home.dir.join(f));
    }
    std::fs::write(home.dir.join("data/warden.db"), vec![0x42; 8192]).expect("corrupt");
    let out = home.run(&["keys", "rotate", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("audit") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no secret may be printed for a refused rotation"
    );
    assert_eq!(
        home.key_file_keys(),
        before,
        "the key file changed although the rotation was refused"
    );
}

/// Rotation end to end against a running server (manual clock): the old key's
/// webhooks and tokens are accepted during the overlap, the new key at once,
/// the old one refused after; the key file stays valid YAML with mode 0600.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_against_a_running_server_honours_the_overlap() {
    use crate::support;
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64;
    let clock = warden::clock::Clock::manual(start);
    let s = support::spawn_clocked(
        "key_rotation: {overlap_period_minutes: 1}",
        &[],
        clock.clone(),
    )
    .await;
    let ring = s.state.keys.clone();
    let (old_id, old_secret) = ring.create_key(clock.now_ms(), "test").expect("create");
    let (rotated, new_secret) = ring.rotate(clock.now_ms(), true, "test").expect("rotate");
    assert_eq!(
        ring.signing_key().map(|(k, _)| k),
        Some(rotated.new_id.clone()),
        "new tokens use the new key"
    );
    let hook = |id: &str, secret: &str| {
        let body = support::room_started(
            &format!("rot-{}", support::rand_hex()),
            &format!("RM_{}", support::rand_hex()),
        );
        let auth = support::sign_webhook(&body, id, secret);
        (body, auth)
    };
    let post = |(body, auth): (Vec<u8>, String)| {
        let url = format!("{}/webhooks/livekit", s.url);
        async move {
            support::client()
                .post(url)
                .header("authorization", auth)
                .body(body)
                .send()
                .await
                .expect("req")
                .status()
                .as_u16()
        }
    };
    let rooms = |token: String| {
        let url = format!("{}/api/rooms", s.url);
        async move {
            support::client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("req")
                .status()
                .as_u16()
        }
    };
    let old_token = support::access_token(
        &old_id,
        old_secret.expose(),
        "o",
        serde_json::json!({"roomList": true}),
        3600,
    );
    let new_token = support::access_token(
        &rotated.new_id,
        new_secret.expose(),
        "n",
        serde_json::json!({"roomList": true}),
        3600,
    );
    // Inside the overlap: both keys verify.
    assert_eq!(
        post(hook(&old_id, old_secret.expose())).await,
        200,
        "old key inside the overlap"
    );
    assert_eq!(
        post(hook(&rotated.new_id, new_secret.expose())).await,
        200,
        "new key at once"
    );
    assert_eq!(rooms(old_token.clone()).await, 200);
    assert_eq!(rooms(new_token.clone()).await, 200);
    let text = std::fs::read_to_string(s.dir.path().join("data/keys.yaml")).expect("key file");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    assert!(
        doc.get(old_id.as_str()).is_some() && doc.get(rotated.new_id.as_str()).is_some(),
        "both keys in the file during the overlap"
    );
    assert_eq!(mode(&s.dir.path().join("data/keys.yaml")), 0o600);
    // After the overlap: the old key is refused, the new one still works.
    clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(
        post(hook(&old_id, old_secret.expose())).await,
        401,
        "old key after the overlap"
    );
    assert_eq!(rooms(old_token).await, 401);
    assert_eq!(post(hook(&rotated.new_id, new_secret.expose())).await, 200);
    assert_eq!(rooms(new_token).await, 200);
    s.stop().await;
}
