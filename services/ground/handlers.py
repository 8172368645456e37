"""Telecommand handlers, one per PUS service, each a small function of (port, telecommand, data).

Each is handed the narrowest port it uses (``services.ground.ports``): ``Verifier`` to answer,
``Stores`` to change what is kept on board, or the whole ``TcPort``; never the ground service itself.

A handler returns normally for success or raises ``Reject`` with an ST[01] failure code; what it
reports besides (values, HK, summaries) it sends itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flightos import CommandError, Severity
from flightos.ground import pus
from flightos.ground.codes import COMMAND_ERRORS, Failure
from flightos.ground.security import NONCE_LEN, RESYNC_PADDING, RESYNC_SERVICE, AuthError
from services.ground.events import GroundEvent
from services.ground.ports import Context, OnBoard, Stores, TcPort, Verifier
from services.ground.reports import value_report
from services.ground.schedule import Schedule

PROGRESS_S = 1.0
"""How often a running function reports progress (when its TC asked for progress reports)."""


class Reject(Exception):
    """A telecommand fails with an ST[01] code and a reason."""

    def __init__(self, code: Failure, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[TcPort, Context, bytes], Awaitable[None]]


def _count_list(data: bytes, item: int, what: str) -> list[int]:
    """``N`` (u16) then N items of ``item`` bytes (2 or 4) -> the items."""
    try:
        n = pus.u16(data, 0)
        if len(data) != 2 + n * item:
            raise ValueError(f"{what}: {n} items need {2 + n * item} bytes, got {len(data)}")
        read = pus.u16 if item == 2 else pus.u32
        return [read(data, 2 + i * item) for i in range(n)]
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None


# ---- ST[17] test -----------------------------------------------------------------------------------
async def are_you_alive(port: Verifier, ctx: Context, data: bytes) -> None:
    """TC[17,1] -> TM[17,2]."""
    await port.reply(ctx, 17, 2, b"")


async def connection_test(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[17,3] with a target APID: checks the on-board bus to the kernel too -> TM[17,4]."""
    try:
        apid = pus.u16(data, 0)
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    if apid != port.apid:
        raise Reject(Failure.WRONG_APID, f"no application process {apid} on board (this is {port.apid})")
    try:
        await port.call("kernel", "ping", {}, timeout=2.0)
    except CommandError as err:
        raise Reject(Failure.SERVICE_UNAVAILABLE, f"on-board bus: {err.message}") from None
    await port.reply(ctx, 17, 4, pus.pack_u16(apid))


