"""Several boards on one machine: target files, CURVE keys and ports for kernels linked over loopback.

For integration tests and benches of ``[link]``: each board gets its own target file, key pair
and TCP port; every board knows every other board's public key. Start each with
``RuntimeProcess(target=str(system.targets[board]))``.
"""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightos.link import keys


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _table(name: str, table: dict[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    subs = []
    for k, v in table.items():
        if isinstance(v, dict):
            subs.append((k, v))
        elif v is not None:
            lines.append(f"{k} = {_toml(v)}")
    lines.append("")
    for k, v in subs:
        lines += _table(f"{name}.{k}", v)
    return lines


@dataclass
class LinkedSystem:
    """The files of a multi-board system: a target, a keys directory and an endpoint per board."""

    base: Path
    targets: dict[str, Path] = field(default_factory=dict)
    keys_dirs: dict[str, Path] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    public_keys: dict[str, bytes] = field(default_factory=dict)

    def cleanup(self) -> None:
        """Remove every file of the system."""
        shutil.rmtree(self.base, ignore_errors=True)


def write_system(
    base: Path,
    boards: dict[str, dict[str, dict[str, Any]]],
    *,
    curve: bool = True,
    link: dict[str, Any] | None = None,
    acl: dict[str, Any] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
    ports: dict[str, int] | None = None,
) -> LinkedSystem:
    """Write a target per board (``boards``: board -> its ``[services.*]`` tables), keys and peer tables.

    ``link`` adds keys to every ``[link]`` table (timings); ``acl`` is every board's ``[acl]``;
    ``extra`` adds whole sections to every target; ``ports`` fixes ports (default: free ones).
    """
    base.mkdir(parents=True, exist_ok=True)
    system = LinkedSystem(base)
    for board in boards:
        port = (ports or {}).get(board) or free_port()
        system.endpoints[board] = f"tcp://127.0.0.1:{port}"
        system.keys_dirs[board] = base / board / "keys"
        if curve:
            system.public_keys[board] = keys.create(system.keys_dirs[board], board).public
        else:
            system.keys_dirs[board].mkdir(parents=True, exist_ok=True, mode=0o700)
    if curve:  # every board gets every other board's public key file, as an operator would copy them
        for board, kd in system.keys_dirs.items():
            for other in boards:
                if other != board:
                    shutil.copy(system.keys_dirs[other] / f"{other}.key", kd / f"{other}.key")
    for board, services in boards.items():
        lines = _table("target", {"name": f"board-{board}", "description": f"board {board} of a linked system"})
        lines += _table("hal", {"backend": "sim", "cores": 2})
        lines += _table("runtime", {"record_runs": False, "shutdown_grace_s": 3.0})
        for section, table in (extra or {}).items():
            lines += _table(section, table)
        link_table: dict[str, Any] = {
            "board": board,
            "listen": system.endpoints[board],
            "curve": curve,
            "keys_dir": str(system.keys_dirs[board]),
            **(link or {}),
        }
        link_table["peers"] = {other: {"endpoint": system.endpoints[other]} for other in boards if other != board}
        lines += _table("link", link_table)
        if acl:
            lines += _table("acl", acl)
        for name, table in services.items():
            lines += _table(f"services.{name}", table)
        path = base / f"{board}.toml"
        path.write_text("\n".join(lines), encoding="utf-8")
        system.targets[board] = path
    return system
