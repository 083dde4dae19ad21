"""Logging integration: `MaskingFilter` for any handler, `SecureLogger`."""

from __future__ import annotations

import logging
from typing import Optional

from . import _native
from ._manager import SecurityManager, get_security_manager
from ._native import WardenError


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
