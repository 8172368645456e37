"""What the kernel tells a service process when it starts it."""

from __future__ import annotations

from typing import Any

import msgspec


class SpawnSpec(msgspec.Struct, frozen=True):
    """Everything a service process needs to join the runtime; sent by the kernel at spawn."""

    name: str
    incarnation: int
    runtime_dir: str
    state_dir: str
    heartbeat_period_s: float
    cpus: list[int] = []
    options: dict[str, Any] = {}
    params: dict[str, Any] = {}
    log_format: str = "console"
    log_level: str = "info"
    kernel_pid: int = 0
    plugin: str = ""
    """The entry point to load when it differs from ``name`` (another instance of the same plugin)."""
    publish: list[str] | None = None
    """Topic patterns the target's ``[acl]`` lets this service publish (None: any)."""
    memory_mb: int = 0
    """Memory limit of the service's whole tree in MiB (0: none); from the target's ``memory_mb``."""
    tasks: int = 0
    """Most processes and threads of the service's tree (0: no limit); from the target's ``tasks``."""
    cgroups: list[str] = []
    """``cgroup.procs`` files the new process writes its pid to before it loads the plugin."""
    new_session: bool = False
    """Lead a session (and process group) of its own, so a stop can kill everything it started."""
    rlimits: bool = False
    """Apply the fallback rlimits (no cgroups on this host)."""
    max_frame_bytes: int = 1 << 20
    devices: dict[str, dict[str, Any]] = {}
    """The ``[devices.<name>]`` tables the target grants this service (``kind`` included)."""
    devices_simulated: bool = False
    """The target's board is simulated: so are its devices (state shared under ``runtime_dir/devices-<kernel pid>``)."""
    """The runtime's ``runtime.max_frame_bytes``: larger commands and results get ``frame_too_large``."""

    @property
    def identity(self) -> str:
        """The bus identity of this incarnation; a stale incarnation's messages are ignored."""
        return f"s/{self.name}/{self.incarnation}"

    def encode(self) -> bytes:
        """MessagePack bytes, for the fork server or an environment variable."""
        return msgspec.msgpack.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> SpawnSpec:
        """Parse what encode() produced."""
        return msgspec.msgpack.decode(data, type=cls)
