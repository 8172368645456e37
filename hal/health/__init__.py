"""Board health an operator needs: RAM, disks, boot and reset reason, kernel-log events, eMMC wear, clock.

Each source reads a file tree (a live board or a recorded one) and says ``unavailable: why`` instead
of failing; ``HealthWatch`` keeps kernel-log counts between reads and reports what got worse.
"""

from __future__ import annotations

from hal.health.common import Unavailable
from hal.health.report import BoardHealth
from hal.health.sources import sources_for
from hal.health.watch import Alert, HealthSources, HealthWatch, read_health

__all__ = ["Alert", "BoardHealth", "HealthSources", "HealthWatch", "Unavailable", "read_health", "sources_for"]
