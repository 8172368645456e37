"""Compute jobs: what a processor (``sar.detect``, ``inference.run``, …) receives and may do.

Processors are registered under the ``flightos.processors`` entry-point group and run by the
``jobs`` service, each job in its own process so it can be metered and stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PROCESSOR_GROUP = "flightos.processors"


@dataclass
class JobContext:
    """One job as its processor sees it: parameters, input files, an output directory, the throttle."""

    job_id: str
    tenant: str
    params: dict[str, Any]
    inputs: list[Path]
    out_dir: Path
    throttle: Callable[[], int] = lambda: 0
    partial: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self, partial: dict[str, Any]) -> None:
        """Record partial results now (kept, marked partial, if the job is stopped over budget)."""
        self.partial.update(partial)
        tmp = self.out_dir / "partial.json.tmp"
        tmp.write_text(json.dumps(self.partial, default=str))
        tmp.replace(self.out_dir / "partial.json")


class Processor(Protocol):
    """A registered job processor: returns a JSON-able summary; bulky results go to ``ctx.out_dir``."""

    def __call__(self, ctx: JobContext) -> dict[str, Any]: ...
