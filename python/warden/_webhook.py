"""`WebhookReceiver`: LiveKit webhooks verified as the gateway verifies them."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

from . import _native
from ._manager import SecurityManager, _json, get_security_manager


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
