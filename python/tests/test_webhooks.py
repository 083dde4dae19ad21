"""Webhooks signed as LiveKit signs them (with livekit-api) verify in
WebhookReceiver as in the gateway; the stdlib example serves them."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import KEY, OTHER_KEY, OTHER_SECRET, REPO, SECRET
from livekit import api

import warden


def joined(event_id: str = "EV_1") -> bytes:
    return json.dumps(
        {
            "event": "participant_joined",
            "id": event_id,
            "createdAt": "1700000000",
            "room": {"sid": "RM_abc", "name": "demo", "turnPassword": "TURNsecret123", "metadata": "room-meta"},
            "participant": {
                "sid": "PA_xyz",
                "identity": "alice@example.com",
                "name": "Alice",
                "state": "ACTIVE",
                "metadata": "participant-meta-blob",
                "attributes": {"role": "attr-value"},
            },
        }
    ).encode()


def sign(body: bytes, key: str = KEY, secret: str = SECRET, ttl: int = 300) -> str:
    """The Authorization header livekit-server sends: a JWT with the body's sha256 (livekit-api's format)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).with_ttl(datetime.timedelta(seconds=ttl)).to_jwt()


def test_livekit_signed_webhooks_verify_and_are_sanitised(manager):
    body = joined()
    auth = sign(body)
    # livekit-api's own receiver accepts this delivery: it is signed as LiveKit signs.
    assert api.WebhookReceiver(api.TokenVerifier(KEY, SECRET)).receive(body.decode(), auth).id == "EV_1"
    event = warden.WebhookReceiver(manager=manager).receive(body, auth)
    assert event["id"] == "EV_1" and event["type"] == "livekit" and event["event"] == "participant_joined"
    assert abs(event["timestamp"] - time.time() * 1000) < 60_000
    data = event["data"]
    assert data["room"]["name"] == "demo" and data["participant"]["sid"] == "PA_xyz"
    assert data["participant"]["state"] == "active"
    # Identities hashed with the deployment pepper; metadata, attributes, TURN passwords gone.
    assert len(data["participant"]["identity"]) == 8
    text = json.dumps(event)
    for leaked in ("alice@example.com", "TURNsecret123", "room-meta", "participant-meta-blob", "attr-value"):
        assert leaked not in text


def test_retries_and_other_event_kinds_are_acknowledged_without_an_event(manager):
    rx = warden.WebhookReceiver({KEY: SECRET}, manager=manager)
    body = joined("EV_dup")
    assert rx.receive(body, sign(body)) is not None
    assert rx.receive(body, sign(body)) is None
    other = json.dumps({"event": "something_new", "id": "EV_x"}).encode()
    assert rx.receive(other, sign(other)) is None


@pytest.mark.parametrize(
    "case,code,status",
    [
        ("missing", "invalid_signature", 401),
        ("tampered", "invalid_signature", 401),
        ("foreign_key", "invalid_signature", 401),
        ("expired", "invalid_signature", 401),
        ("not_json", "malformed_body", 400),
        ("schema", "invalid_event", 400),
    ],
)
def test_refusals_carry_the_gateways_code_and_status(manager, case, code, status):
    body = joined()
    if case == "missing":
        auth = ""
    elif case == "tampered":
        auth = sign(body)
        body = body.replace(b"demo", b"omed")
    elif case == "foreign_key":
        auth = sign(body, OTHER_KEY, OTHER_SECRET)
    elif case == "expired":
        auth = sign(body, ttl=-3600)
    elif case == "not_json":
        body = b"{not json"
        auth = sign(body)
    else:
        body = json.dumps({"event": 5}).encode()
        auth = sign(body)
    with pytest.raises(warden.WebhookError) as e:
        warden.WebhookReceiver(manager=manager).receive(body, auth)
    assert (e.value.code, e.value.status) == (code, status)
    assert SECRET not in str(e.value) and (not auth or auth not in str(e.value))


def test_explicit_keys_verify_and_never_show(manager):
    rx = warden.WebhookReceiver({OTHER_KEY: OTHER_SECRET}, manager=manager)
    body = joined("EV_other")
    assert rx.receive(body, sign(body, OTHER_KEY, OTHER_SECRET))["id"] == "EV_other"
    with pytest.raises(warden.WebhookError):
        rx.receive(body, sign(body))  # the manager's key is not one of this receiver's
    assert OTHER_SECRET not in repr(rx) and OTHER_KEY in repr(rx)


def test_failed_signatures_are_audited(manager):
    with pytest.raises(warden.WebhookError):
        warden.WebhookReceiver(manager=manager).receive(joined(), "bogus", source_ip="192.0.2.9")
    (event,) = [e for e in manager.get_security_status()["recent_events"] if e["type"] == "WEBHOOK_INVALID_SIGNATURE"]
    assert event["source_ip"] == "192.0.2.9" and event["details"]["reason"] == "malformed"


def _post(url: str, body: bytes, auth: str):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_stdlib_example_serves_signed_webhooks(config_file, tmp_path):
    env = dict(os.environ, LIVEKIT_SECURITY_CONFIG=str(config_file), PYTHONUNBUFFERED="1")
    script = REPO / "python" / "examples" / "webhook_server.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split()[-1] + "/webhooks/livekit"
        body = joined("EV_example")
        assert _post(url, body, sign(body)) == (200, {"ok": True})
        event = json.loads(proc.stdout.readline())
        assert event["id"] == "EV_example" and event["data"]["room"]["name"] == "demo"
        assert _post(url, body, sign(body)) == (200, {"ok": True})  # a retry: acknowledged, not printed
        assert _post(url, body, "Bearer " + sign(b"other")) == (401, {"error": "invalid_signature"})
        assert _post(url, b"[]", sign(b"[]")) == (400, {"error": "invalid_event"})
    finally:
        proc.terminate()
        rest, err = proc.communicate(timeout=10)
    assert rest.strip() == ""  # the retry printed no second event
    assert "POST /webhooks/livekit" in err
    assert SECRET not in err
