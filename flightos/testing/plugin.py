"""The flightos pytest plugin: run your service tests against the simulator or a real board, unchanged.

    pytest                      # against sim-radhard
    pytest --target rpi5        # the same tests on a Raspberry Pi 5 (board-marked tests run too)
    pytest --set hal.time_scale=60

Fixtures: ``flightos_runtime`` (a runtime per test), ``flightos_module_runtime`` (one per module),
``bus`` (commands, telemetry and events with timeouts), ``ground`` (PUS over UDP), ``faults``.
Markers: ``@pytest.mark.flightos(services=[...], overrides=[...], scenario="file.toml")`` and
``@pytest.mark.board("rpi")`` (skipped, with the reason, unless the target is that board).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flightos.testing.bus import Bus
from flightos.testing.faults import Faults
from flightos.testing.runtime import RuntimeProcess

pytest_asyncio: Any
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin still loads; async fixtures then say what is missing
    pytest_asyncio = None

_RUNTIMES = pytest.StashKey[list[RuntimeProcess]]()


def _async_fixture(fn: Any) -> Any:
    """An async fixture with pytest-asyncio; without it, a fixture that skips saying what to install."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(fn)

    @pytest.fixture(name=fn.__name__)
    def missing() -> None:
        pytest.skip("the flightos async fixtures need pytest-asyncio: pip install pytest-asyncio")

    return missing


@dataclass(frozen=True)
class TargetChoice:
    """What the command line chose: a target (name or path), overrides, and its HAL backend."""

    target: str
    overrides: list[str] = field(default_factory=list)
    backend: str = "sim"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flightos", "flightos runtime under test")
    group.addoption(
        "--target",
        dest="flightos_target",
        default=os.environ.get("FLIGHTOS_TARGET", "sim-radhard"),
        help="target name or file the runtime fixtures start (default sim-radhard)",
    )
    group.addoption(
        "--set",
        dest="flightos_set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a target key for every runtime the tests start (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "board(kind): needs a real board of this kind (rpi, jetson, linux); "
        "skipped with the reason on any other target",
    )
    config.addinivalue_line(
        "markers",
        "flightos(services=None, overrides=None, scenario=None): what the runtime fixtures start for this test",
    )


def _choice(config: pytest.Config) -> TargetChoice:
    from flightos.config import target as tgt

    name = str(config.getoption("flightos_target"))
    overrides = list(config.getoption("flightos_set") or [])
    backend = tgt.load(name, overrides).hal_backend
    return TargetChoice(name, overrides, backend)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip board-marked tests unless the target is that kind of board and this machine is one."""
    for mark in item.iter_markers("board"):
        kind = str(mark.args[0]) if mark.args else ""
        choice = _choice(item.config)
        if choice.backend != kind:
            pytest.skip(f"needs a {kind} target: the target {choice.target!r} uses the {choice.backend!r} backend")
        if kind == "sim":
            continue  # the simulator runs anywhere
        import hal

        found = hal.detect().backend
        if found != kind:
            pytest.skip(f"needs a real {kind} board: this machine looks like {found!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On failure, attach the tail of every runtime's log to the test report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for rt in item.stash.get(_RUNTIMES, []):
            report.sections.append((f"flightos runtime log ({rt.log_path})", rt.log_tail(80)))


@pytest.fixture(scope="session")
def flightos_target(pytestconfig: pytest.Config) -> TargetChoice:
    """The target the runtime fixtures start (--target, --set)."""
    return _choice(pytestconfig)


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    mark = request.node.get_closest_marker("flightos") if hasattr(request.node, "get_closest_marker") else None
    return dict(mark.kwargs) if mark else {}


def _make(choice: TargetChoice, settings: dict[str, Any], base: Path | None) -> RuntimeProcess:
    scenario = settings.get("scenario")
    rt = RuntimeProcess(
        choice.target,
        services=settings.get("services"),
        overrides=[*choice.overrides, *settings.get("overrides", [])],
        base_dir=base,
        scenario=Path(scenario) if scenario else None,
    )
    if settings.get("services") is None or "ground" in (settings.get("services") or []):
        rt.provision_ground_key()
        rt.overrides.append('services.ground.options.udp_bind="127.0.0.1:0"')
    return rt


def _base() -> Path | None:
    base = os.environ.get("FLIGHTOS_TEST_BASE")
    return Path(base) if base else None


@pytest.fixture
def flightos_runtime(request: pytest.FixtureRequest, flightos_target: TargetChoice) -> Iterator[RuntimeProcess]:
    """A runtime for this test only, with the services its ``flightos`` marker names (default: the target's)."""
    rt = _make(flightos_target, _settings(request), _base())
    request.node.stash.setdefault(_RUNTIMES, []).append(rt)
    try:
        rt.start_sync()
        yield rt
    finally:
        rt.stop_sync()
        rt.cleanup()  # the log tail was attached to the report when the test failed


@pytest.fixture(scope="module")
def flightos_module_runtime(request: pytest.FixtureRequest, flightos_target: TargetChoice) -> Iterator[RuntimeProcess]:
    """One runtime shared by the tests of a module (the module's ``pytestmark`` flightos marker applies)."""
    mark = next((m for m in getattr(request.module, "pytestmark", []) if getattr(m, "name", "") == "flightos"), None)
    rt = _make(flightos_target, dict(mark.kwargs) if mark else {}, _base())
    try:
        rt.start_sync()
        yield rt
    finally:
        rt.stop_sync()
        rt.cleanup()


def _runtime_of(request: pytest.FixtureRequest) -> RuntimeProcess:
    name = "flightos_module_runtime" if "flightos_module_runtime" in request.fixturenames else "flightos_runtime"
    rt: RuntimeProcess = request.getfixturevalue(name)
    if name == "flightos_module_runtime":
        request.node.stash.setdefault(_RUNTIMES, []).append(rt)
    return rt


@_async_fixture
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """Commands, telemetry and events of the test's runtime, with timeouts that explain themselves."""
    from flightos.client import Client

    rt = _runtime_of(request)
    client = Client(rt.runtime_dir, name="pytest")
    b = Bus(client)
    await client.call("kernel", "ping")  # the subscription is live once a round trip is done
    try:
        yield b
    finally:
        b.close()
        client.close()


@_async_fixture
async def ground(request: pytest.FixtureRequest, bus: Bus) -> AsyncIterator[Any]:
    """A PUS ground client on the runtime's ground service, with the key the fixture provisioned; it
    acknowledges the telemetry it receives (TC[15,130]) twice a second, as a ground station would."""
    from flightos.ground.security import KeyStore
    from flightos.groundtools.console import GroundClient

    rt = _runtime_of(request)
    status = await bus.call("ground", "link_status")
    port = next(lk["port"] for lk in status["links"] if lk["kind"] == "udp")
    async with GroundClient("127.0.0.1", port, 100, KeyStore(rt.state_dir / "ground" / "keys.json"), auto_ack=0.5) as g:
        yield g


@_async_fixture
async def faults(bus: Bus) -> AsyncIterator[Faults]:
    """Fault injection: the simulator's faults, and software faults on any board."""
    f = Faults(bus)
    try:
        yield f
    finally:
        f.cleanup()
