"""Hostile input on the telecommand path: always a failure report or a counted drop, never a crash or an execution."""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from flightos.ground import mdb, pus
from flightos.ground.security import AuthError, KeyStore, open_tc, secure_tc
from tests.ground.conftest import Link

RECORD = mdb.load().function_id("test", "record")
KEY = b"\x07" * 32


def valid(counter: int = 1) -> bytes:
    return secure_tc(
        8,
        1,
        pus.pack_u16(RECORD) + pus.encode_value("str", "fuzz"),  # type: ignore[arg-type]
        key_id=1,
        key=KEY,
        counter=counter,
        apid=100,
        seq_count=counter,
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid packet mangled: truncated, extended, bytes flipped, length field lied, or plain noise."""
    base = bytearray(valid(draw(st.integers(1, 1000))))
    kind = draw(st.sampled_from(["noise", "truncate", "extend", "flip", "length", "service"]))
    if kind == "noise":
        return draw(st.binary(max_size=300))
    if kind == "truncate":
        return bytes(base[: draw(st.integers(0, len(base) - 1))])
    if kind == "extend":
        return bytes(base + draw(st.binary(min_size=1, max_size=70000 if draw(st.booleans()) else 20)))
    if kind == "flip":
        i = draw(st.integers(0, len(base) - 1))
        base[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(base)
    if kind == "length":
        base[4:6] = draw(st.integers(0, 65535)).to_bytes(2, "big")
        return bytes(base)
    base[7], base[8] = draw(st.integers(0, 255)), draw(st.integers(0, 255))  # service, subtype (CRC now wrong)
    return bytes(base)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_parser_and_authenticator_only_raise_their_own_errors(raw: bytes) -> None:
    """parse_tc and open_tc either accept or raise TcError/AuthError, whatever the bytes."""
    keys = KeyStore.__new__(KeyStore)
    keys._keys = {1: KEY}  # an in-memory store for the fuzzer
    try:
        tc = pus.parse_tc(raw, 100)
    except pus.TcError:
        return
    try:
        open_tc(tc.raw, tc.app_data, keys)
    except AuthError:
        pass


def mutations(seed: int, key: bytes, count: int, counter: Callable[[], int]) -> list[bytes]:
    """Deterministic mangled packets signed with the real key: truncated, extended, flipped, lying, noisy."""
    rnd = random.Random(seed)
    out = []
    for n in range(count):
        base = bytearray(
            secure_tc(
                8,
                1,
                pus.pack_u16(RECORD) + pus.encode_value("str", "fuzz"),  # type: ignore[arg-type]
                key_id=1,
                key=key,
                counter=counter(),
                apid=100,
                seq_count=n,
            )
        )
        kind = n % 8
        if kind == 6:  # a valid CRC, but signed with a key the spacecraft does not have
            out.append(
                secure_tc(
                    8,
                    1,
                    pus.pack_u16(RECORD) + pus.encode_value("str", "fuzz"),  # type: ignore[arg-type]
                    key_id=1,
                    key=rnd.randbytes(32),
                    counter=counter(),
                    apid=100,
                    seq_count=n,
                )
            )
            continue
        if kind == 7:  # properly signed, with arguments that lie about their length
            out.append(
                secure_tc(
                    8,
                    1,
                    pus.pack_u16(RECORD) + b"\xff\xff" + b"fuzz",  # type: ignore[arg-type]
                    key_id=1,
                    key=key,
                    counter=counter(),
                    apid=100,
                    seq_count=n,
                )
            )
            continue
        if kind == 0:
            out.append(rnd.randbytes(rnd.randint(0, 300)))
        elif kind == 1:
            out.append(bytes(base[: rnd.randint(0, len(base) - 1)]))
        elif kind == 2:
            out.append(bytes(base) + rnd.randbytes(rnd.choice([1, 17, 3000])))
        elif kind == 3:
            base[rnd.randrange(len(base))] ^= 1 << rnd.randrange(8)
            out.append(bytes(base))
        elif kind == 4:
            base[4:6] = rnd.randrange(65536).to_bytes(2, "big")
            out.append(bytes(base))
        else:
            base[7], base[8] = rnd.randrange(256), rnd.randrange(256)
            out.append(bytes(base))
    return out


async def test_live_service_survives_garbage_and_executes_nothing(link: Link) -> None:
    """320 mangled datagrams: each is rejected or dropped and counted; the service still answers; nothing ran."""
    key = link.keys.get(1)
    assert key is not None and link.rt.client is not None
    before = (await link.rt.client.call("ground", "link_status"))["counters"]
    packets = [p for p in mutations(1, key, 320, link.ground._next_counter) if p]  # asyncio never sends b""
    for i in range(0, len(packets), 20):  # bursts of 20, each followed by a ping: what a ground tool's pacing does
        for p in packets[i : i + 20]:
            link.ground.send_raw(p)
        assert await link.ground.ping() > 0
    after = (await link.rt.client.call("ground", "link_status"))["counters"]

    def delta(k: str) -> int:
        return int(after.get(k, 0)) - int(before.get(k, 0))

    pings = -(-len(packets) // 20)  # one per burst
    assert delta("tc_received") == len(packets) + pings
    assert delta("tc_completed") == pings  # only the pings ran
    assert delta("tc_rejected") + delta("tc_auth_rejected") + delta("tc_failed") == len(packets)
    assert "fuzz" not in await link.rt.client.call("test", "executions")
