"""``flightos jobs``: submit, list, cancel and read compute jobs, and the usage ledger, over the bus.

Talks to the ``jobs`` service with :class:`flightos.client.Client`. Errors are raised as the
typed exceptions ``flightos.cli.main`` turns into one-line messages and exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from flightos.bus.errors import DeadlineExceeded
from flightos.cli import exit_codes as ec
from flightos.cli.errors import UsageError
from flightos.cli.output import emit_json, table
from flightos.cli.values import parse_pairs
from flightos.client import Client

SERVICE = "jobs"
BUDGET_FLAGS = (
    ("cpu_s", "--cpu-s", float, "CPU-seconds"),
    ("energy_mj", "--energy-mj", float, "energy in mJ"),
    ("downlink_bytes", "--downlink-bytes", int, "bytes queued for downlink"),
    ("deadline_s", "--deadline-s", float, "wall seconds from submission"),
)
TERMINAL = {"done", "failed", "over_budget", "cancelled", "stopped"}


def add_parsers(sub: Any) -> None:
    """Register ``flightos jobs ACTION ...``."""
    j = sub.add_parser("jobs", help="compute jobs: submit, list, cancel, result, ledger (metered, budgeted)")
    acts = j.add_subparsers(dest="jobs_action", metavar="ACTION")
    acts.required = True

    s = acts.add_parser("submit", help="queue a job: a processor, its params, inputs from the store, a budget")
    s.add_argument("processor", help="a registered processor, e.g. inference.run (see `flightos jobs processors`)")
    s.add_argument(
        "params",
        nargs="*",
        metavar="KEY=VALUE",
        help='processor parameters; values are TOML literals (10, 2.5, true, "text", [1, 2]) or bare text',
    )
    s.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME",
        help="a file in the tenant's on-board store (repeatable)",
    )
    for _, flag, kind, what in BUDGET_FLAGS:
        s.add_argument(flag, type=kind, help=f"budget: {what} (default: the service's)")
    s.add_argument("--tenant", default="local", help="whose job (default local)")
    s.add_argument(
        "--wait", action="store_true", help="wait until the job ends and print its result (exit 1 unless it is done)"
    )
    s.add_argument("--timeout", type=float, default=600.0, help="with --wait: give up after S seconds (exit 4)")

    ls = acts.add_parser("list", help="jobs with their state and usage")
    ls.add_argument("--tenant", default="", help="one tenant's jobs (default: every tenant's)")
    ls.add_argument("--limit", type=int, default=100, help="the newest N jobs (default 100)")

    c = acts.add_parser("cancel", help="cancel a queued job, or stop a running one (partial results kept)")
    c.add_argument("job_id")
    c.add_argument("--tenant", default="local")

    r = acts.add_parser("result", help="a job's state, usage, summary (or partial results) and files")
    r.add_argument("job_id")
    r.add_argument("--tenant", default="local")

    lg = acts.add_parser("ledger", help="usage totals per tenant, and the jobs they sum")
    lg.add_argument("--tenant", default="", help="one tenant (default: every tenant)")
    lg.add_argument("--jobs", action="store_true", help="also list every job row")

    acts.add_parser("processors", help="the registered processors")

    p = acts.add_parser("put", help="copy a small local file into the tenant's on-board store")
    p.add_argument("name", help="its name in the store")
    p.add_argument("file", help="the local file")
    p.add_argument("--tenant", default="local")

    f = acts.add_parser("files", help="the files in the tenant's on-board store")
    f.add_argument("--tenant", default="local")


def run_jobs(args: argparse.Namespace) -> int:
    """Run one ``flightos jobs`` action; return the exit code."""
    if args.jobs_action == "put":
        try:
            args.data = Path(args.file).read_bytes()
        except OSError as exc:
            raise UsageError(f"put: cannot read {args.file}: {exc.strerror or exc}") from None
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    client = Client(args.runtime_dir, name="cli")
    try:
        return await _action(client, args)
    finally:
        client.close()


def _params(items: list[str]) -> dict[str, Any]:
    return parse_pairs(items, "parameter")


async def _action(client: Client, args: argparse.Namespace) -> int:
    act: str = args.jobs_action
    as_json = bool(getattr(args, "json", False))
    if act == "submit":
        budget = {key: getattr(args, key) for key, *_ in BUDGET_FLAGS if getattr(args, key) is not None}
        job = await client.call(
            SERVICE,
            "submit",
            {
                "processor": args.processor,
                "params": _params(args.params),
                "inputs": list(args.input),
                "budget": budget,
                "tenant": args.tenant,
            },
        )
        if not args.wait:
            if as_json:
                emit_json(job)
            else:
                print(_one_line(job))
            return ec.OK
        res = await _wait(client, job["id"], args.tenant, args.timeout)
        _print_result(res, as_json)
        return ec.OK if res["state"] == "done" else ec.COMMAND_FAILED
    if act == "list":
        rows = await client.call(SERVICE, "list", {"tenant": args.tenant, "limit": args.limit})
        if as_json:
            emit_json(rows)
        else:
            print(
                table(
                    ["ID", "TENANT", "PROCESSOR", "STATE", "CPU_S", "ENERGY_MJ", "DOWNLINK_B", "WALL_S", "REASON"],
                    [
                        (
                            r["id"],
                            r["tenant"],
                            r["processor"],
                            r["state"] + (" (partial)" if r["partial"] else ""),
                            f"{r['cpu_s']:.2f}",
                            f"{r['energy_mj']:.1f}",
                            r["downlink_bytes"],
                            f"{r['wall_s']:.1f}",
                            r.get("reason") or r.get("waiting") or "",
                        )
                        for r in rows
                    ],
                )
            )
        return ec.OK
    if act == "cancel":
        job = await client.call(SERVICE, "cancel", {"job_id": args.job_id, "tenant": args.tenant})
        if as_json:
            emit_json(job)
        elif job["state"] == "running":
            print(f"job {job['id']} running: stop requested (partial results are kept)")
        else:
            print(_one_line(job))
        return ec.OK
    if act == "result":
        res = await client.call(SERVICE, "result", {"job_id": args.job_id, "tenant": args.tenant})
        _print_result(res, as_json)
        return ec.OK
    if act == "ledger":
        led = await client.call(SERVICE, "ledger", {"tenant": args.tenant})
        if as_json:
            emit_json(led)
            return ec.OK
        rows = [
            (
                t,
                v["jobs"],
                f"{v['cpu_s']:.3f}",
                f"{v['energy_mj']:.1f}",
                v["downlink_bytes"],
                f"{v['wall_s']:.1f}",
                ", ".join(f"{k} {n}" for k, n in sorted(v["states"].items())),
            )
            for t, v in led["tenants"].items()
        ]
        tot = led["total"]
        rows.append(
            (
                "TOTAL",
                tot["jobs"],
                f"{tot['cpu_s']:.3f}",
                f"{tot['energy_mj']:.1f}",
                tot["downlink_bytes"],
                f"{tot['wall_s']:.1f}",
                "",
            )
        )
        print(table(["TENANT", "JOBS", "CPU_S", "ENERGY_MJ", "DOWNLINK_B", "WALL_S", "STATES"], rows))
        if args.jobs:
            print()
            print(
                table(
                    ["ID", "TENANT", "PROCESSOR", "STATE", "CPU_S", "ENERGY_MJ", "DOWNLINK_B", "WALL_S"],
                    [
                        (
                            r["id"],
                            r["tenant"],
                            r["processor"],
                            r["state"],
                            f"{r['cpu_s']:.3f}",
                            f"{r['energy_mj']:.1f}",
                            r["downlink_bytes"],
                            f"{r['wall_s']:.1f}",
                        )
                        for r in led["jobs"]
                    ],
                )
            )
        return ec.OK
    if act == "processors":
        procs = await client.call(SERVICE, "processors")
        if as_json:
            emit_json(procs)
        else:
            print(table(["PROCESSOR", "ENTRY POINT"], [(p["name"], p["entry_point"]) for p in procs]))
        return ec.OK
    if act == "put":  # in parts that fit the bus's frame limit (runtime.max_frame_bytes)
        part = max(4096, min(512 << 10, await client.commands.frame_limit() - (16 << 10)))
        parts = [args.data[i : i + part] for i in range(0, len(args.data), part)] or [b""]
        for n, data in enumerate(parts):
            res = await client.call(
                SERVICE, "put", {"tenant": args.tenant, "name": args.name, "data": data, "append": n > 0}, timeout=30.0
            )
        if as_json:
            emit_json(res)
        else:
            print(f"{res['tenant']}/{res['name']}: {res['bytes']} B, sha256 {res['sha256'][:16]}…")
        return ec.OK
    if act == "files":
        files = await client.call(SERVICE, "files", {"tenant": args.tenant})
        if as_json:
            emit_json(files)
        else:
            print(table(["NAME", "BYTES"], [(f["name"], f["bytes"]) for f in files]))
        return ec.OK
    raise UsageError(f"unknown jobs action {act}")


async def _wait(client: Client, job_id: str, tenant: str, timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        res: dict[str, Any] = await client.call(SERVICE, "result", {"job_id": job_id, "tenant": tenant})
        if res["state"] in TERMINAL:
            return res
        if time.monotonic() > end:
            raise DeadlineExceeded(
                f"job {job_id} still {res['state']} after {timeout:g} s "
                f"(it goes on; `flightos jobs result {job_id}` to look again)"
            )
        await asyncio.sleep(0.2)


def _one_line(job: dict[str, Any]) -> str:
    why = job.get("reason") or job.get("waiting")
    return f"job {job['id']} {job['state']} ({job['processor']} for {job['tenant']})" + (f": {why}" if why else "")


def _print_result(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(res)
        return
    print(_one_line(res))
    b = res["budget"]
    print(
        f"  used   cpu {res['cpu_s']:.3f}/{b['cpu_s']:g} CPU-s, energy {res['energy_mj']:.1f}/{b['energy_mj']:g} mJ, "
        f"downlink {res['downlink_bytes']}/{b['downlink_bytes']} B, wall {res['wall_s']:.2f} s "
        f"(deadline {b['deadline_s']:g} s)"
    )
    if res.get("per_item"):
        pi = res["per_item"]
        print(f"  per item ({pi['count']}): {pi['energy_mj']:.4f} mJ, {1e3 * pi['cpu_s']:.4f} CPU-ms")
    if res.get("result") is not None:
        label = "partial result" if res.get("partial") else "result"
        print(f"  {label}: " + json.dumps(res["result"], default=str))
    if res.get("progress") is not None:
        print("  progress: " + json.dumps(res["progress"], default=str))
    if res.get("error"):
        print(f"  error: {res['error']}")
    for f in res.get("files") or []:
        print(f"  file {f['name']} ({f['bytes']} B){' [downlink]' if f.get('downlink') else ''}: {f['path']}")
