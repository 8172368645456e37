"""The decorators a service author puts on methods: ``@command``, ``@periodic``, ``@subscribe``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

RESERVED_COMMANDS = frozenset({"describe", "get_param", "set_param", "list_params", "stats"})


@dataclass(frozen=True)
class CommandSpec:
    """A method callable from the bus, the CLI and ground (PUS ST[08])."""

    name: str
    doc: str
    critical: bool = False


@dataclass(frozen=True)
class PeriodicSpec:
    """A method run at a fixed rate on the service's loop; overruns are counted.

    ``hz`` is a number, or the name of a Parameter holding the rate (so ground can change it).
    """

    hz: float | str


@dataclass(frozen=True)
class SubscribeSpec:
    """A method called with every message whose topic starts with ``prefix``."""

    prefix: str


def _require_coroutine(fn: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"@{what} needs an 'async def' method, got {fn.__qualname__}")


def command(name: str | None = None) -> Callable[[F], F]:
    """Expose an ``async def`` method as a command; its type hints validate the arguments."""

    def wrap(fn: F) -> F:
        spec = command_spec(fn, name)
        if spec.name in RESERVED_COMMANDS:
            raise TypeError(f"command name {spec.name!r} is reserved for the SDK's own commands")
        fn.__flightos_command__ = spec  # type: ignore[attr-defined]
        return fn

    return wrap


def command_spec(fn: Callable[..., Any], name: str | None = None) -> CommandSpec:
    """The spec of an ``async def`` command: its name (the function's by default) and its doc's first line.

    ``@command`` attaches it to a service's method; the kernel's command table declares its own with it.
    """
    _require_coroutine(fn, "command")
    doc = inspect.getdoc(fn) or ""
    return CommandSpec(name or fn.__name__, doc.splitlines()[0] if doc else "")


def periodic(hz: float | str) -> Callable[[F], F]:
    """Run an ``async def`` method ``hz`` times a second, on a fixed schedule that skips overruns.

    Pass a Parameter's name instead of a number to make the rate settable (``hz="rate_hz"``).
    """
    if not isinstance(hz, str) and not hz > 0:
        raise ValueError(f"@periodic needs hz > 0 or a parameter name, got {hz!r}")

    def wrap(fn: F) -> F:
        _require_coroutine(fn, "periodic")
        fn.__flightos_periodic__ = PeriodicSpec(hz if isinstance(hz, str) else float(hz))  # type: ignore[attr-defined]
        return fn

    return wrap


def subscribe(prefix: str) -> Callable[[F], F]:
    """Call an ``async def`` method with each bus message under a topic prefix (e.g. ``"tm.hal."``)."""

    def wrap(fn: F) -> F:
        _require_coroutine(fn, "subscribe")
        fn.__flightos_subscribe__ = SubscribeSpec(prefix)  # type: ignore[attr-defined]
        return fn

    return wrap
