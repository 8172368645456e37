"""``flightos install`` / ``uninstall`` into a temporary root with a fake command runner, and the unit itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flightos.cli import exit_codes as ec
from flightos.cli import install
from flightos.cli.errors import UsageError
from flightos.config.schema import ConfigError
from tests.cli.installing import parse

REPO = Path(__file__).resolve().parents[2]
RPI5 = REPO / "targets" / "rpi5.toml"


class FakeRunner:
    """Records every command; ``useradd`` and ``userdel`` edit ``<root>/etc/passwd`` as the real ones would."""

    def __init__(self, root: Path, fail: str | None = None) -> None:
        self.root = root
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        if self.fail and self.fail in " ".join(argv):
            return 1, "", "something went wrong\nFailed to enable unit: Access denied"
        if argv[0] == "useradd":
            user = argv[-1]
            passwd = self.root / "etc/passwd"
            passwd.write_text(passwd.read_text() + f"{user}:x:990:990::/var/lib/flightos:/usr/sbin/nologin\n")
            group = self.root / "etc/group"
            group.write_text(group.read_text() + f"{user}:x:990:\n")
        if argv[0] == "userdel":
            passwd = self.root / "etc/passwd"
            passwd.write_text(
                "".join(f"{line}\n" for line in passwd.read_text().splitlines() if not line.startswith(f"{argv[-1]}:"))
            )
        return 0, "", ""

    def names(self) -> list[str]:
        return [" ".join(c[:2]) for c in self.calls]


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat the temporary root as '/' so the live command sequence is planned (paths stay under it)."""
    monkeypatch.setattr(install, "_is_live", lambda prefix: True)


