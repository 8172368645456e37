"""docs/testing.md, rendered from the pytest plugin's fixtures and the methods of what they yield.

Signatures are read from the source (``ast``), not from live objects, so the page is the same on
every Python version and shows defaults as written (``lambda p: True``, not a function's address).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from typing import Any

#: (fixture, scope, what it yields, the class documented for it below or None)
FIXTURES: tuple[tuple[str, str, str, str | None], ...] = (
    ("flightos_runtime", "function", "`RuntimeProcess`", "flightos.testing.runtime:RuntimeProcess"),
    ("flightos_module_runtime", "module", "`RuntimeProcess`", None),
    ("bus", "function", "`Bus`", "flightos.testing.bus:Bus"),
    ("faults", "function", "`Faults`", "flightos.testing.faults:Faults"),
    ("ground", "function", "`GroundClient`", "flightos.groundtools.console:GroundClient"),
    ("flightos_target", "session", "`TargetChoice`", None),
)
#: Helpers a test imports itself.
FUNCTIONS = ("flightos.testing:eventually",)

INTRO = """# Testing reference: the flightos pytest fixtures

`pip install flightos` registers a pytest plugin (`flightos.testing.plugin`). Its fixtures start a
real runtime (real processes and sockets) on the simulated `sim-radhard` board, or with
`pytest --target rpi5` on a real board. The [service guide](service-guide.md#testing-a-service)
shows how to write the tests; this page lists every fixture and every method they give you.

The fixtures are `async`: a package that uses them needs pytest-asyncio and, in its
`pyproject.toml`, `[tool.pytest.ini_options] asyncio_mode = "auto"` (`flightos new-service` writes
both).

This page is generated from the code by `python -m flightos.reference testing`; a test checks it
is current.

When a test fails, the tail of its runtime's log is attached to the report, and a wait that times
out says what it saw on the topic.
"""

#: The plugin's command-line options and markers (flightos/testing/plugin.py), with what they do.
OPTIONS: tuple[tuple[str, str], ...] = (
    (
        "pytest --target NAME|PATH",
        "the target the runtime fixtures start (default `sim-radhard`, or `$FLIGHTOS_TARGET`)",
    ),
    (
        "pytest --set KEY=VALUE",
        "override a target key for every runtime the tests start (repeatable), e.g. `--set hal.time_scale=60`",
    ),
    (
        '@pytest.mark.flightos(services=[...], overrides=[...], scenario="file.toml")',
        "what the runtime fixtures start for this test (or module, as `pytestmark`); `services` defaults to the "
        "target's",
    ),
    (
        '@pytest.mark.board("rpi")',
        "needs that board: skipped, with the reason, on any other target or machine; "
        '`board("sim")` runs only on simulated targets',
    ),
)


def _object(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph, on one line."""
    text = inspect.cleandoc(doc or "").split("\n\n")[0]
    return " ".join(line.strip() for line in text.splitlines())


def _signature(fn: Any) -> str:
    """``name(arg: type = default, ...) -> result`` as written in the source, without ``self``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    parts: list[str] = []

    def one(arg: ast.arg, default: ast.expr | None, prefix: str = "") -> str:
        text = prefix + arg.arg + (f": {ast.unparse(arg.annotation)}" if arg.annotation else "")
        return text + (f" = {ast.unparse(default)}" if default is not None else "")

    for arg, default in zip(positional, defaults, strict=True):
        if arg.arg not in ("self", "cls"):
            parts.append(one(arg, default))
    if a.vararg:
        parts.append(one(a.vararg, None, "*"))
    elif a.kwonlyargs:
        parts.append("*")
    parts += [one(arg, default) for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        parts.append(one(a.kwarg, None, "**"))
    result = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    return f"{prefix}{node.name}({', '.join(parts)}){result}"


def _attributes(cls: type) -> list[str]:
    """The public attributes ``__init__`` sets (``self.name = ...``), in source order."""
    init = vars(cls).get("__init__")
    if not inspect.isfunction(init):
        return []
    names: list[str] = []
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(init)))):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
                and not t.attr.startswith("_")
                and t.attr not in names
            ):
                names.append(t.attr)
    return names


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a ``|`` (even in code, as in ``int | None``) would end the cell."""
    return text.replace("|", "\\|")


def _methods(cls: type) -> list[tuple[str, str]]:
    """Public methods (and properties) defined on the class itself, in source order, with their first doc line."""
    out = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append((f"{name} (property)", _first_paragraph(member.__doc__)))
        elif inspect.isfunction(member):
            out.append((_signature(member), _first_paragraph(member.__doc__)))
    return out


def render_markdown() -> str:
    """docs/testing.md."""
    from flightos.testing import plugin

    out = [INTRO, "## Options and markers", "", "| what | meaning |", "|---|---|"]
    out += [f"| `{_cell(what)}` | {meaning} |" for what, meaning in OPTIONS]
    out += ["", "## Fixtures", "", "| fixture | scope | yields | what it is |", "|---|---|---|---|"]
    for name, scope, yields, _ in FIXTURES:
        out.append(f"| `{name}` | {scope} | {yields} | {_cell(_first_paragraph(getattr(plugin, name).__doc__))} |")
    for name, _, _, path in FIXTURES:
        if path is None:
            continue
        cls = _object(path)
        module = path.partition(":")[0]
        out += ["", f"## `{name}`: `{cls.__name__}` (`{module}`)", "", _first_paragraph(cls.__doc__)]
        if "__aenter__" in vars(cls):
            out[-1] += f" Also an async context manager: `async with {cls.__name__}(...) as x:`."
        attributes = _attributes(cls)
        if attributes:
            out += ["", "Attributes: " + ", ".join(f"`{a}`" for a in attributes) + "."]
        out += ["", "| method | what it does |", "|---|---|"]
        out += [f"| `{_cell(sig)}` | {_cell(doc)} |" for sig, doc in _methods(cls)]
    out += ["", "## Helpers", "", "| function | what it does |", "|---|---|"]
    for path in FUNCTIONS:
        fn = _object(path)
        out.append(
            f"| `{_cell(_signature(fn))}` (`from {path.partition(':')[0]} import {fn.__name__}`) | "
            f"{_cell(_first_paragraph(fn.__doc__))} |"
        )
    return "\n".join(out) + "\n"
