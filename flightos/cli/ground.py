"""``flightos keys``, ``flightos ground`` (the bench console) and ``flightos mdb``."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
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
from flightos.groundtools.telemetry import Declarations, activities, command_text, decode, line

DEFAULT_UDP = "127.0.0.1:10025"
"""Where the ground service listens when its target does not say (services/ground/options.py)."""


def add_parsers(sub: Any) -> None:
    """Register keys, ground and mdb."""
    k = sub.add_parser(
        "keys",
        help="telecommand keys (shared with the ground), and CURVE keys for links "
        "between boards (`keys curve new|show|list|rotate|import|authorize|revoke`)",
    )
    k.add_argument("action", choices=["add", "list", "remove", "show", "curve"])
    k.add_argument(
        "key_id", nargs="?", help="telecommand key id; for `curve`: new|show|list|rotate|import|authorize|revoke"
    )
    k.add_argument("name", nargs="?", help="curve: the board or service the key pair belongs to")
    k.add_argument("public_key_file", nargs="?", help="curve import/authorize: the peer's or service's .key file")
    k.add_argument(
        "--dir", help="curve: the keys directory (default: the target's [link] keys_dir, else <state_dir>/keys/curve)"
    )
    k.add_argument("--target", default="sim-radhard", help="whose key file (default sim-radhard)")
    k.add_argument("--file", help="the key file (default <state_dir>/ground/keys.json)")

    g = sub.add_parser("ground", help="the bench console: speak PUS over UDP to a runtime's ground service")
    g.add_argument("action", choices=["ping", "cmd", "param", "tm", "time", "schedule", "resync"])
    g.add_argument(
        "rest",
        nargs="*",
        help="cmd SERVICE COMMAND [key=value ...] | param get|set SERVICE.NAME "
        "[VALUE] | schedule list|reset|enable|disable|add +SECONDS SERVICE COMMAND [key=value ...]",
    )
    g.add_argument(
        "--to",
        help="the ground service's UDP endpoint HOST:PORT (default: the target's "
        "services.ground.options.udp_bind, a wildcard host read as 127.0.0.1)",
    )
    g.add_argument("--apid", type=int, default=100)
    g.add_argument(
        "--target",
        default="sim-radhard",
        help="whose key file and mission database: the shipped "
        "table, then the mission tables of the target's ground service (services.ground.options.mdb)",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the same target overrides the runtime was started with (repeatable)",
    )
    g.add_argument("--key-file", help="the key file (default: the target's)")
    g.add_argument("--key-id", type=int, help="which key (default: the lowest)")
    g.add_argument("--no-auth", action="store_true", help="send unauthenticated telecommands (lab targets only)")
    g.add_argument("--timeout", type=float, default=10.0)
    g.add_argument("--count", type=int, default=20, help="tm: stop after this many packets")
    g.add_argument(
        "--no-ack",
        action="store_true",
        help="tm: do not acknowledge what arrived (TC[15,130]); the spacecraft keeps it and sends it again",
    )

    m = sub.add_parser("mdb", help="the mission database: export definitions, or assign ids to new commands")
    m.add_argument("action", choices=["export", "assign", "show"])
    m.add_argument("--format", choices=["xtce", "json"], default="json")
    m.add_argument("--out", help="write here instead of stdout")
    m.add_argument("--table", action="append", default=[], help="a mission table file (repeatable)")
    m.add_argument("--target", help="also the mission tables of this target's ground service (name or file)")
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="target overrides (repeatable)")


def key_file(args: argparse.Namespace) -> Path:
    """The key file a command works on."""
    explicit = getattr(args, "file", None) or getattr(args, "key_file", None)
    if explicit:
        return Path(explicit)
    return tgt.load(args.target, getattr(args, "set", None)).state_dir() / "ground" / "keys.json"


def target_tables(target: str, overrides: list[str] | None = None) -> list[Path]:
    """The mission tables the target's ground service loads after the shipped one, resolved as it resolves them."""
    ground = tgt.load(target, overrides).services.get("ground")
    raw = ground.options.get("mdb", []) if ground is not None else []
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(f"target {target}: services.ground.options.mdb: expected a list of file names")
    return [Path(p).absolute() for p in raw]  # relative to where flightos runs, as on board


