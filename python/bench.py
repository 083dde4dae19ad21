"""Per-call cost from Python: Warden's native core vs pure-Python equivalents.

    python/.venv/bin/python python/bench.py [--n 20000]

- masking: `SecurityManager.protect_api_keys_in_logs` vs a pure-Python `re`
  masker with the same patterns (`PyMasker` below), over the shared corpus;
- token verify: `SecurityManager.verify_token` vs livekit-api's `TokenVerifier`;
- webhook verify: `WebhookReceiver.receive` (signature, JSON, schema,
  sanitising, replay check) vs livekit-api's `WebhookReceiver` (signature and
  protobuf parsing only), one distinct signed delivery per call.

Needs the test dependencies (python/requirements-dev.txt) and the package installed.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The installed package, not the source tree beside this file (it lacks the
# compiled `_native`); the test helpers for the shared corpus.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE / "tests"))

import corpus  # noqa: E402
from livekit import api  # noqa: E402

KEY = "APIbenchKey2345"
SECRET = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW"


class PyMasker:
    """The gateway's core masking patterns (JWT, PEM, bearer, userinfo, `key=value`)
    written with Python's `re`: the pure-Python baseline. It leaves out the
    gateway's later rules (webhook URLs, forge tokens, prose), so it is the
    cheaper of the two; the bench prints on how many lines they agree."""

    MASK = "***MASKED***"
    KEY_NAMES = (
        r"(?:[A-Za-z0-9_.-]*?(?:api[_-]?key|api[_-]?secret|secret|secret[_-]?key|token|access[_-]?token"
        r"|refresh[_-]?token|id[_-]?token|password|passwd|pwd|private[_-]?key|credential|credentials"
        r"|signature|warden_token))"
    )

    def __init__(self, known: list) -> None:
        pem = r"(?P<pem>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*))"
        jwt = r"(?P<jwt>\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)"
        bearer = r"(?P<scheme>\b(?i:bearer|basic)\s+)(?P<cred>[A-Za-z0-9._~+/=-]{4,})"
        whsec = r"(?P<whsec>\bwhsec_[A-Za-z0-9+/=_-]{8,})"
        userinfo = r"(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<upw>[^@\s/]+)@"
        kv = r"(?P<kv>(?i:\b" + self.KEY_NAMES + r")\b[\"']?\s*[:=]\s*)(?P<q>[\"']?)(?P<val>[^\"'\s,;&}\]]+)"
        self.pattern = re.compile("|".join((pem, jwt, whsec, userinfo, bearer, kv)))
        known = sorted((k for k in known if len(k) >= 8), key=len, reverse=True)
        self.known = re.compile("|".join(map(re.escape, known))) if known else None

    def _replace(self, m: re.Match) -> str:
        if m.group("pem") or m.group("jwt") or m.group("whsec"):
            return self.MASK
        if m.group("userinfo"):
            return m.group("userinfo") + self.MASK + "@"
        if m.group("scheme"):
            return m.group("scheme") + self.MASK
        val = m.group("val")
        if val == self.MASK or val.startswith("***"):
            return m.group(0)
        return m.group("kv") + m.group("q") + self.MASK

    def mask(self, text: str) -> str:
        if self.known is not None:
            text = self.known.sub(self.MASK, text)
        return self.pattern.sub(self._replace, text)


def per_call(fn, items: list, n: int) -> float:
    """Microseconds per call of `fn` over `items`, cycled to `n` calls (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(n):
            fn(items[i % len(items)])
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def signed(event_id: str) -> tuple:
    body = json.dumps(
        {
            "event": "participant_joined",
            "id": event_id,
            "createdAt": "1700000000",
            "room": {"sid": "RM_abc", "name": "demo", "numParticipants": 2},
            "participant": {"sid": "PA_x", "identity": "alice@example.com", "name": "Alice", "state": "ACTIVE"},
        }
    ).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    auth = api.AccessToken(KEY, SECRET).with_sha256(digest).with_ttl(datetime.timedelta(minutes=5)).to_jwt()
    return body, auth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000, help="calls per measurement")
    n = parser.parse_args().n

    os.environ.update(LIVEKIT_API_KEY=KEY, LIVEKIT_API_SECRET=SECRET)
    tmp = Path(tempfile.mkdtemp(prefix="warden-bench-"))
    cfg = tmp / "security.yaml"
    cfg.write_text(f"storage:\n  path: {tmp / 'warden.db'}\nlivekit:\n  keys_file: {tmp / 'keys.yaml'}\n")
    import warden

    manager = warden.SecurityManager(cfg)
    shared = corpus.read()
    lines = [m.line for m in shared.masked] + shared.kept
    py = PyMasker([SECRET])
    agree = sum(py.mask(line) == manager.protect_api_keys_in_logs(line) for line in lines)

    token = (
        api.AccessToken(KEY, SECRET)
        .with_identity("alice")
        .with_grants(api.VideoGrants(room_join=True, room="demo"))
        .to_jwt()
    )
    verifier = api.TokenVerifier(KEY, SECRET)
    deliveries = [signed(f"EV_{i}") for i in range(min(n, 5000))]
    lk_rx = api.WebhookReceiver(verifier)

    rows = [
        ("masking (corpus line)", per_call(manager.protect_api_keys_in_logs, lines, n), per_call(py.mask, lines, n)),
        ("token verify", per_call(manager.verify_token, [token], n), per_call(verifier.verify, [token], n)),
    ]
    m = len(deliveries)
    best_w = float("inf")
    for _ in range(3):
        # A fresh receiver per pass, so every call is a first delivery (no replay shortcut).
        rx = warden.WebhookReceiver(manager=manager)
        start = time.perf_counter()
        for body, auth in deliveries:
            rx.receive(body, auth)
        best_w = min(best_w, (time.perf_counter() - start) / m * 1e6)
    text_deliveries = [(b.decode(), a) for b, a in deliveries]
    best_l = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for b, a in text_deliveries:
            lk_rx.receive(b, a)
        best_l = min(best_l, (time.perf_counter() - start) / m * 1e6)
    rows.append(("webhook verify", best_w, best_l))

    print(f"python {sys.version.split()[0]}, {n} calls per row (webhooks: {m} distinct deliveries), best of 3")
    print(f"masking output identical to the pure-Python masker on {agree}/{len(lines)} corpus lines")
    print(f"{'':24} {'warden (native)':>16} {'pure Python':>14} {'speed-up':>9}")
    for name, native, pure in rows:
        print(f"{name:24} {native:13.2f} µs {pure:11.2f} µs {pure / native:8.1f}x")


if __name__ == "__main__":
    main()
