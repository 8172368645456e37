"""``[services.jobs.options]``: the jobs service's typed options, checked by the kernel when the target loads."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from flightos import Options

_UNSET = " (unset: the built-in value, docs/jobs.md)"
DefaultCpu = Annotated[float | None, Meta(description="CPU-s of a submission that names none" + _UNSET)]
DefaultEnergy = Annotated[float | None, Meta(description="mJ of a submission that names none" + _UNSET)]
DefaultDownlink = Annotated[float | None, Meta(description="downlink bytes of a submission that names none" + _UNSET)]
DefaultDeadline = Annotated[float | None, Meta(description="deadline (s) of a submission that names none" + _UNSET)]
MaxCpu = Annotated[float | None, Meta(description="the most CPU-s a submission may ask for" + _UNSET)]
MaxEnergy = Annotated[float | None, Meta(description="the most mJ a submission may ask for" + _UNSET)]
MaxDownlink = Annotated[float | None, Meta(description="the most downlink bytes a submission may ask for" + _UNSET)]
MaxDeadline = Annotated[float | None, Meta(description="the longest deadline (s) a submission may ask for" + _UNSET)]


class JobsOptions(Options, frozen=True):
    """What ``[services.jobs.options]`` may hold."""

    power_w: Annotated[float, Meta(description="board power used for energy where the board reports none")] = 5.0
    keep_job_dirs: Annotated[int, Meta(description="directories of finished jobs kept (ledger rows stay)")] = 200
    max_put_bytes: Annotated[int, Meta(description="largest file a tenant may put in its store")] = 8 << 20
    default_cpu_s: DefaultCpu = None
    default_energy_mj: DefaultEnergy = None
    default_downlink_bytes: DefaultDownlink = None
    default_deadline_s: DefaultDeadline = None
    max_cpu_s: MaxCpu = None
    max_energy_mj: MaxEnergy = None
    max_downlink_bytes: MaxDownlink = None
    max_deadline_s: MaxDeadline = None

    def __post_init__(self) -> None:
        if self.power_w <= 0:
            raise self.invalid("power_w", "a number > 0")
        if self.keep_job_dirs < 0:
            raise self.invalid("keep_job_dirs", "an integer >= 0")
        if self.max_put_bytes < 1:
            raise self.invalid("max_put_bytes", "an integer >= 1")
        for key in self.__struct_fields__:
            if key.startswith(("default_", "max_")) and key != "max_put_bytes":
                value = getattr(self, key)
                floor_ok = value is None or value > 0 or (value == 0 and key.endswith("downlink_bytes"))
                if not floor_ok:
                    raise self.invalid(key, "a number > 0" if not key.endswith("downlink_bytes") else "a number >= 0")

    def budgets(self, prefix: str) -> dict[str, float]:
        """The budget keys set under ``default_`` or ``max_``, by budget key."""
        out: dict[str, float] = {}
        for key in self.__struct_fields__:
            if key.startswith(prefix) and key != "max_put_bytes" and getattr(self, key) is not None:
                out[key[len(prefix) :]] = float(getattr(self, key))
        return out
