"""Shared fixtures: a configuration in a temporary directory, API keys in the
environment (as `warden serve` reads them), and a fresh process-wide manager
for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import warden

# The masking corpus's known secret (src/redact/tests.rs) doubles as the API
# secret: the manager then masks it as the Rust test's masker does.
KEY = "APIwardenPy2345"
SECRET = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW"
OTHER_KEY = "APIotherKey2345"
OTHER_SECRET = "Qp7wE2rT9yU4iO1pA6sD3fG8hJ5kL0zX2cV7bN4mQ"

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp: Path, extra: str = "", name: str = "security.yaml") -> Path:
    data = tmp / "data"
    cfg = tmp / name
    cfg.write_text(
        f"""
storage:
  path: {data / "warden.db"}
livekit:
  keys_file: {data / "keys.yaml"}
suspicious_activity:
  max_failed_attempts: 3
{extra}
"""
    )
    return cfg


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No LIVEKIT_*/WARDEN_* from the outside; the test key in the environment; cwd in tmp."""
    for name in list(os.environ):
        if name.startswith(("LIVEKIT_", "WARDEN_")) or name == "SECURITY_WEBHOOK_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(warden._manager, "_instance", None)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def manager(config_file: Path) -> warden.SecurityManager:
    return warden.SecurityManager(config_file)
