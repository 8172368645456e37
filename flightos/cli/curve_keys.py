"""``flightos keys curve``: make, show, list, rotate and authorise the CURVE keys of links between boards."""

from __future__ import annotations

import argparse
from pathlib import Path

from flightos.cli import exit_codes as ec
from flightos.cli.output import emit_json
from flightos.config import target as tgt
from flightos.config.schema import ConfigError
from flightos.link import keys

ACTIONS = ("new", "show", "list", "rotate", "import", "authorize", "revoke")


def keys_dir(args: argparse.Namespace) -> Path:
    """``--dir``, else the target's ``[link] keys_dir``, else ``<state_dir>/keys/curve``."""
    if args.dir:
        return Path(args.dir).expanduser()
    t = tgt.load(args.target)
    if t.link.keys_dir:
        return Path(t.link.keys_dir).expanduser()
    return t.state_dir() / "keys" / "curve"


def run_curve(args: argparse.Namespace) -> int:
    """Dispatch ``flightos keys curve ACTION [NAME] [FILE]``."""
    action, name = args.key_id, args.name
    if action not in ACTIONS:
        raise ConfigError(f"keys curve: expected one of {', '.join(ACTIONS)}, got {action!r}")
    if action != "list" and not name:
        raise ConfigError(f"keys curve {action} needs a NAME (the board or service the key belongs to)")
    d = keys_dir(args)
    try:
        if action == "new":
            pair = keys.create(d, name)
            _report(
                args,
                {"name": name, "public_key": pair.public.decode(), "dir": str(d)},
                f"made {d / (name + '.key_secret')} (mode 0600) and {d / (name + '.key')}\n"
                f"public key: {pair.public.decode()}\n"
                f"copy {name}.key to every peer's keys directory (or set link.peers.{name}.public_key)",
            )
        elif action == "rotate":
            pair, retired = keys.rotate(d, name)
            _report(
                args,
                {"name": name, "public_key": pair.public.decode(), "retired": str(retired)},
                f"new key pair for {name}; the old secret is kept as {retired}\n"
                f"public key: {pair.public.decode()}\n"
                "give the new .key to every peer, then restart this kernel: peers refuse the old key "
                "once they have the new one",
            )
        elif action == "show":
            public = keys.load_public(d, name)
            _report(args, {"name": name, "public_key": public.decode()}, public.decode())
        elif action == "import":
            if not args.public_key_file:
                raise ConfigError("keys curve import BOARD FILE: FILE is the peer kernel's .key (public) file")
            dest = keys.import_peer(d, name, Path(args.public_key_file))
            _report(
                args,
                {"name": name, "file": str(dest)},
                f"peer {name}'s public key is now {dest}; this kernel trusts and checks it on its next start",
            )
        elif action == "authorize":
            if not args.public_key_file:
                raise ConfigError("keys curve authorize NAME FILE: FILE is the service's .key (public) file")
            dest = keys.authorize(d, name, Path(args.public_key_file))
            _report(
                args,
                {"name": name, "file": str(dest)},
                f"service {name} may now connect to this kernel's link endpoint ({dest}); restart the kernel to apply",
            )
        elif action == "revoke":
            if not keys.revoke(d, name):
                raise ConfigError(f"no authorized key {name!r} in {d / keys.AUTHORIZED}")
            _report(args, {"name": name, "revoked": True}, f"revoked {name}; restart the kernel to apply")
        else:
            rows = keys.listing(d)
            if args.json:
                emit_json({"dir": str(d), "keys": rows})
            else:
                print(f"{d}:" + ("" if rows else " no keys"))
                for r in rows:
                    print(f"  {r['name']:<20} {r['kind']:<10} {r['public_key']}")
    except keys.KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    return ec.OK


def _report(args: argparse.Namespace, doc: dict[str, object], text: str) -> None:
    if args.json:
        emit_json(doc)
    else:
        print(text)
