"""What crosses the Rust/Python boundary: exceptions, never panics or secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import KEY, SECRET, write_config

import warden
from warden import _native


def test_a_rust_panic_becomes_a_warden_error():
    with pytest.raises(warden.WardenError, match="internal error in Warden's native core") as e:
        _native._panic_for_tests("boom")
    assert isinstance(e.value, Exception)  # PyO3's PanicException is a BaseException
    assert "boom" in str(e.value)


def test_a_panic_message_is_masked():
    with pytest.raises(warden.WardenError) as e:
        _native._panic_for_tests("failed with password=correcthorse")
    assert "correcthorse" not in str(e.value)


def test_the_exception_hierarchy():
    for cls in (warden.TokenError, warden.WebhookError, warden.ConfigError, warden.AccessDenied):
        assert issubclass(cls, warden.WardenError)
    assert issubclass(warden.WardenError, Exception)
    assert issubclass(warden.AccessDenied, PermissionError)
    e = warden.AccessDenied("missing grants: roomAdmin", ["roomAdmin"])
    assert str(e) == "missing grants: roomAdmin" and e.missing == ["roomAdmin"]


def test_no_secret_in_repr(manager, config_file):
    for obj in (
        manager,
        warden.AccessToken(KEY, SECRET),
        warden.WebhookReceiver({KEY: SECRET}, manager=manager),
        manager._core,
    ):
        text = repr(obj)
        assert SECRET not in text, text
    assert repr(manager) == f'<warden.SecurityManager config="{config_file}" keys=1>'


def test_no_secret_in_exception_text(manager, monkeypatch, tmp_path):
    # A key file whose secret is too short: the error names the key, never the secret.
    keys = tmp_path / "data" / "keys.yaml"
    keys.parent.mkdir(exist_ok=True)
    keys.write_text("APIshortKey2345: tooShortSecret99\n")
    keys.chmod(0o600)
    with pytest.raises(warden.ConfigError) as e:
        warden.SecurityManager(write_config(tmp_path))
    assert "APIshortKey2345" in str(e.value) and "tooShortSecret99" not in str(e.value)
    # A token carrying the secret as its issuer is refused without echoing it.
    import jwt as pyjwt

    token = pyjwt.encode({"iss": SECRET, "exp": 4102444800}, SECRET, algorithm="HS256")
    with pytest.raises(warden.TokenError) as e:
        manager.verify_token(token)
    assert SECRET not in str(e.value)
    with pytest.raises(ValueError) as e:
        manager.enforce_wss_connections(f"::{SECRET}")
    assert SECRET not in str(e.value)


def test_wrong_argument_types_are_type_errors(manager):
    with pytest.raises(TypeError):
        manager.protect_api_keys_in_logs(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        manager.validate_access_rights(["roomJoin"], ["roomJoin"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        manager.validate_access_rights({"roomJoin": "yes"}, ["roomJoin"])


def test_a_panic_is_reported_masked_on_stderr():
    # Std's default hook would print the raw message; the module's hook masks it.
    code = (
        "import warden\n"
        "try:\n"
        "    warden._native._panic_for_tests('leaked password=correcthorse')\n"
        "except warden.WardenError as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "WardenError"
    assert "warden: panic at" in out.stderr and "password=***MASKED***" in out.stderr
    assert "correcthorse" not in out.stderr
