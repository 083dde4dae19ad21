"""The security manager: `SecurityManager`, the process-wide instance, `AccessDenied`."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union, cast

from . import _native
from ._native import TokenError, WardenError

#: The client address recorded for a check with no network peer (the gateway's "unknown client").
UNKNOWN_CLIENT = "0.0.0.0"


class AccessDenied(WardenError, PermissionError):
    """A protected call was refused: bad token, missing grants or a locked-out client.

    ``missing`` lists the grants the token lacked (empty when the token itself
    was refused; the cause is then chained as ``__cause__``).
    """

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


class SecurityManager:
    """The security manager of the origin API, backed by Warden's core.

    Reads the configuration as the ``warden`` binary does: ``config_path``,
    else ``$LIVEKIT_SECURITY_CONFIG``, else ``config/security.yaml`` when it
    exists, else the built-in defaults; API keys from the key file and
    ``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``/``LIVEKIT_KEYS``. Raises
    :class:`ConfigError` when they cannot be loaded. Lockouts and security
    events are kept in memory, per manager.
    """

    def __init__(self, config_path: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        path = None if config_path is None else os.fspath(config_path)
        self._core = _native.Core(path)

    def __repr__(self) -> str:
        return repr(self._core)

    # -- API key protection -------------------------------------------------

    def protect_api_keys_in_logs(self, text: str) -> str:
        """``text`` with every secret masked (the gateway's log masker)."""
        return self._core.mask(text)

    def validate_api_key_format(self, key: str) -> bool:
        """True when ``key`` has the shape LiveKit generates: ``API`` + 12 base57 characters."""
        return self._core.api_key_format_error(key) is None

    def api_key_format_error(self, key: str) -> Optional[str]:
        """Why ``key`` is not of LiveKit's shape, or ``None``."""
        return self._core.api_key_format_error(key)

    def hash_api_key_for_storage(self, key: str) -> str:
        """HMAC-SHA256 of ``key`` with the deployment pepper (hex), as the gateway stores it."""
        return self._core.hash_api_key_for_storage(key)

    # -- transport ----------------------------------------------------------

    def enforce_wss_connections(self, url: str) -> str:
        """``ws://`` → ``wss://``, ``http://`` → ``https://``; ``ValueError`` for a non-URL."""
        return self._core.enforce_wss_connections(url)

    def validate_connection_protocol(self, url: str) -> bool:
        """True when ``url`` may be dialled as it is under ``wss_enforcement``."""
        return self._core.connection_protocol_error(url) is None

    # -- tokens and grants --------------------------------------------------

    def validate_jwt_token_structure(self, token: str) -> bool:
        """True when ``token`` is a well-formed JWT (three segments, JSON, an ``alg``); no signature check."""
        return self._core.jwt_structure_error(token) is None

    def validate_access_rights(self, grants: Mapping[str, Any], required: Iterable[str]) -> bool:
        """True when ``grants`` hold every permission in ``required`` (LiveKit names).

        ``grants`` is a ``video`` grant (``{"roomJoin": True, …}``) or whole
        claims as :meth:`verify_token` returns them. Absent permissions take
        LiveKit's defaults. ``ValueError`` for a name LiveKit does not have.
        """
        return not self.missing_grants(grants, required)

    def missing_grants(self, grants: Mapping[str, Any], required: Iterable[str]) -> List[str]:
        """The permissions of ``required`` that ``grants`` lack (see :meth:`validate_access_rights`)."""
        video = grants.get("video", grants) if isinstance(grants, Mapping) else grants
        if not isinstance(video, Mapping):
            raise TypeError("grants must be a mapping")
        return self._core.missing_grants(json.dumps(dict(video)), _names(required))

    def verify_token(self, token: str) -> Dict[str, Any]:
        """Verifies an access token now and returns its claims (LiveKit names).

        Raises :class:`TokenError` saying why it was refused (never the token).
        """
        return _json(self._core.verify_token(token))

    def authorize(
        self,
        token: Optional[str],
        required: Iterable[str],
        *,
        ip: Optional[str] = None,
        what: str = "-",
    ) -> Dict[str, Any]:
        """What :func:`security_required` does: verify ``token`` and its grants, record the attempt.

        Returns the claims; raises :class:`AccessDenied`. With ``ip``, a
        client locked out by earlier failures is refused before anything else.
        """
        client = UNKNOWN_CLIENT if ip is None else str(ip)
        if ip is not None and self._core.is_ip_blocked(client):
            raise AccessDenied("client is locked out after repeated authentication failures")
        if not isinstance(token, str) or not token.strip():
            self._core.record_auth_attempt(client, False, None)
            raise AccessDenied("no access token")
        token = token.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:]
        try:
            claims, missing = self._core.authorize(token, _names(required), client, what)
        except TokenError as e:
            raise AccessDenied(f"invalid access token: {e}") from e
        if missing:
            raise AccessDenied("missing grants: " + ", ".join(missing), missing)
        return _json(claims)

    # -- suspicious activity --------------------------------------------------

    def record_auth_attempt(self, ip: str, success: bool, user_identity: Optional[str] = None) -> None:
        """Records an authentication attempt; failures lock ``ip`` out per ``suspicious_activity``.

        The identity is kept only as its peppered hash.
        """
        self._core.record_auth_attempt(str(ip), bool(success), user_identity)

    def record_api_usage(self, endpoint: str, ip: str, response_time: float = 0.0) -> None:
        """Records one API call (``endpoint`` a route name, never a URL with its query).

        Raises an ``UNUSUAL_API_USAGE`` event when the client passes
        ``unusual_usage_threshold`` calls in an hour or far exceeds its baseline.
        """
        self._core.record_api_usage(endpoint, str(ip), float(response_time))

    def is_key_rotation_due(self) -> bool:
        """True when an active key Warden owns is older than ``rotation_interval_hours``."""
        return self._core.is_key_rotation_due()

    def is_ip_blocked(self, ip: str) -> bool:
        """True when ``ip`` is on the blocklist or locked out now."""
        return self._core.is_ip_blocked(str(ip))

    def get_security_status(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 5.0,
    ) -> Dict[str, Any]:
        """This manager's state, or with ``url`` the running gateway's ``/api/security/status``.

        Locally: ``overall_status``, ``keys`` (ids, states, fingerprints),
        ``blocked`` clients, ``guard`` counters, event ``counts`` and
        ``recent_events``. Remotely the admin ``token`` is this
        configuration's service token unless given; the URL must pass
        :meth:`validate_connection_protocol` before a token is sent to it.
        """
        if url is None:
            return _json(self._core.status())
        why = self._core.connection_protocol_error(url)
        if why is not None:
            raise WardenError(f"refusing to send an admin token: {why}")
        bearer = token if token is not None else self._core.service_token()
        req = urllib.request.Request(
            url.rstrip("/") + "/api/security/status",
            headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
                return _json(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise WardenError(f"the gateway answered {e.code}: {self._core.mask(_body(e))}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise WardenError(f"cannot read the gateway's status: {self._core.mask(str(e))}") from None


def _body(e: urllib.error.HTTPError) -> str:
    try:
        return e.read(512).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _json(text: str) -> Dict[str, Any]:
    return cast(Dict[str, Any], json.loads(text))


def _names(required: Iterable[str]) -> List[str]:
    if isinstance(required, str):
        return [required]
    return [str(r) for r in required]


_instance: Optional[SecurityManager] = None
_instance_lock = threading.Lock()


def get_security_manager() -> SecurityManager:
    """The process-wide :class:`SecurityManager`, created on first use."""
    global _instance
    m = _instance
    if m is None:
        with _instance_lock:
            if _instance is None:
                _instance = SecurityManager()
            m = _instance
    return m
