"""Where backends read from: a filesystem root and a command runner, both swappable for tests."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

#: Runs argv and returns (returncode, stdout, stderr). A missing binary returns 127.
Runner = Callable[[Sequence[str]], tuple[int, str, str]]


def default_runner(timeout_s: float = 2.0) -> Runner:
    """A runner that executes the real command with a timeout; never raises for a bad command."""

    def run(argv: Sequence[str]) -> tuple[int, str, str]:
        try:
            proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        except subprocess.TimeoutExpired:
            return 124, "", f"{argv[0]}: timed out after {timeout_s} s"
        except OSError as exc:
            return 126, "", f"{argv[0]}: {exc}"
        return proc.returncode, proc.stdout, proc.stderr

    return run


class Fs:
    """Reads files below ``root`` ("/sys/x" means root/sys/x) and runs commands via ``runner``."""

    def __init__(self, root: str | os.PathLike[str] = "/", runner: Runner | None = None) -> None:
        self.root = Path(root)
        self.runner: Runner = runner if runner is not None else default_runner()

    def path(self, rel: str) -> Path:
        """The real path of ``rel`` (an absolute board path) under the root."""
        return self.root / rel.lstrip("/")

    def read_text(self, rel: str) -> str | None:
        """File contents stripped of whitespace and NULs, or None if it cannot be read."""
        try:
            with open(self.path(rel), "rb") as fh:
                data = fh.read(65536)
        except OSError:
            return None
        return data.decode("utf-8", "replace").strip().strip("\x00").strip()

    def read_int(self, rel: str) -> int | None:
        """File contents as an integer, or None if missing or not an integer."""
        text = self.read_text(rel)
        if text is None:
            return None
        try:
            return int(text, 0) if text.lower().startswith("0x") else int(text)
        except ValueError:
            return None

    def read_float(self, rel: str) -> float | None:
        """File contents as a finite float, or None."""
        text = self.read_text(rel)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        return value if value == value and abs(value) != float("inf") else None

    def exists(self, rel: str) -> bool:
        """True if ``rel`` exists under the root."""
        return self.path(rel).exists()

    def glob(self, pattern: str) -> list[str]:
        """Board paths (absolute, root stripped) matching a glob pattern, sorted naturally."""
        base = str(self.root).rstrip("/")
        hits = glob.glob(str(self.path(pattern)))
        out = ["/" + h[len(base) :].lstrip("/") for h in hits]
        return sorted(out, key=natural_key)

    def write_text(self, rel: str, text: str) -> None:
        """Write a value to a sysfs-like file; raises OSError as the kernel reports it."""
        with open(self.path(rel), "w") as fh:
            fh.write(text)

    def run(self, argv: Sequence[str]) -> str | None:
        """Stdout of a command that exited 0, or None (missing binary, error, timeout)."""
        try:
            code, out, _err = self.runner(argv)
        except Exception:  # a runner is user code: never let it crash a read
            return None
        return out if code == 0 else None


def natural_key(text: str) -> list[str]:
    """Sort key that orders 'cpu10' after 'cpu9'."""
    parts: list[int | str] = []
    num = ""
    word = ""
    for ch in text:
        if ch.isdigit():
            if word:
                parts.append(word)
                word = ""
            num += ch
        else:
            if num:
                parts.append(int(num))
                num = ""
            word += ch
    if num:
        parts.append(int(num))
    if word:
        parts.append(word)
    return [p if isinstance(p, str) else f"{p:012d}" for p in parts]


class Probe:
    """Reads values through an Fs and records the name of every field it could not read."""

    def __init__(self, fs: Fs) -> None:
        self.fs = fs
        self.missing: list[str] = []

    def miss(self, name: str) -> None:
        """Record a field as missing (once)."""
        if name not in self.missing:
            self.missing.append(name)

    def text(self, rel: str, name: str) -> str | None:
        """Text of a file or None (recorded as missing)."""
        value = self.fs.read_text(rel)
        if value is None:
            self.miss(name)
        return value

    def int(self, rel: str, name: str) -> int | None:
        """Integer of a file or None (recorded as missing)."""
        value = self.fs.read_int(rel)
        if value is None:
            self.miss(name)
        return value

    def float(self, rel: str, name: str) -> float | None:
        """Float of a file or None (recorded as missing)."""
        value = self.fs.read_float(rel)
        if value is None:
            self.miss(name)
        return value

    def run(self, argv: Sequence[str], name: str) -> str | None:
        """Stdout of a command or None (recorded as missing)."""
        value = self.fs.run(argv)
        if value is None:
            self.miss(name)
        return value
