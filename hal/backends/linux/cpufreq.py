"""Frequency and cluster per core from cpufreq policies (one policy = one cluster)."""

from __future__ import annotations

from dataclasses import dataclass

from hal.backends.linux.topology import CPU_DIR, parse_cpu_list
from hal.errors import HalParseError
from hal.fs import Probe


@dataclass(frozen=True)
class Policy:
    """One cpufreq policy: its number (used as the cluster id), CPUs and current MHz."""

    cluster: int
    cpus: list[int]
    cur_mhz: float | None


def read_policies(probe: Probe) -> list[Policy] | None:
    """All cpufreq policies, or None if the board has no cpufreq (recorded as missing)."""
    paths = probe.fs.glob(f"{CPU_DIR}/cpufreq/policy[0-9]*")
    if not paths:
        probe.miss("cpufreq")
        return None
    policies = []
    for path in paths:
        number = path.rsplit("policy", 1)[1]
        if not number.isdigit():
            continue
        cpus_text = probe.fs.read_text(f"{path}/related_cpus") or probe.fs.read_text(f"{path}/affected_cpus")
        try:
            cpus = parse_cpu_list(cpus_text.replace(" ", ",")) if cpus_text else [int(number)]
        except HalParseError:
            probe.miss(f"cpufreq.policy{number}.cpus")
            cpus = [int(number)]
        khz = probe.fs.read_int(f"{path}/scaling_cur_freq")
        if khz is None:
            khz = probe.fs.read_int(f"{path}/cpuinfo_cur_freq")
        if khz is None or khz < 0:
            if cpus_text is not None:  # an inactive policy (all its CPUs offline) answers EBUSY to everything
                probe.miss(f"cpufreq.policy{number}.freq")
            mhz = None
        else:
            mhz = khz / 1000.0
        policies.append(Policy(cluster=int(number), cpus=cpus, cur_mhz=mhz))
    return policies
