"""``flightos new-service NAME``: a service package with its entry point, a command, a periodic task and a test."""

from __future__ import annotations

import re
from pathlib import Path

from flightos.config.schema import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "flightos-{name}"
version = "0.1.0"
description = "The {name} mission service for flightos"
requires-python = ">=3.10"
dependencies = ["flightos"]

[project.entry-points."flightos.services"]
{name} = "{pkg}:{cls}"

[tool.setuptools]
packages = ["{pkg}"]
'''

SERVICE = '''"""The ``{name}`` mission service."""

from __future__ import annotations

from flightos import Parameter, Service, Severity, command, periodic


class {cls}(Service):
    """Counts its own ticks and answers a greeting; replace with your mission logic."""

    name = "{name}"
    rate_hz = Parameter(1.0, min=0.1, max=10.0, doc="status reports per second")

    async def on_start(self) -> None:
        self.ticks = int(self.store.get("ticks", 0))
        await self.event("{name} started", Severity.INFO, ticks=self.ticks)

    @command()
    async def hello(self, who: str = "ground") -> str:
        """Answer a greeting."""
        return f"hello {{who}} from {name}"

    @periodic(hz="rate_hz")
    async def status(self) -> None:
        """Publish tm.{name}.status and persist the tick count."""
        self.ticks += 1
        self.store.set("ticks", self.ticks)
        await self.publish("status", {{"ticks": self.ticks}})
'''

TEST = '''"""The {name} service in a real runtime: it starts, answers, and publishes telemetry."""

import asyncio

from flightos.testing import RuntimeProcess


def test_{pkg}_answers_and_publishes() -> None:
    """hello answers, and tm.{name}.status arrives with a growing tick count."""

    async def scenario() -> None:
        async with RuntimeProcess("sim-radhard", services=["{name}"]) as rt:
            assert rt.client is not None
            assert await rt.client.call("{name}", "hello", {{"who": "test"}}) == "hello test from {name}"
            first = await rt.client.wait_for("tm.{name}.status", timeout=10)
            later = await rt.client.wait_for(
                "tm.{name}.status", lambda e: e.payload["ticks"] > first.payload["ticks"], timeout=10)
            assert later.payload["ticks"] > first.payload["ticks"]

    asyncio.run(scenario())
'''

README = '''# flightos-{name}

A flightos mission service. Install it next to flightos and run it:

    pip install -e .
    flightos run --set services.{name}.enabled=true
    flightos cmd {name} hello who=me
    flightos tm tm.{name}

Test it (starts a real runtime): `pytest tests`.
'''


def scaffold(name: str, where: Path) -> Path:
    """Create ``flightos-<name>/`` under ``where``; refuse bad names and existing folders."""
    if not _NAME.match(name):
        raise ConfigError(f"service name {name!r}: use lower-case letters, digits, '-' and '_', "
                          "starting with a letter")
    pkg = name.replace("-", "_")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Service"
    root = where / f"flightos-{name}"
    if root.exists():
        raise ConfigError(f"{root} already exists; not overwriting it")
    values = {"name": name, "pkg": pkg, "cls": cls}
    (root / pkg).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(**values))
    (root / "README.md").write_text(README.format(**values))
    (root / pkg / "__init__.py").write_text(SERVICE.format(**values))
    (root / "tests" / f"test_{pkg}.py").write_text(TEST.format(**values))
    return root
