"""Warden's security core for Python LiveKit applications.

The same code the Warden gateway runs, in-process: log masking, access token
verification and minting, grant checks, LiveKit webhook verification, WSS
enforcement, and the gateway's lockout rules for failed authentications.

    import warden

    manager = warden.get_security_manager()     # config as `warden serve` reads it
    claims = manager.verify_token(jwt)           # raises warden.TokenError
    log = warden.SecureLogger(__name__)          # every record masked

    @warden.security_required(["roomAdmin", "roomCreate"])
    async def create_room(token: str, name: str): ...

Everything here is a thin layer over ``warden._native`` (the Rust core built
with PyO3); this module holds only what is Python by nature: the decorator,
logging integration, JSON decoding and the HTTP call to a running gateway.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import inspect
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, TypeVar, Union, cast

from . import _native
from ._native import ConfigError, TokenError, WardenError, WebhookError

__all__ = [
    "MASK",
    "AccessDenied",
    "AccessToken",
    "ConfigError",
    "MaskingFilter",
    "SecureLogger",
    "SecurityManager",
    "TokenError",
    "WardenError",
    "WebhookError",
    "WebhookReceiver",
    "get_security_manager",
    "security_required",
]

__version__ = "0.1.0"

#: What every masked secret is replaced with.
MASK: str = _native.MASK

#: The client address recorded for a check with no network peer (the gateway's "unknown client").
UNKNOWN_CLIENT = "0.0.0.0"

F = TypeVar("F", bound=Callable[..., Any])


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


_manager: Optional[SecurityManager] = None
_manager_lock = threading.Lock()


def get_security_manager() -> SecurityManager:
    """The process-wide :class:`SecurityManager`, created on first use."""
    global _manager
    m = _manager
    if m is None:
        with _manager_lock:
            if _manager is None:
                _manager = SecurityManager()
            m = _manager
    return m


# -- logging --------------------------------------------------------------------


class MaskingFilter(logging.Filter):
    """A logging filter that masks every record as the gateway masks its logs.

    Add it to handlers (``handler.addFilter(warden.MaskingFilter())``) to mask
    everything they write, e.g. the LiveKit Agents framework's loggers. The
    message, its arguments, exception text and stack are masked; the record
    is never dropped. Uses ``manager``, else the process-wide one, whose
    known API secrets are masked too; if that cannot be loaded, patterns only.
    """

    def __init__(self, manager: Optional[SecurityManager] = None, name: str = "") -> None:
        super().__init__(name)
        self._manager = manager

    def _mask(self, text: str) -> str:
        try:
            return (self._manager or get_security_manager()).protect_api_keys_in_logs(text)
        except WardenError:
            return _native.mask_patterns(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not leak its arguments
            message = f"{record.msg!s} (unformattable arguments dropped)"
        record.msg = self._mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True


class SecureLogger(logging.Logger):
    """A logger whose records are masked by Warden's masker.

    ``SecureLogger(__name__)`` logs through the handlers of
    ``logging.getLogger(__name__)`` (and its ancestors) and takes its level
    from it, so existing configuration applies unchanged.
    """

    def __init__(self, name: str, manager: Optional[SecurityManager] = None) -> None:
        super().__init__(name)
        self.parent = logging.getLogger(name)
        self.addFilter(MaskingFilter(manager))


# -- the decorator -----------------------------------------------------------------


def security_required(
    required: Iterable[str],
    *,
    manager: Optional[SecurityManager] = None,
    ip_arg: str = "source_ip",
) -> Callable[[F], F]:
    """Protects a sync or async function whose ``token`` argument (or first
    argument) is a LiveKit access token: verifies it and its grants,
    records the attempt, and raises :class:`AccessDenied` otherwise.

    If the function has an argument named ``ip_arg`` (``source_ip``), its
    value is the client address: failures count towards its lockout and a
    locked-out client is refused.
    """
    names = _names(required)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        what = getattr(fn, "__qualname__", getattr(fn, "__name__", "-"))

        def check(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
            bound: Mapping[str, Any]
            try:
                bound = sig.bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = {}
            if "token" in bound:
                token = bound["token"]
            elif "token" in kwargs:
                token = kwargs["token"]
            else:
                token = args[0] if args else None
            ip = bound.get(ip_arg, kwargs.get(ip_arg))
            (manager or get_security_manager()).authorize(
                token, names, ip=None if ip is None else str(ip), what=what
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                check(args, kwargs)
                return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


# -- webhooks ---------------------------------------------------------------------


class WebhookReceiver:
    """Verifies LiveKit webhooks exactly as the gateway does.

    ``keys`` maps API key ids to secrets; without it, the keys of ``manager``
    (else the process-wide manager) verify. Each receiver remembers event
    ids for the configured replay window.
    """

    def __init__(
        self,
        keys: Optional[Union[Mapping[str, str], Iterable[Tuple[str, str]]]] = None,
        *,
        manager: Optional[SecurityManager] = None,
    ) -> None:
        pairs = None
        if keys is not None:
            items = keys.items() if isinstance(keys, Mapping) else keys
            pairs = [(str(k), str(s)) for k, s in items]
        self._ids = None if pairs is None else [k for k, _ in pairs]
        self._rx = _native.Receiver((manager or get_security_manager())._core, pairs)

    def __repr__(self) -> str:
        keys = "the manager's keys" if self._ids is None else ", ".join(self._ids)
        return f"<warden.WebhookReceiver keys=[{keys}]>"

    def receive(
        self,
        body: Union[bytes, str],
        auth: Optional[str],
        source_ip: Optional[str] = None,
    ) -> Optional[Dict[str, Any]]:
        """Verifies one delivery (the raw body and its ``Authorization`` header).

        Returns the sanitised event, shaped as the gateway's SSE ``data``
        (``id``, ``type``, ``event``, ``timestamp``, ``data``), or ``None`` for
        a delivery to acknowledge without acting on (a retry of an event
        already received, an event kind Warden does not broadcast). Raises
        :class:`WebhookError` with ``code`` and ``status`` as the gateway answers.
        """
        if isinstance(body, str):
            body = body.encode("utf-8")
        doc = self._rx.receive(bytes(body), auth or "", source_ip)
        return None if doc is None else _json(doc)


# -- minting --------------------------------------------------------------------


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
