"""``flightos new-service NAME``: a service package with its entry point, a command, a periodic task and a test."""

from __future__ import annotations

import re
from pathlib import Path

from flightos.config.schema import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "flightos-{name}"
version = "0.1.0"
description = "The {name} mission service for flightos"
requires-python = ">=3.10"
dependencies = ["flightos"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.23"]

[project.entry-points."flightos.services"]
{name} = "{pkg}:{cls}"

[tool.setuptools]
packages = ["{pkg}"]

# The service guide's tests are `async def` on the flightos fixtures: pytest-asyncio runs them.
[tool.pytest.ini_options]
testpaths = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
"""

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

TEST = '''"""The {name} service in a real runtime, with the fixtures of the service guide (docs/testing.md).

`pytest` runs these against the simulated sim-radhard board; `pytest --target rpi5` on a Raspberry Pi.
"""

import pytest
from flightos.testing.bus import Bus
from flightos.testing.faults import Faults

pytestmark = pytest.mark.flightos(services=["{name}"])  # what the runtime fixtures start


async def test_hello_answers(bus: Bus) -> None:
    """The command answers through the kernel."""
    assert await bus.call("{name}", "hello", {{"who": "test"}}) == "hello test from {name}"


async def test_status_ticks(bus: Bus) -> None:
    """tm.{name}.status arrives with a growing tick count."""
    first = await bus.telemetry("tm.{name}.status", timeout=10)
    later = await bus.telemetry("tm.{name}.status", lambda p: p["ticks"] > first["ticks"], timeout=10)
    assert later["ticks"] > first["ticks"]


async def test_restarts_after_a_kill_and_keeps_its_count(bus: Bus, faults: Faults) -> None:
    """Killed, the service is restarted by the kernel; the store carries the tick count over."""
    before = await bus.telemetry("tm.{name}.status", timeout=10)
    await faults.kill("{name}")
    await bus.event("SERVICE_READY", service="{name}", timeout=10)
    after = await bus.telemetry("tm.{name}.status", timeout=10)
    assert after["ticks"] > before["ticks"]
'''

README = """# flightos-{name}

A flightos mission service. Install it next to flightos and run it:

    pip install -e '.[test]'
    flightos run --set services.{name}.enabled=true
    flightos cmd {name} hello who=me
    flightos tm tm.{name}

Test it: `pytest` (each test starts a real runtime on the simulated board; the fixtures
`bus`, `faults`, `ground` and `flightos_runtime` are described in flightos's docs/testing.md).
"""


def scaffold(name: str, where: Path) -> Path:
    """Create ``flightos-<name>/`` under ``where``; refuse bad names and existing folders."""
    if not _NAME.match(name):
        raise ConfigError(f"service name {name!r}: use lower-case letters, digits, '-' and '_', starting with a letter")
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
