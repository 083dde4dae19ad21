"""`security_required`: the grant check as a decorator for sync and async functions."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeVar

from ._manager import SecurityManager, _names, get_security_manager

F = TypeVar("F", bound=Callable[..., Any])


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
            (manager or get_security_manager()).authorize(token, names, ip=None if ip is None else str(ip), what=what)

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
