"""The schema of a target file: every key, its type, its default and what values it accepts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from dataclasses import fields as dc_fields
from typing import Any


class ConfigError(ValueError):
    """A target file or ``--set`` override is wrong; the message names the file, key and expectation."""


@dataclass(frozen=True)
class Field:
    """One scalar key: a checker that returns the converted value or raises ValueError."""

    check: Callable[[Any], Any]
    default: Any
    doc: str


def _is_num(v: Any) -> bool:
    """A finite int or float: NaN and infinities compare false with every bound, so they would pass checks."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive(v: Any) -> float:
    """A number > 0."""
    if not _is_num(v) or v <= 0:
        raise ValueError("a number > 0")
    return float(v)


def non_negative(v: Any) -> float:
    """A number >= 0."""
    if not _is_num(v) or v < 0:
        raise ValueError("a number >= 0")
    return float(v)


def fraction(v: Any) -> float:
    """A number in [0, 1]."""
    if not _is_num(v) or not 0 <= v <= 1:
        raise ValueError("a number between 0 and 1")
    return float(v)


def any_number(v: Any) -> float:
    """Any finite number."""
    if not _is_num(v):
        raise ValueError("a finite number")
    return float(v)


def positive_int(v: Any) -> int:
    """An integer >= 1."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError("an integer >= 1")
    return v


def non_negative_int(v: Any) -> int:
    """An integer >= 0."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("an integer >= 0")
    return v


def boolean(v: Any) -> bool:
    """true or false."""
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def string(v: Any) -> str:
    """A string."""
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def one_of(*choices: str) -> Callable[[Any], str]:
    """One of a fixed set of strings."""

    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError("one of " + ", ".join(repr(c) for c in choices))
        return str(v)

    return check


def int_at_least(lo: int) -> Callable[[Any], int]:
    """An integer >= ``lo``."""

    def check(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"an integer >= {lo}")
        return v

    return check


def core_list(v: Any) -> list[int]:
    """A list of core ids (integers >= 0)."""
    if not isinstance(v, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v):
        raise ValueError("a list of core ids (integers >= 0)")
    return list(v)


def setting(check: Callable[[Any], Any], default: Any, doc: str) -> Any:
    """One typed key of a section: its default, plus the checker and doc the loader and docs read."""
    return dc_field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class TargetSection:
    """``[target]``: the target's name and description."""

    name: str = setting(string, "", "target name shown by `flightos targets`")
    description: str = setting(string, "", "one line on what the target is for")


@dataclass(frozen=True)
class RuntimeConfig:
    """``[runtime]``: how services start and stop, the bus, logging and recorded runs."""

    spawn: str = setting(
        one_of("forkserver", "exec"),
        "forkserver",
        "how services start: a preloaded fork server (fast restarts) or a fresh interpreter",
    )
    shutdown_grace_s: float = setting(positive, 5.0, "SIGTERM to SIGKILL grace on stop")
    command_queue: int = setting(positive_int, 64, "commands held per service while it restarts")
    command_timeout_s: float = setting(positive, 5.0, "deadline of a command that does not carry one")
    telemetry_hz: float = setting(positive, 1.0, "rate of the kernel's own telemetry")
    state_dir: str = setting(
        string, "", "where stores live (default: $FLIGHTOS_STATE_DIR, ~/.local/state/flightos/<target>)"
    )
    log_format: str = setting(one_of("console", "json"), "console", "log renderer")
    log_level: str = setting(one_of("debug", "info", "warning", "error"), "info", "minimum log level")
    record_runs: bool = setting(boolean, True, "record events and health telemetry under <state_dir>/runs/ for reports")
    runs_kept: int = setting(positive_int, 20, "recorded runs kept; older ones are deleted")
    max_frame_bytes: int = setting(
        int_at_least(65_536),
        1 << 20,
        "largest command or result on the bus; larger ones are refused with "
        "frame_too_large (a peer sending 64 KiB more is disconnected)",
    )
    result_cache_mb: float = setting(
        positive,
        32.0,
        "memory for results kept so a retry gets the first answer; past it the oldest go early (counted)",
    )


