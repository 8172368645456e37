"""``flightos install`` / ``flightos uninstall``: run the kernel on a board as a systemd service.

``install`` writes ``/etc/systemd/system/flightos.service`` (``Type=notify`` with a systemd
watchdog, restart on failure, a dedicated user, the runtime directory ``/run/flightos``, the store
under ``/var/lib/flightos``, logs in the journal with native fields), creates that user where missing, copies the
target file to ``/etc/flightos/targets/`` and enables the service. ``uninstall`` reverses it and
keeps the state (and the user) unless ``--purge``.

Every external command goes through a runner (``argv -> (returncode, stdout, stderr)``), and
every path lives under ``--prefix``, so tests install into a temporary directory with a fake
runner. ``--dry-run`` prints the unit and the steps and changes nothing. docs/boards.md walks
through a board set-up.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightos.cli import exit_codes as ec
from flightos.cli.errors import UsageError
from flightos.cli.output import emit_json, error
from flightos.config.schema import ConfigError

UNIT_NAME = "flightos.service"
SERVICE = "flightos"
UNIT_DIR = "/etc/systemd/system"
ETC_DIR = "/etc/flightos"
TARGETS_DIR = "/etc/flightos/targets"
MANIFEST = "/etc/flightos/install.json"
STATE_DIR = "/var/lib/flightos"
RUNTIME_DIR = "/run/flightos"
DEFAULT_USER = "flightos"
#: supplementary groups given to the user when the board has them: vcgencmd and the PMIC ADCs
#: (/dev/vcio, /dev/vchiq), GPIO and I2C character devices, and the watchdog device (a udev rule)
OPTIONAL_GROUPS = ("video", "gpio", "i2c", "watchdog")
WATCHDOG_SEC = 10
NOLOGIN = "/usr/sbin/nologin"
#: where a checkout or venv is hidden by ProtectHome=yes
_HOME_DIRS = ("/home", "/root", "/run/user")
#: where a checkout or venv is hidden by PrivateTmp=yes (the service sees an empty private /tmp)
_TMP_DIRS = ("/tmp", "/var/tmp")
#: RestrictAddressFamilies=: local sockets, IP, netlink and socketcan
ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_CAN")
#: MemoryMax= and TasksMax= headroom for the kernel itself, above what its services may use
KERNEL_MEMORY_MB = 512
KERNEL_TASKS = 256

Runner = Callable[[list[str]], tuple[int, str, str]]


def default_runner(argv: list[str]) -> tuple[int, str, str]:
    """Run a command; a missing program is exit code 127, never an exception."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except OSError as exc:
        return 126, "", f"{argv[0]}: {exc.strerror or exc}"
    return proc.returncode, proc.stdout, proc.stderr


class StepFailed(Exception):
    """A step of install/uninstall failed; the message is one line."""


USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
"""A user name useradd accepts by default (NAME_REGEX), the form a unit's User= takes as it is."""


# ---- the unit ------------------------------------------------------------------------------------
def device_allow(backend: str, watchdog_device: str | None) -> list[str]:
    """``DeviceAllow=`` entries for a HAL backend: the watchdog, GPIO/I2C, and vcgencmd's devices on a Pi."""
    out = [f"{watchdog_device} rw"] if watchdog_device else []
    if backend == "rpi":
        out += ["/dev/vcio rw", "/dev/vchiq rw"]  # vcgencmd (get_throttled, pmic_read_adc, ...)
    out += ["char-gpiochip rw", "char-i2c rw"]  # /dev/gpiochipN, /dev/i2c-N for payload services
    return out


