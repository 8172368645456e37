"""What every board-health source shares: an honest "unavailable, and why" in place of a value."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Unavailable:
    """A source that could not be read, with the reason a person can act on."""

    reason: str

    def to_dict(self) -> dict[str, Any]:
        """``{"available": False, "reason": ...}``."""
        return {"available": False, "reason": self.reason}


def section(value: Any) -> dict[str, Any]:
    """A source's value as a plain dict with ``available``; an Unavailable as its reason."""
    if isinstance(value, Unavailable):
        return value.to_dict()
    return {"available": True, **dataclasses.asdict(value)}


def os_reason(path: str, exc: OSError) -> str:
    """``'/proc/meminfo: No such file or directory'``: the path and the kernel's words."""
    return f"{path}: {exc.strerror or exc}"
