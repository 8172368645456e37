"""The running kernel answers its commands from its table: the same describe and refusals as a service."""

from __future__ import annotations

import re

import pytest

from flightos.bus.errors import BadArguments
from flightos.kernel import commands
from flightos.testing import RuntimeProcess


async def test_the_kernel_describes_itself_and_refuses_bad_arguments_like_a_service(runtime: RuntimeProcess) -> None:
    """``kernel describe`` is the table's, with typed arguments; a bad argument reads as a service's does."""
    c = runtime.client
    assert c is not None
    kernel, service = await c.call("kernel", "describe"), await c.call("test", "describe")
    assert kernel == commands.describe() and set(kernel) == set(service)
    assert kernel["commands"]["core"]["args"][0] == {"name": "core", "type": "int", "required": True, "default": None}
    refusals = []
    for dst, name, args in (("kernel", "block", {"seconds": "soon"}), ("test", "sleep", {"seconds": "soon"})):
        with pytest.raises(BadArguments) as info:
            await c.call(dst, name, args)
        refusals.append(re.sub(r"^\w+\.\w+", "X", str(info.value)))
    assert refusals[0] == refusals[1] and "argument 'seconds' expects float" in refusals[0]
    with pytest.raises(BadArguments, match=r"^kernel\.restart: missing argument 'service' \(str\)$"):
        await c.call("kernel", "restart", {})
