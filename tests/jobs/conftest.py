"""Fixtures of the jobs tests: the plugins' entry points, and a runtime with the jobs service.

The ``jobs`` service and the ``inference.run`` / ``test.spin`` processors are registered in
flightos's own pyproject.toml. Where the installed flightos predates them, the missing entry
points are written into a throwaway ``.dist-info`` that goes on the PYTHONPATH of the test
process and of the runtimes it starts, never into the environment.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from flightos.testing import RuntimeProcess
from tests.runtimes import base

ENTRY_POINTS = {
    "flightos.services": {"jobs": "services.jobs:Jobs"},
    "flightos.processors": {"inference.run": "services.inference:run", "test.spin": "services.jobs.testproc:spin"},
}
JOBS = [
    'services.jobs.criticality="elastic"',
    "services.jobs.heartbeat_period_s=0.2",
    "services.jobs.heartbeat_misses=5",
]


def missing_entry_points() -> dict[str, dict[str, str]]:
    """The entry points above that no installed distribution provides."""
    out: dict[str, dict[str, str]] = {}
    for group, eps in ENTRY_POINTS.items():
        have = {ep.name for ep in md.entry_points(group=group)}
        missing = {k: v for k, v in eps.items() if k not in have}
        if missing:
            out[group] = missing
    return out


def write_dist_info(site: Path, eps: dict[str, dict[str, str]]) -> None:
    """What ``pip install --target`` would leave for a distribution with only these entry points."""
    dist = site / "flightos_jobs_dev-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flightos-jobs-dev\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n" for group, items in eps.items()
        )
    )


@pytest.fixture(scope="session")
def plugin_env() -> Iterator[dict[str, str]]:
    """PYTHONPATH for runtimes (empty when flightos already registers everything); also on sys.path here."""
    eps = missing_entry_points()
    if not eps:
        yield {}
        return
    site = base() / "jobs-site"
    write_dist_info(site, eps)
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [str(site), repo, os.environ.get("PYTHONPATH", "")]))
    old_path, old_env = list(sys.path), os.environ.get("PYTHONPATH")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = path  # job processes started in this process find the processors too
    try:
        yield {"PYTHONPATH": path}
    finally:
        sys.path[:] = old_path
        if old_env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_env


def jobs_runtime(
    env: dict[str, str], overrides: list[str] | None = None, services: list[str] | None = None
) -> RuntimeProcess:
    """A runtime with the jobs service (elastic, fast heartbeats) in this run's directory."""
    return RuntimeProcess(
        "sim-radhard", services=services or ["jobs"], overrides=[*JOBS, *(overrides or [])], base_dir=base(), env=env
    )


@pytest_asyncio.fixture
async def jobs_rt(plugin_env: dict[str, str]) -> AsyncIterator[RuntimeProcess]:
    """A fresh runtime with only the jobs service."""
    async with jobs_runtime(plugin_env) as rt:
        yield rt
