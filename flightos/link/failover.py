"""Who runs a service when the board that ran it stops answering: one rule every kernel computes alike."""

from __future__ import annotations


def taker(home: str, survivors: set[str]) -> str | None:
    """The board that should run a failover service: its home board if it survives, else the first by name."""
    if home in survivors:
        return home
    return min(survivors) if survivors else None


def keeper(home: str, a: str, b: str) -> str:
    """When two boards both run a service (a healed partition), the one that keeps it."""
    if home in (a, b):
        return home
    return min(a, b)