# ---- ST[08] function management ----------------------------------------------------------------------
async def perform_function(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[8,1]: function id (u16) then its arguments by declared type; the value comes back as TM[8,130]."""
    try:
        fid = pus.u16(data, 0)
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    fn = port.tables.functions.get(fid)
    if fn is None:
        raise Reject(Failure.UNKNOWN_FUNCTION, f"no function {fid} in the mission database")
    args = await port.signature(fn)
    if args is None:
        raise Reject(Failure.SERVICE_UNAVAILABLE, f"function {fid} ({fn.name}): cannot learn its arguments")
    try:
        values, _ = pus.decode_values([t for _, t in args], data, 2)
    except ValueError as exc:
        raise Reject(Failure.BAD_ARGUMENTS, f"function {fid} ({fn.name}): {exc}") from None
    kwargs = dict(zip([n for n, _ in args], values, strict=True))
    if fn.service == "jobs" and "tenant" in kwargs:
        # a tenant is whoever signed the telecommand: no key can act for another tenant
        key_id = ctx.extra.get("key_id")
        kwargs["tenant"] = f"k{key_id}" if key_id is not None else "ground"
    await port.start(ctx)
    call = port.run_command(fn.service, fn.command, kwargs)
    run: asyncio.Task[Any] = asyncio.get_running_loop().create_task(call)
    step = 0
    while not run.done():  # a long function reports progress (TM[1,5], step n) each PROGRESS_S while it runs
        await asyncio.wait([run], timeout=PROGRESS_S)
        if not run.done():
            step += 1
            await port.progress(ctx, step)
    value = run.result()
    if value is not None:
        await port.reply(ctx, 8, 130, value_report(fid, value))


# ---- ST[20] parameters ----------------------------------------------------------------------------------
async def report_parameters(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[20,1]: N (u16) parameter ids (u16) -> TM[20,2]: N then (id, value) pairs."""
    out = b""
    ids = _count_list(data, 2, "parameter ids")
    for pid in ids:
        p = port.tables.parameters.get(pid)
        if p is None:
            raise Reject(Failure.UNKNOWN_PARAMETER, f"no parameter {pid} in the mission database")
        ptype = await port.parameter_type(p)
        value = await port.run_command(p.service, "get_param", {"name": p.name})
        out += pus.pack_u16(pid) + pus.encode_value(ptype, value)
    await port.reply(ctx, 20, 2, pus.pack_u16(len(ids)) + out)


async def set_parameters(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[20,3]: N (u16) then (id u16, value) pairs; every value is checked by its service."""
    try:
        n, offset = pus.u16(data, 0), 2
        pairs = []
        for _ in range(n):
            pid = pus.u16(data, offset)
            p = port.tables.parameters.get(pid)
            if p is None:
                raise Reject(Failure.UNKNOWN_PARAMETER, f"no parameter {pid} in the mission database")
            value, offset = pus.decode_value(await port.parameter_type(p), data, offset + 2)
            pairs.append((p, value))
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} unexpected trailing byte(s)")
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    await port.start(ctx)
    for p, value in pairs:
        try:
            await port.call(p.service, "set_param", {"name": p.name, "value": value})
        except CommandError as err:
            raise Reject(Failure.BAD_PARAMETER_VALUE, f"{p.service}.{p.name}: {err.message}") from None


# ---- ST[03] housekeeping --------------------------------------------------------------------------------
def _sids(port: OnBoard, data: bytes) -> list[int]:
    sids = _count_list(data, 2, "structure ids")
    for sid in sids:
        if sid not in port.tables.hk:
            raise Reject(Failure.UNKNOWN_STRUCTURE, f"no housekeeping structure {sid}")
    return sids


async def enable_hk(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[3,5]: enable periodic generation of the listed structures."""
    port.housekeeping.set_enabled(_sids(port, data), True)


async def disable_hk(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[3,6]: disable periodic generation of the listed structures."""
    port.housekeeping.set_enabled(_sids(port, data), False)


async def one_shot_hk(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[3,27]: generate one report of each listed structure now."""
    for sid in _sids(port, data):
        await port.reply(ctx, 3, 25, port.housekeeping.report(sid))


async def modify_hk_interval(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[3,31]: N then (structure id u16, interval ms u32) pairs."""
    try:
        n = pus.u16(data, 0)
        if len(data) != 2 + 6 * n:
            raise ValueError(f"{n} pairs need {2 + 6 * n} bytes, got {len(data)}")
        pairs = [(pus.u16(data, 2 + 6 * i), pus.u32(data, 4 + 6 * i)) for i in range(n)]
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    for sid, ms in pairs:
        if sid not in port.tables.hk:
            raise Reject(Failure.UNKNOWN_STRUCTURE, f"no housekeeping structure {sid}")
        if ms < 100:
            raise Reject(Failure.BAD_APP_DATA, f"structure {sid}: interval {ms} ms is below 100 ms")
    for sid, ms in pairs:
        port.housekeeping.set_interval(sid, ms / 1000.0)


# ---- ST[05] events -------------------------------------------------------------------------------------
async def enable_events(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[5,5]: report the listed event ids again."""
    port.events.enable(_count_list(data, 2, "event ids"), True)


async def disable_events(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[5,6]: stop reporting the listed event ids."""
    port.events.enable(_count_list(data, 2, "event ids"), False)


# ---- ST[09] time ---------------------------------------------------------------------------------------
async def report_time(port: Verifier, ctx: Context, data: bytes) -> None:
    """TC[9,1] (flightos) -> TM[9,2]: the on-board time as a CDS short time code."""
    await port.reply(ctx, 9, 2, pus.unix_to_cds(time.time()))


# ---- ST[11] time-based scheduling -------------------------------------------------------------------------
def _schedule(port: Stores) -> Schedule:
    """The schedule, or a refusal naming why its store cannot be used now (disk full, damaged file)."""
    if port.schedule is None:
        raise Reject(Failure.SCHEDULE_REFUSED, f"the schedule cannot be used now: {port.schedule_cause}")
    return port.schedule


def _schedule_store(fn: Handler) -> Handler:
    """A schedule handler whose store failing (a full disk) refuses the TC with SCHEDULE_REFUSED and its cause."""

    async def run(port: TcPort, ctx: Context, data: bytes) -> None:
        try:
            await fn(port, ctx, data)
        except sqlite3.Error as exc:
            port.schedule_failed(exc)
            raise Reject(Failure.SCHEDULE_REFUSED, f"schedule store: {type(exc).__name__}: {exc}") from None

    run.__doc__ = fn.__doc__
    return run


@_schedule_store
async def enable_schedule(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[11,1]: release activities when they fall due."""
    _schedule(port).set_enabled(True)


@_schedule_store
async def disable_schedule(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[11,2]: hold every activity (they stay in the schedule)."""
    _schedule(port).set_enabled(False)


@_schedule_store
async def reset_schedule(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[11,3]: delete every activity."""
    _schedule(port).reset()


@_schedule_store
async def insert_activities(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[11,4]: N (u16), then N x (release time CDS short, embedded telecommand packet)."""
    try:
        n, offset = pus.u16(data, 0), 2
        acts = []
        for _ in range(n):
            release = pus.cds_to_unix(data[offset : offset + pus.TIMESTAMP_LEN])
            offset += pus.TIMESTAMP_LEN
            inner = pus.request_id_of(data[offset:])
            if inner is None or offset + 6 > len(data):
                raise ValueError(f"activity at byte {offset}: no embedded telecommand")
            length = int.from_bytes(data[offset + 4 : offset + 6], "big") + 7
            raw = data[offset : offset + length]
            pus.parse_tc(raw, port.apid)  # CRC and APID checked now, not at release
            acts.append((release, raw, inner.as_u32()))
            offset += length
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} unexpected trailing byte(s)")
    except pus.TcError as exc:
        raise Reject(Failure.BAD_APP_DATA, f"embedded telecommand: {exc.message}") from None
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    now = time.time()
    try:
        for release, raw, rid in acts:
            _schedule(port).insert(release, raw, rid, ctx.label, now)
    except ValueError as exc:
        raise Reject(Failure.SCHEDULE_REFUSED, str(exc)) from None


@_schedule_store
async def delete_activities(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[11,5]: N (u16) then request ids (u32) of activities to delete."""
    _schedule(port).delete(_count_list(data, 4, "request ids"))


@_schedule_store
async def time_shift(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[11,15]: shift every activity by a signed number of milliseconds (i64)."""
    try:
        (ms,), _ = pus.decode_values(["int"], data)
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    try:
        _schedule(port).time_shift(ms / 1000.0, time.time())
    except ValueError as exc:
        raise Reject(Failure.SCHEDULE_REFUSED, str(exc)) from None


REPORT_DATA_MAX = 60_000
"""Most bytes of one schedule report's data: a longer schedule is reported in several (each one a datagram)."""


async def _reports(port: TcPort, ctx: Context, subtype: int, entries: list[bytes]) -> None:
    """Entries as TM[11,subtype] reports, each N (u16) then its entries, none over REPORT_DATA_MAX (N=0 if none)."""
    batch: list[bytes] = []
    size = 2
    for entry in entries:
        if batch and size + len(entry) > REPORT_DATA_MAX:
            await port.reply(ctx, 11, subtype, pus.pack_u16(len(batch)) + b"".join(batch))
            batch, size = [], 2
        batch.append(entry)
        size += len(entry)
    if batch or not entries:
        await port.reply(ctx, 11, subtype, pus.pack_u16(len(batch)) + b"".join(batch))


@_schedule_store
async def detail_report(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[11,16] -> TM[11,10]: N, then (release CDS, the telecommand packet) for each activity, as TC[11,4] has them."""
    await _reports(port, ctx, 10, [pus.unix_to_cds(a.release_utc) + a.tc for a in _schedule(port).summary()])


@_schedule_store
async def summary(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[11,17] -> TM[11,13]: N, then (release CDS, request id u32) for each activity."""
    acts = _schedule(port).summary()
    await _reports(
        port, ctx, 13, [pus.unix_to_cds(a.release_utc) + pus.pack_u32(a.request_id & 0xFFFFFFFF) for a in acts]
    )


# ---- ST[129] (flightos) replay-protection resync --------------------------------------------------------


async def replay_lost(port: TcPort) -> None:
    """At start: say loudly which anti-replay file was lost, why, and which keys are locked until a resync."""
    replay = port.replay
    locked = replay.locked_ids()
    what = (
        f"keys {', '.join(map(str, locked))} locked until ground resyncs (flightos ground resync)"
        if locked
        else "no key had started: nothing locked"
    )
    if replay.unavailable:
        what = "every counter TC is refused until it opens (retried each second)"
    await port.event(
        f"anti-replay state {replay.path} {replay.loss}: {what}",
        Severity.HIGH,
        event_id=GroundEvent.REPLAY_STATE_LOST,
        file=str(replay.path),
        cause=replay.loss,
        locked=locked,
        kept=str(replay.quarantined) if replay.quarantined else None,
    )


async def resync_nonce(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[129,1] (MAC only, no fresh counter; 16+ bytes of padding) -> TM[129,2]: the nonce (16 bytes), validity ms.

    The padding keeps the answer smaller than the request: a replayed request is no reflector.
    """
    if len(data) < RESYNC_PADDING:
        raise Reject(Failure.BAD_APP_DATA, f"TC[129,1] needs {RESYNC_PADDING} bytes of padding")
    nonce, valid_s = port.replay.nonce()
    await port.reply(ctx, 129, 2, nonce + pus.pack_u32(int(valid_s * 1000)))


async def resync_counters(port: TcPort, ctx: Context, data: bytes) -> None:
    """TC[129,3]: nonce (16 bytes) + counter floor (u64) -> every key's floor; TM[129,4]: N, (key id, floor)."""
    if len(data) != NONCE_LEN + 8:
        raise Reject(
            Failure.BAD_APP_DATA, f"TC[129,3] needs a {NONCE_LEN}-byte nonce and a u64 floor, got {len(data)} bytes"
        )
    floor = int.from_bytes(data[NONCE_LEN:], "big")
    try:
        floors = port.replay.resync(data[:NONCE_LEN], floor)
    except AuthError as exc:  # a replayed or stale resync: counted and reported with the other rejections
        port.counters["resync_refused"] += 1
        await port.reject("auth", exc.code.name, ctx.addr, f"{ctx.tc.label}: {exc.message}")
        raise Reject(exc.code, exc.message) from None
    port.counters["resyncs"] += 1
    await port.event(
        f"anti-replay counters resynchronised by ground (key {ctx.extra.get('key_id')}): floor {floor} "
        f"for keys {', '.join(map(str, floors)) or 'none'}; link unlocked",
        Severity.MEDIUM,
        event_id=GroundEvent.REPLAY_RESYNCED,
        key_id=ctx.extra.get("key_id"),
        floor=floor,
        keys=sorted(floors),
    )
    body = b"".join(pus.pack_u16(kid) + value.to_bytes(8, "big") for kid, value in sorted(floors.items()))
    await port.reply(ctx, 129, 4, pus.pack_u16(len(floors)) + body)


# ---- ST[15] on-board storage: acknowledging telemetry (flightos) ------------------------------------------
async def acknowledge_tm(port: Stores, ctx: Context, data: bytes) -> None:
    """TC[15,130] (flightos): ground has these TM packets (N u16, then N x (sequence count u16, CDS time)).

    What it names leaves the store; kept telemetry is sent again until acknowledged. Unknown identities are
    ignored (already acknowledged, or never stored).
    """
    try:
        identities = pus.parse_ack(data)
    except ValueError as exc:
        raise Reject(Failure.BAD_APP_DATA, str(exc)) from None
    port.acknowledge(identities)


HANDLERS: dict[int, dict[int, Handler]] = {
    3: {5: enable_hk, 6: disable_hk, 27: one_shot_hk, 31: modify_hk_interval},
    5: {5: enable_events, 6: disable_events},
    8: {1: perform_function},
    9: {1: report_time},
    11: {
        1: enable_schedule,
        2: disable_schedule,
        3: reset_schedule,
        4: insert_activities,
        5: delete_activities,
        15: time_shift,
        16: detail_report,
        17: summary,
    },
    15: {130: acknowledge_tm},
    17: {1: are_you_alive, 3: connection_test},
    20: {1: report_parameters, 3: set_parameters},
    RESYNC_SERVICE: {1: resync_nonce, 3: resync_counters},
}


def command_failure(err: CommandError) -> Reject:
    """A typed bus error as an ST[01] failure."""
    return Reject(COMMAND_ERRORS.get(err.code, Failure.COMMAND_FAILED), f"{err.code}: {err.message}")


def describe_handlers() -> dict[str, Any]:
    """The telecommands served, for docs and the mission database."""
    return {f"TC[{s},{t}]": (h.__doc__ or "").split("\n")[0] for s, subs in HANDLERS.items() for t, h in subs.items()}
