"""``flightos logs SERVICE [--follow]``: one service's log (or the kernel's), wherever the runtime keeps it.

Under systemd (``flightos install``) the log is in the journal, read with ``journalctl -u flightos
FLIGHTOS_SERVICE=SERVICE``. Otherwise every process writes ``<state_dir>/logs/<name>.log`` (JSON lines,
rotated), found through the running kernel's runtime directory or the target named with ``--target``.
Exit codes: 0 shown, 2 unknown service (the error lists the known ones), 3 no log to read, 5 bad target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from flightos import logs
from flightos.cli import exit_codes as ec
from flightos.cli.errors import UsageError
from flightos.client import NoRuntime

UNIT = "flightos"
UNIT_FILE = "/etc/systemd/system/flightos.service"
FOLLOW_POLL_S = 0.2


def add_parsers(sub: Any) -> None:
    """Register ``logs``."""
    p = sub.add_parser(
        "logs",
        help="show one service's log (or the kernel's), from the journal or the log files",
        epilog="exit codes: 0 shown, 2 unknown service (the error lists the known ones), "
        "3 no log to read, 5 bad --target",
    )
    p.add_argument("service", help="a service name, or 'kernel'")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    p.add_argument(
        "-n", "--lines", type=int, default=50, help="how many of the last lines to show first (default 50; 0: all)"
    )
    p.add_argument("--target", help="read this target's log files (a stopped runtime), not the running one's")


def run_logs(args: argparse.Namespace) -> int:
    """Show the log; 0 when shown, UsageError for an unknown service, NoRuntime when there is no log."""
    if args.lines < 0:
        raise UsageError("logs: --lines must be >= 0")
    if args.target:
        from flightos.config import target as tgt

        t = tgt.load(args.target)
        return _from_files(args, t.state_dir() / "logs", set(t.services))
    from flightos.bus.endpoints import default_runtime_dir

    runtime_dir = Path(args.runtime_dir) if args.runtime_dir else default_runtime_dir()
    link = runtime_dir / logs.LOG_LINK
    if link.is_dir():
        return _from_files(args, link.resolve(), set())
    if Path(UNIT_FILE).exists() and shutil.which("journalctl"):
        return _from_journal(args)
    raise NoRuntime(
        f"no log to show: no runtime logs at {link} (start one with `flightos run`), and flightos is "
        "not installed as a systemd service; name a target with --target to read its log files"
    )


# ---- files -------------------------------------------------------------------------------------------
def _from_files(args: argparse.Namespace, log_dir: Path, configured: set[str]) -> int:
    """The service's own file and the kernel's lines about it, merged in time order (the journal's view)."""
    name = args.service
    known = {p.name[: -len(".log")] for p in log_dir.glob("*.log")} | configured | {"kernel"}
    if name not in known:
        raise UsageError(f"logs: unknown service {name!r} (known: {', '.join(sorted(known))})")
    files = sorted({logs.log_file(log_dir, name), logs.log_file(log_dir, "kernel")})
    json_out = bool(getattr(args, "json", False))
    stored = sorted((_stamp(line), line) for f in files for line in _stored_lines(f) if _about(line, name))
    for _, line in stored[-args.lines :] if args.lines else stored:
        _show(line, json_out, sys.stdout)
    sys.stdout.flush()
    if args.follow:
        tails = [Tail(f) for f in files]
        while True:
            new = [line for t in tails for line in t.poll() if _about(line, name)]
            for line in sorted(new, key=_stamp):
                _show(line, json_out, sys.stdout)
            sys.stdout.flush()
            if not new:
                time.sleep(FOLLOW_POLL_S)
    return ec.OK


def _stored_lines(path: Path) -> list[str]:
    """Every line of a log over its rotated files, oldest first."""
    lines: list[str] = []
    for p in [path.with_name(f"{path.name}.{i}") for i in range(logs.LOG_BACKUPS, 0, -1)] + [path]:
        try:
            lines += p.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
    return lines


def _event(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _about(line: str, name: str) -> bool:
    """Whether a stored line concerns ``name``: its own process's lines, or the kernel's naming it."""
    event = _event(line)
    return event is not None and str(event.get("service") or event.get("proc", "")) == name


def _stamp(line: str) -> str:
    event = _event(line)
    return str(event.get("timestamp", "")) if event is not None else ""


class Tail:
    """New complete lines of a growing file, across rotation (the name then holds a new file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ino: int | None = None
        self.offset = 0
        self.partial = ""
        try:
            st = path.stat()
            self.ino, self.offset = st.st_ino, st.st_size
        except OSError:
            pass

    def poll(self) -> list[str]:
        """Lines written since the last poll (the rest of a rotated file first)."""
        out: list[str] = []
        try:
            st = self.path.stat()
        except OSError:
            return out
        if st.st_ino != self.ino:
            if self.ino is not None:
                out += self._read(self.path.with_name(self.path.name + ".1"))
            self.ino, self.offset, self.partial = st.st_ino, 0, ""
        return out + self._read(self.path)

    def _read(self, path: Path) -> list[str]:
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        self.offset += len(data)
        text = self.partial + data.decode("utf-8", "replace")
        *lines, self.partial = text.split("\n")
        return lines


def _show(line: str, json_out: bool, out: TextIO) -> None:
    """One stored JSON line, raw with --json, else as ``time level event: message key=value``."""
    if json_out:
        print(line, file=out)
        return
    try:
        event = json.loads(line)
    except ValueError:
        print(line, file=out)
        return
    if not isinstance(event, dict):
        print(line, file=out)
        return
    fields = logs.journal_fields(event, str(event.get("proc", "")))
    print(f"{event.get('timestamp', '')} {event.get('level', '')!s:<7} {fields['MESSAGE']}", file=out)


# ---- the journal -------------------------------------------------------------------------------------
def _from_journal(args: argparse.Namespace) -> int:
    name = args.service
    known = _journal_services() | {"kernel"}
    if name not in known:
        raise UsageError(f"logs: unknown service {name!r} (known: {', '.join(sorted(known))})")
    argv = ["journalctl", "-u", UNIT, f"FLIGHTOS_SERVICE={name}", "-o", "short-iso", "--no-pager"]
    argv += ["-n", str(args.lines) if args.lines else "all"]
    if args.follow:
        argv.append("--follow")
    if getattr(args, "json", False):
        argv += ["-o", "json"]
    return subprocess.run(argv, check=False).returncode


def _journal_services() -> set[str]:
    """Services the journal has entries of, plus those of the installed target."""
    names: set[str] = set()
    proc = subprocess.run(
        ["journalctl", "-u", UNIT, "-F", "FLIGHTOS_SERVICE"], capture_output=True, text=True, check=False
    )
    names.update(line.strip() for line in proc.stdout.splitlines() if line.strip())
    try:
        manifest = json.loads(Path("/etc/flightos/install.json").read_text(encoding="utf-8"))
        from flightos.config import target as tgt

        names.update(tgt.load(str(manifest["target_file"])).services)
    except Exception:
        pass
    return names
