"""The on-board store: one directory per tenant, ``<data_dir>/store/<tenant>/``.

A tenant names files relative to its own directory. Absolute paths, ``..`` and symlinks that
lead out of it are refused with ``outside_store``; nothing a tenant names can reach another's.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from flightos import BadArguments
from services.jobs.errors import OutsideStore

TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_tenant(tenant: str) -> str:
    """A tenant name usable as a directory name, or BadArguments."""
    if not TENANT_RE.match(tenant) or tenant in (".", ".."):
        raise BadArguments(
            f"tenant {tenant!r}: expected 1-64 characters of letters, digits, '_', '-', '.', "
            "starting with a letter or digit"
        )
    return tenant


class TenantStore:
    """Files tenants put on board, and where processors that generate data write them."""

    def __init__(self, root: Path, max_put_bytes: int = 8 << 20) -> None:
        self.root = Path(root)
        self.max_put_bytes = max_put_bytes

    def dir(self, tenant: str) -> Path:
        """The tenant's directory (created on first use)."""
        path = self.root / check_tenant(tenant)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve(self, tenant: str, name: str, must_exist: bool = True) -> Path:
        """The absolute path of ``name`` in the tenant's store; OutsideStore if it would leave it."""
        if not isinstance(name, str) or not name or "\0" in name:
            raise BadArguments(f"store path {name!r}: expected a non-empty relative path")
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts:
            raise OutsideStore(
                f"store path {name!r}: escapes the store of tenant {tenant!r} "
                "(paths are relative to it; '..' and absolute paths are refused)"
            )
        base = self.dir(tenant).resolve()
        path = (base / pure).resolve()
        if path != base and not path.is_relative_to(base):
            raise OutsideStore(f"store path {name!r}: leads out of the store of tenant {tenant!r}")
        if must_exist and not path.is_file():
            raise BadArguments(f"store path {name!r}: no such file in the store of tenant {tenant!r}")
        return path

    def put(self, tenant: str, name: str, data: bytes, append: bool = False) -> dict[str, Any]:
        """Write a small file atomically (or append a part to it); return its name, size and sha256."""
        path = self.resolve(tenant, name, must_exist=False)
        before = path.stat().st_size if append and path.is_file() else 0
        if before + len(data) > self.max_put_bytes:
            raise BadArguments(
                f"put: {before + len(data)} B is over the limit of {self.max_put_bytes} B for one "
                "file (larger data is generated on board)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            with open(path, "ab") as f:
                f.write(data)
        else:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"tenant": tenant, "name": name, "bytes": path.stat().st_size, "sha256": digest}

    def files(self, tenant: str) -> list[dict[str, Any]]:
        """Every file in the tenant's store, with its size."""
        base = self.dir(tenant)
        out = []
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                out.append({"name": p.relative_to(base).as_posix(), "bytes": p.stat().st_size})
        return out
