"""``flightos run``: load and check the target, then run the kernel until stopped."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path

import structlog

import hal
from flightos import logs, plugins
from flightos.bus.endpoints import RuntimeDirError, default_runtime_dir, prepare_runtime_dir, release_runtime_dir
from flightos.cli import exit_codes as ec
from flightos.cli.output import error
from flightos.config import target as tgt
from flightos.config.schema import ConfigError
from hal.watchdog import check_periods, device_node, pc_chipset_warning


def run(args: argparse.Namespace) -> int:
    """Start the runtime on a target; 0 after a clean stop on SIGINT/SIGTERM or --duration."""
    overrides = list(args.set)
    if args.log_format:
        overrides.append(f"runtime.log_format={args.log_format!r}".replace("'", '"'))
    if getattr(args, "resume", False):
        overrides.append("hal.resume=true")
    target = tgt.load(args.target, overrides)
    if getattr(args, "resume", False) and target.hal_backend != "sim":
        raise ConfigError(
            f'{target.path}: --resume: only a simulated board (hal.backend = "sim") starts fresh '
            f"on each run; this target's {target.hal_backend!r} board always keeps its state"
        )
    installed = plugins.installed()
    missing = [n for n, s in target.services.items() if s.enabled and s.entry_point not in installed]
    if missing:
        plugin = target.services[missing[0]].entry_point
        raise ConfigError(
            f"{target.path}: services.{missing[0]}: no service {plugin!r} is installed "
            f"(installed: {', '.join(sorted(installed)) or 'none'})"
        )
    bad = plugins.check_options(target.services)
    if bad is not None:
        raise ConfigError(f"{target.path}{_via_set(bad.key, args.set)}: {bad}")
    if target.link.enabled:  # keys are configuration: checked before the board, runtime directory or pid file
        from flightos.link.sockets import LinkSetupError, check_keys

        try:
            check_keys(target.link, target.state_dir())
        except LinkSetupError as exc:
            raise ConfigError(f"{target.path}: {exc}") from None
    log_dir = target.state_dir() / "logs"
    sink = logs.configure(target.runtime.log_format, target.runtime.log_level, "kernel", log_dir=log_dir)
    from flightos import system

    runtime_dir = Path(args.runtime_dir) if args.runtime_dir else default_runtime_dir()
    scenario = Path(args.scenario) if args.scenario else None
    try:  # checked before the board opens: a simulated board keeps its tree in it
        created = prepare_runtime_dir(runtime_dir)
    except RuntimeDirError as exc:
        raise ConfigError(str(exc)) from None
    if sink != "journal":  # `flightos logs` finds the services' log files through the runtime directory
        logs.link_log_dir(runtime_dir, log_dir)
    if target.hal_backend == "sim" and "work_dir" not in target.hal:
        target = dataclasses.replace(target, hal={**target.hal, "work_dir": str(runtime_dir)})
    try:
        boot = system.prepare(target, runtime_dir, duration_s=args.duration, scenario=scenario)
        check_watchdog(target, boot.board)
    except BaseException as exc:
        if created:
            release_runtime_dir(runtime_dir, [])
        if isinstance(exc, hal.HalConfigError):
            raise ConfigError(f"{target.path}: {exc}") from None
        if isinstance(exc, (hal.HalError, OSError)):  # a scenario that does not load or fit the board
            raise ConfigError(str(exc)) from None
        raise
    try:
        return asyncio.run(system.run(boot))
    except system.RuntimeBusy as exc:
        hint = (
            ""
            if "state directory" in str(exc)
            else (
                ": stop it first (Ctrl-C where it runs, or `flightos cmd kernel shutdown`), or give this one a "
                "--runtime-dir and a state directory ($FLIGHTOS_STATE_DIR) of its own"
            )
        )
        error(f"{exc}{hint}")
        return ec.RUNTIME_BUSY
    except RuntimeDirError as exc:
        raise ConfigError(str(exc)) from None
    except system.LinkSetupError as exc:
        raise ConfigError(f"{target.path}: {exc}") from None


def check_watchdog(target: tgt.Target, board: hal.Board) -> None:
    """Refuse a watchdog timeout beyond the device's maximum (ConfigError), and warn before arming a PC's."""
    wd = target.watchdog
    if not wd.enabled:
        return
    problem = check_periods(wd.timeout_s, wd.pet_period_s, board.identity.watchdog_max_s)
    if problem is not None:
        raise ConfigError(f"{target.path}: {problem}")
    info = board.watchdog_info()
    warning = pc_chipset_warning(info.identity, device_node(info.device)) if info is not None else None
    if warning is not None:
        structlog.get_logger("kernel").warning("watchdog.pc_chipset", msg=warning)


def _via_set(key: str, overrides: list[str]) -> str:
    """`` (via --set)`` when an override set ``key`` or a table around or inside it."""
    base = key.split("[")[0]
    for item in overrides:
        k = item.partition("=")[0].strip()
        if k == base or base.startswith(k + ".") or k.startswith(base + "."):
            return " (via --set)"
    return ""
