"""The kernel's command table: declared like service commands, checked by the same validator, read by ground tools."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from flightos.bus.errors import BadArguments, UnknownCommand
from flightos.ground import mdb
from flightos.groundtools.mdb_export import as_json, xtce
from flightos.kernel import commands
from flightos.kernel.command_docs import KERNEL_ARGUMENTS, KERNEL_COMMANDS
from flightos.sdk.validation import signature_of, validate

EVERY_COMMAND = {
    "ping",
    "status",
    "describe",
    "restart",
    "stop",
    "start",
    "kill",
    "inject",
    "faults",
    "core",
    "block",
    "mode",
    "shutdown",
    "link",
}


class NoKernel:
    """A port that fails the test if a handler is reached: argument checks come first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the handler ran (it touched {name!r}) although its arguments were bad")


def test_every_kernel_command_is_declared_with_a_doc_and_typed_arguments() -> None:
    """describe lists each command with its one-line doc and its arguments in the shape a service gives."""
    desc = commands.describe()
    assert set(desc) == {"service", "commands", "periodic", "subscriptions", "parameters"}
    assert desc["service"] == "kernel" and set(desc["commands"]) == EVERY_COMMAND == set(KERNEL_COMMANDS)
    for name, entry in desc["commands"].items():
        assert entry["doc"] and entry["doc"] == KERNEL_COMMANDS[name]
        assert entry["args"] == [
            {"name": a.name, "type": a.type_name, "required": a.required, "default": None if a.required else a.default}
            for a in signature_of(commands.TABLE[name].handler)
        ]
    args = {n: [(a["name"], a["type"], a["required"]) for a in e["args"]] for n, e in desc["commands"].items()}
    assert args["restart"] == args["stop"] == args["start"] == [("service", "str", True)]
    assert args["kill"] == [("service", "str", True), ("signal", "str", False)]
    assert args["core"] == [("core", "int", True), ("action", "str", True)]
    assert args["mode"] == [("mode", "str", True)]
    assert args["block"] == [("seconds", "float", True)]
    assert args["inject"][0] == ("fault", "str", True)
    assert args["ping"] == args["status"] == args["shutdown"] == []


@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        ("restart", {}, "missing argument 'service' (str)"),
        ("core", {"core": "two", "action": "disable"}, "argument 'core' expects int"),
        ("ping", {"extra": 1}, "unexpected argument(s) extra"),
        ("block", {"seconds": True}, "argument 'seconds' expects float"),
        ("mode", {"mode": float("nan")}, "argument 'mode' expects str"),
    ],
)
async def test_bad_arguments_are_refused_as_a_service_refuses_them(
    name: str, args: dict[str, Any], problem: str
) -> None:
    """The same validator, so the same message: ``kernel.<command>: <problem>``, with the problems listed."""
    with pytest.raises(BadArguments) as info:
        await commands.dispatch(NoKernel(), name, args)  # type: ignore[arg-type]
    with pytest.raises(BadArguments) as same:
        validate(f"kernel.{name}", commands.TABLE[name].arguments, args)
    assert str(info.value) == str(same.value)
    assert str(info.value).startswith(f"kernel.{name}: ") and problem in str(info.value)
    assert problem in " ".join(info.value.details["problems"])


async def test_an_unknown_kernel_command_lists_the_table() -> None:
    with pytest.raises(UnknownCommand, match="the kernel has no command 'nope'") as info:
        await commands.dispatch(NoKernel(), "nope", {})  # type: ignore[arg-type]
    assert info.value.details["available"] == sorted(EVERY_COMMAND)


def test_the_mission_database_kernel_functions_match_the_table() -> None:
    """Each shipped kernel function's declared wire arguments and doc are the table's."""
    tables = mdb.load()
    kernel = [f for f in tables.functions.values() if f.service == "kernel"]
    assert kernel
    doc = {f"{f['service']}.{f['command']}": f for f in as_json(tables)["functions"]}
    for fn in kernel:
        assert fn.command in commands.TABLE, fn.name
        assert fn.args is not None
        table = [(a.name, a.type_name) for a in KERNEL_ARGUMENTS[fn.command]]
        required = [(a.name, a.type_name) for a in KERNEL_ARGUMENTS[fn.command] if a.required]
        # On the wire: every required argument, then optional ones the ground may set, in the table's order.
        assert list(fn.args) == table[: len(fn.args)], fn.name
        assert set(required) <= set(fn.args), fn.name
        assert doc[fn.name]["doc"] == KERNEL_COMMANDS[fn.command]


def test_a_kernel_function_without_listed_arguments_takes_them_from_the_table(tmp_path: Any) -> None:
    """A mission table naming a kernel command gets its typed arguments in JSON and an XTCE MetaCommand."""
    table = tmp_path / "mission.toml"
    table.write_text('[functions]\n20000 = "kernel.kill"\n20001 = "kernel.block"\n')
    tables = mdb.load([table])
    doc = {f"{f['service']}.{f['command']}": f for f in as_json(tables)["functions"]}
    assert doc["kernel.kill"]["args"] == [
        {"name": "service", "type": "str", "required": True, "default": None},
        {"name": "signal", "type": "str", "required": False, "default": "KILL"},
    ]
    assert doc["kernel.block"]["args"] == [{"name": "seconds", "type": "float", "required": True, "default": None}]
    assert doc["kernel.block"]["doc"] == KERNEL_COMMANDS["block"]
    assert "kernel.kill" not in as_json(tables)["unresolved"]
    assert 'name="kernel_kill"' in xtce(tables) and 'name="kernel_block"' in xtce(tables)


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("flightos.kernel.command_docs", ("zmq", "psutil", "hal", "flightos.kernel.kernel")),
        ("flightos.groundtools.mdb_export", ("zmq", "psutil", "flightos.kernel.kernel")),
    ],
)
def test_ground_tools_read_the_table_without_loading_the_kernel(module: str, heavy: tuple[str, ...]) -> None:
    """The docs view loads neither the kernel nor ZeroMQ, psutil or the HAL; the exporter not the kernel."""
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
