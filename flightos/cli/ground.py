"""``flightos keys``, ``flightos ground`` (the bench console) and ``flightos mdb``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from flightos.cli import exit_codes as ec
from flightos.cli.errors import UsageError
from flightos.cli.output import emit_json, error, table
from flightos.cli.values import parse_pairs, parse_value
from flightos.config import target as tgt
from flightos.config.schema import ConfigError
from flightos.ground import mdb, pus
from flightos.ground.security import KeyStore
from flightos.groundtools.console import GroundClient, GroundError


def add_parsers(sub: Any) -> None:
    """Register keys, ground and mdb."""
    k = sub.add_parser("keys", help="telecommand keys (shared with the ground), and CURVE keys for links "
                       "between boards (`keys curve new|show|list|rotate|import|authorize|revoke`)")
    k.add_argument("action", choices=["add", "list", "remove", "show", "curve"])
    k.add_argument("key_id", nargs="?",
                   help="telecommand key id; for `curve`: new|show|list|rotate|import|authorize|revoke")
    k.add_argument("name", nargs="?", help="curve: the board or service the key pair belongs to")
    k.add_argument("public_key_file", nargs="?", help="curve import/authorize: the peer's or service's .key file")
    k.add_argument("--dir", help="curve: the keys directory (default: the target's [link] keys_dir, "
                   "else <state_dir>/keys/curve)")
    k.add_argument("--target", default="sim-radhard", help="whose key file (default sim-radhard)")
    k.add_argument("--file", help="the key file (default <state_dir>/ground/keys.json)")

    g = sub.add_parser("ground", help="the bench console: speak PUS over UDP to a runtime's ground service")
    g.add_argument("action", choices=["ping", "cmd", "param", "tm", "time", "schedule", "resync"])
    g.add_argument("rest", nargs="*", help="cmd SERVICE COMMAND [key=value ...] | param get|set SERVICE.NAME "
                   "[VALUE] | schedule list|reset|enable|disable|add +SECONDS SERVICE COMMAND [key=value ...]")
    g.add_argument("--to", default="127.0.0.1:10025", help="the ground service's UDP endpoint")
    g.add_argument("--apid", type=int, default=100)
    g.add_argument("--target", default="sim-radhard", help="whose key file and mission database")
    g.add_argument("--key-file", help="the key file (default: the target's)")
    g.add_argument("--key-id", type=int, help="which key (default: the lowest)")
    g.add_argument("--no-auth", action="store_true", help="send unauthenticated telecommands (lab targets only)")
    g.add_argument("--timeout", type=float, default=10.0)
    g.add_argument("--count", type=int, default=20, help="tm: stop after this many packets")
    g.add_argument("--no-ack", action="store_true", help="tm: do not acknowledge what arrived (TC[15,130]); "
                   "the spacecraft keeps it and sends it again")

    m = sub.add_parser("mdb", help="the mission database: export definitions, or assign ids to new commands")
    m.add_argument("action", choices=["export", "assign", "show"])
    m.add_argument("--format", choices=["xtce", "json"], default="json")
    m.add_argument("--out", help="write here instead of stdout")
    m.add_argument("--table", action="append", default=[], help="a mission table file (repeatable)")


def key_file(args: argparse.Namespace) -> Path:
    """The key file a command works on."""
    explicit = getattr(args, "file", None) or getattr(args, "key_file", None)
    if explicit:
        return Path(explicit)
    return tgt.load(args.target).state_dir() / "ground" / "keys.json"


def run_keys(args: argparse.Namespace) -> int:
    """add / list / remove / show for telecommand keys; ``curve ...`` for link keys."""
    if args.action == "curve":
        from flightos.cli.curve_keys import run_curve

        return run_curve(args)
    if args.key_id is not None:
        if not str(args.key_id).isdigit():
            raise ConfigError(f"keys {args.action}: key id {args.key_id!r} is not a number")
        args.key_id = int(args.key_id)
    try:
        ks = KeyStore(key_file(args))
        if args.action == "add":
            kid, key = ks.add(args.key_id)
            out = {"key_id": kid, "key": key.hex(), "file": str(ks.path)}
            print(json.dumps(out) if args.json else f"key {kid} added to {ks.path}\n{key.hex()}\n"
                  "(give this key to the ground; a running ground service picks it up with "
                  "`flightos cmd ground reload_keys`; after restoring a board, then run `flightos ground resync`)")
        elif args.action == "remove":
            if args.key_id is None:
                raise ConfigError("keys remove needs a key id")
            if not ks.remove(args.key_id):
                raise ConfigError(f"no key {args.key_id} in {ks.path}")
            print(f"key {args.key_id} removed")
        elif args.action == "show":
            if args.key_id is None or ks.get(args.key_id) is None:
                raise ConfigError(f"no key {args.key_id} in {ks.path}")
            print(ks.get(args.key_id).hex())  # type: ignore[union-attr]
        elif args.json:
            emit_json({"file": str(ks.path), "key_ids": ks.ids(), "started": [k for k in ks.ids() if ks.started(k)]})
        else:  # "started": the board accepted counters under it, so lost counters lock it (docs/ground.md)
            print(f"{ks.path}: " + (", ".join(f"{k}{' (started)' if ks.started(k) else ''}" for k in ks.ids())
                                    or "no keys"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ec.OK


def _kv(items: list[str]) -> dict[str, Any]:
    return parse_pairs(items)


def signature(tables: mdb.Tables, service: str, command: str) -> tuple[int, list[tuple[str, str]]]:
    """Function id and argument types of a command, from the tables or the installed plugin."""
    fid = tables.function_id(service, command)
    if fid is None:
        raise ConfigError(f"{service}.{command} has no function id in the mission database "
                          "(`flightos mdb assign` gives it one)")
    fn = tables.functions[fid]
    if fn.args is not None:
        return fid, list(fn.args)
    from flightos import plugins
    from flightos.sdk.service import ServiceShape

    try:
        shape = ServiceShape.of(plugins.load(service))
    except plugins.PluginError as exc:
        raise ConfigError(str(exc)) from None
    bound = shape.commands.get(command)
    if bound is None:
        raise ConfigError(f"service {service!r} has no command {command!r}")
    return fid, [(a.name, a.type_name if a.type_name in mdb.VALUE_TYPES else "any") for a in bound.arguments]


def _ordered(args: list[tuple[str, str]], given: dict[str, Any], service: str, command: str) -> list[Any]:
    """Arguments in declared order; a missing one is filled from the plugin's default when it has one."""
    from flightos import plugins
    from flightos.sdk.service import ServiceShape

    defaults: dict[str, Any] = {}
    try:
        bound = ServiceShape.of(plugins.load(service)).commands.get(command)
        defaults = {a.name: a.default for a in bound.arguments if not a.required} if bound else {}
    except plugins.PluginError:
        pass
    unknown = sorted(set(given) - {n for n, _ in args})
    if unknown:
        raise ConfigError(f"{service}.{command}: unexpected argument(s) {', '.join(unknown)}")
    out = []
    for name, type_name in args:
        if name in given:
            out.append(_typed(f"{service}.{command}", name, type_name, given[name]))
        elif name in defaults:
            out.append(defaults[name])
        else:
            raise ConfigError(f"{service}.{command}: missing argument {name!r}")
    return out