@dataclass(frozen=True)
class HealthConfig:
    """``[health]``: heartbeat periods and misses, and the start deadline."""

    heartbeat_period_s: float = setting(positive, 1.0, "heartbeat period of a normal service")
    heartbeat_misses: int = setting(positive_int, 3, "missed heartbeats before a normal service is hung")
    critical_heartbeat_period_s: float = setting(positive, 0.25, "heartbeat period of a critical service")
    critical_heartbeat_misses: int = setting(positive_int, 4, "missed heartbeats before a critical service is hung")
    start_timeout_s: float = setting(positive, 10.0, "time from spawn to ready before a start counts as failed")
    speed_factor: float = setting(
        non_negative,
        0.0,
        "how many times slower than the reference PC this board runs "
        "Python; scales self-test timeouts, heartbeat limits, the start deadline and the "
        "boot grace (0: measured at start)",
    )


@dataclass(frozen=True)
class RestartConfig:
    """``[restart]``: backoff, its reset after a healthy spell, and the restart-intensity limit."""

    backoff_initial_s: float = setting(non_negative, 1.0, "delay of the second consecutive restart")
    backoff_max_s: float = setting(non_negative, 60.0, "longest delay between restarts")
    backoff_jitter: float = setting(fraction, 0.2, "± fraction of random jitter on each delay")
    reset_after_s: float = setting(positive, 600.0, "healthy time after which backoff starts again at zero")
    max_restarts: int = setting(
        non_negative_int, 5, "restarts allowed in the window; one more makes the service FAILED"
    )
    window_s: float = setting(positive, 600.0, "window of the restart-intensity limit")
    critical_retry_s: float = setting(
        positive,
        20.0,
        "a critical service past the intensity limit is never FAILED: "
        "it is retried this often, and the watchdog is no longer petted",
    )


@dataclass(frozen=True)
class CoresConfig:
    """``[cores]``: how core health is assessed and when a core changes state."""

    monitor_period_s: float = setting(positive, 0.5, "how often core health is assessed (and services moved)")
    suspect_after: int = setting(positive_int, 2, "consecutive bad periods before HEALTHY becomes SUSPECT")
    degrade_after: int = setting(positive_int, 4, "consecutive bad periods before SUSPECT becomes DEGRADED")
    clear_after: int = setting(positive_int, 6, "consecutive clean periods before SUSPECT is HEALTHY again")
    rejoin_after_s: float = setting(
        non_negative, 30.0, "clean time before a DEGRADED or OFFLINE core rejoins (0: only by ground command)"
    )
    temp_margin_c: float = setting(non_negative, 5.0, "a per-core zone this close to its trip point is evidence")
    heartbeat_late_factor: float = setting(positive, 1.5, "a heartbeat older than this many periods is evidence")
    selftest_period_s: float = setting(non_negative, 5.0, "known-answer self-test per core (0: off)")
    selftest_timeout_s: float = setting(positive, 1.0, "a self-test without an answer by then is evidence")
    boot_grace_s: float = setting(
        non_negative,
        10.0,
        "after start, late self-tests and late heartbeats are not "
        "evidence against a core for this long (x speed factor): a slow start cannot lower "
        "the mode; wrong answers and lost cores still do",
    )


@dataclass(frozen=True)
class ModesConfig:
    """``[modes]``: when the system goes SAFE and how many services a usable core carries."""

    safe_at_usable_cores: int = setting(non_negative_int, 1, "SAFE when this many usable cores or fewer remain")
    services_per_core: int = setting(positive_int, 4, "services a usable core carries before shedding begins")
    degraded_throttle: int = setting(non_negative_int, 1, "throttle level of elastic services in DEGRADED")


@dataclass(frozen=True)
class ThermalConfig:
    """``[thermal]``: the thermal governor's margin, hysteresis and throttle levels."""

    margin_c: float = setting(non_negative, 10.0, "keep the junction this far below its throttle trip point")
    hysteresis_c: float = setting(non_negative, 3.0, "cool this much below the margin before easing off")
    trip_c: float | None = setting(any_number, None, "throttle trip point when the board reports none")
    max_level: int = setting(positive_int, 3, "highest throttle level the governor asks of services")


