"""GPU load (sysfs gives ‰) and frequency (devfreq, Hz), whose paths depend on the JetPack."""

from __future__ import annotations

from hal.fs import Probe

#: (load file, devfreq device) by JetPack major version.
GPU_PATHS: dict[int, tuple[str, str]] = {
    6: ("/sys/devices/platform/bus@0/17000000.gpu/load", "17000000.gpu"),
    5: ("/sys/devices/platform/bus@0/17000000.ga10b/load", "17000000.ga10b"),
    4: ("/sys/devices/gpu.0/load", "57000000.gpu"),
}


def read_gpu(probe: Probe, jetpack: int | None) -> tuple[float | None, float | None]:
    """(load %, MHz) of the GPU, trying the given JetPack's paths first."""
    order = sorted(GPU_PATHS, key=lambda jp: (jp != jetpack, -jp))
    for jp in order:
        load_path, devfreq = GPU_PATHS[jp]
        if not probe.fs.exists(load_path):
            continue
        permille = probe.int(load_path, "gpu.load")
        hz = probe.int(f"/sys/class/devfreq/{devfreq}/cur_freq", "gpu.freq")
        load = permille / 10.0 if permille is not None else None
        mhz = hz / 1e6 if hz is not None else None
        return load, mhz
    probe.miss("gpu")
    return None, None