def render_unit(
    *,
    target: str,
    python: str,
    user: str = DEFAULT_USER,
    group: str | None = None,
    supplementary_groups: Sequence[str] = (),
    shutdown_grace_s: float = 5.0,
    devices: Sequence[str] = (),
    read_write_paths: Sequence[str] = (STATE_DIR,),
    protect_home: str = "yes",
    watchdog_sec: int = WATCHDOG_SEC,
    memory_max_mb: int | None = None,
    tasks_max: int | None = None,
) -> str:
    """The text of ``flightos.service`` for one target (a pure function of its arguments)."""
    exec_start = " ".join(
        _exec_quote(a) for a in [python, "-m", "flightos.cli.main", "run", "--target", target, "--log-format", "json"]
    )
    stop_s = math.ceil(shutdown_grace_s) + 5
    lines = [
        f"# flightos onboard runtime, written by `flightos install --target {target}`.",
        "# Re-run `flightos install` instead of editing this file; keep local changes in a drop-in",
        "# (`systemctl edit flightos`). docs/boards.md explains each setting.",
        "[Unit]",
        f"Description=flightos onboard runtime (target {target})",
        "After=network.target",
        "# Never stop restarting: the hardware watchdog and the kernel's SAFE mode are the backstops.",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "# The kernel sends READY=1 once its services are up, and WATCHDOG=1 while it is healthy.",
        "Type=notify",
        "NotifyAccess=main",
        f"WatchdogSec={watchdog_sec}",
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        "RestartSec=2",
        "# Exit code 5 is a configuration error: restarting does not fix it.",
        "RestartPreventExitStatus=5",
        "# SIGTERM goes to the kernel only; it stops its services within runtime.shutdown_grace_s",
        f"# ({shutdown_grace_s:g} s), then systemd kills whatever is left.",
        "KillMode=mixed",
        "# Each service runs in a cgroup of its own below the kernel's (memory_mb, tasks): delegate the subtree.",
        "Delegate=yes",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={stop_s}",
        f"User={user}",
        f"Group={group or user}",
    ]
    if supplementary_groups:
        lines.append("SupplementaryGroups=" + " ".join(supplementary_groups))
    lines += [
        "RuntimeDirectory=flightos",
        "RuntimeDirectoryMode=0700",
        "StateDirectory=flightos",
        "StateDirectoryMode=0750",
        f"Environment=FLIGHTOS_RUNTIME_DIR={RUNTIME_DIR}",
        f"Environment=FLIGHTOS_STATE_DIR={STATE_DIR}",
        "# The installed copy of the target wins over a checkout's targets/ directory.",
        f"Environment=FLIGHTOS_TARGETS_DIR={TARGETS_DIR}",
        "Environment=PYTHONUNBUFFERED=1",
        "UMask=0027",
        "StandardOutput=journal",
        "StandardError=journal",
        "SyslogIdentifier=flightos",
        "",
        "# Hardening that leaves the runtime working (`systemd-analyze security flightos` scores it).",
        "NoNewPrivileges=yes",
        "# No capabilities at all: the kernel pins its own children (same user) and needs none.",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
        "ReadWritePaths=" + " ".join(read_write_paths),
        "PrivateTmp=yes",
        f"ProtectHome={protect_home}",
        "PrivateMounts=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "LockPersonality=yes",
        "RestrictSUIDSGID=yes",
        "RestrictNamespaces=yes",
        "# Other users' processes are invisible; the kernel's services run as this user, so the kernel",
        "# still reads their /proc entries, and /proc/stat, /proc/meminfo stay (no ProcSubset=pid).",
        "ProtectProc=invisible",
        "# The bus and journal (AF_UNIX), the ground and board links (AF_INET/6), psutil's and the",
        "# kernel's netlink queries, and CAN payloads (socketcan).",
        "RestrictAddressFamilies=" + " ".join(ADDRESS_FAMILIES),
        "SystemCallArchitectures=native",
        "# @system-service includes @resources: sched_setaffinity (placement), setrlimit/prlimit64",
        "# (service limits), setpriority and sched_setscheduler (background jobs). A refused call fails",
        "# with EPERM instead of killing the process.",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "SystemCallErrorNumber=EPERM",
        "# Not ProtectKernelTunables= nor ProtectControlGroups=: they make /sys read-only, and the HAL",
        "# can take cores offline (/sys/devices/system/cpu/cpuN/online) and pin work with cpusets in the",
        "# delegated cgroup subtree (/sys/fs/cgroup). Not PrivateDevices=: it hides the watchdog and the",
        "# payload devices that DeviceAllow= grants below. Not MemoryDenyWriteExecute= nor",
        "# RestrictRealtime=: payloads may JIT (CUDA, numba) or need real-time scheduling.",
    ]
    if memory_max_mb:
        lines.append(f"# The services' memory_mb summed, plus {KERNEL_MEMORY_MB} MiB for the kernel.")
        lines.append(f"MemoryMax={memory_max_mb}M")
    if tasks_max:
        lines.append(f"# The services' tasks summed, plus {KERNEL_TASKS} for the kernel.")
        lines.append(f"TasksMax={tasks_max}")
    if devices:
        lines.append("# Devices: the watchdog, GPIO/I2C, and vcgencmd on a Pi; add others with a drop-in.")
        lines.append("DevicePolicy=closed")
        lines += [f"DeviceAllow={d}" for d in devices]
    lines += [
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _exec_quote(arg: str) -> str:
    """Quote one ExecStart= word: '%' is a specifier and '$' an environment reference in systemd."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and not any(c.isspace() or c in "\"'\\;" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- the command line ------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Register ``install`` and ``uninstall``."""
    i = sub.add_parser("install", help="install the kernel as a systemd service (flightos.service) on this board")
    i.add_argument("--target", required=True, help="target name or path to a target TOML file, e.g. rpi5")
    i.add_argument(
        "--user",
        default=DEFAULT_USER,
        help=f"dedicated system user the kernel runs as (default {DEFAULT_USER}; created when missing)",
    )
    i.add_argument("--prefix", default="/", help="install below this root instead of / (an image, or tests)")
    i.add_argument("--python", help=f"interpreter that runs the kernel (default: this one, {sys.executable})")
    i.add_argument("--dry-run", action="store_true", help="print the unit and the steps; change nothing")
    i.add_argument("--no-enable", action="store_true", help="do not enable and start the service")

    u = sub.add_parser("uninstall", help="stop and remove the systemd service (keeps the state unless --purge)")
    u.add_argument("--prefix", default="/", help="uninstall below this root instead of /")
    u.add_argument(
        "--user",
        default=None,
        help=f"the service's user (default: the one install recorded, else {DEFAULT_USER}); removed only with --purge",
    )
    u.add_argument(
        "--purge", action="store_true", help=f"also remove {STATE_DIR} (stores, keys, recorded runs) and the user"
    )
    u.add_argument("--keep-state", action="store_true", help=f"keep {STATE_DIR} even with --purge")
    u.add_argument("--dry-run", action="store_true", help="print the steps; change nothing")


@dataclass
class Step:
    """One thing install/uninstall does: a shell-like description and the action."""

    text: str
    apply: Callable[[], None]


@dataclass
class Plan:
    """What a command will do, printable before it is done."""

    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, text: str, apply: Callable[[], None]) -> None:
        self.steps.append(Step(text, apply))

    def command(self, runner: Runner, argv: list[str]) -> None:
        """A step that runs an external command through ``runner``."""
        self.steps.append(Step(shlex.join(argv), functools.partial(_run_step, runner, list(argv))))