def _typed(where: str, name: str, type_name: str, value: Any) -> Any:
    """A value checked against its declared type before it is encoded (the spacecraft checks again)."""
    py = {"int": int, "float": float, "bool": bool, "str": str, "bytes": bytes}.get(type_name)
    if py is None:
        return value
    if type_name == "str" and not isinstance(value, str):
        return str(value)
    if type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, py) or (py is int and isinstance(value, bool)):
        raise UsageError(f"{where}: argument {name!r} expects {type_name}, got {value!r}")
    return value


def run_ground(args: argparse.Namespace) -> int:
    """The bench console."""
    return asyncio.run(_ground(args))


async def _ground(args: argparse.Namespace) -> int:
    host, _, port = args.to.rpartition(":")
    keys = None if args.no_auth else KeyStore(key_file(args))
    tables = mdb.load()
    try:
        async with GroundClient(host, int(port), args.apid, keys, args.key_id) as g:
            return await _console(g, tables, args)
    except GroundError as exc:
        error(str(exc))
        return ec.TIMEOUT if "within" in str(exc) else ec.COMMAND_FAILED


async def _console(g: GroundClient, tables: mdb.Tables, args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if args.action == "ping":
        ms = await g.ping(args.timeout)
        print(json.dumps({"round_trip_ms": ms}) if args.json else f"TM[17,2] in {ms:.1f} ms")
    elif args.action == "time":
        out = await g.request(g.build(9, 1), args.timeout)
        g._raise(out)
        t = next(pus.cds_to_unix(bytes(r.source_data)) for r in out.reports if r.service == 9)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        print(f"{stamp} (ground clock differs by {t - time.time():+.3f} s)")
    elif args.action == "cmd":
        if len(rest) < 2:
            raise ConfigError("ground cmd SERVICE COMMAND [key=value ...]")
        fid, sig = signature(tables, rest[0], rest[1])
        values = _ordered(sig, _kv(rest[2:]), rest[0], rest[1])
        value = await g.function(fid, [t for _, t in sig], values, args.timeout)
        emit_json(value) if args.json or not isinstance(value, str) else print(value)
    elif args.action == "param":
        return await _param(g, tables, rest, args)
    elif args.action == "schedule":
        return await _schedule(g, tables, rest, args)
    elif args.action == "resync":  # unlock anti-replay counters over a fresh on-board nonce (docs/ground.md)
        floors = await g.resync(args.timeout)
        emit_json({"floors": floors}) if args.json else print(
            "anti-replay counters resynchronised: " + (", ".join(f"key {k} from {v}" for k, v in floors.items())
                                                       or "no keys on board"))
    else:
        await _tail(g, args)
    return ec.OK


async def _param(g: GroundClient, tables: mdb.Tables, rest: list[str], args: argparse.Namespace) -> int:
    if len(rest) < 2 or rest[0] not in ("get", "set") or "." not in rest[1]:
        raise ConfigError("ground param get SERVICE.NAME | ground param set SERVICE.NAME VALUE")
    service, name = rest[1].split(".", 1)
    pid = tables.parameter_id(service, name)
    if pid is None:
        raise ConfigError(f"{rest[1]} has no parameter id in the mission database")
    ptype = tables.parameters[pid].type or _param_type(service, name)
    if rest[0] == "get":
        out = await g.request(g.build(20, 1, pus.pack_u16(1) + pus.pack_u16(pid)), args.timeout)
        g._raise(out)
        data = next(bytes(r.source_data) for r in out.reports if r.service == 20)
        value, _ = pus.decode_value(ptype, data, 4)
        emit_json(value)
    else:
        value = parse_value(rest[2]) if len(rest) > 2 else None
        if ptype == "str" and len(rest) > 2:
            value = rest[2]
        out = await g.request(g.build(20, 3, pus.pack_u16(1) + pus.pack_u16(pid) + pus.encode_value(ptype, value)),
                              args.timeout)
        g._raise(out)
        print("set")
    return ec.OK


def _param_type(service: str, name: str) -> str:
    from flightos import plugins
    from flightos.sdk.service import ServiceShape

    p = ServiceShape.of(plugins.load(service)).parameters.get(name)
    if p is None:
        raise ConfigError(f"service {service!r} has no parameter {name!r}")
    t = p.describe()["type"]
    return t if t in mdb.VALUE_TYPES else "any"


async def _schedule(g: GroundClient, tables: mdb.Tables, rest: list[str], args: argparse.Namespace) -> int:
    simple = {"enable": 1, "disable": 2, "reset": 3}
    if rest and rest[0] in simple:
        g._raise(await g.request(g.build(11, simple[rest[0]]), args.timeout))
        print(f"schedule {rest[0]}d" if rest[0] != "reset" else "schedule reset")
    elif rest and rest[0] == "list":
        out = await g.request(g.build(11, 16), args.timeout)
        g._raise(out)
        data = next(bytes(r.source_data) for r in out.reports if r.service == 11)
        n = pus.u16(data, 0)
        rows = []
        for i in range(n):
            at = pus.cds_to_unix(data[2 + 11 * i: 9 + 11 * i])
            rows.append((time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)), f"0x{pus.u32(data, 9 + 11 * i):08x}"))
        print(table(["RELEASE (UTC)", "REQUEST ID"], rows) if rows else "schedule empty")
    elif len(rest) >= 3 and rest[0] == "add" and rest[1].startswith("+"):
        delay = float(rest[1][1:])
        fid, sig = signature(tables, rest[2], rest[3] if len(rest) > 3 else "")
        values = _ordered(sig, _kv(rest[4:]), rest[2], rest[3])
        inner = _unsigned(g, 8, 1, pus.pack_u16(fid) + pus.encode_values([t for _, t in sig], values))
        payload = pus.pack_u16(1) + pus.unix_to_cds(time.time() + delay) + inner
        g._raise(await g.request(g.build(11, 4, payload), args.timeout))
        print(f"scheduled {rest[2]}.{rest[3]} in {delay:g} s")
    else:
        raise ConfigError("ground schedule list|reset|enable|disable|add +SECONDS SERVICE COMMAND [key=value ...]")
    return ec.OK


