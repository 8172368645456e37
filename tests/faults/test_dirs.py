"""Fault campaign: runtime and state directories, and a simulated board's state (issue 12, items 9 and 10).

Before: a shared 1777 directory given as --runtime-dir was chmodded to 0700 and deleted on exit; two
kernels of one target with different runtime directories shared keys, stores and kernel-state.json; a
killed kernel left its simulator's tree in the system temp directory; and watchdog resets a busy laptop
caused persisted into every later run of a simulated board (one more, and every run held SAFE).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flightos.testing import RuntimeProcess
from tests.runtimes import make_runtime


def cli(*args: str, runtime_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", "--runtime-dir", str(runtime_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def one_line(res: subprocess.CompletedProcess[str], code: int, *texts: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout[-2000:], res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    for text in texts:
        assert text in res.stderr, res.stderr


def trees(runtime_dir: Path, pid: int) -> list[Path]:
    """The simulator trees of kernel ``pid`` in a runtime directory."""
    return sorted(runtime_dir.glob(f"sim-{pid}-*"))


@pytest.mark.parametrize(
    ("dir_mode", "why"),
    [(0o1777, "is shared (mode 1777"), (0o777, "is shared (mode 0777"), (0o755, "is open to other users (mode 0755)")],
)
def test_a_shared_or_open_runtime_directory_is_refused_and_left_as_it_was(
    tmp_path: Path, dir_mode: int, why: str
) -> None:
    """It used to be chmodded to 0700 (others locked out of their own directory) and deleted on exit."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, dir_mode)
    (shared / "someone-elses.txt").write_text("mine")
    empty = tmp_path / "empty"
    empty.mkdir()
    os.chmod(empty, dir_mode)
    for d in (shared, empty):
        one_line(cli("run", "--duration", "1", runtime_dir=d), 5, f"runtime directory {d} {why}")
        assert d.is_dir() and mode(d) == dir_mode
    assert (shared / "someone-elses.txt").read_text() == "mine"
    assert sorted(p.name for p in shared.iterdir()) == ["someone-elses.txt"]


def test_a_runtime_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.getuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(mode=0o700)
        os.chown(theirs, 65534, 65534)
    else:
        theirs = Path("/")  # root's, and this is not root
    owner = os.stat(theirs).st_uid
    one_line(cli("run", "--duration", "1", runtime_dir=theirs), 5, f"belongs to uid {owner}, not to this user")
    assert os.stat(theirs).st_uid == owner


async def test_a_directory_flightos_did_not_create_is_used_and_kept(tmp_path: Path) -> None:
    """A private directory of the user's own: the kernel runs in it and, on exit, takes only its own files."""
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / "notes.txt").write_text("keep me")
    rt = make_runtime(["test"])
    rt.runtime_dir = mine
    async with rt:
        assert rt.client is not None and rt.proc is not None
        assert (await rt.client.call("test", "ping"))["reply"] == "pong"
        assert len(trees(mine, rt.proc.pid)) == 1
    assert mine.is_dir() and (mine / "notes.txt").read_text() == "keep me"
    assert not list(mine.glob("*.sock")) and not (mine / "kernel.pid").exists() and not list(mine.glob("sim-*"))


async def test_the_simulator_tree_lives_in_the_runtime_directory_and_goes_with_it() -> None:
    """Killed kernels used to leave flightos-sim-* trees in the system temp directory, one per kill."""
    rt = make_runtime(["test"])
    rt2: RuntimeProcess | None = None
    async with rt:
        assert rt.proc is not None
        first = trees(rt.runtime_dir, rt.proc.pid)
        assert len(first) == 1 and first[0].parent == rt.runtime_dir
        assert (first[0] / "sys").is_dir()
        rt.proc.kill()  # no chance to clean up
        await asyncio.to_thread(rt.proc.wait, 20)
        assert first[0].is_dir(), "the killed kernel's tree stays where it was, in its runtime directory"
        rt2 = RuntimeProcess("sim-radhard", services=["test"], base_dir=rt.workdir)
        rt2.runtime_dir, rt2.state_dir = rt.runtime_dir, rt.state_dir
        async with rt2:
            assert rt2.proc is not None and rt2.client is not None
            assert not first[0].exists(), "the next kernel in that runtime directory sweeps the stale tree"
            assert len(trees(rt.runtime_dir, rt2.proc.pid)) == 1
            assert (await rt2.client.call("test", "ping"))["reply"] == "pong"
        assert not rt.runtime_dir.exists(), "flightos created the runtime directory: it goes, tree and all"


async def test_a_second_kernel_on_the_same_state_directory_exits_6_naming_the_first(tmp_path: Path) -> None:
    """Two runtimes of one target with different runtime directories used to share keys, stores and state."""
    async with make_runtime(["test"]) as rt:
        assert rt.proc is not None and rt.client is not None
        other = tmp_path / "other-run"
        res = await asyncio.to_thread(cli, "run", "--set", f'runtime.state_dir="{rt.state_dir}"', runtime_dir=other)
        one_line(
            res,
            6,
            f"state directory {rt.state_dir} is in use by kernel pid {rt.proc.pid} "
            f"(runtime directory {rt.runtime_dir})",
        )
        assert not other.exists(), "the refused kernel removes the runtime directory it created"
        env = {**os.environ, "FLIGHTOS_STATE_DIR": str(rt.state_dir)}  # the same through the environment
        res = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "flightos.cli.main", "--runtime-dir", str(other), "run"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        one_line(res, 6, f"is in use by kernel pid {rt.proc.pid}")
        assert (await rt.client.call("test", "ping"))["reply"] == "pong", "the first kernel runs on, untouched"


async def test_a_simulated_board_starts_fresh_unless_told_to_resume(tmp_path: Path) -> None:
    """Two watchdog resets left by a saturated host: one more and every later run held SAFE. Now a simulated
    board starts each run at zero; `--resume` (hal.resume = true) carries them over."""
    limit = ["watchdog.max_resets=2"]
    state = tmp_path / "state" / "kernel-state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"watchdog_resets": 2}))
    resumed = make_runtime(["test"], [*limit, "hal.resume=true"])
    resumed.state_dir = state.parent
    async with resumed:
        health = (await resumed.status())["health"]
        assert (health["watchdog"]["resets"], health["hold_safe"], health["mode"]) == (2, True, "SAFE")
    fresh = make_runtime(["test"], limit)
    fresh.state_dir = state.parent
    async with fresh:
        health = (await fresh.status())["health"]
        assert (health["watchdog"]["resets"], health["hold_safe"], health["mode"]) == (0, False, "NOMINAL")
    assert json.loads(state.read_text())["watchdog_resets"] == 0, "the file says what this run's board had"


async def test_a_real_board_keeps_counting_its_resets(tmp_path: Path) -> None:
    """Only the simulator starts fresh: a board's resets are its history, carried into every run."""
    state = tmp_path / "state" / "kernel-state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"watchdog_resets": 1}))
    rt = make_runtime(["test"], ["watchdog.max_resets=1"], target="linux")
    rt.state_dir = state.parent
    async with rt:
        health = (await rt.status())["health"]
        assert (health["watchdog"]["resets"], health["hold_safe"], health["mode"]) == (1, True, "SAFE")


def test_resume_is_for_simulated_boards(tmp_path: Path) -> None:
    """A real board always keeps counting its resets: --resume there is a mistake, said so."""
    one_line(
        cli("run", "--target", "linux", "--resume", runtime_dir=tmp_path / "run"), 5, "--resume: only a simulated board"
    )
