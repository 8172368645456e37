"""The command line as a user meets it: one-line errors, documented exit codes, human and JSON output."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from flightos.testing import RuntimeProcess
from tests.runtimes import base, make_runtime


def cli(*args: str, runtime_dir: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    pre = ["--runtime-dir", str(runtime_dir)] if runtime_dir else []
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *pre, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(res: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("flightos: ") and text in res.stderr, res.stderr


def test_no_runtime_unknown_target_and_bad_set() -> None:
    """Each mistake is one line on stderr with its own exit code."""
    one_line_error(cli("status", runtime_dir=base() / "nothing-here"), 3, "no flightos runtime is running")
    one_line_error(cli("run", "--target", "mars", runtime_dir=base() / "x"), 5, "unknown target 'mars'")
    one_line_error(
        cli("run", "--set", "health.heartbeat_misses=-1", runtime_dir=base() / "x"),
        5,
        "health.heartbeat_misses: expected an integer >= 1",
    )
    one_line_error(
        cli("run", "--set", "services.ghost.enabled=true", runtime_dir=base() / "x"),
        5,
        "services.ghost: no service 'ghost' is installed",
    )


def test_bad_target_file_names_file_and_key(tmp_path: Path) -> None:
    """A broken target file is reported with its path and the offending key."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[hal]\nbackend = "sim"\ncores = "four"\n')
    one_line_error(cli("run", "--target", str(bad), runtime_dir=base() / "x"), 5, f"{bad}: hal.cores")


async def test_status_cmd_tm_against_a_running_runtime(runtime: RuntimeProcess) -> None:
    """status, cmd and tm work from a separate process, in human and JSON forms."""
    rd = runtime.runtime_dir
    res = await asyncio.to_thread(cli, "status", runtime_dir=rd)
    assert res.returncode == 0 and "SERVICE" in res.stdout and "test" in res.stdout and "READY" in res.stdout
    assert "messages lost 0 (sequence gaps seen by subscribers)" in res.stdout
    st = json.loads((await asyncio.to_thread(cli, "--json", "status", runtime_dir=rd)).stdout)
    assert {s["name"] for s in st["services"] if s["state"] != "DISABLED"} == {"test", "housekeeping"}
    res = await asyncio.to_thread(cli, "cmd", "test", "echo", "value=[1, 2]", runtime_dir=rd)
    assert res.returncode == 0 and json.loads(res.stdout) == [1, 2]
    res = await asyncio.to_thread(cli, "cmd", "test", "record", "key=42", runtime_dir=rd)
    assert res.returncode == 0 and res.stdout.strip() == "1"  # key declared str: "42" stays text
    assert await runtime.client.call("test", "executions") == {"42": 1}  # type: ignore[union-attr]
    one_line_error(
        await asyncio.to_thread(cli, "cmd", "test", "sleep", "seconds=soon", runtime_dir=rd), 1, "bad_arguments"
    )
    one_line_error(
        await asyncio.to_thread(cli, "cmd", "test", "sleep", "seconds=3", "--timeout", "0.2", runtime_dir=rd),
        4,
        "deadline exceeded",
    )
    one_line_error(await asyncio.to_thread(cli, "cmd", "test", "noarg", runtime_dir=rd), 1, "unknown_command")
    res = await asyncio.to_thread(cli, "--json", "tm", "tm.kernel.services", "--count", "2", runtime_dir=rd)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 2 and all(m["topic"] == "tm.kernel.services" for m in lines)
    assert lines[1]["seq"] == lines[0]["seq"] + 1
    one_line_error(  # a topic nobody publishes: the wait ends with exit 4, saying nothing came
        await asyncio.to_thread(cli, "tm", "tm.nobody", "--count", "1", "--timeout", "0.5", runtime_dir=rd),
        4,
        "0 of 1 messages under 'tm.nobody' within 0.5 s",
    )


async def test_second_kernel_in_same_runtime_dir_is_refused(runtime: RuntimeProcess) -> None:
    """Starting a kernel where one already runs fails with exit code 6 and names the running pid."""
    res = await asyncio.to_thread(cli, "run", runtime_dir=runtime.runtime_dir)
    one_line_error(res, 6, "a runtime is already running")
    assert "stop it first" in res.stderr and "--runtime-dir" in res.stderr  # what to do about it (the tour)


