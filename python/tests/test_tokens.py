"""Tokens across the SDK boundary, and the security_required decorator."""

from __future__ import annotations

import asyncio
import datetime
import time

import jwt as pyjwt
import pytest
from conftest import KEY, SECRET
from livekit import api

import warden


def test_livekit_api_tokens_verify_in_warden(manager):
    token = (
        api.AccessToken(KEY, SECRET)
        .with_identity("agent-7")
        .with_name("Agent")
        .with_kind("agent")
        .with_metadata('{"x":1}')
        .with_attributes({"role": "bot"})
        .with_grants(api.VideoGrants(room_join=True, room="demo", can_publish=False, room_admin=True))
        .with_ttl(datetime.timedelta(minutes=10))
        .to_jwt()
    )
    claims = manager.verify_token(token)
    assert claims["sub"] == "agent-7" and claims["iss"] == KEY
    assert claims["name"] == "Agent" and claims["kind"] == "agent" and claims["metadata"] == '{"x":1}'
    assert claims["attributes"] == {"role": "bot"}
    assert claims["video"]["room"] == "demo" and claims["video"]["canPublish"] is False
    assert manager.validate_access_rights(claims, ["roomJoin", "roomAdmin", "canSubscribe"])
    assert not manager.validate_access_rights(claims, ["canPublish"])
    assert 590 <= claims["exp"] - int(time.time()) <= 600


def test_warden_tokens_verify_in_livekit_api(manager):
    token = (
        warden.AccessToken(KEY, SECRET)
        .with_identity("bob")
        .with_name("Bob")
        .with_metadata("meta")
        .with_attributes({"a": "b"})
        .with_grants(api.VideoGrants(room_join=True, room="r1", can_publish_data=False))
        .with_ttl(datetime.timedelta(hours=1))
        .to_jwt()
    )
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "bob" and claims.name == "Bob" and claims.metadata == "meta"
    assert claims.attributes == {"a": "b"}
    assert claims.video.room_join is True and claims.video.room == "r1"
    assert claims.video.can_publish_data is False
    # Minted with the manager's key (from the environment) as well.
    token = warden.AccessToken(manager=manager).with_identity("c").with_grants({"roomList": True}).to_jwt()
    assert api.TokenVerifier(KEY, SECRET).verify(token).video.room_list is True
    with pytest.raises(Exception):
        api.TokenVerifier(KEY, "another-secret-entirely-0123456789").verify(token)


def test_mint_refusals(manager):
    with pytest.raises(warden.TokenError, match="roomJoin needs an identity"):
        warden.AccessToken(KEY, SECRET).with_grants({"roomJoin": True}).to_jwt()
    with pytest.raises(ValueError):
        warden.AccessToken(KEY)
    with pytest.raises(ValueError):
        warden.AccessToken(KEY, SECRET).with_ttl(0).to_jwt()
    assert SECRET not in repr(warden.AccessToken(KEY, SECRET))


def test_expired_forged_and_foreign_tokens_are_refused(manager):
    now = int(time.time())
    expired = pyjwt.encode({"iss": KEY, "sub": "a", "exp": now - 3600}, SECRET, algorithm="HS256")
    with pytest.raises(warden.TokenError, match="expired"):
        manager.verify_token(expired)
    hs512 = pyjwt.encode({"iss": KEY, "sub": "a", "exp": now + 60}, SECRET * 2, algorithm="HS512")
    with pytest.raises(warden.TokenError, match="HS256 only"):
        manager.verify_token(hs512)
    no_exp = pyjwt.encode({"iss": KEY, "sub": "a"}, SECRET, algorithm="HS256")
    with pytest.raises(warden.TokenError, match="no exp"):
        manager.verify_token(no_exp)
    forged = pyjwt.encode({"iss": KEY, "sub": "a", "exp": now + 60}, "x" * 43, algorithm="HS256")
    with pytest.raises(warden.TokenError, match="signature") as e:
        manager.verify_token(forged)
    assert forged not in str(e.value)


def _tokens(manager):
    admin = (
        warden.AccessToken(manager=manager)
        .with_identity("admin")
        .with_grants({"roomAdmin": True, "roomCreate": True})
        .to_jwt()
    )
    user = warden.AccessToken(manager=manager).with_identity("u").with_grants({"roomJoin": True, "room": "r"}).to_jwt()
    return admin, user


def test_security_required_on_a_sync_function(manager):
    calls = []

    @warden.security_required(["roomAdmin", "roomCreate"], manager=manager)
    def create_room(token: str, room_name: str) -> str:
        calls.append(room_name)
        return f"created {room_name}"

    admin, user = _tokens(manager)
    assert create_room(admin, "a") == "created a"
    assert create_room(token=admin, room_name="b") == "created b"
    assert create_room(room_name="c", token="Bearer " + admin) == "created c"
    with pytest.raises(warden.AccessDenied) as e:
        create_room(user, "d")
    assert isinstance(e.value, PermissionError) and isinstance(e.value, warden.WardenError)
    assert e.value.missing == ["roomAdmin", "roomCreate"]
    with pytest.raises(warden.AccessDenied, match="invalid access token") as e:
        create_room("garbage", "e")
    assert isinstance(e.value.__cause__, warden.TokenError)
    with pytest.raises(warden.AccessDenied, match="no access token"):
        create_room(None, "f")
    assert calls == ["a", "b", "c"]
    assert create_room.__name__ == "create_room"
    # The denial was recorded as the gateway records a 403.
    events = manager.get_security_status()["recent_events"]
    denied = [e for e in events if e["type"] == "UNAUTHORIZED_ACCESS"]
    assert denied and denied[0]["details"]["route"].endswith("create_room")


def test_security_required_on_an_async_function(manager):
    @warden.security_required(["roomAdmin", "roomCreate"], manager=manager)
    async def create_secure_room(token: str, room_name: str) -> str:
        await asyncio.sleep(0)
        return room_name

    assert asyncio.iscoroutinefunction(create_secure_room)
    admin, user = _tokens(manager)
    assert asyncio.run(create_secure_room(admin, "x")) == "x"
    with pytest.raises(warden.AccessDenied, match="missing grants: roomAdmin, roomCreate"):
        asyncio.run(create_secure_room(user, "y"))


def test_security_required_locks_out_a_client_after_failures(manager):
    @warden.security_required(["roomJoin"], manager=manager)
    def join(token: str, source_ip: str) -> bool:
        return True

    admin, user = _tokens(manager)
    assert join(user, source_ip="192.0.2.50")
    for _ in range(3):
        with pytest.raises(warden.AccessDenied, match="invalid access token"):
            join("bad.token.value", source_ip="192.0.2.50")
    assert manager.is_ip_blocked("192.0.2.50")
    with pytest.raises(warden.AccessDenied, match="locked out"):
        join(user, source_ip="192.0.2.50")
    assert join(user, source_ip="192.0.2.51")


def test_security_required_uses_the_process_wide_manager(monkeypatch, config_file):
    monkeypatch.setenv("LIVEKIT_SECURITY_CONFIG", str(config_file))

    @warden.security_required(["roomList"])
    def rooms(token):
        return ["r"]

    token = warden.AccessToken().with_identity("w").with_grants({"roomList": True}).to_jwt()
    assert rooms(token) == ["r"]
    with pytest.raises(warden.AccessDenied):
        rooms(warden.AccessToken().with_identity("w").to_jwt())
