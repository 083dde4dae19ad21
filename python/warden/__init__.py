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

from . import _native
from ._decorator import security_required
from ._logging import MaskingFilter, SecureLogger
from ._manager import UNKNOWN_CLIENT, AccessDenied, SecurityManager, get_security_manager
from ._native import ConfigError, TokenError, WardenError, WebhookError
from ._token import AccessToken
from ._webhook import WebhookReceiver

__all__ = [
    "MASK",
    "UNKNOWN_CLIENT",
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
