"""What finished jobs send to the ground: their record, and the files they asked to downlink.

A processor asks to downlink a file by writing it under ``ctx.out_dir / "downlink"``. Those bytes
are metered against the job's ``downlink_bytes`` budget while it runs. When the job ends, the
service sends, through the SDK's ``downlink()`` (TM[128,1] via the ground link's store-and-forward):

- ``dl.jobs.job``: the job's record (state, reason, usage, budget, the summary or partial result);
- ``dl.jobs.file``: each downlink file in chunks of 32 KiB, in name order, as long as the running
  total stays within the job's downlink budget (so an over-budget job sends what fits).

Chunks leave a few per metering period, so a large product never floods the bus.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.jobs.ledger import Job

CHUNK = 32 * 1024
RECORD_RESULT_MAX = 16 * 1024


@dataclass
class _File:
    job_id: str
    tenant: str
    name: str
    path: Path
    size: int
    offset: int = 0


class Outbox:
    """Products waiting to be handed to the ground link, read from disk a chunk at a time."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self.chunk = chunk
        self.items: deque[tuple[str, Any]] = deque()

    def __len__(self) -> int:
        return len(self.items)

    def add(self, job: Job, out_dir: Path) -> None:
        """Queue a finished job's record and the downlink files that fit its budget."""
        record = {k: v for k, v in job.view().items() if k not in ("params",)}
        text = json.dumps(record.get("result"), default=str)
        if len(text) > RECORD_RESULT_MAX:
            record["result"], record["result_bytes"] = None, len(text)
        files, used, skipped = [], 0, []
        base = out_dir / "downlink"
        for p in sorted(base.rglob("*")) if base.is_dir() else []:
            if not p.is_file() or p.name.endswith(".tmp"):
                continue
            size = p.stat().st_size
            name = p.relative_to(base).as_posix()
            if used + size > job.budget.downlink_bytes:
                skipped.append(name)
                continue
            used += size
            files.append(_File(job.id, job.tenant, name, p, size))
        record["downlink"] = {
            "files": [{"name": f.name, "bytes": f.size} for f in files],
            "bytes": used,
            "skipped": skipped,
        }
        self.items.append(("job", record))
        self.items.extend(("file", f) for f in files)

    def take(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``n`` products: (name, payload)."""
        out: list[tuple[str, dict[str, Any]]] = []
        while self.items and len(out) < n:
            kind, item = self.items[0]
            if kind == "job":
                self.items.popleft()
                out.append(("job", item))
                continue
            f: _File = item
            try:
                with open(f.path, "rb") as fh:
                    fh.seek(f.offset)
                    data = fh.read(self.chunk)
            except OSError:
                self.items.popleft()
                continue
            out.append(
                (
                    "file",
                    {
                        "job_id": f.job_id,
                        "tenant": f.tenant,
                        "file": f.name,
                        "offset": f.offset,
                        "size": f.size,
                        "data": data,
                    },
                )
            )
            f.offset += len(data)
            if not data or f.offset >= f.size:
                self.items.popleft()
        return out