@dataclass(frozen=True)
class Accounts:
    """Users and groups read from ``<prefix>/etc/passwd`` and ``<prefix>/etc/group``."""

    users: dict[str, tuple[int, int]]  # name -> (uid, gid)
    groups: dict[str, tuple[int, list[str]]]  # name -> (gid, members)

    @classmethod
    def read(cls, prefix: Path) -> Accounts:
        users: dict[str, tuple[int, int]] = {}
        for f in _colon_file(prefix / "etc/passwd"):
            if len(f) >= 4 and f[2].isdigit() and f[3].isdigit():
                users.setdefault(f[0], (int(f[2]), int(f[3])))
        groups: dict[str, tuple[int, list[str]]] = {}
        for f in _colon_file(prefix / "etc/group"):
            if len(f) >= 3 and f[2].isdigit():
                members = [m for m in (f[3].split(",") if len(f) >= 4 else []) if m]
                groups.setdefault(f[0], (int(f[2]), members))
        return cls(users, groups)

    def group_name(self, gid: int) -> str | None:
        return next((name for name, (g, _) in self.groups.items() if g == gid), None)


def _colon_file(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _under(prefix: Path, path: str) -> Path:
    return prefix / path.lstrip("/")


def _is_live(prefix: Path) -> bool:
    return prefix.resolve() == Path("/")


def _require_root(command: str, prefix: Path, dry_run: bool, euid: int) -> None:
    if not dry_run and _is_live(prefix) and euid != 0:
        raise UsageError(
            f"{command} changes the system and needs root: run it with sudo "
            f"(sudo $(command -v flightos) {command} ...), or add --dry-run to see what it would do"
        )


def _run_step(runner: Runner, argv: list[str]) -> None:
    code, _out, err = runner(argv)
    if code != 0:
        detail = (err.strip().splitlines() or [""])[-1]
        raise StepFailed(f"`{shlex.join(argv)}` failed (exit {code})" + (f": {detail}" if detail else ""))


def _execute(plan: Plan, quiet: bool) -> None:
    for step in plan.steps:
        if not quiet:
            print(f"+ {step.text}")
        step.apply()


def _run_plan(plan: Plan, args: argparse.Namespace, verb: str, extra: dict[str, Any]) -> bool:
    """Carry out a plan; on failure print the notes and one error line (False); with --json, the record."""
    json_out = bool(getattr(args, "json", False))
    try:
        _execute(plan, quiet=json_out)
    except (StepFailed, OSError) as exc:
        _print_notes(plan)
        error(f"{verb}: {exc}")
        return False
    if json_out:
        emit_json({"dry_run": False, **extra, "steps": [s.text for s in plan.steps], "notes": plan.notes})
    return True


def _print_notes(plan: Plan) -> None:
    for note in plan.notes:
        print(f"flightos: note: {note}", file=sys.stderr)


# ---- install ---------------------------------------------------------------------------------------
def run_install(args: argparse.Namespace, *, runner: Runner | None = None, euid: int | None = None) -> int:
    """``flightos install``: 0 when installed (or planned with --dry-run), 1 when a step failed."""
    import hal
    from flightos.config import target as tgt

    runner = runner or default_runner
    euid = os.geteuid() if euid is None else euid
    prefix = Path(os.path.abspath(args.prefix))
    live = _is_live(prefix)
    _require_root("install", prefix, args.dry_run, euid)
    if not prefix.is_dir():
        raise UsageError(f"install: --prefix {prefix}: not a directory")
    target = tgt.load(args.target)
    if target.path is None:  # pragma: no cover - load() always reads a file
        raise ConfigError(f"target {args.target!r} has no file to install")
    name = target.name
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{target.path}: target.name: {name!r} cannot name a file")
    try:
        hal_cfg = hal.check_config(target.hal)
    except hal.HalConfigError as exc:
        raise ConfigError(f"{target.path}: {exc}") from None
    python = args.python or sys.executable
    if not os.path.isabs(python):
        raise UsageError(f"install: --python {python}: expected an absolute path")
    if live and not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise UsageError(f"install: --python {python}: not an executable file")
    if not args.python:
        _check_services_installed(target)
    user = args.user
    if not USER_NAME.fullmatch(user):  # useradd's own rule; a unit's User= with a space names another user
        raise UsageError(
            f"install: --user {user!r}: expected a system user name (a-z, 0-9, '_' and '-', "
            f"not starting with a digit or '-', at most 32 characters)"
        )
    acc = Accounts.read(prefix)
    plan = Plan()

    # The user, its primary group and the supplementary groups the board has.
    supplementary = [g for g in OPTIONAL_GROUPS if g in acc.groups]
    useradd = ["useradd"] + ([] if live else ["--prefix", str(prefix)])
    usermod = ["usermod"] + ([] if live else ["--prefix", str(prefix)])
    if user in acc.users:
        group = acc.group_name(acc.users[user][1]) or user
        missing = [g for g in supplementary if user not in acc.groups[g][1]]
        if missing:
            argv = [*usermod, "--append", "--groups", ",".join(missing), user]
            plan.command(runner, argv)
    else:
        group = user
        argv = [*useradd, "--system", "--no-create-home", "--home-dir", STATE_DIR, "--shell", NOLOGIN]
        argv += ["--gid", user] if user in acc.groups else ["--user-group"]
        if supplementary:
            argv += ["--groups", ",".join(supplementary)]
        argv.append(user)
        plan.command(runner, argv)

    # The target copy the kernel reads ($FLIGHTOS_TARGETS_DIR).
    src = target.path
    dest = _under(prefix, f"{TARGETS_DIR}/{name}.toml")
    content = src.read_bytes()
    plan.add(f"install -d -m 0755 {TARGETS_DIR}", lambda: _mkdir(dest.parent, 0o755))
    if dest.exists() and dest.read_bytes() != content and not _same_file(src, dest):
        backup = dest.with_name(dest.name + ".bak")
        plan.notes.append(f"{dest} differs from {src}: the old one is kept as {backup}")
        plan.add(f"mv {dest} {backup}", lambda: os.replace(dest, backup))
    if not _same_file(src, dest):
        plan.add(f"install -m 0644 {src} {TARGETS_DIR}/{name}.toml", lambda: _write(dest, content, 0o644))

    # The state directory (StateDirectory= creates it too; this makes it exist before the first start).
    rw_paths = [STATE_DIR]
    extra_state = target.runtime.state_dir
    if extra_state and os.path.isabs(extra_state) and extra_state.rstrip("/") != STATE_DIR:
        rw_paths.append(extra_state)
        plan.notes.append(
            f"{target.path}: runtime.state_dir = {extra_state!r} overrides {STATE_DIR}; "
            "it is made writable for the service"
        )
    for d in rw_paths:
        # /var/lib/flightos is ours; a directory the target names is adopted only if this creates it
        adopt = d == STATE_DIR or not _under(prefix, d).exists()
        text = f"install -d -m 0750 -o {user} -g {group} {d}" if adopt else f"# {d} exists: left as it is"
        plan.add(text, functools.partial(_make_state_dir, prefix, d, user, group, live, euid, plan, adopt))

    # The unit.
    watchdog_device = _watchdog_device(target, hal_cfg)
    backend = target.hal_backend
    code_paths = [python] if args.python else [python, str(Path(__file__).resolve().parents[2])]
    protect_home = "read-only" if any(_in_home(p) for p in code_paths) else "yes"
    plan.notes += hidden_path_notes(code_paths, protect_home)
    memory_max_mb, tasks_max = unit_limits(target)
    allow = list(dict.fromkeys(device_allow(backend, watchdog_device or None) + _target_devices(target)))  # each once
    unit = render_unit(
        target=name,
        python=python,
        user=user,
        group=group,
        supplementary_groups=supplementary,
        shutdown_grace_s=target.runtime.shutdown_grace_s,
        devices=allow,
        read_write_paths=rw_paths,
        protect_home=protect_home,
        memory_max_mb=memory_max_mb,
        tasks_max=tasks_max,
    )
    unit_path = _under(prefix, f"{UNIT_DIR}/{UNIT_NAME}")
    existed = unit_path.exists()
    plan.add(
        f"install -m 0644 /dev/stdin {UNIT_DIR}/{UNIT_NAME}  # the unit above",
        lambda: _write(unit_path, unit.encode(), 0o644),
    )
    manifest = {
        "target": name,
        "source": str(src),
        "target_file": f"{TARGETS_DIR}/{name}.toml",
        "target_sha256": hashlib.sha256(content).hexdigest(),
        "unit": f"{UNIT_DIR}/{UNIT_NAME}",
        "user": user,
        "created_user": user not in acc.users,
        "state_dirs": rw_paths,
        "python": python,
    }
    plan.add(
        f"install -m 0644 /dev/stdin {MANIFEST}  # what uninstall removes",
        lambda: _write(_under(prefix, MANIFEST), (json.dumps(manifest, indent=2) + "\n").encode(), 0o644),
    )

    # systemd.
    if live:
        plan.command(runner, ["systemctl", "daemon-reload"])
    if not args.no_enable:
        enable = (
            ["systemctl", "enable", "--now", SERVICE] if live else ["systemctl", f"--root={prefix}", "enable", SERVICE]
        )
        plan.command(runner, enable)
    elif live:
        plan.notes.append(f"not enabled: start it with `systemctl enable --now {SERVICE}`")
    if existed and live:
        plan.notes.append(
            f"{SERVICE} was already installed: if it is running, apply the new unit with `systemctl restart {SERVICE}`"
        )

    # Things that would make the service run without its hardware watchdog, or not run at all.
    if watchdog_device and "watchdog" not in acc.groups:
        plan.notes.append(
            f"no 'watchdog' group: {watchdog_device} is usually root-only, so the kernel will run "
            "without the hardware watchdog (event WATCHDOG_UNAVAILABLE); docs/boards.md has the "
            "udev rule"
        )
    if watchdog_device and _systemd_owns_watchdog(prefix):
        plan.notes.append(
            "systemd's RuntimeWatchdogSec is set in /etc/systemd/system.conf: systemd holds the "
            f"watchdog device and the kernel cannot open {watchdog_device} (one opener only)"
        )
    if watchdog_device:
        plan.notes += watchdog_notes(prefix, watchdog_device, target.watchdog, str(target.path))
    if live:
        plan.notes += _reachability(code_paths, user)

    if args.dry_run:
        if getattr(args, "json", False):
            emit_json(
                {
                    "dry_run": True,
                    "unit_path": f"{UNIT_DIR}/{UNIT_NAME}",
                    "unit": unit,
                    "steps": [s.text for s in plan.steps],
                    "notes": plan.notes,
                }
            )
        else:
            print(f"# {UNIT_DIR}/{UNIT_NAME} (dry run: nothing is changed)")
            print(unit)
            print("# steps:")
            print("\n".join(s.text for s in plan.steps))
        _print_notes(plan)
        return ec.OK
    if not _run_plan(plan, args, "install", {"unit_path": str(unit_path), "unit": unit}):
        return ec.COMMAND_FAILED
    if not getattr(args, "json", False):
        rt = RUNTIME_DIR
        print(
            f"installed {SERVICE} for target {name}. Check it with:\n"
            f"  systemctl status {SERVICE}\n"
            f"  journalctl -u {SERVICE} -f      (or one service: flightos logs SERVICE -f)\n"
            f"  sudo -u {user} {shlex.quote(str(Path(python).parent / 'flightos'))} --runtime-dir {rt} status"
        )
    _print_notes(plan)
    return ec.OK


def _watchdog_device(target: Any, hal_cfg: dict[str, Any]) -> str:
    """The watchdog device the kernel will open ('' when the target leaves the watchdog off).

    ``hal_cfg`` is the HAL's own validated view of ``[hal]`` (the HAL fills in the backend's default
    device); the flightos side of the target is read through its typed sections.
    """
    if not target.watchdog.enabled or target.hal_backend == "sim":
        return ""
    return str(hal_cfg.get("watchdog_device") or "")


def _target_devices(target: Any) -> list[str]:
    """``DeviceAllow=`` entries for the ``[devices.*]`` the target configures (CAN needs none: it is a socket)."""
    out: list[str] = []
    for dev in target.devices.values():
        for path in device_nodes(dev):
            if f"{path} rw" not in out:
                out.append(f"{path} rw")
    return out


def device_nodes(dev: Any) -> list[str]:
    """The character devices one configured device opens, or its device class when the node is not known."""
    from flightos.config.devices import GpioDevice, I2CDevice, SpiDevice, UartDevice

    if isinstance(dev, I2CDevice):
        return [f"/dev/i2c-{dev.bus}"]
    if isinstance(dev, UartDevice):
        return [dev.port]
    if isinstance(dev, SpiDevice):
        return [f"/dev/spidev{dev.bus}.{dev.cs}"]
    if isinstance(dev, GpioDevice):  # a chip named by its label is found at run time: allow the class
        return [dev.chip] if dev.chip.startswith("/dev/") else ["char-gpiochip"]
    return []


def unit_limits(target: Any) -> tuple[int | None, int | None]:
    """``MemoryMax=`` (MiB) and ``TasksMax=`` for the whole unit: the enabled services' limits plus the
    kernel's headroom; None where a service has no limit (0), so the unit's limit would be a guess."""
    services = [s for s in target.services.values() if s.enabled]
    mem = [s.memory_mb for s in services]
    tasks = [s.tasks for s in services]
    memory_max = sum(mem) + KERNEL_MEMORY_MB if all(m > 0 for m in mem) else None
    tasks_max = sum(tasks) + KERNEL_TASKS if all(t > 0 for t in tasks) else None
    return memory_max, tasks_max


def hidden_path_notes(code_paths: Sequence[str], protect_home: str) -> list[str]:
    """Warn when the interpreter or checkout lives where the unit hides or narrows the file system."""
    notes: list[str] = []
    for p in code_paths:
        a = os.path.abspath(p)
        tmp = next((d for d in _TMP_DIRS if a == d or a.startswith(d + "/")), None)
        if tmp is not None:
            notes.append(
                f"{p} lives under {tmp}, which PrivateTmp=yes replaces with an empty private directory: "
                "the service cannot start; install the checkout and its venv under /opt"
            )
        elif _in_home(a) and protect_home != "yes":
            notes.append(
                f"{p} lives under a home directory, which ProtectHome=yes would hide: the unit uses "
                f"ProtectHome={protect_home} instead (weaker); install under /opt to keep it hidden"
            )
    return notes


def watchdog_notes(prefix: Path, device: str, wd: Any, where: str) -> list[str]:
    """What the board's sysfs says the service should know about its watchdog: a PC chipset watchdog resets
    the whole machine, and with nowayout a stop does not disarm it. A timeout above the device's maximum is a
    ConfigError here already, not a crash loop after install (the kernel would refuse it with exit 5)."""
    from hal.fs import Fs
    from hal.watchdog import check_periods, pc_chipset_warning, read_info

    info = read_info(Fs(prefix), device)
    if info is None:
        return []
    problem = check_periods(wd.timeout_s, wd.pet_period_s, info.max_timeout_s)
    if problem is not None:
        raise ConfigError(f"{where}: {problem} ({device})")
    timeout_s = wd.timeout_s
    notes = [w for w in [pc_chipset_warning(info.identity, device)] if w]
    if info.nowayout:
        notes.append(
            f"{device} has nowayout set: once the kernel opens it, `systemctl stop {SERVICE}` cannot "
            f"disarm it, and the board resets {timeout_s:g} s after a stop unless the service starts again"
        )
    return notes


def _check_services_installed(target: Any) -> None:
    from flightos import plugins

    installed = plugins.installed()
    missing = [n for n, s in target.services.items() if s.enabled and s.entry_point not in installed]
    if missing:
        raise ConfigError(
            f"{target.path}: services.{missing[0]}: no service of that name is installed "
            f"(installed: {', '.join(sorted(installed)) or 'none'})"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _mkdir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically (a temporary file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _make_state_dir(
    prefix: Path, path: str, user: str, group: str, live: bool, euid: int, plan: Plan, adopt: bool = True
) -> None:
    d = _under(prefix, path)
    if not adopt:
        return
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o750)
    acc = Accounts.read(prefix)  # read again: useradd has just run
    if user not in acc.users:
        if live:
            raise StepFailed(f"user {user!r} does not exist after useradd")
        plan.notes.append(f"{d}: not chowned: no user {user!r} in {prefix}/etc/passwd")
        return
    uid, gid = acc.users[user]
    gid = acc.groups[group][0] if group in acc.groups else gid
    if euid != 0:
        plan.notes.append(f"{d}: not chowned to {user} (uid {uid}): not running as root")
        return
    os.chown(d, uid, gid)


def _in_home(path: str) -> bool:
    p = os.path.abspath(path)
    return any(p == h or p.startswith(h + "/") for h in _HOME_DIRS)


def _reachability(paths: Sequence[str], user: str) -> list[str]:
    """Warn about directories the service user probably cannot enter (e.g. a 0700 home on Pi OS)."""
    notes: list[str] = []
    seen: set[Path] = set()
    for p in paths:
        for target in {Path(os.path.abspath(p)), Path(p).resolve()}:
            for d in reversed(target.parents):
                if d in seen:
                    continue
                seen.add(d)
                try:
                    st = d.stat()
                except OSError:
                    continue
                if st.st_uid != 0 and not st.st_mode & stat.S_IXOTH:
                    notes.append(
                        f"{d} (mode {stat.S_IMODE(st.st_mode):04o}) is closed to other users, so "
                        f"'{user}' may not reach {p}: clone and create the venv under /opt, "
                        f"or `chmod o+x {d}`"
                    )
    return notes


def _systemd_owns_watchdog(prefix: Path) -> bool:
    files = [_under(prefix, "/etc/systemd/system.conf")]
    conf_d = _under(prefix, "/etc/systemd/system.conf.d")
    if conf_d.is_dir():
        files += sorted(conf_d.glob("*.conf"))
    value = ""
    for f in files:
        try:
            text = f.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, val = line.strip().partition("=")
            if sep and key.strip() == "RuntimeWatchdogSec":
                value = val.strip()
    return value not in ("", "off", "no", "false") and not value.startswith("0")


# ---- uninstall -------------------------------------------------------------------------------------
def run_uninstall(args: argparse.Namespace, *, runner: Runner | None = None, euid: int | None = None) -> int:
    """``flightos uninstall``: 0 when removed (or nothing was installed), 1 when a step failed."""
    runner = runner or default_runner
    euid = os.geteuid() if euid is None else euid
    prefix = Path(os.path.abspath(args.prefix))
    live = _is_live(prefix)
    _require_root("uninstall", prefix, args.dry_run, euid)
    manifest_path = _under(prefix, MANIFEST)
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            loaded = json.loads(manifest_path.read_text(encoding="utf-8"))
            manifest = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            manifest = {}
    user = args.user or str(manifest.get("user") or DEFAULT_USER)
    unit_path = _under(prefix, f"{UNIT_DIR}/{UNIT_NAME}")
    plan = Plan()

    if unit_path.exists():
        disable = (
            ["systemctl", "disable", "--now", SERVICE]
            if live
            else ["systemctl", f"--root={prefix}", "disable", SERVICE]
        )
        plan.command(runner, disable)
        plan.add(f"rm {UNIT_DIR}/{UNIT_NAME}", lambda: _remove(unit_path))
    target_file = str(manifest.get("target_file") or "")
    if target_file:
        copy = _under(prefix, target_file)
        if copy.is_file():
            digest = hashlib.sha256(copy.read_bytes()).hexdigest()
            if digest == manifest.get("target_sha256"):
                plan.add(f"rm {target_file}", lambda: _remove(copy))
            else:
                plan.notes.append(f"kept {copy}: it was edited after install")
    elif unit_path.exists():
        plan.notes.append(f"no {MANIFEST}: any target copy in {TARGETS_DIR} is left in place")
    if manifest_path.exists():
        plan.add(f"rm {MANIFEST}", lambda: _remove(manifest_path))
    plan.add(
        f"rmdir --ignore-fail-on-non-empty {TARGETS_DIR} {ETC_DIR}",
        lambda: _rmdir_empty([_under(prefix, TARGETS_DIR), _under(prefix, ETC_DIR)]),
    )
    if live and unit_path.exists():
        plan.command(runner, ["systemctl", "daemon-reload"])
    state = _under(prefix, STATE_DIR)
    if args.purge and not args.keep_state:
        if state.exists():
            plan.add(f"rm -r {STATE_DIR}", functools.partial(shutil.rmtree, state))
    elif state.exists():
        plan.notes.append(
            f"kept {STATE_DIR} (stores, keys, recorded runs): "
            + ("--keep-state" if args.purge else "--purge removes it")
        )
    # a state directory the target chose is never removed here: it may hold more than flightos' files
    others = [str(d) for d in manifest.get("state_dirs") or [] if str(d) != STATE_DIR]
    others = [d for d in others if _under(prefix, d).exists()]
    if others and args.purge:
        plan.notes.append(f"kept {', '.join(others)} (the target's runtime.state_dir): remove it yourself")
    if args.purge:
        if user in Accounts.read(prefix).users:
            userdel = ["userdel"] + ([] if live else ["--prefix", str(prefix)]) + [user]
            plan.command(runner, userdel)
    elif user in Accounts.read(prefix).users:
        plan.notes.append(f"kept the user {user!r}: --purge removes it")

    if not unit_path.exists() and not manifest:
        plan.notes.insert(0, f"{SERVICE} is not installed under {prefix} (no {UNIT_DIR}/{UNIT_NAME})")
    if args.dry_run:
        if getattr(args, "json", False):
            emit_json({"dry_run": True, "steps": [s.text for s in plan.steps], "notes": plan.notes})
        else:
            print("# steps (dry run: nothing is changed):")
            print("\n".join(s.text for s in plan.steps))
        _print_notes(plan)
        return ec.OK
    if not _run_plan(plan, args, "uninstall", {}):
        return ec.COMMAND_FAILED
    _print_notes(plan)
    return ec.OK


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _rmdir_empty(dirs: Sequence[Path]) -> None:
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            pass  # not empty (other targets kept there), or already gone
