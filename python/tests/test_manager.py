"""Each SecurityManager method, against the gateway's rules."""

from __future__ import annotations

import json
import re

import pytest
from conftest import KEY, OTHER_KEY, OTHER_SECRET, SECRET, write_config

import warden


def test_reads_the_same_yaml_and_environment_as_the_binary(tmp_path, monkeypatch, config_file):
    m = warden.SecurityManager(config_file)
    assert m.get_security_status()["config"] == str(config_file)
    # $LIVEKIT_SECURITY_CONFIG when no path is given.
    monkeypatch.setenv("LIVEKIT_SECURITY_CONFIG", str(config_file))
    assert warden.SecurityManager().get_security_status()["config"] == str(config_file)
    # LIVEKIT_KEYS adds keys ("key: secret" lines).
    monkeypatch.setenv("LIVEKIT_KEYS", f"{OTHER_KEY}: {OTHER_SECRET}")
    ids = {k["id"] for k in warden.SecurityManager(config_file).get_security_status()["keys"]}
    assert ids == {KEY, OTHER_KEY}


def test_configuration_errors_name_the_key_and_never_a_secret(tmp_path):
    bad = write_config(tmp_path, "  max_failed_attempts_typo: 3\n")
    with pytest.raises(warden.ConfigError, match="suspicious_activity"):
        warden.SecurityManager(bad)
    with pytest.raises(warden.ConfigError, match="cannot read"):
        warden.SecurityManager(tmp_path / "nope.yaml")


def test_a_weak_secret_is_refused_in_strict_mode_without_showing_it(monkeypatch, config_file):
    monkeypatch.setenv("LIVEKIT_API_SECRET", "short-secret-value")
    with pytest.raises(warden.ConfigError) as e:
        warden.SecurityManager(config_file)
    assert "at least 32" in str(e.value)
    assert "short-secret-value" not in str(e.value)


def test_validate_api_key_format(manager):
    assert manager.validate_api_key_format("APIabcdEFGH2345")
    assert manager.validate_api_key_format(KEY)
    for bad in ("", "sk-test123456789", "APIshort", "APIabcdEFGH0345", "apiabcdEFGH2345"):
        assert not manager.validate_api_key_format(bad), bad
    assert "base57" in manager.api_key_format_error("APIabcdEFGH0345")


def test_hash_api_key_for_storage_is_peppered_and_stable(manager, config_file, tmp_path):
    h = manager.hash_api_key_for_storage("sk-secret123")
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert h != manager.hash_api_key_for_storage("sk-secret124")
    # The deployment pepper is created beside the store (0600) and reused.
    pepper = tmp_path / "data" / "pepper"
    assert pepper.stat().st_mode & 0o777 == 0o600
    assert warden.SecurityManager(config_file).hash_api_key_for_storage("sk-secret123") == h


def test_enforce_wss_connections(manager):
    assert manager.enforce_wss_connections("ws://livekit.example.com") == "wss://livekit.example.com/"
    assert manager.enforce_wss_connections("http://h:7880/twirp") == "https://h:7880/twirp"
    assert manager.enforce_wss_connections("wss://h/") == "wss://h/"
    with pytest.raises(ValueError) as e:
        manager.enforce_wss_connections("not a url password=hunter2hunter2")
    assert "hunter2hunter2" not in str(e.value)


def test_validate_connection_protocol(manager, tmp_path):
    assert manager.validate_connection_protocol("https://livekit.example.com")
    assert manager.validate_connection_protocol("wss://livekit.example.com")
    assert not manager.validate_connection_protocol("ws://livekit.example.com")
    assert not manager.validate_connection_protocol("http://127.0.0.1:7880")
    assert not manager.validate_connection_protocol("ftp://h/")
    lax = warden.SecurityManager(write_config(tmp_path, "access_validation:\n  strict_mode: false\n"))
    assert lax.validate_connection_protocol("http://127.0.0.1:7880")
    assert not lax.validate_connection_protocol("http://livekit.example.com")