def _unsigned(g: GroundClient, service: int, subtype: int, payload: bytes) -> bytes:
    """An embedded telecommand: the enclosing one is authenticated, the embedded one is not signed again."""
    from spacepackets.ecss import PusTc

    g.seq = (g.seq + 1) & 0x3FFF
    return bytes(PusTc(service=service, message_subtype=subtype, apid=g.apid, seq_count=g.seq, app_data=payload,
                       source_id=g.source_id).pack())


async def _tail(g: GroundClient, args: argparse.Namespace) -> None:
    """Print telemetry as it arrives; acknowledge it (so the spacecraft may delete it) unless --no-ack."""
    await g.ping(args.timeout)  # so the spacecraft knows where the ground is
    last_ack = time.monotonic()
    try:
        for _ in range(args.count):
            try:
                tm = await g.next_tm(args.timeout)
            except asyncio.TimeoutError:
                break
            _print_tm(tm)
            if not args.no_ack and (len(g.unacked) >= pus.ACK_MAX or time.monotonic() - last_ack >= ACK_EVERY_S):
                g.acknowledge()
                last_ack = time.monotonic()
    finally:
        if not args.no_ack and g.unacked:
            g.acknowledge()
            await asyncio.sleep(0)  # let the datagram go before the socket closes
        if g.acknowledged and not args.json:
            print(f"acknowledged {g.acknowledged} packet(s) with TC[15,130]", flush=True)