def files(r: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(r)): (p.read_bytes() if p.is_file() else None) for p in sorted(r.rglob("*"))}


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as lists of (key, value); keys such as DeviceAllow= repeat."""
    out: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = []
            continue
        key, _, value = line.partition("=")
        out[section].append((key, value))
    return out


def values(text: str, section: str, key: str) -> list[str]:
    return [v for k, v in unit_entries(text)[section] if k == key]


# ---- the unit ------------------------------------------------------------------------------------
def test_render_unit_has_the_required_keys() -> None:
    text = install.render_unit(
        target="rpi5",
        python="/opt/flightos/.venv/bin/python",
        user="flightos",
        supplementary_groups=["video", "gpio", "i2c", "watchdog"],
        shutdown_grace_s=5.0,
        devices=install.device_allow("rpi", "/dev/watchdog"),
    )
    s = dict(unit_entries(text)["Service"])
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "10",
        "Restart": "on-failure",
        "RestartSec": "2",
        "User": "flightos",
        "Group": "flightos",
        "SupplementaryGroups": "video gpio i2c watchdog",
        "RuntimeDirectory": "flightos",
        "RuntimeDirectoryMode": "0700",
        "StateDirectory": "flightos",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "10",
        "StandardOutput": "journal",
        "StandardError": "journal",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/flightos",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "Delegate": "yes",
        "ExecStart": "/opt/flightos/.venv/bin/python -m flightos.cli.main run --target rpi5 --log-format json",
    }
    assert {k: s.get(k) for k in expected} == expected
    assert values(text, "Service", "Environment") == [
        "FLIGHTOS_RUNTIME_DIR=/run/flightos",
        "FLIGHTOS_STATE_DIR=/var/lib/flightos",
        "FLIGHTOS_TARGETS_DIR=/etc/flightos/targets",
        "PYTHONUNBUFFERED=1",
    ]
    assert "/dev/watchdog rw" in values(text, "Service", "DeviceAllow")
    assert "/dev/vcio rw" in values(text, "Service", "DeviceAllow")
    assert values(text, "Install", "WantedBy") == ["multi-user.target"]
    assert "ProtectKernelTunables" not in s  # the HAL may write cpuN/online
    assert "ProtectControlGroups" not in s  # ... and cgroup cpusets


def test_render_unit_stop_timeout_follows_the_grace_and_groups_are_optional() -> None:
    text = install.render_unit(target="linux", python="/usr/bin/python3", shutdown_grace_s=7.5)
    s = dict(unit_entries(text)["Service"])
    assert s["TimeoutStopSec"] == "13"
    assert "SupplementaryGroups" not in s
    assert "DeviceAllow" not in s and "DevicePolicy" not in s


def test_render_unit_quotes_what_systemd_would_interpret() -> None:
    text = install.render_unit(target="rpi5", python="/opt/my boards/100%/$HOME/python")
    assert values(text, "Service", "ExecStart") == [
        '"/opt/my boards/100%%/$$HOME/python" -m flightos.cli.main run --target rpi5 --log-format json'
    ]


def test_device_allow_per_backend() -> None:
    assert install.device_allow("rpi", "/dev/watchdog")[:3] == ["/dev/watchdog rw", "/dev/vcio rw", "/dev/vchiq rw"]
    jetson = install.device_allow("jetson", "/dev/watchdog1")
    assert jetson[0] == "/dev/watchdog1 rw" and "/dev/vcio rw" not in jetson
    assert install.device_allow("sim", None) == ["char-gpiochip rw", "char-i2c rw"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine: cannot verify the unit",
)
def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "flightos.service"
    unit.write_text(
        install.render_unit(
            target="rpi5",
            python=sys.executable,
            supplementary_groups=["video", "gpio"],
            devices=install.device_allow("rpi", "/dev/watchdog"),
            read_write_paths=["/var/lib/flightos", "/srv/x"],
            protect_home="read-only",
        )
    )
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if "flightos.service" in line]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert complaints == []  # verify exits 0 on unknown keys: it only warns


# ---- install -------------------------------------------------------------------------------------
def test_install_into_a_prefix(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner(root)
    assert install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner) == ec.OK
    unit = (root / "etc/systemd/system/flightos.service").read_text()
    assert values(unit, "Service", "ExecStart") == [
        f"{sys.executable} -m flightos.cli.main run --target rpi5 --log-format json"
    ]
    assert values(unit, "Service", "SupplementaryGroups") == ["video gpio i2c"]
    assert values(unit, "Service", "User") == ["flightos"]
    assert (root / "etc/flightos/targets/rpi5.toml").read_bytes() == RPI5.read_bytes()
    state = root / "var/lib/flightos"
    assert state.is_dir() and (state.stat().st_mode & 0o777) == 0o750
    if os.geteuid() == 0:
        assert (state.stat().st_uid, state.stat().st_gid) == (990, 990)
    # offline: useradd and systemctl act on the prefix, and there is no manager to reload
    assert runner.calls == [
        [
            "useradd",
            "--prefix",
            str(root),
            "--system",
            "--no-create-home",
            "--home-dir",
            "/var/lib/flightos",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--groups",
            "video,gpio,i2c",
            "flightos",
        ],
        ["systemctl", f"--root={root}", "enable", "flightos"],
    ]
    manifest = json.loads((root / "etc/flightos/install.json").read_text())
    assert manifest["target_file"] == "/etc/flightos/targets/rpi5.toml" and manifest["user"] == "flightos"
    err = capsys.readouterr().err
    assert "no 'watchdog' group" in err


def test_install_live_runs_useradd_then_reload_then_enable(root: Path, live: None) -> None:
    runner = FakeRunner(root)
    code = install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner, euid=0)
    assert code == ec.OK
    assert runner.calls == [
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/var/lib/flightos",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            "--groups",
            "video,gpio,i2c",
            "flightos",
        ],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "flightos"],
    ]
    assert (root / "etc/systemd/system/flightos.service").is_file()


def test_existing_user_is_not_added_again(root: Path, live: None) -> None:
    (root / "etc/passwd").write_text((root / "etc/passwd").read_text() + "flightos:x:990:990::/:/usr/sbin/nologin\n")
    (root / "etc/group").write_text(
        "root:x:0:\nvideo:x:44:pi,flightos\ni2c:x:998:flightos\ngpio:x:997:flightos\nflightos:x:990:\nwatchdog:x:996:\n"
    )
    runner = FakeRunner(root)
    assert (
        install.run_install(
            parse("install", "--target", "rpi5", "--prefix", str(root), "--no-enable"), runner=runner, euid=0
        )
        == ec.OK
    )
    # it lacks only the 'watchdog' group; no useradd, and --no-enable leaves systemctl enable out
    assert runner.calls == [["usermod", "--append", "--groups", "watchdog", "flightos"], ["systemctl", "daemon-reload"]]
    unit = (root / "etc/systemd/system/flightos.service").read_text()
    assert values(unit, "Service", "SupplementaryGroups") == ["video gpio i2c watchdog"]


def test_existing_user_in_all_groups_needs_no_account_command(root: Path) -> None:
    (root / "etc/passwd").write_text((root / "etc/passwd").read_text() + "flightos:x:990:990::/:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("video:x:44:flightos\nflightos:x:990:\n")
    runner = FakeRunner(root)
    assert install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner) == ec.OK
    assert runner.names() == ["systemctl --root=" + str(root)]


def test_existing_group_of_the_users_name_is_reused(root: Path) -> None:
    (root / "etc/group").write_text((root / "etc/group").read_text() + "flightos:x:990:\n")
    runner = FakeRunner(root)
    assert install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner) == ec.OK
    useradd = runner.calls[0]
    assert "--gid" in useradd and "--user-group" not in useradd


def test_dry_run_changes_nothing(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files(root)
    runner = FakeRunner(root)
    assert (
        install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root), "--dry-run"), runner=runner)
        == ec.OK
    )
    assert files(root) == before
    assert runner.calls == []
    out = capsys.readouterr().out
    assert "Type=notify" in out and "useradd " in out and "systemctl --root=" in out


def test_dry_run_as_a_user_needs_no_root(capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner(Path("/nonexistent"))
    args = parse("--json", "install", "--target", "rpi5", "--dry-run")
    assert install.run_install(args, runner=runner, euid=1000) == ec.OK
    assert runner.calls == []
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] and "WatchdogSec=10" in report["unit"]
    assert report["steps"][-2:] == ["systemctl daemon-reload", "systemctl enable --now flightos"]


def test_install_on_the_real_root_needs_root() -> None:
    with pytest.raises(UsageError, match="needs root"):
        install.run_install(parse("install", "--target", "rpi5"), runner=FakeRunner(Path("/")), euid=1000)
    with pytest.raises(UsageError, match="needs root"):
        install.run_uninstall(parse("uninstall"), runner=FakeRunner(Path("/")), euid=1000)


def test_unknown_target_is_a_config_error_naming_it(root: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-board"):
        install.run_install(
            parse("install", "--target", "no-such-board", "--prefix", str(root)), runner=FakeRunner(root)
        )


def test_relative_python_is_refused(root: Path) -> None:
    with pytest.raises(UsageError, match="absolute"):
        install.run_install(
            parse("install", "--target", "rpi5", "--prefix", str(root), "--python", "python3"), runner=FakeRunner(root)
        )


def test_a_target_file_is_installed_under_its_name(root: Path, tmp_path: Path) -> None:
    custom = tmp_path / "my-bench.toml"
    custom.write_text(
        RPI5.read_text()
        .replace('name = "rpi5"', 'name = "bench"')
        .replace("[runtime]", "[runtime]\nshutdown_grace_s = 8.0")
    )
    assert (
        install.run_install(parse("install", "--target", str(custom), "--prefix", str(root)), runner=FakeRunner(root))
        == ec.OK
    )
    assert (root / "etc/flightos/targets/bench.toml").read_bytes() == custom.read_bytes()
    unit = (root / "etc/systemd/system/flightos.service").read_text()
    assert "--target bench " in values(unit, "Service", "ExecStart")[0]
    assert values(unit, "Service", "TimeoutStopSec") == ["13"]


def test_reinstall_keeps_an_edited_target_copy_as_backup(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("install", "--target", "rpi5", "--prefix", str(root))
    assert install.run_install(args, runner=FakeRunner(root)) == ec.OK
    copy = root / "etc/flightos/targets/rpi5.toml"
    copy.write_text(copy.read_text() + "\n# opened the ground link to the lab\n")
    edited = copy.read_bytes()
    assert install.run_install(args, runner=FakeRunner(root)) == ec.OK
    assert (root / "etc/flightos/targets/rpi5.toml.bak").read_bytes() == edited
    assert copy.read_bytes() == RPI5.read_bytes()
    assert "rpi5.toml.bak" in capsys.readouterr().err


def test_a_failing_command_is_exit_1_with_one_line(root: Path, live: None, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner(root, fail="enable")
    code = install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner, euid=0)
    assert code == ec.COMMAND_FAILED
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("flightos: note:")]
    assert errors == [
        "flightos: install: `systemctl enable --now flightos` failed (exit 1): Failed to enable unit: Access denied"
    ]


def test_systemd_runtime_watchdog_is_reported(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (root / "etc/systemd").mkdir(parents=True)
    (root / "etc/systemd/system.conf").write_text("[Manager]\n#RuntimeWatchdogSec=off\nRuntimeWatchdogSec=15s\n")
    assert (
        install.run_install(
            parse("install", "--target", "rpi5", "--prefix", str(root), "--dry-run"), runner=FakeRunner(root)
        )
        == ec.OK
    )
    assert "one opener only" in capsys.readouterr().err


# ---- uninstall -----------------------------------------------------------------------------------
def installed(root: Path) -> FakeRunner:
    runner = FakeRunner(root)
    assert (
        install.run_install(parse("install", "--target", "rpi5", "--prefix", str(root)), runner=runner, euid=0) == ec.OK
    )
    (root / "var/lib/flightos/store.json").write_text("{}")
    runner.calls.clear()
    return runner


def test_uninstall_reverses_install_and_keeps_state_and_user(root: Path, live: None) -> None:
    runner = installed(root)
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root)), runner=runner, euid=0) == ec.OK
    assert runner.calls == [["systemctl", "disable", "--now", "flightos"], ["systemctl", "daemon-reload"]]
    assert not (root / "etc/systemd/system/flightos.service").exists()
    assert not (root / "etc/flightos").exists()
    assert (root / "var/lib/flightos/store.json").is_file()
    assert "flightos:" in (root / "etc/passwd").read_text()


def test_uninstall_purge_removes_state_and_user(root: Path, live: None) -> None:
    runner = installed(root)
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root), "--purge"), runner=runner, euid=0) == ec.OK
    assert runner.names() == ["systemctl disable", "systemctl daemon-reload", "userdel flightos"]
    assert not (root / "var/lib/flightos").exists()
    assert "flightos:" not in (root / "etc/passwd").read_text()


def test_uninstall_purge_keep_state_keeps_the_state_dir(root: Path, live: None) -> None:
    runner = installed(root)
    args = parse("uninstall", "--prefix", str(root), "--purge", "--keep-state")
    assert install.run_uninstall(args, runner=runner, euid=0) == ec.OK
    assert (root / "var/lib/flightos/store.json").is_file()
    assert runner.names()[-1] == "userdel flightos"


def test_uninstall_offline_prefix(root: Path) -> None:
    runner = installed(root)
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root)), runner=runner) == ec.OK
    assert runner.calls == [["systemctl", f"--root={root}", "disable", "flightos"]]


def test_uninstall_keeps_an_edited_target_and_other_targets(
    root: Path, live: None, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = installed(root)
    copy = root / "etc/flightos/targets/rpi5.toml"
    copy.write_text(copy.read_text() + "# edited on the board\n")
    (root / "etc/flightos/targets/other.toml").write_text("")
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root)), runner=runner, euid=0) == ec.OK
    assert copy.is_file() and (root / "etc/flightos/targets/other.toml").is_file()
    assert not (root / "etc/flightos/install.json").exists()
    assert "edited after install" in capsys.readouterr().err


def test_uninstall_dry_run_changes_nothing(root: Path, live: None) -> None:
    runner = installed(root)
    before = files(root)
    assert (
        install.run_uninstall(
            parse("uninstall", "--prefix", str(root), "--purge", "--dry-run"), runner=runner, euid=1000
        )
        == ec.OK
    )
    assert files(root) == before and runner.calls == []


def test_uninstall_when_nothing_is_installed(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner(root)
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root)), runner=runner) == ec.OK
    assert runner.calls == []
    assert "not installed" in capsys.readouterr().err


def test_install_as_a_user_into_a_prefix_does_not_chown(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        install.run_install(
            parse("install", "--target", "rpi5", "--prefix", str(root)), runner=FakeRunner(root), euid=1000
        )
        == ec.OK
    )
    assert (root / "var/lib/flightos").is_dir()
    assert "not chowned to flightos (uid 990): not running as root" in capsys.readouterr().err


def test_a_state_dir_named_by_the_target_is_writable_and_never_purged(
    root: Path, tmp_path: Path, live: None, capsys: pytest.CaptureFixture[str]
) -> None:
    custom = tmp_path / "rpi5.toml"
    custom.write_text(RPI5.read_text().replace("[runtime]", '[runtime]\nstate_dir = "/srv/fos"'))
    runner = FakeRunner(root)
    assert (
        install.run_install(parse("install", "--target", str(custom), "--prefix", str(root)), runner=runner, euid=0)
        == ec.OK
    )
    unit = (root / "etc/systemd/system/flightos.service").read_text()
    assert values(unit, "Service", "ReadWritePaths") == ["/var/lib/flightos /srv/fos"]
    assert (root / "srv/fos").is_dir()
    (root / "srv/fos/data").write_text("x")
    assert install.run_uninstall(parse("uninstall", "--prefix", str(root), "--purge"), runner=runner, euid=0) == ec.OK
    assert not (root / "var/lib/flightos").exists()
    assert (root / "srv/fos/data").is_file()
    assert "kept /srv/fos" in capsys.readouterr().err
