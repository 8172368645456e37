"""Every command and parameter flightos ships has a shipped id below 20000, and no shipped id ever changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flightos import plugins
from flightos.ground import mdb
from flightos.groundtools.mdb_export import MISSION_ID_BASE
from flightos.kernel.commands import TABLE as KERNEL_TABLE
from flightos.sdk.service import ServiceShape

GOLDEN = Path(__file__).with_name("shipped_ids.txt")


def shipped_services() -> dict[str, ServiceShape]:
    """The services installed with flightos itself (the distribution's own entry points), by name."""
    return {
        name: ServiceShape.of(plugins.load(name))
        for name, info in plugins.installed().items()
        if info.distribution == "flightos"
    }


def test_every_shipped_command_and_parameter_has_a_shipped_id() -> None:
    """A command or parameter added to a shipped service (or the kernel) without an id in mdb.toml fails here."""
    tables = mdb.load()
    services = shipped_services()
    assert {"test", "ground", "jobs", "sar", "housekeeping", "thermwatch"} <= set(services)
    missing = []
    for name, shape in sorted(services.items()):
        for command in shape.commands:
            fid = tables.function_id(name, command)
            if fid is None or fid >= MISSION_ID_BASE:
                missing.append(f"function {name}.{command}")
        for param in shape.parameters:
            pid = tables.parameter_id(name, param)
            if pid is None or pid >= MISSION_ID_BASE:
                missing.append(f"parameter {name}.{param}")
    for command in KERNEL_TABLE:
        fid = tables.function_id("kernel", command)
        if fid is None or fid >= MISSION_ID_BASE:
            missing.append(f"function kernel.{command}")
    assert not missing, f"give these a shipped id below {MISSION_ID_BASE} in flightos/ground/mdb.toml: {missing}"


def test_shipped_ids_are_never_renumbered() -> None:
    """Every id ever shipped keeps its meaning; every shipped id is on record (append it to shipped_ids.txt)."""
    tables = mdb.load()
    now = {f"function {f.id} {f.name}" for f in tables.functions.values()}
    now |= {f"parameter {p.id} {p.service}.{p.name}" for p in tables.parameters.values()}
    now |= {f"hk {h.sid} {h.name}" for h in tables.hk.values()}
    recorded = {ln for ln in GOLDEN.read_text().splitlines() if ln and not ln.startswith("#")}
    assert not recorded - now, f"shipped ids changed or removed: {sorted(recorded - now)}"
    assert not now - recorded, f"new shipped ids: append them to {GOLDEN.name}: {sorted(now - recorded)}"


def test_mdb_assign_gives_mission_ids_to_nothing_flightos_ships(tmp_path: Path) -> None:
    """`flightos mdb assign` on a fresh mission table adds nothing when only flightos's own services are installed."""
    table = tmp_path / "mission.toml"
    res = subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "mdb", "assign", "--table", str(table)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "every command and parameter already has an id", res.stdout