def mission_tables(paths: list[Path]) -> mdb.Tables:
    """The shipped table and these mission tables (each once); a table that does not load is a ConfigError."""
    unique: list[Path] = []
    for p in paths:
        if p.absolute() not in [u.absolute() for u in unique]:
            unique.append(p)
    try:
        return mdb.load(unique)
    except mdb.MdbError as exc:
        raise ConfigError(str(exc)) from None


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
            print(
                json.dumps(out)
                if args.json
                else f"key {kid} added to {ks.path}\n{key.hex()}\n"
                "(give this key to the ground; a running ground service picks it up with "
                "`flightos cmd ground reload_keys`; after restoring a board, then run `flightos ground resync`)"
            )
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
            print(
                f"{ks.path}: "
                + (", ".join(f"{k}{' (started)' if ks.started(k) else ''}" for k in ks.ids()) or "no keys")
            )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ec.OK


def _kv(items: list[str]) -> dict[str, Any]:
    return parse_pairs(items)


def signature(tables: mdb.Tables, service: str, command: str) -> tuple[int, list[tuple[str, str]]]:
    """Function id and argument types of a command, from the tables, the kernel's table or the installed plugin."""
    fid = tables.function_id(service, command)
    if fid is None:
        where = ", ".join(Path(s).name for s in tables.sources)
        raise ConfigError(
            f"{service}.{command} has no function id in the mission database ({where}); "
            "`flightos mdb assign --table FILE` gives it one, and the target's "
            "services.ground.options.mdb names FILE"
        )
    fn = tables.functions[fid]
    sig = Declarations(tables).arguments(fn)
    if sig is None:
        raise ConfigError(
            f"{fn.name} (function {fid}): service {service!r} is not installed here or has no "
            f"command {command!r}, so its arguments are unknown"
        )
    return fid, sig


def _defaults(service: str, command: str) -> dict[str, Any]:
    """The declared defaults of a command's optional arguments (kernel or installed plugin)."""
    if service == "kernel":
        from flightos.kernel.command_docs import KERNEL_ARGUMENTS

        declared = KERNEL_ARGUMENTS.get(command) or []
    else:
        from flightos import plugins
        from flightos.sdk.service import ServiceShape

        try:
            bound = ServiceShape.of(plugins.load(service)).commands.get(command)
        except plugins.PluginError:
            bound = None
        declared = list(bound.arguments) if bound is not None else []
    return {a.name: a.default for a in declared if not a.required}


def _ordered(args: list[tuple[str, str]], given: dict[str, Any], service: str, command: str) -> list[Any]:
    """Arguments in declared order; a missing one is filled from the declared default when it has one."""
    defaults = _defaults(service, command)
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


def ground_endpoint(to: str | None, target: str, overrides: list[str] | None = None) -> tuple[str, int]:
    """--to, else where the target's ground service listens (its udp_bind); a bad endpoint is a UsageError."""
    where = "--to"
    if to is None:
        ground = tgt.load(target, overrides).services.get("ground")
        to = ground.options.get("udp_bind", DEFAULT_UDP) if ground is not None else DEFAULT_UDP
        where = f"target {target}: services.ground.options.udp_bind"
    host, _, port = str(to).rpartition(":")
    host = host.strip("[]")
    if port == "0" and where != "--to":
        raise UsageError(f"{where} is {to!r}: the ground service takes any free port, so give its --to HOST:PORT")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{where}: expected HOST:PORT with a port in 1..65535, got {to!r}")
    return ("127.0.0.1" if host == "0.0.0.0" else "::1" if host == "::" else host), int(port)