@dataclass(frozen=True)
class PowerConfig:
    """``[power]``: the board power budget per mode."""

    budget_nominal_w: float | None = setting(positive, None, "board power budget in NOMINAL (unset: no budget)")
    budget_degraded_w: float | None = setting(positive, None, "board power budget in DEGRADED")
    budget_safe_w: float | None = setting(positive, None, "board power budget in SAFE")
    over_budget_periods: int = setting(positive_int, 4, "periods over budget before shedding one service")


@dataclass(frozen=True)
class WatchdogConfig:
    """``[watchdog]``: the hardware (or simulated) watchdog."""

    enabled: bool = setting(
        boolean,
        True,
        "pet the hardware (or simulated) watchdog while healthy (default false "
        "on the generic `linux` backend: a PC's chipset watchdog resets the machine when a "
        "debugger pauses the kernel; set true to opt in)",
    )
    timeout_s: float = setting(positive, 10.0, "watchdog timeout (at most the device's max_timeout)")
    pet_period_s: float = setting(positive, 5.0, "how often the kernel pets it while healthy (less than timeout_s)")
    max_resets: int = setting(positive_int, 3, "resets after which the system holds SAFE until ground acts")

    def problem(self) -> tuple[str, str] | None:
        """The key and message of a contradiction between keys (pet_period_s must be < timeout_s), or None."""
        if self.pet_period_s >= self.timeout_s:
            return (
                "pet_period_s",
                f"expected less than watchdog.timeout_s ({self.timeout_s:g} s), got {self.pet_period_s:g}",
            )
        return None


BACKEND_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "linux": {"watchdog": {"enabled": False}},
}
"""Defaults that differ by HAL backend: backend -> section -> key -> default (a key written in the file wins)."""


SECTION_TYPES: dict[str, type[Any]] = {
    "target": TargetSection,
    "runtime": RuntimeConfig,
    "health": HealthConfig,
    "restart": RestartConfig,
    "cores": CoresConfig,
    "modes": ModesConfig,
    "thermal": ThermalConfig,
    "power": PowerConfig,
    "watchdog": WatchdogConfig,
}
"""Every plain section of a target file and the typed view the loader builds of it (in docs order)."""


def _fields_of(cls: type[Any]) -> dict[str, Field]:
    """The schema of one section, read from its typed view's fields (so the two cannot drift)."""
    return {
        f.name: Field(f.metadata["check"], f.default, f.metadata["doc"])
        for f in dc_fields(cls)
        if "check" in f.metadata
    }


SECTIONS: dict[str, dict[str, Field]] = {name: _fields_of(cls) for name, cls in SECTION_TYPES.items()}
"""Checker, default and doc of every key of every plain section, derived from :data:`SECTION_TYPES`."""


@dataclass(frozen=True)
class ServiceSection:
    """The scalar keys of one ``[services.<name>]`` table as written (the loader resolves the ``None``s)."""

    enabled: bool = setting(boolean, True, "run this service")
    plugin: str = setting(
        string,
        "",
        "the installed service to run under this name (default: the table's name); "
        "lets one plugin run twice, e.g. a housekeeping instance per board",
    )
    criticality: str = setting(
        one_of("critical", "essential", "elastic"),
        "essential",
        "critical services get faster heartbeats and the healthiest cores",
    )
    restart: str = setting(
        one_of("permanent", "transient", "temporary"),
        "permanent",
        "permanent: always restart; transient: only after an abnormal exit; temporary: never",
    )
    cores: list[int] | None = setting(  # noqa: RUF009 - setting() is a dataclasses.field(), no shared default
        core_list, None, "board cores the service may run on (default: placement decides)"
    )
    heartbeat_period_s: float | None = setting(positive, None, "override the health section's period")
    heartbeat_misses: int | None = setting(positive_int, None, "override the health section's misses")
    failover: bool | None = setting(
        boolean,
        None,
        "start on a surviving board when this board dies (default: true for critical services; needs [link])",
    )
    memory_mb: int = setting(
        non_negative_int,
        1024,
        "memory limit of the service with everything it starts, in MiB "
        "(cgroup memory; over it the service is killed and restarted; 0: no limit)",
    )
    tasks: int = setting(
        non_negative_int,
        256,
        "most processes and threads the service and its children may have "
        "(cgroup pids.max; a refused fork restarts the service; 0: no limit)",
    )


