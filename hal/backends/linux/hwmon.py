"""Power rails exposed by hwmon as ``powerN_input`` (µW) with labels (the watchdog is read by hal.watchdog)."""

from __future__ import annotations

from hal.fs import Probe


def read_hwmon_power(probe: Probe) -> dict[str, float]:
    """Rail name -> mW for every hwmon power input; unreadable ones are recorded as missing."""
    rails: dict[str, float] = {}
    for hw in probe.fs.glob("/sys/class/hwmon/hwmon[0-9]*"):
        chip = probe.fs.read_text(f"{hw}/name") or hw.rsplit("/", 1)[1]
        for inp in probe.fs.glob(f"{hw}/power[0-9]*_input"):
            stem = inp[: -len("_input")]
            label = probe.fs.read_text(f"{stem}_label") or f"{chip}.{stem.rsplit('/', 1)[1]}"
            micro = probe.int(inp, f"rail.{label}")
            if micro is not None:
                rails[label] = micro / 1000.0
    return rails
