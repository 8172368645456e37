"""Figure 5: an idle runtime's cost — kernel and per-service CPU % and RSS, with 2, 8 and 64 services.

Only two services are installed (housekeeping, test), so 62 trivial ones are installed for the
run with ``pip install --no-deps --no-build-isolation --target`` into a throwaway directory put on
the runtime's PYTHONPATH (if pip cannot build, e.g. without ``wheel``, the same ``.dist-info`` with
their ``flightos.services`` entry points is written by hand). The directory is removed afterwards.
CPU time is read from ``/proc/<pid>/task/*/schedstat`` (nanoseconds, every thread), falling
back to psutil's tick-resolution times.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import goals
from bench.report import Budget, Row
from bench.runtime import running
from flightos.testing.runtime import RuntimeProcess

EXTRA_IDS = range(1, 63)
"""Trivial services installed for the run: idle1..idle6 make 8 with the two shipped ones, idle1..idle62 make 64."""
EXTRA = [f"idle{i}" for i in EXTRA_IDS]
ENTRY_POINTS = "".join(f"idle{i} = fosbench_idle:Idle{i}\n" for i in EXTRA_IDS)
BASE = ["housekeeping", "test"]
KERNEL_CPU = Budget("value", "<=", 1.0, unit="%")
KERNEL_CPU_64 = Budget("value", "<=", 3.0, unit="%")
START_TIMEOUT_S = 120.0
"""64 services take a while to come up on a loaded 2-core machine."""
KERNEL_RSS = Budget("value", "<=", 60.0, unit="MB")
SERVICE_CPU = Budget("value", "<=", 0.5, unit="%")
SERVICE_RSS = Budget("value", "<=", 30.0, unit="MiB")
MIB = 1024 * 1024


def write_package(src: Path) -> None:
    """Sources of a distribution with six idle Service subclasses registered as entry points."""
    pkg = src / "fosbench_idle"
    pkg.mkdir(parents=True)
    classes = "\n\n".join(
        f'class Idle{i}(Service):\n    """Does nothing."""\n\n    name = "idle{i}"' for i in EXTRA_IDS
    )
    (pkg / "__init__.py").write_text(
        f'"""Idle services for the benchmark."""\n\nfrom flightos import Service\n\n\n{classes}\n'
    )
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "fosbench-idle"\nversion = "0"\n\n[tool.setuptools]\npackages = ["fosbench_idle"]\n\n'
        '[project.entry-points."flightos.services"]\n'
        + "".join(f'idle{i} = "fosbench_idle:Idle{i}"\n' for i in EXTRA_IDS)
    )


def write_dist_info(target: Path, src: Path) -> None:
    """What ``pip install --target`` leaves, by hand: the package and a dist-info with the entry points."""
    shutil.copytree(src / "fosbench_idle", target / "fosbench_idle")
    dist = target / "fosbench_idle-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fosbench-idle\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(f"[flightos.services]\n{ENTRY_POINTS}")


def install_plugins(root: Path) -> str:
    """Install the idle services into ``root/site``; return how (pip, or a hand-written dist-info)."""
    src, target = root / "src", root / "site"
    write_package(src)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(target),
        str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return "pip install --no-deps --no-build-isolation --target"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    write_dist_info(target, src)
    reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return f"a hand-written dist-info (pip failed: {reason})"


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
    async with running(services=services, env=env, start_timeout=START_TIMEOUT_S) as rt:
        pids = await processes(rt)
        await asyncio.sleep(settle_s)
        return await sample(pids, window_s)


def _svc_list(us: list[Usage], attr: str) -> str:
    """Every service's CPU % or memory, for a note."""
    if attr == "cpu_percent":
        return ", ".join(f"{u.name} {u.cpu_percent:.2f}" for u in us)
    return ", ".join(f"{u.name} {u.rss / MIB:.1f} (USS {u.uss / MIB:.1f})" for u in us)


def rows_for(label: str, us: list[Usage], window_s: float) -> list[Row]:
    """Kernel CPU and RSS, fork server, and the worst service's CPU and RSS."""
    by = {u.name: u for u in us}
    k, svcs = by["kernel"], [u for u in us if u.name not in ("kernel", "forkserver")]
    g = "idle"
    samples = {
        u.name: {"pid": u.pid, "cpu_percent": round(u.cpu_percent, 3), "rss_bytes": u.rss, "uss_bytes": u.uss}
        for u in us
    }
    worst_cpu = max(svcs, key=lambda u: u.cpu_percent)
    worst_rss = max(svcs, key=lambda u: u.rss)
    rows = [
        Row(
            f"idle kernel CPU, {label}",
            k.cpu_percent,
            "%",
            budget=KERNEL_CPU_64 if len(svcs) > 8 else KERNEL_CPU,
            group=g,
            samples=samples,
            note=f"% of one core over {window_s:g} s, all threads (proxy and I/O threads included)",
        ),
        Row(
            f"idle kernel RSS, {label}", k.rss / 1e6, "MB", budget=KERNEL_RSS, group=g, note=f"USS {k.uss / 1e6:.1f} MB"
        ),
    ]
    if "forkserver" in by:
        fs = by["forkserver"]
        rows.append(
            Row(
                f"idle fork server CPU, {label}",
                fs.cpu_percent,
                "%",
                group=g,
                note=f"RSS {fs.rss / MIB:.1f} MiB, USS {fs.uss / MIB:.1f} MiB",
            )
        )
    rows += [
        Row(
            f"idle service CPU, worst of {len(svcs)} ({worst_cpu.name})",
            worst_cpu.cpu_percent,
            "%",
            budget=SERVICE_CPU,
            group=g,
            note="each: " + _svc_list(svcs, "cpu_percent"),
        ),
        Row(
            f"idle service RSS, worst of {len(svcs)} ({worst_rss.name})",
            worst_rss.rss / MIB,
            "MiB",
            budget=SERVICE_RSS,
            group=g,
            note="each MiB: " + _svc_list(svcs, "rss") + "; forked children share the fork server's pages",
        ),
    ]
    return rows


async def run_async(quick: bool) -> list[Row]:
    """The installed services alone, then eight, one runtime after the other."""
    settle, window = (1.0, 2.5) if quick else (2.0, 5.0)
    with tempfile.TemporaryDirectory(prefix="fos-bench-plugins-") as tmp:
        how = install_plugins(Path(tmp))
        site = str(Path(tmp) / "site")
        env = {"PYTHONPATH": os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH", "")) if p)}
        two = await measure(BASE, env, settle, window)
        eight = await measure(BASE + EXTRA[:6], env, settle, window)
        many = await measure(BASE + EXTRA, env, settle, window)
    for n, us in ((8, eight), (64, many)):
        goals.record(("idle", n), next(u.cpu_percent for u in us if u.name == "kernel"))
        goals.record(("idle total", n), sum(u.cpu_percent for u in us))
    eight_rows = rows_for("8 services", eight, window)
    eight_rows[0].note += f"; idle1..idle62 are trivial Service subclasses installed by {how}"
    many_rows = rows_for("64 services", many, window)
    total = sum(u.cpu_percent for u in many)
    many_rows[0].note += f"; every process of the runtime together: {total:.2f} % of a core"
    return rows_for("2 services", two, window) + eight_rows + many_rows


def run(quick: bool = False) -> list[Row]:
    """Measure figure 5 and return its rows."""
    return asyncio.run(run_async(quick))
