"""Chooses the board cores each service runs on: spread the load, keep critical services apart."""

from __future__ import annotations

from collections.abc import Iterable

RANK = {"critical": 0, "essential": 1, "elastic": 2}


def place(
    services: Iterable[tuple[str, str, list[int] | None]],
    cores: list[int],
    load: dict[int, int] | None = None,
) -> dict[str, list[int]]:
    """Map (name, criticality, allowed cores) to one board core each, most critical first.

    Each service goes to the allowed core with the fewest services of equal or higher criticality,
    then the fewest services overall; ties go to the lowest core id.
    """
    if not cores:
        raise ValueError("no healthy cores to place services on")
    total = dict.fromkeys(cores, 0)
    for c, n in (load or {}).items():
        if c in total:
            total[c] += n
    by_rank: dict[int, dict[int, int]] = {r: dict.fromkeys(cores, 0) for r in RANK.values()}
    out: dict[str, list[int]] = {}
    for name, crit, allowed in sorted(services, key=lambda s: (RANK.get(s[1], 1), s[0])):
        rank = RANK.get(crit, 1)
        choices = [c for c in cores if allowed is None or c in allowed]
        if not choices:
            choices = list(cores)  # constraint names no healthy core: run anywhere rather than not at all

        def weight(c: int, rank: int = rank) -> tuple[int, int, int]:
            heavier = sum(by_rank[r][c] for r in by_rank if r <= rank)
            return (heavier, total[c], c)

        best = min(choices, key=weight)
        out[name] = [best]
        total[best] += 1
        by_rank[rank][best] += 1
    return out
