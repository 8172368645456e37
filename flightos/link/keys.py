"""CURVE key files: one pair per kernel or service, secret files 0600, peers' public keys beside them.

Layout of a keys directory: ``<name>.key`` (public, ZeroMQ's ZPL certificate format),
``<name>.key_secret`` (public and secret, mode 0600), and ``authorized/<name>.key`` for service
keys that may connect to this kernel from outside it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

AUTHORIZED = "authorized"


class KeyFileError(Exception):
    """A key file is missing, unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair in Z85 text (the secret may be empty for a public-only certificate)."""

    name: str
    public: bytes
    secret: bytes


def _check_name(name: str) -> None:
    if not name or not all(c.islower() or c.isdigit() or c in "-_" for c in name):
        raise KeyFileError(f"key name {name!r}: use lower-case letters, digits, '-' and '_'")


def create(keys_dir: Path, name: str) -> KeyPair:
    """Make a new key pair ``name`` in ``keys_dir`` (0700); refuse to overwrite an existing one."""
    _check_name(name)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_file = keys_dir / f"{name}.key_secret"
    if secret_file.exists():
        raise KeyFileError(f"{secret_file} exists; use `flightos keys curve rotate {name}` to replace it")
    return _write(keys_dir, name)


def _write(keys_dir: Path, name: str) -> KeyPair:
    public, secret = zmq.curve_keypair()
    old = os.umask(0o077)
    try:  # written beside the final name, then renamed: a crash never leaves half a key
        tmp_secret, tmp_public = keys_dir / f".{name}.key_secret.tmp", keys_dir / f".{name}.key.tmp"
        _write_cert(tmp_secret, name, public, secret)
        _write_cert(tmp_public, name, public, None)
        os.chmod(tmp_secret, 0o600)
        os.chmod(tmp_public, 0o644)
        os.replace(tmp_secret, keys_dir / f"{name}.key_secret")
        os.replace(tmp_public, keys_dir / f"{name}.key")
    finally:
        os.umask(old)
    return KeyPair(name, public, secret)


def _write_cert(path: Path, name: str, public: bytes, secret: bytes | None) -> None:
    lines = [
        "#   flightos CURVE certificate (ZeroMQ ZPL format): share the .key file, never the .key_secret",
        "metadata",
        f'    name = "{name}"',
        f'    created = "{time.strftime("%Y-%m-%d")}"',
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def rotate(keys_dir: Path, name: str) -> tuple[KeyPair, Path]:
    """Replace ``name``'s pair with a new one; the old files are kept as ``*.retired-<time>``."""
    _check_name(name)
    secret_file = keys_dir / f"{name}.key_secret"
    if not secret_file.exists():
        raise KeyFileError(f"{secret_file} does not exist; `flightos keys curve new {name}` makes it")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    retired = keys_dir / f"{name}.key_secret.retired-{stamp}"
    os.replace(secret_file, retired)
    pub = keys_dir / f"{name}.key"
    if pub.exists():
        os.replace(pub, keys_dir / f"{name}.key.retired-{stamp}")
    return _write(keys_dir, name), retired


def load_secret(keys_dir: Path, name: str) -> KeyPair:
    """This kernel's (or a service's) own pair; the file must not be readable by others."""
    path = keys_dir / f"{name}.key_secret"
    if not path.is_file():
        raise KeyFileError(
            f"{path}: no secret key for {name!r} (make one with `flightos keys curve new {name} --dir {keys_dir}`)"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path}: mode {mode:o} lets others read the secret key; chmod 600 it")
    public, secret = _read(path)
    if secret is None:
        raise KeyFileError(f"{path}: has no secret-key line")
    return KeyPair(name, public, secret)


def load_public(keys_dir: Path, name: str) -> bytes:
    """A peer's (or service's) public key from ``<name>.key``."""
    path = keys_dir / f"{name}.key"
    if not path.is_file():
        raise KeyFileError(
            f"{path}: no public key for {name!r} (copy the peer's {name}.key here, or set link.peers.{name}.public_key)"
        )
    return _read(path)[0]


def authorized(keys_dir: Path) -> dict[bytes, str]:
    """Service keys allowed in from outside: Z85 public key -> service name (the file's stem)."""
    out: dict[bytes, str] = {}
    d = keys_dir / AUTHORIZED
    if d.is_dir():
        for p in sorted(d.glob("*.key")):
            out[_read(p)[0]] = p.stem
    return out


def authorize(keys_dir: Path, name: str, public_key_file: Path) -> Path:
    """Admit a service's public key: copy it to ``authorized/<name>.key``."""
    return _copy_public(public_key_file, keys_dir / AUTHORIZED, name)


def _copy_public(public_key_file: Path, dest_dir: Path, name: str) -> Path:
    """Write ``dest_dir/<name>.key`` holding the public key read from ``public_key_file``."""
    _check_name(name)
    public, _ = _read(public_key_file)
    dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = dest_dir / f"{name}.key"
    _write_cert(dest, name, public, None)
    return dest


def import_peer(keys_dir: Path, name: str, public_key_file: Path) -> Path:
    """Trust a peer kernel: copy its public key to ``<name>.key`` (never over this kernel's own pair)."""
    if (keys_dir / f"{name}.key_secret").exists():
        raise KeyFileError(f"{keys_dir} holds {name}'s own key pair; a peer's key goes in the peer's directory")
    return _copy_public(public_key_file, keys_dir, name)


def revoke(keys_dir: Path, name: str) -> bool:
    """Remove a service's key from the allow-list; False if it was not there."""
    dest = keys_dir / AUTHORIZED / f"{name}.key"
    if not dest.exists():
        return False
    dest.unlink()
    return True


def listing(keys_dir: Path) -> list[dict[str, str]]:
    """Every key in a directory: name, kind (own pair, public, authorized) and public key."""
    rows: list[dict[str, str]] = []
    if not keys_dir.is_dir():
        return rows
    for p in sorted(keys_dir.glob("*.key_secret")):
        rows.append({"name": p.name.removesuffix(".key_secret"), "kind": "pair", "public_key": _read(p)[0].decode()})
    own = {r["name"] for r in rows}
    for p in sorted(keys_dir.glob("*.key")):
        if p.stem not in own:
            rows.append({"name": p.stem, "kind": "peer", "public_key": _read(p)[0].decode()})
    for public, name in authorized(keys_dir).items():
        rows.append({"name": name, "kind": "authorized", "public_key": public.decode()})
    return rows


def _read(path: Path) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a CURVE certificate: {exc}") from None
    if public is None or len(public) != 40:
        raise KeyFileError(f"{path}: no 40-character public-key")
    return public, secret
