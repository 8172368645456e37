"""A real runtime in a child process, for integration and hardware-in-the-loop tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from flightos.client import Client, NoRuntime, kernel_pid
from flightos.config import target as tgt

ENV_SPEED = "FLIGHTOS_TEST_SPEED"
"""This machine's speed factor (flightos.kernel.health.speed), measured once per test run by tests/conftest.py."""


def timeout_scale() -> float:
    """How many times longer than on the reference machine a test waits here (``$FLIGHTOS_TEST_SPEED``, else 1)."""
    try:
        return max(1.0, float(os.environ.get(ENV_SPEED, "1")))
    except ValueError:
        return 1.0


def active(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a status document's service table that are not DISABLED."""
    return [s for s in status["services"] if s["state"] != "DISABLED"]


class RuntimeStartError(Exception):
    """The runtime did not come up or exited; the message carries its exit, its last error and its log's tail."""


class RuntimeProcess:
    """``flightos run`` in a child process with its own runtime and state directories.

    ``services`` names the services to run (others in the target are disabled); ``overrides``
    are ``--set KEY=VALUE`` items. Use ``async with RuntimeProcess(...) as rt:`` then ``rt.client``.
    Its runtime directory, stores and log live in a fresh temporary directory under ``base_dir``.
    """

    def __init__(
        self,
        target: str = "sim-radhard",
        services: list[str] | None = None,
        overrides: list[str] | None = None,
        base_dir: Path | None = None,
        env: dict[str, str] | None = None,
        scenario: Path | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self.services = services
        self.overrides = list(overrides or [])
        self.workdir = Path(tempfile.mkdtemp(prefix="fos-", dir=base_dir))
        self.runtime_dir = self.workdir / "run"
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "runtime.log"
        self.env = env
        self.scenario = scenario
        self.preexec = preexec
        """Run in the kernel's child process before exec (the slow-board profile confines it there)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None
        self._log_file: Any = None

    def command_line(self) -> list[str]:
        """The exact command that starts this runtime."""
        sets = list(self.overrides)
        if self.services is not None:
            t = tgt.load(self.target)
            for name in t.services:
                if name not in self.services:
                    sets.append(f"services.{name}.enabled=false")
            for name in self.services:
                sets.append(f"services.{name}.enabled=true")
        sets.append(f'runtime.state_dir="{self.state_dir}"')
        argv = [
            sys.executable,
            "-m",
            "flightos.cli.main",
            "--runtime-dir",
            str(self.runtime_dir),
            "run",
            "--target",
            self.target,
        ]
        for s in sets:
            argv += ["--set", s]
        if self.scenario is not None:
            argv += ["--scenario", str(self.scenario)]
        return argv

    def provision_ground_key(self, key_id: int = 1) -> Any:
        """Give the ground service a telecommand key before start; return the KeyStore (the test's ground side)."""
        from flightos.ground.security import KeyStore

        keys = KeyStore(self.state_dir / "ground" / "keys.json")
        if keys.get(key_id) is None:
            keys.add(key_id)
        return keys

    def start_sync(self, timeout: float = 30.0) -> RuntimeProcess:
        """Start and wait for readiness without an event loop of the caller's (for module-scoped fixtures)."""

        async def go() -> None:
            await self.start(timeout)
            assert self.client is not None
            self.client.close()
            self.client = None

        # A thread of its own: the caller may be inside a running loop (pytest-asyncio fixtures).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, go()).result()
        return self

    def stop_sync(self, timeout: float = 20.0) -> int:
        """Stop from synchronous code; return the kernel's exit code."""
        return self._terminate(timeout)

    def _terminate(self, timeout: float) -> int:
        """SIGTERM, wait up to ``timeout``, SIGKILL if it is still there; close the log; the exit code."""
        code = 0
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    async def start(self, timeout: float = 30.0) -> RuntimeProcess:
        """Start the kernel and wait until every enabled service is READY."""
        env = dict(os.environ)
        env.update(self.env or {})
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command_line(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=self.preexec,
        )
        loop = asyncio.get_running_loop()
        timeout *= timeout_scale()
        deadline = loop.time() + timeout
        while self.client is None:
            self.check_alive()
            if kernel_pid(self.runtime_dir) is not None:
                try:
                    self.client = Client(self.runtime_dir, name="test")
                except NoRuntime:
                    pass
            if loop.time() > deadline:
                raise RuntimeStartError(f"runtime not up within {timeout} s:\n{self.log_tail()}")
            if self.client is None:
                await asyncio.sleep(0.02)
        await self.wait_ready(timeout=max(1.0, deadline - loop.time()) / timeout_scale())  # scaled there again
        return self

    def last_error(self) -> str:
        """The last error line of the runtime's log (the CLI's ``flightos: ...`` or an error-level entry), or ''."""
        for line in reversed(self.log_tail(400).splitlines()):
            if line.startswith("flightos:") or "[error" in line or "[critical" in line or '"level": "error"' in line:
                return line.strip()
        return ""

    def check_alive(self) -> None:
        """Raise RuntimeStartError with the exit code and last error if the kernel has exited."""
        code = self.proc.poll() if self.proc is not None else None
        if code is not None:
            raise RuntimeStartError(
                f"runtime exited with code {code}: {self.last_error() or 'no error logged'}\n"
                f"--- log tail ---\n{self.log_tail()}"
            )

    async def status(self) -> dict[str, Any]:
        """The kernel's status document (RuntimeStartError, not a timeout, if the kernel has exited)."""
        assert self.client is not None
        self.check_alive()
        try:
            result: dict[str, Any] = await self.client.call("kernel", "status", timeout=5.0 * timeout_scale())
        except Exception:
            self.check_alive()  # it died while asked: say so, with its last error
            raise
        return result

    async def service(self, name: str) -> dict[str, Any]:
        """One row of the service table."""
        for row in (await self.status())["services"]:
            if row["name"] == name:
                return dict(row)
        raise KeyError(name)

    async def wait_until(self, predicate: Any, timeout: float = 10.0, what: str = "condition") -> dict[str, Any]:
        """Poll the status until ``predicate(status)`` is true; TimeoutError naming ``what``."""
        loop = asyncio.get_running_loop()
        timeout *= timeout_scale()
        deadline = loop.time() + timeout
        while True:
            st = await self.status()
            if predicate(st):
                return st
            if loop.time() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout} s waiting for {what}; services: "
                    + ", ".join(f"{s['name']}={s['state']}" for s in st["services"])
                )
            await asyncio.sleep(0.02)

    async def wait_ready(self, *names: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the named (default: every enabled one this board runs) services are READY."""

        def ok(st: dict[str, Any]) -> bool:
            rows = [
                s for s in st["services"] if (s["name"] in names if names else s["state"] not in ("DISABLED", "REMOTE"))
            ]
            return all(s["state"] == "READY" for s in rows)

        return await self.wait_until(ok, timeout, f"services ready: {', '.join(names) or 'all'}")

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the runtime's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM the kernel and wait for its exit code."""
        if self.client is not None:
            self.client.close()
            self.client = None
        return await asyncio.get_running_loop().run_in_executor(None, self._terminate, timeout)

    def cleanup(self) -> None:
        """Remove the work directory: runtime dir, stores and log."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> RuntimeProcess:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            self.cleanup()
            raise

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if e is not None:
            print(f"--- runtime log ({self.log_path}) ---\n{self.log_tail(120)}")
        self.cleanup()
