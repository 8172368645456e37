"""Parsers of ``vcgencmd`` outputs: get_throttled, measure_temp, measure_volts, pmic_read_adc."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hal.errors import HalParseError
from hal.types import ThrottleFlags

_THROTTLED = re.compile(r"^\s*throttled=(0x[0-9a-fA-F]+|\d+)\s*$")
_TEMP = re.compile(r"^\s*temp=(-?\d+(?:\.\d+)?)'C\s*$")
_VOLT = re.compile(r"^\s*volt=(-?\d+(?:\.\d+)?)V\s*$")
_ADC = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9_]+)_(?P<unit>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>-?\d+(?:\.\d+)?)(?P=unit)\s*$"
)
_ERROR = re.compile(r'^\s*error=(\d+)\s+error_msg="(.*)"\s*$')


def _single_line(text: str, pattern: re.Pattern[str], what: str) -> re.Match[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise HalParseError(f"{what}: expected one line, got {len(lines)}")
    match = pattern.match(lines[0])
    if match is None:
        raise HalParseError(f"{what}: unexpected output {lines[0][:80]!r}")
    return match


def parse_throttled(text: str) -> ThrottleFlags:
    """``throttled=0x50005`` -> flags (bits 0-3 now, 16-19 since boot)."""
    raw_text = _single_line(text, _THROTTLED, "get_throttled").group(1)
    raw = int(raw_text, 16) if raw_text.lower().startswith("0x") else int(raw_text)
    if raw >= 1 << 32:
        raise HalParseError(f"get_throttled: value {raw_text} does not fit 32 bits")
    return ThrottleFlags.from_bits(raw)


def parse_measure_temp(text: str) -> float:
    """``temp=39.5'C`` -> 39.5."""
    return _finite(float(_single_line(text, _TEMP, "measure_temp").group(1)), "measure_temp")


def parse_measure_volts(text: str) -> float:
    """``volt=0.7200V`` -> 0.72."""
    return _finite(float(_single_line(text, _VOLT, "measure_volts").group(1)), "measure_volts")


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise HalParseError(f"{what}: value is not finite")
    return value


@dataclass(frozen=True)
class PmicReading:
    """Pi 5 PMIC ADC: currents (A), voltages (V), and rail power (mW) where both exist."""

    currents_a: dict[str, float] = field(default_factory=dict)
    volts_v: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def rails_mw(self) -> dict[str, float]:
        """mW per rail that has both a current and a voltage (EXT5V has voltage only)."""
        return {
            name: self.currents_a[name] * self.volts_v[name] * 1000.0
            for name in self.currents_a
            if name in self.volts_v
        }


def parse_pmic_read_adc(text: str) -> PmicReading:
    """Parse ``pmic_read_adc``; the Pi 4 'Command not registered' error gives no rails."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) == 1:
        err = _ERROR.match(lines[0])
        if err is not None:
            return PmicReading(error=err.group(2) or f"error={err.group(1)}")
    if not lines:
        raise HalParseError("pmic_read_adc: empty output")
    currents: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in lines:
        match = _ADC.match(line)
        if match is None:
            raise HalParseError(f"pmic_read_adc: unexpected line {line[:80]!r}")
        value = _finite(float(match.group("value")), "pmic_read_adc")
        target = currents if match.group("unit") == "A" else volts
        target[match.group("name")] = value
    return PmicReading(currents_a=currents, volts_v=volts)