async def test_run_exits_zero_on_sigint_after_a_clean_stop() -> None:
    """Ctrl-C stops every service gracefully and `flightos run` exits 0."""
    rt = make_runtime(["test", "housekeeping"])
    async with rt:
        pids = [s["pid"] for s in (await rt.status())["services"]]
        assert rt.proc is not None
        rt.proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(rt.proc.wait, 20)
        assert code == 0
        assert all(_state(p) in ("gone", "Z") for p in pids)
        log = rt.log_path.read_text()
        assert log.count("service_stopped") == 2 and "kernel_stopped" in log
        assert not (rt.runtime_dir / "cmd.sock").exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "gone"


def test_probe_reads_the_board_and_names_what_is_missing() -> None:
    """`flightos probe` detects this machine and lists missing readings with reasons, as text and JSON."""
    res = cli("probe", "--settle", "0")
    assert res.returncode == 0, res.stderr
    assert "detected: backend" in res.stdout and "MISSING" in res.stdout
    doc = json.loads(cli("--json", "probe", "--settle", "0").stdout)
    assert doc["detection"]["backend"] in ("linux", "rpi", "jetson")
    assert isinstance(doc["missing"], list)


def test_global_options_are_accepted_after_the_subcommand_too(tmp_path: Path) -> None:
    """`--json` and `--runtime-dir` work before or after every subcommand, as README and docs show them."""
    from flightos.cli.main import build_parser

    parser = build_parser()

    def subparsers(p: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
        found = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += [(name, child), *subparsers(child)]
        return found

    for name, child in subparsers(parser):
        assert {"--json", "--runtime-dir"} <= set(child._option_string_actions), name
    for argv in (
        ["status"],
        ["probe"],
        ["cmd", "test", "ping", "a=1"],
        ["tm", "ev."],
        ["jobs", "list"],
        ["report", "latest"],
        ["targets"],
    ):
        after = parser.parse_args([*argv, "--json", "--runtime-dir", "/r"])
        before = parser.parse_args(["--json", "--runtime-dir", "/r", *argv])
        neither = parser.parse_args(argv)
        assert (after.json, after.runtime_dir) == (before.json, before.runtime_dir) == (True, "/r"), argv
        assert (neither.json, neither.runtime_dir) == (False, None), argv
    assert parser.parse_args(["--runtime-dir", "/a", "status", "--runtime-dir", "/b"]).runtime_dir == "/b"
    one_line_error(cli("status", "--json", "--runtime-dir", str(tmp_path / "none")), 3, "no flightos runtime")
    doc = json.loads(cli("probe", "--json", "--settle", "0").stdout)
    assert doc["detection"]["backend"] in ("linux", "rpi", "jetson")
    assert isinstance(json.loads(cli("targets", "--json").stdout), list)


async def test_status_and_tm_with_options_after_the_subcommand(runtime: RuntimeProcess) -> None:
    """`flightos status --json --runtime-dir DIR` is the form docs/health.md shows: it talks to that runtime."""
    rd = str(runtime.runtime_dir)
    res = await asyncio.to_thread(cli, "status", "--json", "--runtime-dir", rd)
    assert res.returncode == 0, res.stderr
    assert "test" in {s["name"] for s in json.loads(res.stdout)["services"]}
    res = await asyncio.to_thread(cli, "cmd", "test", "ping", "--runtime-dir", rd, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["reply"] == "pong"


def test_inject_without_runtime_and_bad_scenario_are_one_line_errors(tmp_path: Path) -> None:
    """inject needs a runtime; a broken scenario file is named with the event and key."""
    one_line_error(cli("inject", "sefi", "core=1", runtime_dir=base() / "none"), 3, "no flightos runtime")
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\n[[event]]\nat = 1\naction = "sefi"\ncore = "two"\n')
    one_line_error(cli("run", "--scenario", str(bad), runtime_dir=base() / "x"), 5, "event[0].core")
