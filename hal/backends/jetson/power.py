"""INA3221 power rails: hwmon (JetPack 5/6, P = V*I) and iio in_power (JetPack 4)."""

from __future__ import annotations

from hal.fs import Probe

HWMON_GLOB = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
IIO_GLOB = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*"


def read_ina3221_hwmon(probe: Probe) -> dict[str, float]:
    """Rail -> mW from inN_input (mV) * currN_input (mA); NC rails and in7 (the sum) skipped."""
    rails: dict[str, float] = {}
    for hw in probe.fs.glob(HWMON_GLOB):
        for label_path in probe.fs.glob(f"{hw}/in*_label"):
            channel = label_path.rsplit("/", 1)[1][2 : -len("_label")]
            if not channel.isdigit() or channel == "7":
                continue
            label = probe.fs.read_text(label_path)
            if not label or label.upper() == "NC":
                continue
            mv = probe.int(f"{hw}/in{channel}_input", f"rail.{label}")
            ma = probe.int(f"{hw}/curr{channel}_input", f"rail.{label}")
            if mv is not None and ma is not None:
                rails[label] = mv * ma / 1000.0
    return rails


def read_ina3221_iio(probe: Probe) -> dict[str, float]:
    """Rail -> mW from in_powerN_input with names in rail_name_N (JetPack 4, e.g. Nano)."""
    rails: dict[str, float] = {}
    for dev in probe.fs.glob(IIO_GLOB):
        for power_path in probe.fs.glob(f"{dev}/in_power*_input"):
            channel = power_path.rsplit("/", 1)[1][len("in_power") : -len("_input")]
            if not channel.isdigit():
                continue
            name = probe.fs.read_text(f"{dev}/rail_name_{channel}") or f"rail{channel}"
            if name.upper() == "NC":
                continue
            mw = probe.int(power_path, f"rail.{name}")
            if mw is not None:
                rails[name] = float(mw)
    return rails
