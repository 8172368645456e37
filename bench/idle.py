"""Figure 5: an idle runtime's cost — kernel and per-service CPU % and RSS, with 2 and with 8 services.

Only two services are installed (housekeeping, test), so six trivial ones are registered for
the run from a throwaway directory on PYTHONPATH: a package plus a hand-written ``.dist-info``
holding their ``flightos.services`` entry points (what ``pip install --target`` would leave;
pip cannot build here without the ``wheel`` package, and the venv is not ours to change).
CPU time is read from ``/proc/<pid>/task/*/schedstat`` (nanoseconds, every thread), falling
back to psutil's tick-resolution times.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.report import Budget, Row
from bench.runtime import running
from flightos.testing.runtime import RuntimeProcess

EXTRA = [f"idle{i}" for i in range(1, 7)]
BASE = ["housekeeping", "test"]
KERNEL_CPU = Budget("value", "<=", 1.0, unit="%")
KERNEL_RSS = Budget("value", "<=", 60.0, unit="MB")
SERVICE_CPU = Budget("value", "<=", 0.5, unit="%")
SERVICE_RSS = Budget("value", "<=", 30.0, unit="MiB")
MIB = 1024 * 1024


def write_plugins(root: Path) -> None:
    """A package of six idle Service subclasses and the dist-info registering them."""
    pkg = root / "fosbench_idle"
    pkg.mkdir()
    classes = "\n\n".join(f"class Idle{i}(Service):\n    \"\"\"Does nothing.\"\"\"\n\n    name = \"idle{i}\""
                          for i in range(1, 7))
    (pkg / "__init__.py").write_text(f'"""Idle services for the benchmark."""\n\nfrom flightos import Service\n\n\n'
                                     f"{classes}\n")
    dist = root / "fosbench_idle-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fosbench-idle\nVersion: 0\n")
    eps = "".join(f"idle{i} = fosbench_idle:Idle{i}\n" for i in range(1, 7))
    (dist / "entry_points.txt").write_text(f"[flightos.services]\n{eps}")
    (dist / "top_level.txt").write_text("fosbench_idle\n")


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process, in nanoseconds."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return total
    except OSError:
        t = psutil.Process(pid).cpu_times()
        return int((t.user + t.system) * 1e9)


@dataclass
class Usage:
    """One process over the idle window."""

    name: str
    pid: int
    cpu_percent: float
    rss: int
    uss: int


def memory(pid: int) -> tuple[int, int]:
    """RSS and USS (private memory) of a process, in bytes."""
    p = psutil.Process(pid)
    try:
        info = p.memory_full_info()
        return int(info.rss), int(info.uss)
    except psutil.AccessDenied:
        rss = int(p.memory_info().rss)
        return rss, rss


async def sample(pids: dict[str, int], window_s: float) -> list[Usage]:
    """CPU % of one core over the window, and memory at its end, for every named process."""
    before = {n: cpu_ns(p) for n, p in pids.items()}
    t0 = time.monotonic_ns()
    await asyncio.sleep(window_s)
    wall = time.monotonic_ns() - t0
    after = {n: cpu_ns(p) for n, p in pids.items()}
    out = []
    for n, p in pids.items():
        rss, uss = memory(p)
        out.append(Usage(n, p, 100.0 * (after[n] - before[n]) / wall, rss, uss))
    return out


async def processes(rt: RuntimeProcess) -> dict[str, int]:
    """The kernel, its fork server and every service, by name."""
    st = await rt.status()
    kpid = int(st["kernel"]["pid"])
    svc = {s["name"]: int(s["pid"]) for s in st["services"] if s["pid"]}
    others = [c.pid for c in psutil.Process(kpid).children() if c.pid not in svc.values()]
    return {"kernel": kpid, **({"forkserver": others[0]} if others else {}), **svc}


async def measure(services: list[str], env: dict[str, str], settle_s: float, window_s: float) -> list[Usage]:
    """Start a runtime with ``services``, let it settle, and sample it while nobody talks to it."""
    async with running(services=services, env=env) as rt:
        pids = await processes(rt)
        await asyncio.sleep(settle_s)
        return await sample(pids, window_s)


def _svc_list(us: list[Usage], attr: str) -> str:
    if attr == "cpu_percent":
        return ", ".join(f"{u.name} {u.cpu_percent:.2f}" for u in us)
    return ", ".join(f"{u.name} {u.rss / MIB:.1f} (USS {u.uss / MIB:.1f})" for u in us)


def rows_for(label: str, us: list[Usage], window_s: float) -> list[Row]:
    """Kernel CPU and RSS, fork server, and the worst service's CPU and RSS."""
    by = {u.name: u for u in us}
    k, svcs = by["kernel"], [u for u in us if u.name not in ("kernel", "forkserver")]
    g = "idle"
    samples = {u.name: {"pid": u.pid, "cpu_percent": round(u.cpu_percent, 3), "rss_bytes": u.rss,
                        "uss_bytes": u.uss} for u in us}
    worst_cpu = max(svcs, key=lambda u: u.cpu_percent)
    worst_rss = max(svcs, key=lambda u: u.rss)
    rows = [
        Row(f"idle kernel CPU, {label}", k.cpu_percent, "%", budget=KERNEL_CPU, group=g, samples=samples,
            note=f"% of one core over {window_s:g} s, all threads (proxy and I/O threads included)"),
        Row(f"idle kernel RSS, {label}", k.rss / 1e6, "MB", budget=KERNEL_RSS, group=g,
            note=f"USS {k.uss / 1e6:.1f} MB"),
    ]
    if "forkserver" in by:
        fs = by["forkserver"]
        rows.append(Row(f"idle fork server CPU, {label}", fs.cpu_percent, "%", group=g,
                        note=f"RSS {fs.rss / MIB:.1f} MiB, USS {fs.uss / MIB:.1f} MiB"))
    rows += [
        Row(f"idle service CPU, worst of {len(svcs)} ({worst_cpu.name})", worst_cpu.cpu_percent, "%",
            budget=SERVICE_CPU, group=g, note="each: " + _svc_list(svcs, "cpu_percent")),
        Row(f"idle service RSS, worst of {len(svcs)} ({worst_rss.name})", worst_rss.rss / MIB, "MiB",
            budget=SERVICE_RSS, group=g,
            note="each MiB: " + _svc_list(svcs, "rss") + "; forked children share the fork server's pages"),
    ]
    return rows


async def run_async(quick: bool) -> list[Row]:
    """The installed services alone, then eight, one runtime after the other."""
    settle, window = (1.0, 2.5) if quick else (2.0, 5.0)
    with tempfile.TemporaryDirectory(prefix="fos-bench-plugins-") as tmp:
        write_plugins(Path(tmp))
        env = {"PYTHONPATH": os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH", "")) if p)}
        two = await measure(BASE, env, settle, window)
        eight = await measure(BASE + EXTRA, env, settle, window)
    return rows_for("2 services", two, window) + rows_for("8 services", eight, window)


def run(quick: bool = False) -> list[Row]:
    """Measure figure 5 and return its rows."""
    return asyncio.run(run_async(quick))