def test_validate_jwt_token_structure(manager):
    token = warden.AccessToken(manager=manager).with_identity("a").to_jwt()
    assert manager.validate_jwt_token_structure(token)
    for bad in ("", "abc", "a.b", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ."):
        assert not manager.validate_jwt_token_structure(bad), bad


def test_validate_access_rights(manager):
    grants = {"roomJoin": True, "canPublish": True}
    assert manager.validate_access_rights(grants, ["roomJoin", "canPublish"])
    assert not manager.validate_access_rights(grants, ["roomJoin", "roomAdmin"])
    assert manager.missing_grants(grants, ["roomAdmin", "roomCreate"]) == ["roomAdmin", "roomCreate"]
    # LiveKit's defaults: canSubscribe is true when absent, roomAdmin false.
    assert manager.validate_access_rights({}, ["canSubscribe"])
    assert not manager.validate_access_rights({"canPublish": False}, ["canPublishData"])
    # Whole claims (as verify_token returns them) work too.
    assert manager.validate_access_rights({"sub": "a", "video": {"roomAdmin": True}}, ["roomAdmin"])
    with pytest.raises(ValueError, match="unknown grant"):
        manager.validate_access_rights(grants, ["roomJion"])


def test_verify_token(manager):
    token = (
        warden.AccessToken(manager=manager)
        .with_identity("alice")
        .with_name("Alice")
        .with_grants({"roomJoin": True, "room": "demo"})
        .to_jwt()
    )
    claims = manager.verify_token(token)
    assert claims["sub"] == "alice" and claims["iss"] == KEY and claims["name"] == "Alice"
    assert claims["video"] == {"roomJoin": True, "room": "demo"}
    with pytest.raises(warden.TokenError, match="signature is invalid"):
        manager.verify_token(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    expired = warden.AccessToken(KEY, SECRET).with_identity("a").with_ttl(1).to_jwt()
    with pytest.raises(warden.TokenError, match="malformed"):
        manager.verify_token("not-a-token")
    other = warden.AccessToken(OTHER_KEY, OTHER_SECRET).with_identity("a").to_jwt()
    with pytest.raises(warden.TokenError, match="not a known"):
        manager.verify_token(other)
    assert manager.verify_token(expired)["sub"] == "a"  # within exp + leeway


def test_record_auth_attempt_and_is_ip_blocked(manager):
    ip = "198.51.100.7"
    manager.record_auth_attempt(ip, True, user_identity="alice")
    assert not manager.is_ip_blocked(ip)
    for _ in range(3):  # max_failed_attempts: 3 in the test configuration
        manager.record_auth_attempt(ip, False, user_identity="alice@example.com")
    assert manager.is_ip_blocked(ip)
    assert not manager.is_ip_blocked("198.51.100.8")
    status = manager.get_security_status()
    assert status["overall_status"] == "degraded"
    assert [b["client"] for b in status["blocked"]] == [ip]
    types = [e["type"] for e in status["recent_events"]]
    assert "MULTIPLE_FAILED_AUTH" in types and "SUSPICIOUS_LOGIN" in types
    # The identity is kept hashed, never as given.
    assert "alice@example.com" not in repr(status)
    assert any(re.fullmatch(r"[0-9a-f]{8}", e["identity"] or "") for e in status["recent_events"])
    with pytest.raises(ValueError):
        manager.record_auth_attempt("not-an-ip", False)


def test_the_static_blocklist_blocks(tmp_path):
    m = warden.SecurityManager(write_config(tmp_path, "  blocklist: [203.0.113.0/24]\n"))
    assert m.is_ip_blocked("203.0.113.9")
    assert not m.is_ip_blocked("203.0.114.9")


def test_get_security_status_locally(manager):
    status = manager.get_security_status()
    assert status["overall_status"] == "healthy"
    assert status["source"] == "local"
    (key,) = status["keys"]
    assert key["id"] == KEY and key["state"] == "active" and re.fullmatch(r"[0-9a-f]{8}", key["fingerprint"])
    assert status["blocked"] == [] and status["recent_events"] == []
    assert set(status["counts"]) == {"1h", "24h"}
    assert SECRET not in repr(status)


def test_no_key_at_all_is_critical(monkeypatch, config_file):
    monkeypatch.delenv("LIVEKIT_API_KEY")
    monkeypatch.delenv("LIVEKIT_API_SECRET")
    m = warden.SecurityManager(config_file)
    assert m.get_security_status()["overall_status"] == "critical"
    with pytest.raises(warden.TokenError, match="no active API key"):
        warden.AccessToken(manager=m).with_identity("a").to_jwt()


def test_get_security_manager_is_process_wide(monkeypatch, config_file):
    monkeypatch.setenv("LIVEKIT_SECURITY_CONFIG", str(config_file))
    a = warden.get_security_manager()
    assert a is warden.get_security_manager()
    assert isinstance(a, warden.SecurityManager)


def test_record_api_usage_counts_and_flags_unusual_usage(tmp_path):
    m = warden.SecurityManager(write_config(tmp_path, "  unusual_usage_threshold: 5\n"))
    for _ in range(7):
        m.record_api_usage("create_room", "198.51.100.20", response_time=0.5)
    status = m.get_security_status()
    assert status["guard"]["api_requests_total"] == 7
    (event,) = [e for e in status["recent_events"] if e["type"] == "UNUSUAL_API_USAGE"]
    assert event["source_ip"] == "198.51.100.20"
    with pytest.raises(ValueError):
        m.record_api_usage("x", "198.51.100.20", response_time=-1)


def test_is_key_rotation_due(manager, tmp_path, monkeypatch):
    # Keys from the environment are never rotated by Warden.
    assert not manager.is_key_rotation_due()
    # A key Warden owns (key file + metadata) created in 2023 is due under the 24 h default.
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    keys = data / "keys.yaml"
    keys.write_text(f"APIownedKey2345: {OTHER_SECRET}\n")
    keys.chmod(0o600)
    created = {"created_ms": 1700000000000, "state": "active", "fingerprint": "00000000"}
    meta = {"version": 1, "keys": {"APIownedKey2345": created}}
    (data / "keys.yaml.meta.json").write_text(json.dumps(meta))
    (data / "keys.yaml.meta.json").chmod(0o600)
    owned = warden.SecurityManager(write_config(tmp_path, name="owned.yaml"))
    assert owned.is_key_rotation_due()
    assert owned.get_security_status()["overall_status"] == "degraded"
