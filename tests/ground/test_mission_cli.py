"""A plugin's commands from the ground, as docs/mdb.md tells a mission to do it: `flightos mdb assign`, the
target's mission table, then `flightos ground cmd` resolving the same mission database as the spacecraft."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from flightos.testing import RuntimeProcess
from tests.ground.conftest import ports
from tests.plugins.test_plugins import HERE, pip_install, with_path
from tests.runtimes import base

TARGET = """\
[target]
name = "mission-bench"
description = "a simulated board with a mission's own service, its commands in a mission table"

[hal]
backend = "sim"
cores = 2

[services.ground]
criticality = "critical"
heartbeat_period_s = 0.5

[services.ground.options]
udp_bind = "127.0.0.1:0"
mdb = ["{table}"]

[services.oot]
criticality = "elastic"
"""


def flightos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )


async def test_plugin_command_through_the_targets_mission_table(tmp_path: Path) -> None:
    """`flightos ground cmd oot origin` finds the id `mdb assign` gave, in the table the target's ground loads."""
    site = tmp_path / "site"
    await asyncio.to_thread(pip_install, HERE / "plugins" / "oot_service", site)
    env = with_path(site)
    table = tmp_path / "mission.toml"
    target = tmp_path / "mission-bench.toml"
    target.write_text(TARGET.format(table=table))

    res = await asyncio.to_thread(flightos, "mdb", "assign", "--target", str(target), "--table", str(table), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["20000 = oot.origin", "20000 = oot.step"], res.stdout

    rt = RuntimeProcess(str(target), base_dir=base(), env=env)
    rt.provision_ground_key()
    await rt.start()
    try:
        to = f"127.0.0.1:{(await ports(rt))['udp']}"
        common = ["--target", str(target), "--to", to, "--key-file", str(rt.state_dir / "ground" / "keys.json")]
        res = await asyncio.to_thread(flightos, "--json", "ground", "cmd", "oot", "origin", *common, env=env)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["file"].startswith(str(site)), res.stdout
        res = await asyncio.to_thread(flightos, "ground", "param", "get", "oot.step", *common, env=env)
        assert res.returncode == 0 and json.loads(res.stdout) == 1, res.stderr

        # without the target's table the CLI cannot know the id, and says how to give one
        res = await asyncio.to_thread(flightos, "ground", "cmd", "oot", "origin", *common[2:], env=env)
        assert res.returncode == 5 and "oot.origin has no function id" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    finally:
        await rt.stop()
        rt.cleanup()
