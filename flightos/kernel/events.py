"""The kernel's event ids: stable, documented in docs/events.md, never renumbered (cFE style)."""

from __future__ import annotations

import enum


class EventId(enum.IntEnum):
    """Every event the kernel raises on ``ev.kernel``. Add new ids at the end; never reuse one."""

    KERNEL_STARTED = 1001
    KERNEL_STOPPING = 1002
    KERNEL_STOPPED = 1003
    SERVICE_SPAWNED = 1101
    SERVICE_READY = 1102
    SERVICE_EXITED = 1103
    SERVICE_HUNG = 1104
    SERVICE_RESTART_SCHEDULED = 1105
    SERVICE_FAILED = 1106
    SERVICE_STOPPED = 1107
    SERVICE_START_TIMEOUT = 1108
    SERVICE_SPAWN_FAILED = 1109
    SERVICE_PLACED = 1110
    COMMAND_QUEUE_FULL = 1201
    COMMAND_SERVICE_LOST = 1202
    BUS_FRAME_REJECTED = 1301
    FORKSERVER_LOST = 1401
    HAL_FAULT_INJECTED = 1501
    HAL_EVENT = 1502
    CORE_STATE_CHANGED = 1503
    SCENARIO_STEP = 1504
