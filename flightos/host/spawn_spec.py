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