SERVICE_FIELDS: dict[str, Field] = _fields_of(ServiceSection)
"""Checker, default and doc of every scalar key of a ``[services.<name>]`` table, from :class:`ServiceSection`."""
SERVICE_TABLES = ("params", "options")
"""Free-form tables of a service: initial parameter values, and options the service itself reads."""


def tcp_endpoint(v: Any) -> str:
    """A ``tcp://HOST:PORT`` endpoint (boards link over TCP; ipc is for one board)."""
    if not isinstance(v, str) or not v.startswith("tcp://") or ":" not in v[6:]:
        raise ValueError("a tcp://HOST:PORT endpoint")
    host, _, port = v[6:].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("a tcp://HOST:PORT endpoint with a port in 1..65535")
    return v


def board_name(v: Any) -> str:
    """A board name: lower-case letters, digits, '-' and '_'."""
    if (
        not isinstance(v, str)
        or not v
        or not all(c.islower() or c.isdigit() or c in "-_" for c in v)
        or not v[0].islower()
    ):
        raise ValueError("a board name of lower-case letters, digits, '-' and '_'")
    return v


@dataclass(frozen=True)
class Peer:
    """One ``[link.peers.<board>]`` table: another kernel this one links with."""

    board: str
    """The peer's name: the table's key, not a key inside it."""
    endpoint: str = setting(tcp_endpoint, "", "the peer's [link] listen endpoint (required)")
    public_key: str = setting(
        string, "", "the peer kernel's CURVE public key, Z85 (default: read <keys_dir>/<peer>.key)"
    )


@dataclass(frozen=True)
class LinkConfig:
    """``[link]``: this board's name, where it listens, its peers and the link's timing."""

    board: str = setting(board_name, "", "this board's name, unique in the system (empty: no link)")
    listen: str | None = setting(tcp_endpoint, None, "where peers connect to this kernel, tcp://HOST:PORT")
    curve: bool = setting(boolean, True, "encrypt and authenticate every link with CURVE (false only on a lab bench)")
    keys_dir: str = setting(
        string, "", "CURVE keys: <board>.key_secret, peers' <board>.key, authorized/ (default <state_dir>/keys/curve)"
    )
    heartbeat_s: float = setting(positive, 0.5, "how often a kernel tells its peers it is alive")
    dead_after_s: float = setting(positive, 2.0, "silence after which a peer is down (link lost or board dead)")
    join_timeout_s: float = setting(
        non_negative,
        3.0,
        "how long a starting kernel waits for its peers before it starts services a peer may already run",
    )
    retry_s: float = setting(positive, 1.0, "a command sent to a peer and not answered is sent again this often")
    replicate_s: float = setting(
        positive, 1.0, "how often changed data directories of failover services are sent to peers"
    )
    replicate_max_mb: float = setting(
        positive, 16.0, "a data directory larger than this is not replicated (an event says so)"
    )
    peers: dict[str, Peer] = dc_field(default_factory=dict)
    """The ``[link.peers.<board>]`` tables (a table of tables, not a scalar key of the schema)."""

    @property
    def enabled(self) -> bool:
        """True when this kernel links with other boards."""
        return bool(self.board)


LINK_FIELDS: dict[str, Field] = {k: f for k, f in _fields_of(LinkConfig).items() if k != "peers"}
"""The scalar keys of ``[link]``, derived from :class:`LinkConfig`."""
PEER_FIELDS: dict[str, Field] = _fields_of(Peer)
"""The keys of a ``[link.peers.<board>]`` table, derived from :class:`Peer`."""
