"""get_security_status(url=…) asks a running gateway: the real `warden serve`
binary (WARDEN_BIN; scripts/test.sh points it at the one `cargo test` built)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import write_config

import warden

WARDEN_BIN = os.environ.get("WARDEN_BIN", "")

pytestmark = pytest.mark.skipif(
    not os.access(WARDEN_BIN, os.X_OK), reason="WARDEN_BIN names no gateway binary (scripts/test.sh sets it)"
)


@pytest.fixture
def gateway(tmp_path):
    # strict_mode: false lets a loopback URL stay plain http (as in local development).
    cfg = write_config(tmp_path, "access_validation:\n  strict_mode: false\n", name="gateway.yaml")
    proc = subprocess.Popen(
        [WARDEN_BIN, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        for line in proc.stdout:
            if line.startswith("warden listening on "):
                yield cfg, line.split()[-1]
                break
        else:
            pytest.fail("the gateway did not start: " + proc.stderr.read()[-2000:])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_status_of_a_running_gateway(gateway):
    cfg, url = gateway
    manager = warden.SecurityManager(cfg)
    status = manager.get_security_status(url=url)
    assert status["overall_status"] in ("healthy", "degraded")
    assert "checks" in status and "keys" in status
    # A token without the admin grants is refused by the gateway.
    user = warden.AccessToken(manager=manager).with_identity("u").with_grants({"roomJoin": True}).to_jwt()
    with pytest.raises(warden.WardenError, match="answered 403"):
        manager.get_security_status(url=url, token=user)


def test_an_admin_token_is_never_sent_over_plain_http_in_strict_mode(gateway, config_file):
    _, url = gateway
    with pytest.raises(warden.WardenError, match="refusing to send an admin token"):
        warden.SecurityManager(config_file).get_security_status(url=url)
