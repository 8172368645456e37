"""What a service process is started with: its spawn spec, from the target and the service's record."""

from __future__ import annotations

import os
from pathlib import Path

from flightos.bus.endpoints import Endpoints
from flightos.config.target import Target
from flightos.host.spawn_spec import SpawnSpec
from flightos.kernel.records import ServiceRecord


def spawn_spec(target: Target, endpoints: Endpoints, state_dir: Path, rec: ServiceRecord) -> SpawnSpec:
    """The spec of a service's next incarnation (where it runs, its options, limits and publish ACL)."""
    rt = target.runtime
    return SpawnSpec(
        name=rec.name,
        incarnation=rec.incarnation,
        runtime_dir=str(endpoints.runtime_dir),
        state_dir=str(state_dir),
        heartbeat_period_s=rec.cfg.heartbeat_period_s,
        cpus=rec.host_cpus,
        options=rec.cfg.options,
        params=rec.cfg.params,
        log_format=rt.log_format,
        log_level=rt.log_level,
        kernel_pid=os.getpid(),
        publish=publish_acl(target, rec),
        plugin=rec.cfg.plugin,
        max_frame_bytes=rt.max_frame_bytes,
        memory_mb=rec.cfg.memory_mb,
        tasks=rec.cfg.tasks,
        devices=target.devices_for(rec.name),
        devices_simulated=target.hal_backend == "sim",
    )


def publish_acl(target: Target, rec: ServiceRecord) -> list[str] | None:
    """The topic patterns a service may publish, or None when the ``[acl]`` does not restrict it."""
    acl = target.acl
    patterns = acl.publish.get(rec.name)
    if patterns is None:
        return None if acl.publish_default == "allow" else []
    return list(patterns)
