"""The integrated GPU, found through devfreq: ``<device>/load`` (‰) and ``cur_freq`` (Hz).

Its sysfs path differs by JetPack and module (``bus@0/17000000.gpu`` on JetPack 6,
``17000000.ga10b`` on JetPack 5, ``17000000.gv11b`` on Xavier, ``57000000.gpu`` on the Nano), so
the device is looked up by its device-tree node name instead of by a path per JetPack.
"""

from __future__ import annotations

from hal.fs import Probe

DEVFREQ_GLOB = "/sys/class/devfreq/*"
#: Device-tree node names of Tegra GPUs (Orin JetPack 6 and Nano: ``gpu``).
GPU_NODE_NAMES = ("gpu", "ga10b", "gv11b", "gp10b")


def find_gpu(probe: Probe) -> str | None:
    """The board path of the GPU's devfreq entry, or None."""
    for entry in probe.fs.glob(DEVFREQ_GLOB):
        name = probe.fs.read_text(f"{entry}/device/of_node/name")
        if name is not None and name.strip("\x00").strip() in GPU_NODE_NAMES:
            return entry
    return None


def read_gpu(probe: Probe) -> tuple[float | None, float | None]:
    """(load %, MHz) of the GPU; both None (and ``gpu`` missing) where there is none."""
    entry = find_gpu(probe)
    if entry is None:
        probe.miss("gpu")
        return None, None
    permille = probe.int(f"{entry}/device/load", "gpu.load")
    hz = probe.int(f"{entry}/cur_freq", "gpu.freq")
    load = permille / 10.0 if permille is not None else None
    mhz = hz / 1e6 if hz is not None else None
    return load, mhz
