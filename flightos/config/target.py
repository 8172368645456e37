"""Loads, overrides and validates a target file into typed settings."""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightos.config import toml
from flightos.config.devices import DeviceConfig, parse_devices, to_wire
from flightos.config.schema import (
    BACKEND_DEFAULTS,
    LINK_FIELDS,
    PEER_FIELDS,
    SECTION_TYPES,
    SECTIONS,
    SERVICE_FIELDS,
    SERVICE_TABLES,
    ConfigError,
    CoresConfig,
    Field,
    HealthConfig,
    LinkConfig,
    ModesConfig,
    Peer,
    PowerConfig,
    RestartConfig,
    RuntimeConfig,
    ServiceSection,
    ThermalConfig,
    WatchdogConfig,
)

ENV_TARGETS_DIR = "FLIGHTOS_TARGETS_DIR"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Acl:
    """Which commands each service may call and which topics it may publish (``[acl]``).

    The local operator's CLI is not restricted.
    """

    default: str = "allow"
    commands: dict[str, list[str]] = field(default_factory=dict)
    publish: dict[str, list[str]] = field(default_factory=dict)
    publish_default: str = "allow"
    """What a service without a ``publish`` entry may publish: everything (allow) or only its events (deny)."""
    _publish_ok: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, repr=False)
    """Answers already matched: a kernel asks for every message it carries between boards."""

    def allows(self, caller: str, destination: str, command: str) -> bool:
        """True when service ``caller`` may run ``destination.command``."""
        patterns = self.commands.get(caller)
        if patterns is None:
            return self.default == "allow"
        target = f"{destination}.{command}"
        return any(fnmatch.fnmatchcase(target, p) for p in patterns)

    def allows_publish(self, publisher: str, topic: str) -> bool:
        """True when service ``publisher`` may publish ``topic`` (its own events, ``ev.<name>``, always)."""
        ok = self._publish_ok.get((publisher, topic))
        if ok is None:
            patterns = self.publish.get(publisher)
            if topic == f"ev.{publisher}":
                ok = True
            elif patterns is None:
                ok = self.publish_default == "allow"
            else:
                ok = any(fnmatch.fnmatchcase(topic, p) for p in patterns)
            if len(self._publish_ok) < 100_000:
                self._publish_ok[(publisher, topic)] = ok
        return ok