async def _ground(args: argparse.Namespace) -> int:
    host, port = ground_endpoint(args.to, args.target, args.set)
    if not 0 <= args.apid <= 2047:  # an 11-bit CCSDS field
        raise UsageError(f"--apid {args.apid}: expected 0..2047")
    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g}: expected seconds > 0")
    if args.count < 1:
        raise UsageError(f"--count {args.count}: expected 1 or more packets")
    try:
        keys = None if args.no_auth else KeyStore(key_file(args))
    except ValueError as exc:  # a key file that is not JSON: name it, as `flightos keys` does
        raise ConfigError(str(exc)) from None
    tables = mission_tables(target_tables(args.target, args.set))
    try:
        async with GroundClient(host, port, args.apid, keys, args.key_id) as g:
            return await _console(g, tables, args)
    except GroundError as exc:
        error(f"{exc}; asked the ground service at {host}:{port}" if "within" in str(exc) else str(exc))
        return ec.TIMEOUT if "within" in str(exc) else ec.COMMAND_FAILED
    except socket.gaierror as exc:
        raise UsageError(f"ground endpoint {host}:{port}: {exc.strerror}") from None


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
            "anti-replay counters resynchronised: "
            + (", ".join(f"key {k} from {v}" for k, v in floors.items()) or "no keys on board")
        )
    else:
        await _tail(g, tables, args)
    return ec.OK


async def _param(g: GroundClient, tables: mdb.Tables, rest: list[str], args: argparse.Namespace) -> int:
    if len(rest) < 2 or rest[0] not in ("get", "set") or "." not in rest[1]:
        raise ConfigError("ground param get SERVICE.NAME | ground param set SERVICE.NAME VALUE")
    service, name = rest[1].split(".", 1)
    pid = tables.parameter_id(service, name)
    if pid is None:
        raise ConfigError(f"{rest[1]} has no parameter id in the mission database")
    ptype = Declarations(tables).parameter_type(tables.parameters[pid])
    if ptype is None:
        raise ConfigError(
            f"{rest[1]} (parameter {pid}): service {service!r} is not installed here or has no "
            f"parameter {name!r}, so its type is unknown"
        )
    if rest[0] == "get":
        out = await g.request(g.build(20, 1, pus.pack_u16(1) + pus.pack_u16(pid)), args.timeout)
        g._raise(out)
        data = next(bytes(r.source_data) for r in out.reports if r.service == 20)
        value, _ = pus.decode_value(ptype, data, 4)
        emit_json(value)
    else:
        if len(rest) != 3:
            raise UsageError(f"ground param set {rest[1]} VALUE: expected one value, got {len(rest) - 2}")
        where = f"ground param set {rest[1]}"
        value = rest[2] if ptype == "str" else _typed(where, "VALUE", ptype, parse_value(rest[2]))
        out = await g.request(
            g.build(20, 3, pus.pack_u16(1) + pus.pack_u16(pid) + pus.encode_value(ptype, value)), args.timeout
        )
        g._raise(out)
        print("set")
    return ec.OK


async def _schedule(g: GroundClient, tables: mdb.Tables, rest: list[str], args: argparse.Namespace) -> int:
    simple = {"enable": 1, "disable": 2, "reset": 3}
    if rest and rest[0] in simple:
        g._raise(await g.request(g.build(11, simple[rest[0]]), args.timeout))
        print(f"schedule {rest[0]}d" if rest[0] != "reset" else "schedule reset")
    elif rest and rest[0] == "list":  # TC[11,16] -> TM[11,10]: each activity's release time and telecommand
        out = await g.request(g.build(11, 16), args.timeout)
        g._raise(out)
        decl = Declarations(tables)
        acts = [
            a
            for r in out.reports
            if (r.service, r.message_subtype) == (11, 10)
            for a in _activities(bytes(r.source_data), decl)
        ]
        if args.json:
            emit_json(acts)
        else:
            rows = [(a["release"], a["request_id"] or "-", command_text(a)) for a in acts]
            print(table(["RELEASE (UTC)", "REQUEST ID", "COMMAND"], rows) if rows else "schedule empty")
    elif len(rest) >= 4 and rest[0] == "add" and rest[1].startswith("+"):
        try:
            delay = float(rest[1][1:])
        except ValueError:
            raise UsageError(f"ground schedule add: {rest[1]!r} is not +SECONDS") from None
        if not delay > 0 or delay == float("inf"):  # +-5 or +nan would release in the past, or never
            raise UsageError(f"ground schedule add: {rest[1]!r}: expected seconds from now > 0")
        fid, sig = signature(tables, rest[2], rest[3])
        values = _ordered(sig, _kv(rest[4:]), rest[2], rest[3])
        inner = _unsigned(g, 8, 1, pus.pack_u16(fid) + pus.encode_values([t for _, t in sig], values))
        payload = pus.pack_u16(1) + pus.unix_to_cds(time.time() + delay) + inner
        g._raise(await g.request(g.build(11, 4, payload), args.timeout))
        print(f"scheduled {rest[2]}.{rest[3]} in {delay:g} s")
    else:
        raise ConfigError("ground schedule list|reset|enable|disable|add +SECONDS SERVICE COMMAND [key=value ...]")
    return ec.OK


