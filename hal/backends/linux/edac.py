"""EDAC memory-controller counters: corrected and uncorrected errors, summed over mc*."""

from __future__ import annotations

from hal.fs import Probe
from hal.types import EdacCounts

EDAC_DIR = "/sys/devices/system/edac/mc"


def read_edac(probe: Probe) -> EdacCounts | None:
    """Summed counts, or None when the board has no EDAC controller (usual on Pi and Jetson)."""
    controllers = probe.fs.glob(f"{EDAC_DIR}/mc[0-9]*")
    if not controllers:
        return None
    ce_total = 0
    ue_total = 0
    for mc in controllers:
        name = mc.rsplit("/", 1)[1]
        ce = probe.int(f"{mc}/ce_count", f"edac.{name}.ce_count")
        ue = probe.int(f"{mc}/ue_count", f"edac.{name}.ue_count")
        if ce is None or ue is None:
            return None
        ce_total += ce
        ue_total += ue
    return EdacCounts(corrected=ce_total, uncorrected=ue_total)