ACK_EVERY_S = 1.0
"""How often ``ground tm`` acknowledges what it received."""


def _print_tm(tm: Any) -> None:
    """One line per telemetry packet (events with their id, source and message)."""
    desc = f"TM[{tm.service},{tm.message_subtype}] seq {tm.seq_count} {len(tm.source_data)} bytes"
    if tm.service == 5:
        data = bytes(tm.source_data)
        eid = pus.u16(data, 0)
        (source, message), _ = pus.decode_values(["str", "str"], data, 2, exact=False)
        desc += f" event {eid} from {source}: {message}"
    print(desc, flush=True)


def run_mdb(args: argparse.Namespace) -> int:
    """export / show / assign."""
    from flightos.groundtools import mdb_export

    try:
        tables = mdb.load([Path(p) for p in args.table if args.action != "assign" or Path(p).exists()])
    except mdb.MdbError as exc:
        raise ConfigError(str(exc)) from None
    if args.action == "assign":
        path = Path(args.table[-1]) if args.table else None
        if path is None:
            raise ConfigError("mdb assign needs --table FILE: the mission table that receives the new ids")
        try:
            added = mdb_export.assign_missing(tables, path)
        except mdb.MdbError as exc:
            raise ConfigError(str(exc)) from None
        print("\n".join(f"{fid} = {name}" for fid, name in added) or "every command and parameter already has an id")
        return ec.OK
    doc = mdb_export.xtce(tables) if args.format == "xtce" else json.dumps(mdb_export.as_json(tables), indent=2)
    if args.out:
        Path(args.out).write_text(doc)
        print(f"wrote {args.out}")
    else:
        print(doc)
    return ec.OK
