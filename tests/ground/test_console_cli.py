"""`flightos keys` and the bench console `flightos ground`, as an operator uses them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from tests.ground.conftest import Link


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flightos.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


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


async def test_schedule_list_and_telemetry_are_decoded_by_the_mission_database(link: Link) -> None:
    """`ground schedule list` names each activity's command and arguments; `ground tm` decodes what arrives:
    events with their text and fields, HK with named values, products with name and size (and --json)."""
    to = ["--to", f"127.0.0.1:{link.udp_port}", "--key-file", str(link.keys.path)]

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        res = cli(*a, *to)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        return res

    await asyncio.to_thread(run, "ground", "schedule", "add", "+3600", "test", "record", "key=later")
    await asyncio.to_thread(run, "ground", "schedule", "add", "+7200", "kernel", "mode", "mode=safe")
    listed = (await asyncio.to_thread(run, "ground", "schedule", "list")).stdout
    assert "COMMAND" in listed and "test.record key=later" in listed and "kernel.mode mode=safe" in listed, listed
    acts = json.loads((await asyncio.to_thread(run, "--json", "ground", "schedule", "list")).stdout)
    assert [(a["service"], a["command"], a["args"]) for a in acts] == [
        ("test", "record", {"key": "later"}),
        ("kernel", "mode", {"mode": "safe"}),
    ]
    assert len({a["request_id"] for a in acts}) == 2, acts  # each activity can be named apart

    await asyncio.to_thread(run, "ground", "cmd", "test", "announce", "message=seen-from-ground", "severity=3")
    await asyncio.to_thread(run, "ground", "cmd", "test", "product", "name=scene", "data=[1, 2, 3]")
    text = (await asyncio.to_thread(run, "ground", "tm", "--count", "500", "--timeout", "2", "--no-ack")).stdout
    assert "MEDIUM from test: seen-from-ground" in text, text
    assert "INFO from kernel: ground ready (service=ground pid=" in text, text  # an event's fields
    assert "product scene from test, 4 bytes" in text, text  # [1, 2, 3] in MessagePack
    assert "HK 1 system: memory.used_pct=" in text, text
    assert " bytes: " not in text.replace("4 bytes", ""), text  # nothing undecoded
    lines = (await asyncio.to_thread(run, "--json", "ground", "tm", "--count", "500", "--timeout", "2")).stdout
    decoded = [json.loads(ln) for ln in lines.splitlines()]
    product = next(d for d in decoded if d["kind"] == "product")
    assert (product["source"], product["name"], product["size"], product["data"]) == ("test", "scene", 4, [1, 2, 3])
    hk = [d["values"] for d in decoded if d["kind"] == "housekeeping" and d["name"] == "system"]
    assert any(isinstance(v["memory.used_pct"], float) for v in hk), hk  # named values (None while not yet sampled)
    event = next(d for d in decoded if d["kind"] == "event" and d["message"] == "seen-from-ground")
    assert (event["severity"], event["source"]) == ("MEDIUM", "test"), event


def test_tm_says_what_it_cannot_decode(tmp_path: object) -> None:
    """An unknown packet is named with its type and length, a broken one with why; never a traceback."""
    import socket
    import threading

    from flightos.ground import pus

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)

    def spacecraft() -> None:
        tc, addr = sock.recvfrom(65536)  # the console's TC[17,1]: complete it, then send odd telemetry
        rid = pus.request_id_of(tc)
        assert rid is not None
        sock.sendto(pus.verification(7, rid, 100, 1), addr)
        sock.sendto(pus.tm(200, 1, b"\x01\x02\x03\x04\x05", 100, 2), addr)
        sock.sendto(pus.tm(3, 25, pus.pack_u16(999), 100, 3), addr)
        sock.sendto(pus.tm(5, 1, b"\x00", 100, 4), addr)
        sock.sendto(b"\x00" * 7, addr)  # not even a packet: dropped

    fake = threading.Thread(target=spacecraft, daemon=True)
    fake.start()
    res = cli(
        "ground", "tm", "--no-auth", "--to", f"127.0.0.1:{sock.getsockname()[1]}", "--count", "3", "--timeout", "5"
    )
    fake.join(5)
    sock.close()
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    out = res.stdout.splitlines()
    assert out[0].endswith("TM[200,1] seq 2: not in the mission database, 5 bytes"), out
    assert out[1].endswith("TM[3,25] seq 3: no housekeeping structure 999 in the mission database, 2 bytes"), out
    assert "TM[5,1] seq 4 1 bytes: cannot be decoded: expected a 16-bit field at byte 0" in out[2], out