def _activities(data: bytes, decl: Declarations) -> list[dict[str, Any]]:
    try:
        return activities(data, decl)
    except ValueError as exc:
        raise GroundError(f"TM[11,10] cannot be decoded: {exc}") from None


def _unsigned(g: GroundClient, service: int, subtype: int, payload: bytes) -> bytes:
    """An embedded telecommand: the enclosing one is authenticated, the embedded one is not signed again."""
    from spacepackets.ecss import PusTc

    g.seq = int(time.time() * 1000) & 0x3FFF  # its request id names it in the schedule: not the same every run
    return bytes(
        PusTc(
            service=service,
            message_subtype=subtype,
            apid=g.apid,
            seq_count=g.seq,
            app_data=payload,
            source_id=g.source_id,
        ).pack()
    )


async def _tail(g: GroundClient, tables: mdb.Tables, args: argparse.Namespace) -> None:
    """Print telemetry as it arrives; acknowledge it (so the spacecraft may delete it) unless --no-ack."""
    decl = Declarations(tables)
    g._raise(await g.request(g.build(17, 1), args.timeout))  # so the spacecraft knows where the ground is
    last_ack = time.monotonic()
    try:
        for _ in range(args.count):
            try:
                tm = await g.next_tm(args.timeout)
            except asyncio.TimeoutError:
                break
            _print_tm(tm, decl, args.json)
            if not args.no_ack and (len(g.unacked) >= pus.ACK_MAX or time.monotonic() - last_ack >= ACK_EVERY_S):
                g.acknowledge()
                last_ack = time.monotonic()
    finally:
        if not args.no_ack and g.unacked:
            g.acknowledge()
            await asyncio.sleep(0)  # let the datagram go before the socket closes
        if g.acknowledged and not args.json:
            print(f"acknowledged {g.acknowledged} packet(s) with TC[15,130]", flush=True)
        if g.garbage:  # said, not dropped in silence: a wrong --to or a link mangling frames shows here
            error(f"ignored {g.garbage} datagram(s) that are not PUS telemetry packets")


ACK_EVERY_S = 1.0
"""How often ``ground tm`` acknowledges what it received."""


def _print_tm(tm: Any, decl: Declarations, as_json: bool) -> None:
    """One telemetry packet decoded by the mission database: a line, or a JSON object per line."""
    decoded = decode(tm, decl)
    print(json.dumps(decoded) if as_json else line(decoded), flush=True)


def run_mdb(args: argparse.Namespace) -> int:
    """export / show / assign."""
    from flightos.groundtools import mdb_export

    paths = [*(target_tables(args.target, args.set) if args.target else []), *map(Path, args.table)]
    tables = mission_tables([p for p in paths if args.action != "assign" or p.exists()])  # assign may create one
    if args.action == "assign":
        path = Path(args.table[-1]) if args.table else None
        if path is None:
            raise ConfigError("mdb assign needs --table FILE: the mission table that receives the new ids")
        try:
            added = mdb_export.assign_missing(tables, path)
        except mdb.MdbError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:  # a directory that does not exist, or no write access: name the table
            raise ConfigError(f"mdb assign: cannot write {path}: {exc.strerror}") from None
        print("\n".join(f"{fid} = {name}" for fid, name in added) or "every command and parameter already has an id")
        return ec.OK
    doc = mdb_export.xtce(tables) if args.format == "xtce" else json.dumps(mdb_export.as_json(tables), indent=2)
    if args.out:
        try:
            Path(args.out).write_text(doc)
        except OSError as exc:
            raise ConfigError(f"mdb {args.action}: cannot write --out {args.out}: {exc.strerror}") from None
        print(f"wrote {args.out}")
    else:
        print(doc)
    return ec.OK
