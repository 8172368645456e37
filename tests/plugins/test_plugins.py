"""Plugins: an out-of-tree service installed from a package, and the scaffold's own test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtimes import base, make_runtime

HERE = Path(__file__).resolve().parent.parent


def pip_install(src: Path, into: Path) -> None:
    """A real pip install of a package directory into a private site directory."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(into),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def with_path(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))}


async def test_out_of_tree_plugin_runs_like_a_built_in(tmp_path: Path) -> None:
    """A service installed from outside the repository is found by entry point, supervised, restarted."""
    site = tmp_path / "site"
    pip_install(HERE / "plugins" / "oot_service", site)
    async with make_runtime(["oot", "test"], ["services.oot.params.step=2"], env=with_path(site)) as rt:
        c = rt.client
        assert c is not None
        info = await c.call("oot", "origin")
        assert info["file"].startswith(str(site)), "loaded from the repository, not from the install"
        assert await c.call("oot", "get_param", {"name": "step"}) == 2
        first = await c.wait_for("tm.oot.ticks", timeout=5)
        assert first.payload["ticks"] % 2 == 0
        await c.call("kernel", "kill", {"service": "oot"})

        def restarted(st: dict) -> bool:  # type: ignore[type-arg]
            row = next(r for r in st["services"] if r["name"] == "oot")
            return bool(row["restarts"] == 1 and row["state"] == "READY")

        await rt.wait_until(restarted, what="oot restarted")
        again = await c.call("oot", "origin")
        assert again["ticks"] >= first.payload["ticks"], "the store did not survive the restart"


def test_scaffolded_service_passes_its_own_test(tmp_path: Path) -> None:
    """`flightos new-service` writes a package whose own tests (the guide's async fixtures) pass once installed."""
    subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "new-service", "startracker", "--dir", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pkg = tmp_path / "flightos-startracker"
    site = tmp_path / "site"
    pip_install(pkg, site)
    env = {**os.environ, **with_path(site), "FLIGHTOS_TEST_BASE": str(base())}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],  # as `new-service` says
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 passed" in res.stdout


def test_scaffold_refuses_bad_names(tmp_path: Path) -> None:
    """A bad service name is a one-line error with exit code 5, not a traceback."""
    res = subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "new-service", "Bad Name", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 5
    assert res.stderr.startswith("flightos: service name 'Bad Name'") and "Traceback" not in res.stderr


@pytest.fixture(autouse=True)
def _no_stray_install() -> None:
    """Plugins are installed into private directories only, never into the environment."""
    import importlib.metadata as md

    assert not any(ep.name in ("oot", "startracker") for ep in md.entry_points(group="flightos.services"))
