"""The kernel's command table: declared with the SDK's ``CommandSpec`` and checked by its ``validate``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flightos.bus.errors import UnknownCommand
from flightos.kernel.commands.port import KernelPort
from flightos.sdk.decorators import CommandSpec, command_spec
from flightos.sdk.validation import Argument, describe_arguments, signature_of, validate

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class KernelCommand:
    """One kernel command: its spec (name, one-line doc), its handler and its declared arguments."""

    spec: CommandSpec
    handler: Handler
    arguments: list[Argument]


TABLE: dict[str, KernelCommand] = {}
"""Command name -> declaration, in declaration order; filled by ``flightos.kernel.commands.handlers``."""


def kernel_command(fn: H) -> H:
    """Declare ``async def name(k: KernelPort, ...)`` as a kernel command, as ``@command`` does for a service.

    The SDK's ``@command`` reserves ``describe``, which the kernel answers from this table too.
    """
    spec = command_spec(fn, fn.__name__.rstrip("_"))  # the SDK's own: an async def, its doc's first line
    TABLE[spec.name] = KernelCommand(spec, fn, signature_of(fn))
    return fn


async def dispatch(port: KernelPort, name: str, args: Any) -> Any:
    """Run a kernel command: unknown names and bad arguments are refused exactly as a service refuses them."""
    cmd = TABLE.get(name)
    if cmd is None:
        raise UnknownCommand(f"the kernel has no command {name!r}", available=sorted(TABLE))
    return await cmd.handler(port, **validate(f"kernel.{name}", cmd.arguments, args))


def describe() -> dict[str, Any]:
    """The kernel's ``describe``, in the shape of a service's: each command with its doc and typed arguments."""
    return {
        "service": "kernel",
        "commands": {
            name: {"doc": c.spec.doc, "args": describe_arguments(c.arguments)} for name, c in sorted(TABLE.items())
        },
        "periodic": {},
        "subscriptions": [],
        "parameters": [],
    }
