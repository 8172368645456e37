"""Fault campaign: configuration that cannot disable protection (issue 12, item 8).

A NaN or an infinity compares false with every bound, so before this it passed every check and quietly
turned hang detection off. Service options were free-form, so a wrong one was accepted at load and then
crash-looped its service to FAILED. Both are now configuration errors at load: exit 5, the key named,
nothing started.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from flightos import BadArguments, Options, OptionsError, Parameter, Service, plugins
from flightos.config import target as tgt
from flightos.sdk.options import check_options, load_options
from flightos.sdk.validation import signature_of, validate


def cli(*args: str, runtime_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "--runtime-dir", str(runtime_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def refused_at_load(res: subprocess.CompletedProcess[str], runtime_dir: Path, *texts: str) -> None:
    """Exit 5, one line on stderr naming what is wrong, and nothing started (no runtime directory made)."""
    assert res.returncode == 5, (res.returncode, res.stdout[-2000:], res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    for text in texts:
        assert text in res.stderr, res.stderr
    assert "kernel_started" not in res.stdout
    assert not runtime_dir.exists()


@pytest.mark.parametrize(
    "setting",
    [
        "health.heartbeat_period_s=nan",
        "health.heartbeat_period_s=inf",
        "health.critical_heartbeat_period_s=-inf",
        "restart.backoff_jitter=nan",
        "thermal.trip_c=inf",
        "services.test.heartbeat_period_s=nan",
        "hal.time_scale=inf",
    ],
)
def test_nan_and_infinities_are_refused_at_load(setting: str, tmp_path: Path) -> None:
    """`--set health.heartbeat_period_s=nan` used to be accepted and turned hang detection off."""
    key, _, value = setting.partition("=")
    rd = tmp_path / "run"
    refused_at_load(cli("run", "--set", setting, runtime_dir=rd), rd, key.removeprefix("hal."), value)


@pytest.mark.parametrize(
    ("option", "key"),
    [
        ('apid="x"', "services.ground.options.apid"),
        ('udp_bind="nonsense"', "services.ground.options.udp_bind"),
        ("replay_window=-1", "services.ground.options.replay_window"),
    ],
)
def test_bad_ground_options_are_refused_at_load(option: str, key: str, tmp_path: Path) -> None:
    """These were accepted (exit 0) and ground then crash-looped to FAILED in ~16 s; now: exit 5 naming the key."""
    rd = tmp_path / "run"
    refused_at_load(cli("run", "--set", f"services.ground.options.{option}", runtime_dir=rd), rd, key, "(via --set)")


def test_options_of_other_services_are_checked_too(tmp_path: Path) -> None:
    """Every enabled service's options, against its own schema: a wrong type, a NaN, a typo."""
    rd = tmp_path / "run"
    jobs = ["--set", "services.jobs.enabled=true"]
    refused_at_load(
        cli("run", *jobs, "--set", 'services.jobs.options.power_w="lots"', runtime_dir=rd),
        rd,
        "services.jobs.options.power_w: expected a number, got 'lots'",
    )
    refused_at_load(
        cli("run", *jobs, "--set", "services.jobs.options.max_cpu_s=nan", runtime_dir=rd),
        rd,
        "services.jobs.options.max_cpu_s: expected a finite number, got nan",
    )
    refused_at_load(
        cli("run", "--set", "services.housekeeping.options.rate=2", runtime_dir=rd),
        rd,
        "services.housekeeping.options.rate: unknown option",
    )


def test_a_bad_option_in_the_target_file_names_the_file(tmp_path: Path) -> None:
    """Not only --set: an option in the file is named with the file, like every other config error."""
    path = tmp_path / "t.toml"
    path.write_text('[hal]\nbackend = "sim"\n[services.jobs.options]\nkeep_job_dirs = -3\n')
    rd = tmp_path / "run"
    refused_at_load(
        cli("run", "--target", str(path), runtime_dir=rd),
        rd,
        f"{path}: services.jobs.options.keep_job_dirs: expected an integer >= 0, got -3",
    )


