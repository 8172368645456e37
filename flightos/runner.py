"""A service process: ``python -m flightos.runner`` (or a child of the fork server) runs one plugin."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import os
import signal
import sys
from pathlib import Path

from flightos.host.spawn_spec import SpawnSpec

ENV_SPAWN = "FLIGHTOS_SPAWN"
EXIT_PLUGIN = 78
"""Exit code when the plugin cannot be loaded (EX_CONFIG)."""
EXIT_CRASH = 70
"""Exit code when the service raised out of its lifecycle (EX_SOFTWARE)."""

_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int) -> None:
    """Ask Linux to SIGKILL us when our parent dies, so a killed kernel leaves no orphans."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - non-Linux
        pass
    if expected_parent and os.getppid() != expected_parent:
        os._exit(0)  # the parent died before prctl took effect


def run_service(spec: SpawnSpec) -> int:
    """Load the plugin and host it until stopped; return the process exit code."""
    from flightos import logs, plugins
    from flightos.host import exit_cause
    from flightos.host.service_host import ServiceHost

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the kernel; it stops us in order
    logs.configure(spec.log_format, spec.log_level, spec.name, log_dir=Path(spec.state_dir) / "logs")
    import structlog

    log = structlog.get_logger("flightos.service")

    def died(text: str) -> None:
        exit_cause.record(spec.runtime_dir, spec.name, spec.incarnation, text)

    try:
        cls = plugins.load(spec.plugin or spec.name)
        if spec.plugin and spec.plugin != spec.name:  # a second instance of a plugin, under its own bus name
            cls = type(cls.__name__, (cls,), {"name": spec.name, "__module__": cls.__module__})
        service = cls()
    except plugins.PluginError as exc:
        log.error("service.plugin_failed", service=spec.name, error=str(exc))
        died(f"plugin not loaded: {exc}")
        return EXIT_PLUGIN
    except Exception as exc:
        log.error("service.init_failed", service=spec.name, error=f"{type(exc).__name__}: {exc}")
        died(f"{type(exc).__name__} in the plugin's constructor: {exc}")
        return EXIT_PLUGIN

    async def main() -> int:
        try:
            host = ServiceHost(service, spec)
            return await host.run()
        except Exception as exc:
            log.exception("service.crashed", service=spec.name)
            died(f"{type(exc).__name__}: {exc}")
            return EXIT_CRASH

    return asyncio.run(main())


def main() -> None:
    """Entry point of ``python -m flightos.runner``; the spec comes in ``$FLIGHTOS_SPAWN``."""
    blob = os.environ.get(ENV_SPAWN)
    if not blob:
        print(
            "flightos.runner: started without a spawn spec; the kernel starts services (flightos run)", file=sys.stderr
        )
        sys.exit(2)
    spec = SpawnSpec.decode(base64.b64decode(blob))
    die_with_parent(spec.kernel_pid)
    from flightos.kernel.supervision.containment.child import enter

    enter(spec)
    if spec.cpus:
        os.sched_setaffinity(0, spec.cpus)
    sys.exit(run_service(spec))


if __name__ == "__main__":
    main()