@dataclass(frozen=True)
class ServiceConfig:
    """One ``[services.<name>]`` table, validated."""

    name: str
    enabled: bool
    criticality: str
    restart: str
    cores: list[int] | None
    heartbeat_period_s: float
    heartbeat_misses: int
    params: dict[str, Any]
    options: dict[str, Any]
    failover: bool = False
    plugin: str = ""
    """The entry point this service runs (``name`` unless the target says ``plugin = ...``)."""
    memory_mb: int = 0
    """Memory limit of the service's tree in MiB (0: none)."""
    tasks: int = 0
    """Most processes and threads of the service's tree (0: no limit)."""

    @property
    def entry_point(self) -> str:
        """The installed service (entry-point name) this table runs."""
        return self.plugin or self.name

    def to_wire(self) -> dict[str, Any]:
        """What a peer needs to start this service if this board dies (sent over the link)."""
        return {
            "criticality": self.criticality,
            "restart": self.restart,
            "plugin": self.plugin,
            "heartbeat_period_s": self.heartbeat_period_s,
            "heartbeat_misses": self.heartbeat_misses,
            "params": self.params,
            "options": self.options,
            "memory_mb": self.memory_mb,
            "tasks": self.tasks,
        }

    @classmethod
    def from_wire(cls, name: str, d: dict[str, Any]) -> ServiceConfig:
        """The inverse of :meth:`to_wire`, for a service adopted from a peer; raises ValueError."""
        try:
            return cls(
                name=name,
                enabled=True,
                criticality=str(d["criticality"]),
                restart=str(d["restart"]),
                cores=None,
                heartbeat_period_s=float(d["heartbeat_period_s"]),
                heartbeat_misses=int(d["heartbeat_misses"]),
                params=dict(d["params"]),
                options=dict(d["options"]),
                failover=True,
                plugin=str(d.get("plugin", "")),
                memory_mb=int(d.get("memory_mb", 0)),
                tasks=int(d.get("tasks", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"service {name}: malformed configuration from a peer: {exc}") from None


@dataclass(frozen=True)
class Target:
    """A validated target: the HAL table (checked by ``hal``), sections, and services."""

    name: str
    path: Path | None
    description: str
    hal: dict[str, Any]
    """The ``[hal]`` table as written: ``hal.check_config`` validates it (hal does not import flightos)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    restart: RestartConfig = field(default_factory=RestartConfig)
    cores: CoresConfig = field(default_factory=CoresConfig)
    modes: ModesConfig = field(default_factory=ModesConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    acl: Acl = field(default_factory=lambda: Acl())
    link: LinkConfig = field(default_factory=lambda: LinkConfig())
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    """The ``[devices.<name>]`` tables: payload devices and the services granted each (docs/devices.md)."""

    def devices_for(self, service: str) -> dict[str, dict[str, Any]]:
        """The devices granted to ``service``, as the tables its process receives at spawn."""
        return {name: to_wire(d) for name, d in self.devices.items() if service in d.services}

    @property
    def hal_backend(self) -> str:
        """The HAL backend the target names (``linux``, ``sim``, …; checked present by the loader)."""
        return str(self.hal.get("backend", ""))

    def state_dir(self) -> Path:
        """Where service stores live for this target."""
        configured = self.runtime.state_dir or os.environ.get("FLIGHTOS_STATE_DIR", "")
        if configured:
            return Path(configured).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "flightos" / self.name


def search_dirs() -> list[Path]:
    """Where target names are looked up, in order."""
    dirs: list[Path] = []
    env = os.environ.get(ENV_TARGETS_DIR)
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path(__file__).resolve().parents[2] / "targets")
    dirs.append(Path("/etc/flightos/targets"))
    return dirs


def available_targets() -> dict[str, Path]:
    """Every target file found, by name (earlier directories win)."""
    found: dict[str, Path] = {}
    for d in search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def resolve(name_or_path: str) -> Path:
    """A target name or a path to its file; raise ConfigError listing the known targets."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        p = Path(name_or_path)
        if not p.is_file():
            raise ConfigError(f"target file {p} does not exist")
        return p
    found = available_targets()
    if name_or_path not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"unknown target {name_or_path!r} (known: {known})")
    return found[name_or_path]


def parse_override(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a dotted key and a TOML value (a bare word is taken as a string)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. health.heartbeat_misses=4")
    text = text.strip()
    try:
        value = toml.loads(f"v = {text}")["v"]
    except toml.TOMLDecodeError:
        value = text
    return key, value


def apply_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in a raw target table, creating intermediate tables."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def load(name_or_path: str, overrides: list[str] | None = None) -> Target:
    """Read a target file, apply ``--set`` overrides, validate everything; raise ConfigError."""
    path = resolve(name_or_path)
    try:
        raw = toml.loads(path.read_text(encoding="utf-8"))
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    raw = copy.deepcopy(raw)
    origin: dict[str, str] = {}
    for item in overrides or []:
        key, value = parse_override(item)
        apply_override(raw, key, value)
        origin[key] = "--set"
    return from_dict(raw, str(path), path=path, default_name=path.stem, origin=origin)


def from_dict(
    raw: dict[str, Any],
    where: str,
    *,
    path: Path | None = None,
    default_name: str = "custom",
    origin: dict[str, str] | None = None,
) -> Target:
    """Validate a raw target table; errors read ``<where>: <key>: expected …, got …``."""
    origin = origin or {}

    def fail(key: str, msg: str) -> ConfigError:
        src = f"{where} (via --set)" if key in origin else where
        return ConfigError(f"{src}: {key}: {msg}")

    unknown = sorted(set(raw) - set(SECTIONS) - {"hal", "services", "acl", "link", "devices"})
    if unknown:
        raise fail(
            unknown[0],
            "unknown section (known: "
            + ", ".join(sorted([*SECTIONS, "hal", "services", "acl", "link", "devices"]))
            + ")",
        )
    acl = _acl(raw.get("acl", {}), fail)
    link = _link(raw.get("link", {}), fail)
    typed: dict[str, Any] = {}
    for sname, fields in SECTIONS.items():
        table = raw.get(sname, {})
        if not isinstance(table, dict):
            raise fail(sname, "expected a table")
        extra = sorted(set(table) - set(fields))
        if extra:
            raise fail(f"{sname}.{extra[0]}", "unknown key (known: " + ", ".join(sorted(fields)) + ")")
        backend = raw.get("hal", {}).get("backend") if isinstance(raw.get("hal"), dict) else None
        defaults = BACKEND_DEFAULTS.get(str(backend), {}).get(sname, {})
        typed[sname] = SECTION_TYPES[sname](
            **{**_check_fields(table, fields, sname, fail), **{k: v for k, v in defaults.items() if k not in table}}
        )
        problem = getattr(typed[sname], "problem", lambda: None)()
        if problem is not None:
            raise fail(f"{sname}.{problem[0]}", problem[1])
    hal_table = raw.get("hal", {})
    if not isinstance(hal_table, dict) or "backend" not in hal_table:
        raise fail("hal.backend", "missing: every target names its HAL backend (linux, sim, rpi, jetson)")
    services_raw = raw.get("services", {})
    if not isinstance(services_raw, dict):
        raise fail("services", "expected a table of [services.<name>] tables")
    services: dict[str, ServiceConfig] = {}
    for sname, table in services_raw.items():
        if not _NAME_RE.match(sname):
            raise fail(f"services.{sname}", "service names are lower-case letters, digits, '-' and '_'")
        if not isinstance(table, dict):
            raise fail(f"services.{sname}", "expected a table")
        services[sname] = _service(sname, table, typed["health"], fail)
    devices = parse_devices(raw.get("devices", {}), set(services), fail)
    name = typed["target"].name or default_name
    return Target(
        name=name,
        path=path,
        description=typed["target"].description,
        hal=dict(hal_table),
        runtime=typed["runtime"],
        health=typed["health"],
        restart=typed["restart"],
        cores=typed["cores"],
        modes=typed["modes"],
        thermal=typed["thermal"],
        power=typed["power"],
        watchdog=typed["watchdog"],
        services=services,
        raw=raw,
        acl=acl,
        link=link,
        devices=devices,
    )


def _check_fields(table: dict[str, Any], fields: dict[str, Field], where: str, fail: Any) -> dict[str, Any]:
    """Every field of a schema table: checked and converted where given, its default where not."""
    out: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in table:
            out[key] = f.default
            continue
        try:
            out[key] = f.check(table[key])
        except ValueError as exc:
            raise fail(f"{where}.{key}", f"expected {exc}, got {table[key]!r}") from None
    return out


def _acl(table: Any, fail: Any) -> Acl:
    """``[acl]``: default = "allow"|"deny"; commands.<caller> = ["service.command", "service.*", ...]."""
    if not isinstance(table, dict):
        raise fail("acl", "expected a table")
    extra = sorted(set(table) - {"default", "commands", "publish", "publish_default"})
    if extra:
        raise fail(f"acl.{extra[0]}", "unknown key (known: commands, default, publish, publish_default)")
    default = table.get("default", "allow")
    if default not in ("allow", "deny"):
        raise fail("acl.default", f"expected 'allow' or 'deny', got {default!r}")
    publish_default = table.get("publish_default", "allow")
    if publish_default not in ("allow", "deny"):
        raise fail("acl.publish_default", f"expected 'allow' or 'deny', got {publish_default!r}")
    commands = table.get("commands", {})
    if not isinstance(commands, dict):
        raise fail("acl.commands", 'expected a table of caller = ["service.command", ...]')
    for caller, patterns in commands.items():
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise fail(f"acl.commands.{caller}", 'expected a list of "service.command" patterns (* allowed)')
    publish = table.get("publish", {})
    if not isinstance(publish, dict):
        raise fail("acl.publish", 'expected a table of publisher = ["tm.service.*", ...]')
    for publisher, patterns in publish.items():
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            raise fail(f"acl.publish.{publisher}", "expected a list of topic patterns (* allowed)")
    return Acl(
        default, {k: list(v) for k, v in commands.items()}, {k: list(v) for k, v in publish.items()}, publish_default
    )


def _link(table: Any, fail: Any) -> LinkConfig:
    """``[link]`` and its ``[link.peers.<board>]`` tables."""
    if not isinstance(table, dict):
        raise fail("link", "expected a table")
    scalars = {k: v for k, v in table.items() if k != "peers"}
    extra = sorted(set(scalars) - set(LINK_FIELDS))
    if extra:
        raise fail(f"link.{extra[0]}", "unknown key (known: " + ", ".join(sorted([*LINK_FIELDS, "peers"])) + ")")
    vals = _check_fields(scalars, LINK_FIELDS, "link", fail)
    peers_raw = table.get("peers", {})
    if not isinstance(peers_raw, dict):
        raise fail("link.peers", "expected a table of [link.peers.<board>] tables")
    peers: dict[str, Peer] = {}
    for board, ptable in peers_raw.items():
        if not _NAME_RE.match(board):
            raise fail(f"link.peers.{board}", "board names are lower-case letters, digits, '-' and '_'")
        if not isinstance(ptable, dict):
            raise fail(f"link.peers.{board}", "expected a table with endpoint (and public_key)")
        pextra = sorted(set(ptable) - set(PEER_FIELDS))
        if pextra:
            raise fail(f"link.peers.{board}.{pextra[0]}", "unknown key (known: " + ", ".join(sorted(PEER_FIELDS)) + ")")
        peer = Peer(board, **_check_fields(ptable, PEER_FIELDS, f"link.peers.{board}", fail))
        if "endpoint" not in ptable:
            raise fail(f"link.peers.{board}.endpoint", "missing: where this peer listens, tcp://HOST:PORT")
        if peer.public_key and len(peer.public_key) != 40:
            raise fail(f"link.peers.{board}.public_key", "expected a 40-character Z85 CURVE public key")
        peers[board] = peer
    if (peers or vals["listen"]) and not vals["board"]:
        raise fail("link.board", "missing: a linked kernel names its board")
    if vals["board"] and vals["listen"] is None:
        raise fail("link.listen", "missing: where peers reach this board, tcp://HOST:PORT")
    if vals["board"] in peers:
        raise fail(f"link.peers.{vals['board']}", "a board cannot be its own peer")
    if vals["dead_after_s"] <= vals["heartbeat_s"]:
        raise fail(
            "link.dead_after_s", f"expected more than heartbeat_s ({vals['heartbeat_s']}), got {vals['dead_after_s']}"
        )
    return LinkConfig(peers=peers, **vals)


def _service(name: str, table: dict[str, Any], health: HealthConfig, fail: Any) -> ServiceConfig:
    extra = sorted(set(table) - set(SERVICE_FIELDS) - set(SERVICE_TABLES))
    if extra:
        raise fail(
            f"services.{name}.{extra[0]}",
            "unknown key (known: "
            + ", ".join(sorted([*SERVICE_FIELDS, *SERVICE_TABLES]))
            + "; service-specific settings go under [services."
            + name
            + ".options])",
        )
    sec = ServiceSection(**_check_fields(table, SERVICE_FIELDS, f"services.{name}", fail))
    for key in SERVICE_TABLES:
        if not isinstance(table.get(key, {}), dict):
            raise fail(f"services.{name}.{key}", "expected a table")
    critical = sec.criticality == "critical"
    period = sec.heartbeat_period_s or (health.critical_heartbeat_period_s if critical else health.heartbeat_period_s)
    misses = sec.heartbeat_misses or (health.critical_heartbeat_misses if critical else health.heartbeat_misses)
    return ServiceConfig(
        name=name,
        enabled=sec.enabled,
        criticality=sec.criticality,
        restart=sec.restart,
        cores=sec.cores,
        heartbeat_period_s=period,
        heartbeat_misses=misses,
        params=dict(table.get("params", {})),
        options=dict(table.get("options", {})),
        failover=critical if sec.failover is None else sec.failover,
        plugin=sec.plugin,
        memory_mb=sec.memory_mb,
        tasks=sec.tasks,
    )
