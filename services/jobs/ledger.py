"""The usage ledger: one SQLite row per job (what it asked for, what it used, how it ended).

Per-tenant totals are sums over these rows, computed by SQLite, so they always equal the sum of
the jobs they cover. The ledger is also the durable queue: queued jobs survive a restart.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.jobs.budget import Budget, Usage

STATES = ("queued", "running", "done", "failed", "over_budget", "cancelled", "stopped")
TERMINAL = frozenset(("done", "failed", "over_budget", "cancelled", "stopped"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    tenant TEXT NOT NULL,
    processor TEXT NOT NULL,
    params TEXT NOT NULL,
    inputs TEXT NOT NULL,
    budget TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    exceeded TEXT,
    partial INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    cpu_s REAL NOT NULL DEFAULT 0,
    energy_mj REAL NOT NULL DEFAULT 0,
    downlink_bytes INTEGER NOT NULL DEFAULT 0,
    wall_s REAL NOT NULL DEFAULT 0,
    exit_code INTEGER,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant, seq);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""
METERED = ("cpu_s", "energy_mj", "downlink_bytes", "wall_s")


@dataclass
class Job:
    """One job: its request, its state and what it has used."""

    id: str
    tenant: str
    processor: str
    params: dict[str, Any]
    inputs: list[str]
    budget: Budget
    submitted_at: float
    state: str = "queued"
    reason: str | None = None
    exceeded: str | None = None
    partial: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    usage: Usage = field(default_factory=Usage)
    exit_code: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """In a terminal state."""
        return self.state in TERMINAL

    def summary(self) -> dict[str, Any]:
        """The job as listed: no parameters, no result."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "processor": self.processor,
            "state": self.state,
            "reason": self.reason,
            "exceeded": self.exceeded,
            "partial": self.partial,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            **self.usage.to_dict(),
            "budget": self.budget.to_dict(),
        }

    def view(self) -> dict[str, Any]:
        """Everything about the job, with per-item figures when the processor reported a ``count``."""
        out = {
            **self.summary(),
            "params": self.params,
            "inputs": self.inputs,
            "exit_code": self.exit_code,
            "result": self.result,
            "error": self.error,
        }
        count = (self.result or {}).get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            out["per_item"] = {
                "count": count,
                "energy_mj": round(self.usage.energy_mj / count, 6),
                "cpu_s": round(self.usage.cpu_s / count, 9),
            }
        return out


def _row_to_job(row: sqlite3.Row) -> Job:
    b = json.loads(row["budget"])
    return Job(
        id=row["id"],
        tenant=row["tenant"],
        processor=row["processor"],
        params=json.loads(row["params"]),
        inputs=json.loads(row["inputs"]),
        budget=Budget(**b),
        submitted_at=row["submitted_at"],
        state=row["state"],
        reason=row["reason"],
        exceeded=row["exceeded"],
        partial=bool(row["partial"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        usage=Usage(
            cpu_s=row["cpu_s"], energy_mj=row["energy_mj"], downlink_bytes=row["downlink_bytes"], wall_s=row["wall_s"]
        ),
        exit_code=row["exit_code"],
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
    )


class Ledger:
    """SQLite (WAL) in the service's data directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def add(self, job: Job) -> None:
        """Record a new job."""
        self.db.execute(
            "INSERT INTO jobs (id, tenant, processor, params, inputs, budget, state, reason, submitted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.tenant,
                job.processor,
                json.dumps(job.params),
                json.dumps(job.inputs),
                json.dumps(job.budget.to_dict()),
                job.state,
                job.reason,
                job.submitted_at,
            ),
        )

    def save(self, job: Job) -> None:
        """Write the job's state, usage and outcome."""
        u = job.usage.to_dict()
        self.db.execute(
            "UPDATE jobs SET state=?, reason=?, exceeded=?, partial=?, started_at=?, ended_at=?, cpu_s=?, "
            "energy_mj=?, downlink_bytes=?, wall_s=?, exit_code=?, result=?, error=? WHERE id=?",
            (
                job.state,
                job.reason,
                job.exceeded,
                int(job.partial),
                job.started_at,
                job.ended_at,
                u["cpu_s"],
                u["energy_mj"],
                u["downlink_bytes"],
                u["wall_s"],
                job.exit_code,
                json.dumps(job.result, default=str) if job.result is not None else None,
                job.error,
                job.id,
            ),
        )

    def get(self, job_id: str) -> Job | None:
        """One job by id."""
        row = self.db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def jobs(self, tenant: str = "", states: tuple[str, ...] = (), limit: int = 1000) -> list[Job]:
        """Jobs in submission order (newest ``limit``), optionally of one tenant and in some states."""
        where: list[str] = []
        args: list[Any] = []
        if tenant:
            where.append("tenant=?")
            args.append(tenant)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.execute(
            f"SELECT * FROM ({sql} ORDER BY seq DESC LIMIT ?) ORDER BY seq", (*args, int(limit))
        ).fetchall()
        return [_row_to_job(r) for r in rows]

    def totals(self, tenant: str = "") -> dict[str, Any]:
        """Sums of the metered figures per tenant and over all (or one) tenant, with job counts by state."""
        where, args = (" WHERE tenant=?", (tenant,)) if tenant else ("", ())
        per: dict[str, dict[str, Any]] = {}
        for r in self.db.execute(
            "SELECT tenant, COUNT(*) AS jobs, TOTAL(cpu_s) AS cpu_s, TOTAL(energy_mj) AS energy_mj, "
            "TOTAL(downlink_bytes) AS downlink_bytes, TOTAL(wall_s) AS wall_s FROM jobs"
            + where
            + " GROUP BY tenant ORDER BY tenant",
            args,
        ):
            per[r["tenant"]] = {
                "jobs": r["jobs"],
                "cpu_s": r["cpu_s"],
                "energy_mj": r["energy_mj"],
                "downlink_bytes": int(r["downlink_bytes"]),
                "wall_s": r["wall_s"],
                "states": {},
            }
        for r in self.db.execute(
            "SELECT tenant, state, COUNT(*) AS n FROM jobs" + where + " GROUP BY tenant, state", args
        ):
            per[r["tenant"]]["states"][r["state"]] = r["n"]
        total = {"jobs": sum(t["jobs"] for t in per.values())}
        for k in METERED:
            total[k] = sum(t[k] for t in per.values())
        return {"tenants": per, "total": total}
