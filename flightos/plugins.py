"""Finds mission services through the ``flightos.services`` entry-point group (never by import path)."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flightos.sdk.options import OptionsError
from flightos.sdk.options import check_options as check_options_of
from flightos.sdk.service import Service

GROUP = "flightos.services"


class PluginError(Exception):
    """A service plugin is missing or does not load; the message names it and why."""


class ServiceOptions(Protocol):
    """What the options check needs of a ``[services.<name>]`` table (a config ServiceConfig)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def entry_point(self) -> str: ...
    @property
    def options(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PluginInfo:
    """An installed service plugin, described without importing it."""

    name: str
    value: str
    distribution: str


def installed() -> dict[str, PluginInfo]:
    """Every registered service by name, without importing any (so a broken one breaks nothing)."""
    out: dict[str, PluginInfo] = {}
    for ep in md.entry_points(group=GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", "") or ""
        out.setdefault(ep.name, PluginInfo(ep.name, ep.value, dist))
    return out


def load(name: str) -> type[Service]:
    """Import and return the Service class registered as ``name``; raise PluginError otherwise."""
    eps = [ep for ep in md.entry_points(group=GROUP) if ep.name == name]
    if not eps:
        known = ", ".join(sorted(installed())) or "none"
        raise PluginError(f"no service {name!r} is installed (entry-point group {GROUP}; installed: {known})")
    ep = eps[0]
    try:
        obj = ep.load()
    except Exception as exc:
        raise PluginError(f"service {name!r} ({ep.value}) failed to import: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Service)):
        raise PluginError(f"service {name!r} ({ep.value}) is not a flightos.Service subclass")
    if obj.name and obj.name != name:
        raise PluginError(
            f"service {name!r} ({ep.value}) declares name {obj.name!r}; the entry point and the class must agree"
        )
    if not obj.name:
        obj.name = name
    return obj


def check_options(services: Mapping[str, ServiceOptions]) -> OptionsError | None:
    """The first enabled service whose options do not fit its plugin's ``options_schema``, else None.

    Services without a schema keep a free-form table. A plugin that does not import is skipped here:
    it fails, loudly, when it is spawned, as it always has.
    """
    for name, svc in services.items():
        if not svc.enabled:
            continue
        try:
            cls = load(svc.entry_point)
        except PluginError:
            continue
        if cls.options_schema is None:
            continue
        result = check_options_of(cls.options_schema, svc.options, name)
        if isinstance(result, OptionsError):
            return result
    return None
