"""``flightos`` entry point: parses arguments and maps every failure to a one-line error and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from flightos.bus.envelope import FrameError
from flightos.bus.errors import CommandError, DeadlineExceeded
from flightos.cli import exit_codes as ec
from flightos.cli.errors import UsageError
from flightos.cli.output import emit_json, error
from flightos.cli.values import parse_value
from flightos.client import Client, NoRuntime
from flightos.config.schema import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="flightos", description="Onboard runtime for satellites.")
    _add_global_options(p, default_json=False, default_dir=None)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("run", help="start the kernel and its services until Ctrl-C")
    r.add_argument("--target", default="sim-radhard", help="target name or path to a target TOML file")
    r.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a target key, e.g. --set health.heartbeat_misses=4 (repeatable)",
    )
    r.add_argument("--log-format", choices=["console", "json"], help="override runtime.log_format")
    r.add_argument(
        "--scenario",
        metavar="FILE",
        help="a TOML timeline of faults and environment changes (sim targets; see targets/scenarios/)",
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="simulated boards: carry the board's state (watchdog "
        "resets) over from the last run instead of starting fresh (same as --set hal.resume=true)",
    )

    pr = sub.add_parser("probe", help="detect the board and print everything the HAL can read")
    pr.add_argument("--root", default="/", help="filesystem root to read (a recorded tree)")
    pr.add_argument("--settle", type=float, default=0.5, help="seconds between the two reads (for load)")
    pr.add_argument(
        "--state-dir",
        default=os.environ.get("FLIGHTOS_STATE_DIR") or None,
        help="also measure this directory's file system (default $FLIGHTOS_STATE_DIR)",
    )

    s = sub.add_parser("status", help="the service and core tables")
    s.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=1.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 1) until Ctrl-C",
    )

    c = sub.add_parser("cmd", help="run a command of a service (or of 'kernel')")
    c.add_argument("service")
    c.add_argument("command")
    c.add_argument(
        "args",
        nargs="*",
        metavar="KEY=VALUE",
        help='arguments; values are TOML literals (10, 2.5, true, "text", [1, 2]) or bare text',
    )
    c.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds (default 5)")
    c.add_argument("--id", help="command id (idempotency key); reuse it to retry safely")

    t = sub.add_parser("tm", help="tail telemetry and events")
    t.add_argument("prefix", nargs="?", default="", help="topic prefix, e.g. tm.kernel or ev.")
    t.add_argument("--count", type=int, help="stop after this many messages")
    t.add_argument("--timeout", type=float, help="stop after this many seconds")

    i = sub.add_parser("inject", help="inject a fault into a simulated target (through the kernel)")
    i.add_argument(
        "fault",
        help="seu, sefi, reset, sel, power-cycle, core-fail, thermal-step, saa, sun; devices: "
        "i2c-nack, i2c-hang, uart-bit-errors, uart-dropout, gpio-stuck, can-bus-off, device-clear",
    )
    i.add_argument("args", nargs="*", metavar="KEY=VALUE", help="e.g. core=2, count=10, delta_w=3, on=true, device=imu")

    co = sub.add_parser("core", help="hold a core out of service, or return it (ground command)")
    co.add_argument("action", choices=["disable", "enable"])
    co.add_argument("core", type=int)

    mo = sub.add_parser("mode", help="hold a mode (safe, degraded, nominal) or return to automatic (auto)")
    mo.add_argument("mode", choices=["safe", "degraded", "nominal", "auto"])

    from flightos.report.cli import HELP as REPORT_HELP
    from flightos.report.cli import add_arguments as report_arguments

    rp = sub.add_parser("report", help=REPORT_HELP)
    report_arguments(rp)
    rp.add_argument("--target", default="sim-radhard", help="whose recorded runs RUN names (default sim-radhard)")

    from flightos.cli import ground as ground_cli
    from flightos.cli import install as install_cli
    from flightos.cli import jobs as jobs_cli
    from flightos.cli import logs as logs_cli

    ground_cli.add_parsers(sub)
    install_cli.add_parsers(sub)
    jobs_cli.add_parsers(sub)
    logs_cli.add_parsers(sub)

    sub.add_parser("targets", help="list the target files found")

    n = sub.add_parser("new-service", help="scaffold a service package with its entry point and a test")
    n.add_argument("name")
    n.add_argument("--dir", default=".", help="where to create the package folder")
    _accept_global_options_everywhere(p)
    return p


def _add_global_options(p: argparse.ArgumentParser, default_json: Any, default_dir: Any) -> None:
    """``--json`` and ``--runtime-dir``; a subcommand's copies default to SUPPRESS: they never undo the top's."""
    names = p._option_string_actions
    if "--runtime-dir" not in names:
        p.add_argument(
            "--runtime-dir",
            default=default_dir,
            help="runtime directory of the kernel (default: "
            "$FLIGHTOS_RUNTIME_DIR, $XDG_RUNTIME_DIR/flightos or /tmp/flightos-UID)",
        )
    if "--json" not in names:
        p.add_argument("--json", action="store_true", default=default_json, help="machine-readable output")


def _accept_global_options_everywhere(p: argparse.ArgumentParser) -> None:
    """Let every subcommand (nested ones too) take the global options after its name, as the README promises."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_global_options(child, default_json=argparse.SUPPRESS, default_dir=argparse.SUPPRESS)
                _accept_global_options_everywhere(child)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with a documented code."""
    try:
        args = build_parser().parse_args(argv)
        code = dispatch(args)
        sys.stdout.flush()  # a closed pipe fails here, where it is handled, not in the interpreter's exit
    except KeyboardInterrupt:
        code = ec.OK
    except BrokenPipeError:  # the reader stopped early (`flightos tm | head`): what it took was shown
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        code = ec.OK
    except NoRuntime as exc:
        error(str(exc))
        code = ec.NO_RUNTIME
    except ConfigError as exc:
        error(str(exc))
        code = ec.CONFIG
    except DeadlineExceeded as exc:
        error(f"timeout: {exc.message}")
        code = ec.TIMEOUT
    except CommandError as exc:
        error(f"{exc.code}: {exc.message}")
        code = ec.COMMAND_FAILED
    except UsageError as exc:
        error(str(exc))
        code = ec.USAGE
    except Exception as exc:  # never a traceback to the user; FLIGHTOS_DEBUG=1 shows it
        if os.environ.get("FLIGHTOS_DEBUG"):
            raise
        error(f"internal error: {type(exc).__name__}: {exc} (FLIGHTOS_DEBUG=1 shows the traceback)")
        code = ec.INTERNAL
    sys.exit(code)


def dispatch(args: argparse.Namespace) -> int:
    """Run one subcommand."""
    if args.cmd == "run":
        from flightos.cli.run import run

        return run(args)
    if args.cmd == "targets":
        return _targets(args)
    if args.cmd == "probe":
        return _probe(args)
    if args.cmd == "report":
        return _report(args)
    if args.cmd == "jobs":
        from flightos.cli import jobs as jobs_cli

        return int(jobs_cli.run_jobs(args))
    if args.cmd == "logs":
        from flightos.cli import logs as logs_cli

        return logs_cli.run_logs(args)
    if args.cmd in ("install", "uninstall"):
        from flightos.cli import install as install_cli

        return install_cli.run_install(args) if args.cmd == "install" else install_cli.run_uninstall(args)
    if args.cmd in ("keys", "ground", "mdb"):
        from flightos.cli import ground as ground_cli

        return int(
            {"keys": ground_cli.run_keys, "ground": ground_cli.run_ground, "mdb": ground_cli.run_mdb}[args.cmd](args)
        )
    if args.cmd == "new-service":
        from flightos.cli.scaffold import scaffold

        path = scaffold(args.name, Path(args.dir))
        print(f"created {path}; install it with: pip install -e '{path}[test]', then test it with: cd {path} && pytest")
        return ec.OK
    return asyncio.run(_client_command(args))


def _report(args: argparse.Namespace) -> int:
    from flightos.config import target as tgt
    from flightos.report.cli import run as run_report

    path = Path(args.run)
    if not path.is_dir():
        runs = tgt.load(args.target).state_dir() / "runs"
        found = sorted(p for p in runs.glob("*") if p.is_dir()) if runs.is_dir() else []
        if args.run == "latest":
            if not found:
                raise ConfigError(f"no recorded runs in {runs} (run `flightos run` first, or pass a run directory)")
            path = found[-1]
        elif (runs / args.run).is_dir():
            path = runs / args.run
        else:
            names = ", ".join(p.name for p in found[-5:]) or "none"
            raise ConfigError(f"no run {args.run!r}: not a directory, nor a run in {runs} (latest: {names})")
    args.run = str(path)
    return run_report(args)


def _probe(args: argparse.Namespace) -> int:
    import hal

    if args.root is not None and not os.path.isdir(args.root):  # else an empty report that looks like a board
        raise UsageError(f"probe: --root {args.root}: not a directory (the root of a recorded board tree)")
    if args.settle < 0:
        raise UsageError(f"probe: --settle {args.settle:g}: expected seconds >= 0")
    detection = hal.detect(args.root)
    try:
        board = hal.open_board(detection.hal_config())
    except hal.HalError as exc:
        raise ConfigError(f"probe: {exc}") from None
    try:
        report = hal.probe_report(board, settle_s=args.settle, detection=detection, state_dir=args.state_dir)
    finally:
        board.close()
    if args.json:
        emit_json(report.to_dict())
    else:
        print("\n".join(report.lines()))
    return ec.OK


def _targets(args: argparse.Namespace) -> int:
    from flightos.config import target as tgt

    rows = []
    for name, path in tgt.available_targets().items():
        try:
            t = tgt.load(str(path))
            rows.append({"name": name, "backend": t.hal_backend, "description": t.description, "path": str(path)})
        except ConfigError as exc:
            rows.append({"name": name, "error": str(exc), "path": str(path)})
    if args.json:
        emit_json(rows)
    else:
        from flightos.cli.output import table

        print(
            table(
                ["TARGET", "BACKEND", "DESCRIPTION"],
                [(r["name"], r.get("backend", "INVALID"), r.get("description") or r.get("error")) for r in rows],
            )
        )
    return ec.OK


async def _client_command(args: argparse.Namespace) -> int:
    client = Client(args.runtime_dir, name="cli")
    try:
        if args.cmd == "status":
            return await _status(client, args)
        if args.cmd == "cmd":
            return await _cmd(client, args)
        if args.cmd == "tm":
            return await _tm(client, args)
        if args.cmd == "inject":
            return await _inject(client, args)
        if args.cmd == "core":
            res = await client.call("kernel", "core", {"core": args.core, "action": args.action})
            print(json.dumps(res) if args.json else f"core {res['core']}: {res['state']}")
            return ec.OK
        if args.cmd == "mode":
            res = await client.call("kernel", "mode", {"mode": args.mode})
            print(json.dumps(res) if args.json else f"mode {res['mode']}" + (" (held)" if res["forced"] else " (auto)"))
            return ec.OK
    finally:
        client.close()
    raise UsageError(f"unknown command {args.cmd}")


async def _status(client: Client, args: argparse.Namespace) -> int:
    from flightos.cli.status import render

    while True:
        st = await client.call("kernel", "status", timeout=3.0)
        if args.json:
            emit_json(st)
        else:
            if args.watch:
                print("\033[2J\033[H", end="")
            print(render(st))
        if not args.watch:
            return ec.OK
        await asyncio.sleep(args.watch)


async def _cmd(client: Client, args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {item!r}: expected KEY=VALUE")
        raw[key] = value
        kwargs[key] = parse_value(value)
    if args.service != "kernel" and raw:
        kwargs = await _coerce_strings(client, args, kwargs, raw)
    value = await client.call(args.service, args.command, kwargs, timeout=args.timeout, command_id=args.id)
    if args.json or not isinstance(value, str):
        emit_json(value)
    else:
        print(value)
    return ec.OK


async def _coerce_strings(
    client: Client, args: argparse.Namespace, kwargs: dict[str, Any], raw: dict[str, str]
) -> dict[str, Any]:
    """Where the service declares ``str``, pass the text as typed (so ``name=10`` stays "10")."""
    try:
        desc = await client.call(args.service, "describe", timeout=args.timeout)
    except CommandError:
        return kwargs
    spec = desc.get("commands", {}).get(args.command, {})
    for a in spec.get("args", []):
        if a.get("type") == "str" and a["name"] in raw and not isinstance(kwargs[a["name"]], str):
            kwargs[a["name"]] = raw[a["name"]]
    return kwargs


async def _inject(client: Client, args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {"fault": args.fault}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {item!r}: expected KEY=VALUE")
        kwargs[key] = parse_value(value)
    result = await client.call("kernel", "inject", kwargs, timeout=5.0)
    if args.json:
        emit_json(result)
    else:
        states = ", ".join(f"core {c}: {s}" for c, s in result["cores"].items())
        print(f"injected {result['injected']} ({states})")
    return ec.OK


async def _tm(client: Client, args: argparse.Namespace) -> int:
    sub = client.subscriber(args.prefix)
    seen = 0
    end = time.monotonic() + args.timeout if args.timeout else None
    while args.count is None or seen < args.count:
        remaining = None if end is None else end - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        try:
            batch = await asyncio.wait_for(sub.batches(), remaining)
        except asyncio.TimeoutError:
            break
        for env in batch:
            if args.count is not None and seen >= args.count:
                break
            seen += 1
            try:
                payload = env.payload  # a batched message's payload is decoded here, when first read
            except FrameError as err:
                sub.rejects.reject(err)
                error(f"{env.topic} {env.source}#{env.seq}: payload does not decode ({err.detail})")
                continue
            if args.json:
                print(
                    json.dumps(
                        {
                            "topic": env.topic,
                            "source": env.source,
                            "seq": env.seq,
                            "utc_ns": env.utc_ns,
                            "payload": payload,
                        },
                        default=str,
                    ),
                    flush=True,
                )
            else:
                stamp = time.strftime("%H:%M:%S", time.gmtime(env.utc_ns / 1e9))
                body = json.dumps(payload, default=str, separators=(",", ":"))
                if len(body) > 160:
                    body = body[:157] + "..."
                print(f"{stamp} {env.topic} {env.source}#{env.seq} {body}", flush=True)
    if sub.dropped:
        error(f"{sub.dropped} messages dropped (sequence gaps)")
    if args.count is not None and seen < args.count:
        error(f"{seen} of {args.count} messages under {args.prefix or 'every topic'!r} within {args.timeout:g} s")
        return ec.TIMEOUT
    if seen == 0 and args.timeout:
        error(f"no message under {args.prefix or 'every topic'!r} within {args.timeout:g} s")
        return ec.TIMEOUT
    return ec.OK


if __name__ == "__main__":
    main()
