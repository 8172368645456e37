"""The typed sections of a target and the schema are one declaration: names, types and defaults agree."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from flightos.config import target as tgt
from flightos.config.schema import (
    LINK_FIELDS,
    PEER_FIELDS,
    SECTION_TYPES,
    SECTIONS,
    SERVICE_FIELDS,
    Field,
    LinkConfig,
    Peer,
    ServiceSection,
)

ROOT = Path(__file__).resolve().parents[2]


def _allows(annotation: Any, value: Any) -> bool:
    """True when ``value`` fits ``annotation`` (a plain type, ``list[int]`` or ``X | None``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_allows(a, value) for a in args)
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation) or annotation
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, origin)


TYPED: dict[str, tuple[type[Any], dict[str, Field]]] = {
    **{name: (cls, SECTIONS[name]) for name, cls in SECTION_TYPES.items()},
    "link": (LinkConfig, LINK_FIELDS),
    "services.NAME": (ServiceSection, SERVICE_FIELDS),
    "link.peers.BOARD": (Peer, PEER_FIELDS),
}


@pytest.mark.parametrize("section", sorted(TYPED))
def test_every_field_has_a_typed_attribute_and_back(section: str) -> None:
    """Each schema key is an attribute of the section's typed view with the same default, and vice versa."""
    cls, schema = TYPED[section]
    # [link.peers.*] are tables, and a peer's board is its table's name: neither is a key with a checker
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in ("peers", "board") or "check" in f.metadata}
    assert set(fields) == set(schema)
    hints = typing.get_type_hints(cls)
    for key, f in schema.items():
        assert fields[key].default == f.default, f"{section}.{key}"
        assert _allows(hints[key], f.default), f"{section}.{key}: default {f.default!r} is not {hints[key]}"
        returns = typing.get_type_hints(f.check).get("return")
        assert returns is not None, f"{section}.{key}: its checker declares no return type"
        assert returns == hints[key] or (returns | None) == hints[key], (
            f"{section}.{key}: checker returns {returns}, attribute is {hints[key]}"
        )


def test_schema_has_no_section_without_a_typed_view() -> None:
    """SECTIONS is derived from SECTION_TYPES, and the target exposes each typed section by its name."""
    assert list(SECTIONS) == list(SECTION_TYPES)
    t = tgt.from_dict({"hal": {"backend": "linux"}}, "test")
    target_fields = {f.name: f for f in dataclasses.fields(tgt.Target)}
    for name, cls in SECTION_TYPES.items():
        if name == "target":  # its keys are the target's own name and description
            continue
        assert isinstance(getattr(t, name), cls)
        assert name in target_fields


def test_loaded_values_have_their_declared_types(tmp_path: Path) -> None:
    """An integer written for a float key is read as a float; every loaded value fits its annotation."""
    p = tmp_path / "t.toml"
    p.write_text('[hal]\nbackend = "linux"\n[runtime]\nshutdown_grace_s = 2\n[power]\nbudget_safe_w = 3\n')
    t = tgt.load(str(p), ["cores.monitor_period_s=1", "thermal.trip_c=90"])
    assert t.runtime.shutdown_grace_s == 2.0 and isinstance(t.runtime.shutdown_grace_s, float)
    assert t.power.budget_safe_w == 3.0 and t.cores.monitor_period_s == 1.0 and t.thermal.trip_c == 90.0
    for name, cls in SECTION_TYPES.items():
        if name == "target":
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(t, name), f.name)
            assert _allows(hints[f.name], value), f"{name}.{f.name} = {value!r}"
            if hints[f.name] is float:
                assert type(value) is float, f"{name}.{f.name} = {value!r}"


def test_no_string_key_reads_of_config_sections_outside_config() -> None:
    """Sections are read by attribute everywhere but flightos/config (the ``[hal]`` dict goes to hal as is,
    its backend is ``Target.hal_backend``)."""
    pattern = re.compile(
        r"(\b(?:cfg|runtime|health|restart|cores|modes|thermal|power|watchdog)\[\"|\.section\("
        r"|\.hal\.get\(|\.hal\[)"
    )
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in (ROOT / "flightos").rglob("*.py")
        if "config" not in p.relative_to(ROOT).parts
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
