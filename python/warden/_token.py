"""`AccessToken`: LiveKit access tokens minted by Warden's core, builder-style."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Dict, Mapping, Optional, Union

from . import _native
from ._manager import SecurityManager, get_security_manager


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _grant_dict(grants: Any) -> Dict[str, Any]:
    if dataclasses.is_dataclass(grants) and not isinstance(grants, type):
        grants = dataclasses.asdict(grants)
    if not isinstance(grants, Mapping):
        raise TypeError("grants must be a mapping or a dataclass such as livekit.api.VideoGrants")
    return {_camel(str(k)): v for k, v in grants.items() if v is not None}


class AccessToken:
    """Mints LiveKit access tokens, builder-style as ``livekit.api.AccessToken``.

    With ``api_key`` and ``api_secret`` it signs with them; without, with the
    signing key of ``manager`` (else the process-wide manager), and the
    token's expiry is recorded so a key rotation keeps it valid.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        api_secret: Optional[str] = None,
        *,
        manager: Optional[SecurityManager] = None,
    ) -> None:
        if (api_key is None) != (api_secret is None):
            raise ValueError("give both api_key and api_secret, or neither")
        self.api_key = api_key
        self._api_secret = api_secret
        self._manager = manager
        self.identity = ""
        self.ttl: Optional[int] = None
        self.claims: Dict[str, Any] = {}

    def __repr__(self) -> str:
        key = self.api_key or "the manager's signing key"
        return f"<warden.AccessToken key={key} identity={self.identity!r}>"

    def with_identity(self, identity: str) -> "AccessToken":
        self.identity = identity
        return self

    def with_ttl(self, ttl: Union[datetime.timedelta, int, float]) -> "AccessToken":
        seconds = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else ttl
        self.ttl = int(seconds)
        return self

    def with_grants(self, grants: Any) -> "AccessToken":
        """The ``video`` grant: a mapping (LiveKit or snake_case names) or ``livekit.api.VideoGrants``."""
        self.claims["video"] = _grant_dict(grants)
        return self

    def with_sip_grants(self, grants: Any) -> "AccessToken":
        self.claims["sip"] = _grant_dict(grants)
        return self

    def with_agent_grants(self, grants: Any) -> "AccessToken":
        self.claims["agent"] = _grant_dict(grants)
        return self

    def with_name(self, name: str) -> "AccessToken":
        self.claims["name"] = name
        return self

    def with_kind(self, kind: str) -> "AccessToken":
        self.claims["kind"] = kind
        return self

    def with_metadata(self, metadata: str) -> "AccessToken":
        self.claims["metadata"] = metadata
        return self

    def with_attributes(self, attributes: Mapping[str, str]) -> "AccessToken":
        self.claims["attributes"] = dict(attributes)
        return self

    def with_sha256(self, sha256: str) -> "AccessToken":
        self.claims["sha256"] = sha256
        return self

    def with_room_preset(self, preset: str) -> "AccessToken":
        self.claims["roomPreset"] = preset
        return self

    def to_jwt(self) -> str:
        """The signed token (HS256). Raises :class:`TokenError` when it cannot be minted."""
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError("the lifetime must be at least one second")
        grants = json.dumps(self.claims)
        if self.api_key is not None and self._api_secret is not None:
            return _native.mint_with_key(self.api_key, self._api_secret, self.identity, grants, self.ttl)
        core = (self._manager or get_security_manager())._core
        return core.mint(self.identity, grants, self.ttl)
