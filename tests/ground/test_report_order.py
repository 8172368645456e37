"""ST[01] reports come in ECSS-E-ST-70-41C order for every telecommand served: acceptance TM[1,1], start of
execution TM[1,3], the reply (if the TC has one), completion TM[1,7]."""

from __future__ import annotations

import time
from typing import Any

from flightos.ground import mdb, pus
from flightos.ground.security import NONCE_LEN, RESYNC_PADDING, RESYNC_SERVICE
from services.ground.handlers import HANDLERS
from tests.ground.conftest import Link

TABLES = mdb.load()


def _fid(name: str) -> int:
    service, command = name.split(".")
    fid = TABLES.function_id(service, command)
    assert fid is not None
    return fid


def _inner(seq: int) -> bytes:
    from spacepackets.ecss import PusTc

    return bytes(
        PusTc(
            service=8, message_subtype=1, apid=100, seq_count=seq, app_data=pus.pack_u16(_fid("test.ping")), source_id=1
        ).pack()
    )


SIDS = sorted(TABLES.hk)
INNER = _inner(4242)
CASES: list[tuple[int, int, bytes, tuple[int, int] | None]] = [
    # periodic HK off first, so a periodic TM[3,25] cannot pass for the one-shot report's reply below
    (3, 6, pus.pack_u16(len(SIDS)) + b"".join(pus.pack_u16(s) for s in SIDS), None),
    (3, 5, pus.pack_u16(0), None),
    (3, 31, pus.pack_u16(1) + pus.pack_u16(SIDS[0]) + pus.pack_u32(60_000), None),
    (5, 6, pus.pack_u16(1) + pus.pack_u16(9999), None),
    (5, 5, pus.pack_u16(1) + pus.pack_u16(9999), None),
    (15, 130, pus.ack_data([]), None),
    (
        20,
        3,
        pus.pack_u16(1)
        + pus.pack_u16(TABLES.parameter_id("test", "greeting") or 0)
        + pus.encode_value("str", "ordered"),
        None,
    ),
    (11, 2, b"", None),
    (11, 4, pus.pack_u16(1) + pus.unix_to_cds(time.time() + 3600) + INNER, None),
    (11, 15, pus.encode_value("int", 1000), None),
    (11, 16, b"", (11, 10)),
    (11, 17, b"", (11, 13)),
    (11, 5, pus.pack_u16(1) + INNER[:4], None),  # the request id: the packet id and sequence control
    (11, 3, b"", None),
    (11, 1, b"", None),
    (17, 1, b"", (17, 2)),
    (17, 3, pus.pack_u16(100), (17, 4)),
    (9, 1, b"", (9, 2)),
    (3, 27, pus.pack_u16(1) + pus.pack_u16(SIDS[0]), (3, 25)),
    (20, 1, pus.pack_u16(1) + pus.pack_u16(TABLES.parameter_id("test", "greeting") or 0), (20, 2)),
    (8, 1, pus.pack_u16(_fid("test.record")) + pus.encode_value("str", "ordered"), (8, 130)),
    (RESYNC_SERVICE, 1, bytes(RESYNC_PADDING), (RESYNC_SERVICE, 2)),
]


def test_every_served_telecommand_is_covered() -> None:
    """A new telecommand handler must be added to CASES, with its reply if it has one."""
    served = {(s, t) for s, subs in HANDLERS.items() for t in subs}
    covered = {(s, t) for s, t, _, _ in CASES} | {(RESYNC_SERVICE, 3)}
    assert served == covered, f"not covered: {sorted(served - covered)}; not served: {sorted(covered - served)}"


def _order(reports: list[Any], reply: tuple[int, int] | None) -> list[tuple[int, int]]:
    """The verification reports and the expected reply, in arrival order (spontaneous telemetry left out)."""
    pairs = [(int(r.service), int(r.message_subtype)) for r in reports]
    return [p for p in pairs if p[0] == 1 or p == reply]


async def test_reports_come_in_ecss_order_for_every_telecommand(link: Link) -> None:
    """Acceptance, start, the reply, completion: for each TC type, with every success report asked for."""
    g = link.ground
    wrong = {}
    nonce = b""
    for service, subtype, data, reply in CASES:
        counter = 0 if service == RESYNC_SERVICE else None
        out = await g.request(g.build(service, subtype, data, ack_flags=0b1011, counter=counter), timeout=10)
        assert out.failure() is None, (service, subtype, out.failure())
        want = [(1, 1), (1, 3), *([reply] if reply else []), (1, 7)]
        got = _order(out.reports, reply)
        if got != want:
            wrong[f"TC[{service},{subtype}]"] = got
        if reply == (RESYNC_SERVICE, 2):
            nonce = next(bytes(r.source_data[:NONCE_LEN]) for r in out.reports if r.service == RESYNC_SERVICE)
    out = await g.request(
        g.build(RESYNC_SERVICE, 3, nonce + (2**40).to_bytes(8, "big"), ack_flags=0b1011, counter=0), timeout=10
    )
    got = _order(out.reports, (RESYNC_SERVICE, 4))
    if got != [(1, 1), (1, 3), (RESYNC_SERVICE, 4), (1, 7)]:
        wrong[f"TC[{RESYNC_SERVICE},3]"] = got
    assert not wrong, f"reports out of ECSS order (want [1,1], [1,3], reply, [1,7]): {wrong}"