def test_a_disabled_service_is_not_checked() -> None:
    """A service that does not run cannot be hurt by its options (a target may park them)."""
    t = tgt.from_dict(
        {
            "hal": {"backend": "sim"},
            "services": {"jobs": {"enabled": False, "options": {"power_w": "x"}}, "sar": {"options": {}}},
        },
        "t.toml",
    )
    assert plugins.check_options(t.services) is None
    t = tgt.from_dict({"hal": {"backend": "sim"}, "services": {"jobs": {"options": {"power_w": "x"}}}}, "t.toml")
    bad = plugins.check_options(t.services)
    assert isinstance(bad, OptionsError) and bad.key == "services.jobs.options.power_w"


# ---- the Options API -----------------------------------------------------------------------------------------


class Window(Options):
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.high <= self.low:
            raise self.invalid("high", f"a number above low ({self.low})")


class Camera(Options):
    exposure_ms: int = 10
    gains: list[float] = []
    window: Window = msgspec.field(default_factory=Window)
    labels: dict[str, float] = {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"exposure_ms": "x"}, "services.cam.options.exposure_ms: expected an integer, got 'x'"),
        ({"exposure_ms": True}, "services.cam.options.exposure_ms: expected an integer, got True"),
        ({"gains": [1.0, float("nan")]}, "services.cam.options.gains[1]: expected a finite number, got nan"),
        ({"labels": {"a": float("-inf")}}, "services.cam.options.labels.a: expected a finite number, got -inf"),
        ({"window": {"low": float("inf")}}, "services.cam.options.window.low: expected a finite number, got inf"),
        ({"window": {"low": 2.0}}, "services.cam.options.window.high: expected a number above low (2.0), got 1.0"),
        ({"window": {"hgih": 2}}, "services.cam.options.window.hgih: unknown option"),
        ({"exposure": 5}, "services.cam.options.exposure: unknown option (known: exposure_ms, gains, window, labels)"),
    ],
)
def test_option_errors_name_the_key_and_the_expectation(raw: dict[str, Any], message: str) -> None:
    err = check_options(Camera, raw, "cam")
    assert isinstance(err, OptionsError) and str(err) == message


def test_options_convert_with_defaults_and_stay_frozen() -> None:
    cam = load_options(Camera, {"exposure_ms": 20, "gains": [1, 2.5], "window": {"high": 3}}, "cam")
    assert (cam.exposure_ms, cam.gains, cam.window.high) == (20, [1.0, 2.5], 3.0)
    with pytest.raises(AttributeError):
        cam.exposure_ms = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="finite"):
        Window(low=float("nan"))  # built directly, not only when loaded


def test_service_config_is_the_checked_instance_converted_once() -> None:
    class Host:  # the one member of flightos.sdk.port.HostPort that config and options read
        options: ClassVar[dict[str, Any]] = {"exposure_ms": 42}

    class Cam(Service):
        name = "cam"
        options_schema = Camera

    class Free(Service):
        name = "free"

    cam = Cam()
    cam._host = Host()  # type: ignore[assignment]
    assert cam.config.exposure_ms == 42 and cam.config is cam.config
    assert cam.options == {"exposure_ms": 42}  # the raw table stays available
    free = Free()
    free._host = Host()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="no options_schema"):
        _ = free.config


def test_command_arguments_and_parameters_refuse_nan_and_infinities() -> None:
    """A command or parameter bound (seconds <= 60, rate in 0.01..50) is no bound at all for NaN."""

    async def sleep(self: Any, seconds: float, marks: list[float] | None = None) -> None: ...

    spec = signature_of(sleep)
    assert validate("sleep", spec, {"seconds": 2}) == {"seconds": 2.0}
    with pytest.raises(BadArguments, match="argument 'seconds' expects a finite number, got nan"):
        validate("sleep", spec, {"seconds": float("nan")})
    with pytest.raises(BadArguments, match=r"argument 'marks\[1\]' expects a finite number, got inf"):
        validate("sleep", spec, {"seconds": 1, "marks": [1.0, float("inf")]})
    rate = Parameter(1.0, min=0.01, max=50.0)
    rate.name = "rate_hz"
    with pytest.raises(BadArguments, match="not a finite number"):
        rate.check(float("nan"))
