"""The SDK inside a real runtime: calls between services, events, parameters that persist."""

from __future__ import annotations

import os
import stat

import pytest

from flightos import Severity, UnknownCommand
from flightos.testing import RuntimeProcess, active


async def test_a_service_calls_another_through_the_kernel(runtime: RuntimeProcess) -> None:
    """test.relay calls housekeeping.sample; the callee's typed error reaches the original caller."""
    c = runtime.client
    assert c is not None
    sample = await c.call("test", "relay", {"service": "housekeeping", "command": "sample"})
    assert {"memory", "disk", "load_avg", "core_load_pct"} <= set(sample)
    with pytest.raises(UnknownCommand, match="service 'housekeeping' has no command 'nope'"):
        await c.call("test", "relay", {"service": "housekeeping", "command": "nope"})


async def test_events_carry_severity_on_the_bus(runtime: RuntimeProcess) -> None:
    """An event raised by a service arrives on ev.<service> with its id and severity name."""
    c = runtime.client
    assert c is not None
    sub = c.subscriber("ev.test")
    await c.call("kernel", "ping")
    await c.call("test", "announce", {"message": "sun sensor blinded", "severity": 3})
    ev = await c.wait_for("ev.test", timeout=5, sub=sub)
    assert ev.payload["message"] == "sun sensor blinded"
    assert ev.payload["severity"] == Severity.MEDIUM and ev.payload["severity_name"] == "MEDIUM"
    assert ev.payload["id"] == 17001 and ev.source == "test"


async def test_parameters_persist_across_a_restart(runtime: RuntimeProcess) -> None:
    """A parameter set over the bus survives the service being killed and restarted."""
    c = runtime.client
    assert c is not None
    assert await c.call("test", "set_param", {"name": "greeting", "value": "hello sat"}) == "hello sat"
    with pytest.raises(Exception, match="not a str"):
        await c.call("test", "set_param", {"name": "greeting", "value": 5})
    params = await c.call("test", "list_params")
    assert params == {"greeting": "hello sat", "duty_pct": 0.0}
    old = (await runtime.service("test"))["pid"]
    await c.call("kernel", "kill", {"service": "test"})
    await runtime.wait_until(
        lambda s: (
            next(r for r in s["services"] if r["name"] == "test")["pid"] not in (None, old)
            and all(r["state"] == "READY" for r in active(s))
        ),
        what="test restarted",
    )
    assert (await c.call("test", "ping"))["reply"] == "hello sat"


async def test_describe_lists_commands_with_types(runtime: RuntimeProcess) -> None:
    """describe gives every command with its documented, typed arguments."""
    d = await runtime.client.call("test", "describe")  # type: ignore[union-attr]
    sleep = d["commands"]["sleep"]
    assert sleep["doc"].startswith("Wait asynchronously")
    assert sleep["args"] == [{"name": "seconds", "type": "float", "required": True, "default": None}]
    assert d["parameters"][0]["name"] == "greeting"


async def test_runtime_directory_is_private(runtime: RuntimeProcess) -> None:
    """The runtime directory holding the ipc sockets is mode 0700."""
    mode = stat.S_IMODE(os.stat(runtime.runtime_dir).st_mode)
    assert mode == 0o700


async def test_acl_refuses_a_command_and_raises_a_security_event() -> None:
    """With [acl], a service may call only what it is allowed: a refusal is access_denied and nothing runs."""
    from flightos.bus.errors import AccessDenied
    from tests.runtimes import kernel_events, make_runtime

    overrides = ['acl.default="deny"', 'acl.commands.test=["housekeeping.sample", "kernel.ping"]']
    async with make_runtime(["test", "housekeeping"], overrides) as rt:
        c = rt.client
        assert c is not None
        assert "memory" in await c.call("test", "relay", {"service": "housekeeping", "command": "sample"})
        events = await kernel_events(c)
        await c.call("kernel", "ping")
        with pytest.raises(AccessDenied, match=r"may not run housekeeping\.set_param"):
            await c.call(
                "test",
                "relay",
                {"service": "housekeeping", "command": "set_param", "args": {"name": "rate_hz", "value": 5.0}},
            )
        denied = await c.wait_for("ev.kernel", lambda e: e.payload["name"] == "ACCESS_DENIED", timeout=5, sub=events)
        assert denied.payload["data"] == {"caller": "test", "destination": "housekeeping", "command": "set_param"}
        assert await c.call("housekeeping", "get_param", {"name": "rate_hz"}) == 1.0  # nothing ran
        with pytest.raises(AccessDenied):
            await c.call("test", "relay", {"service": "kernel", "command": "stop", "args": {"service": "housekeeping"}})
        assert (await rt.service("housekeeping"))["state"] == "READY"
