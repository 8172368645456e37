"""`flightos keys` and the bench console `flightos ground`, as an operator uses them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.ground.conftest import Link


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightos.cli.main", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_keys_add_list_remove(tmp_path: object) -> None:
    """Keys are added with a printed hex key, listed, removed; removing a missing one is a clear error."""
    f = f"{tmp_path}/keys.json"
    added = json.loads(cli("--json", "keys", "add", "--file", f).stdout)
    assert added["key_id"] == 1 and len(bytes.fromhex(added["key"])) == 32
    assert json.loads(cli("--json", "keys", "list", "--file", f).stdout)["key_ids"] == [1]
    assert cli("keys", "remove", "1", "--file", f).returncode == 0
    res = cli("keys", "remove", "1", "--file", f)
    assert res.returncode == 5 and res.stderr.startswith("flightos: no key 1")


async def test_console_pings_commands_and_reads_parameters(link: Link) -> None:
    """ground ping/cmd/param/time/schedule work against a running spacecraft with the target's key file."""
    kf = str(link.keys.path)
    to = f"127.0.0.1:{link.udp_port}"

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return cli("ground", *a, "--to", to, "--key-file", kf)

    res = await asyncio.to_thread(run, "ping")
    assert res.returncode == 0 and "TM[17,2]" in res.stdout, res.stderr
    res = await asyncio.to_thread(run, "cmd", "test", "record", "key=console")
    assert res.returncode == 0 and res.stdout.strip() == "1", res.stderr
    res = await asyncio.to_thread(run, "cmd", "test", "sleep", "seconds=oops")
    assert res.returncode == 2 and "argument 'seconds' expects float" in res.stderr, res.stderr
    res = await asyncio.to_thread(run, "param", "set", "test.greeting", "hello")
    assert res.returncode == 0, res.stderr
    res = await asyncio.to_thread(run, "param", "get", "test.greeting")
    assert json.loads(res.stdout) == "hello"
    res = await asyncio.to_thread(run, "time")
    assert res.returncode == 0 and "ground clock differs" in res.stdout
    res = await asyncio.to_thread(run, "schedule", "add", "+3600", "test", "ping")
    assert res.returncode == 0, res.stderr
    res = await asyncio.to_thread(run, "schedule", "list")
    assert res.stdout.count("0x") == 1
    res = cli("ground", "ping", "--to", to, "--no-auth", "--timeout", "2")
    # 13 unauthenticated bytes get no answer: a failure report (28 bytes) would be larger than the request
    assert res.returncode == 4 and "no completion" in res.stderr
