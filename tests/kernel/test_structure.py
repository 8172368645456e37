"""The kernel is built complete by the composition root: no method but ``__init__`` creates an attribute."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from flightos.kernel import kernel
from flightos.kernel.health import monitor


def _self_assignments(cls: type, method: str) -> list[str]:
    """Names of ``self.<name>`` assigned in one method of a class, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(cls, method))))
    names = []
    for node in ast.walk(tree):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, (ast.AnnAssign, ast.AugAssign))
            else []
        )
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                names.append(t.attr)
    return names


@pytest.mark.parametrize(
    "method", [m for m, f in vars(kernel.Kernel).items() if inspect.isfunction(f) and m != "__init__"]
)
def test_no_kernel_method_but_init_creates_an_attribute(method: str) -> None:
    """``run`` and every other method only use what ``__init__`` set from the parts the composition root built."""
    created = set(_self_assignments(kernel.Kernel, method)) - set(_self_assignments(kernel.Kernel, "__init__"))
    assert created == set()


def test_the_health_monitor_is_not_handed_the_kernel() -> None:
    """The monitor's constructor names its ports, not a kernel."""
    params = inspect.signature(monitor.HealthMonitor.__init__).parameters
    assert "kernel" not in params and {"moves", "lag", "sampler", "emit"} <= set(params)
