"""Authenticated telecommanding: nobody without the key, no replay, no counter reuse after a restart."""

from __future__ import annotations

import pytest

from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from flightos.ground.security import KeyStore, secure_tc
from flightos.groundtools.console import GroundClient
from tests.ground.conftest import Link, ports, start

RECORD = mdb.load().function_id("test", "record")
assert RECORD is not None


def record_tc(g: GroundClient, key: str) -> bytes:
    return g.build(8, 1, pus.pack_u16(RECORD) + pus.encode_value("str", key))  # type: ignore[arg-type]


async def executions(link: Link) -> dict[str, int]:
    assert link.rt.client is not None
    return dict(await link.rt.client.call("test", "executions"))


async def test_replayed_telecommand_is_rejected_and_runs_once(link: Link) -> None:
    """The same signed bytes sent twice execute once; the copy gets AUTH_REPLAY and a security event."""
    tc = record_tc(link.ground, "once")
    assert (await link.ground.request(tc)).failure() is None
    again = await link.ground.request(tc)
    assert again.failure() is not None and again.failure()[1] == Failure.AUTH_REPLAY  # type: ignore[index]
    assert (await executions(link))["once"] == 1


async def test_bad_mac_unknown_key_and_missing_trailer_execute_nothing(link: Link) -> None:
    """A wrong key, an unknown key id, a flipped bit or no trailer at all: rejected, nothing runs."""
    g = link.ground
    payload = pus.pack_u16(RECORD) + pus.encode_value("str", "forged")  # type: ignore[arg-type]
    forged = secure_tc(8, 1, payload, key_id=1, key=b"\x01" * 32, counter=10**6 - 1, apid=100, seq_count=1)
    unknown = secure_tc(8, 1, payload, key_id=9, key=b"\x02" * 32, counter=5, apid=100, seq_count=2)
    flipped = bytearray(record_tc(g, "forged"))
    flipped[-5] ^= 0x01  # inside the MAC; the CRC then fails first, which must also reject
    # padded: an unauthenticated TC is answered only if the failure report (28 bytes) fits in its size
    unsigned = GroundClient("127.0.0.1", link.udp_port, 100, None).build(8, 1, payload + bytes(10))
    expected = [Failure.AUTH_BAD_MAC, Failure.AUTH_UNKNOWN_KEY, Failure.CRC_ERROR, Failure.AUTH_MISSING]
    for packet, code in zip([forged, unknown, bytes(flipped), unsigned], expected, strict=True):
        out = await g.request(packet)
        assert out.failure() is not None and out.failure()[1] == code, (code, out.verification)  # type: ignore[index]
    assert "forged" not in await executions(link)
    assert link.rt.client is not None
    assert (await link.rt.client.call("ground", "link_status"))["counters"]["tc_auth_rejected"] == 3


async def test_counter_out_of_window_is_rejected(link: Link) -> None:
    """A counter far beyond the window (an attempt to burn the counter space) is refused."""
    tc = link.ground.build(17, 1, counter=10**12)
    out = await link.ground.request(tc)
    assert out.failure() is not None and out.failure()[1] == Failure.AUTH_OUT_OF_WINDOW  # type: ignore[index]


async def test_highest_counter_survives_a_kernel_restart() -> None:
    """A telecommand accepted before a full restart cannot be replayed after it."""
    rt, keys = await start(services=["ground", "test"])
    try:
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            tc = record_tc(g, "before-restart")
            assert (await g.request(tc)).failure() is None
        assert await rt.stop() == 0
        await rt.start()
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, keys) as g:
            out = await g.request(tc)
            assert out.failure() is not None and out.failure()[1] == Failure.AUTH_REPLAY  # type: ignore[index]
            assert await g.ping() > 0  # fresh counters still work
        assert rt.client is not None
        assert (await rt.client.call("test", "executions"))["before-restart"] == 1
    finally:
        await rt.stop()
        rt.cleanup()


async def test_unauthenticated_target_warns_and_accepts() -> None:
    """A lab target that disables authentication says so at start and accepts plain telecommands."""
    rt, _ = await start(["services.ground.options.auth=false"], services=["ground"])
    try:
        p = await ports(rt)
        async with GroundClient("127.0.0.1", p["udp"], 100, None) as g:
            assert await g.ping() > 0
        assert "authentication is DISABLED" in rt.log_path.read_text()
    finally:
        await rt.stop()
        rt.cleanup()


def test_key_store_is_private_and_checked(tmp_path: object) -> None:
    """Keys are written mode 0600; a damaged key file is a clear error naming it."""
    import os
    from pathlib import Path

    path = Path(str(tmp_path)) / "keys.json"
    ks = KeyStore(path)
    kid, key = ks.add()
    assert (kid, len(key)) == (1, 32) and os.stat(path).st_mode & 0o777 == 0o600
    path.write_text('{"keys": {"1": {"key": "abcd"}}}')
    with pytest.raises(ValueError, match=r"keys\.json: key 1: expected 32 bytes"):
        KeyStore(path)
