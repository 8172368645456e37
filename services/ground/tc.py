"""The telecommand path: parse, authenticate, accept, start, execute, complete — every step reported."""

from __future__ import annotations

from flightos import CommandError
from flightos.ground import pus
from flightos.ground.codes import Failure
from flightos.ground.security import COUNTER_FREE, AuthError, open_tc
from services.ground.handlers import HANDLERS, Reject, command_failure
from services.ground.link import Address, Transport
from services.ground.ports import Context, TcPort
from services.ground.protection import REQUEST_SIZE


async def handle(
    port: TcPort, raw: bytes, addr: Address | None, link: Transport | None, scheduled: bool = False
) -> None:
    """Run one telecommand packet through the whole path; never raises."""
    port.counters["tc_received"] += 1
    REQUEST_SIZE.set(len(raw))  # this task's answers to untrusted input are never larger than this
    try:
        tc = pus.parse_tc(raw, port.apid)
    except pus.TcError as exc:
        port.counters["tc_rejected"] += 1
        if exc.request_id is None:
            port.counters["tc_dropped"] += 1
            await port.reject("malformed", "UNREADABLE", addr, exc.message)
            return
        await port.reject("malformed", exc.code.name, addr, exc.message)
        await port.verify_failure(1, 2, exc.request_id, exc.code, exc.message, addr, link)
        return
    ctx = Context(tc, addr, link, scheduled)
    data = tc.app_data
    if port.auth and not scheduled:
        try:
            sealed = open_tc(tc.raw, data, port.keys)
            if (tc.service, tc.subtype) not in COUNTER_FREE:  # nonce and resync: fresh by the on-board nonce
                port.replay.accept(sealed.key_id, sealed.counter)  # committed before anything runs; locked keys refused
            data = sealed.payload
            ctx.extra["key_id"] = sealed.key_id
        except AuthError as exc:
            port.counters["tc_auth_rejected"] += 1
            await port.verify_failure(1, 2, tc.request_id, exc.code, exc.message, addr, link)
            await port.reject("auth", exc.code.name, addr, f"{tc.label}: {exc.message}")
            return
    if not scheduled and addr is not None and link is not None and (tc.service, tc.subtype) not in COUNTER_FREE:
        port.authenticated(addr, link)  # only now (and not for a replayable nonce request) may this source become
        #                              the downlink destination and bring contact
    handler = HANDLERS.get(tc.service, {}).get(tc.subtype)
    if handler is None:
        code = Failure.UNKNOWN_SERVICE if tc.service not in HANDLERS else Failure.UNKNOWN_SUBTYPE
        port.counters["tc_rejected"] += 1
        await port.verify_failure(
            1, 2, tc.request_id, code, f"{tc.label}: not a telecommand this spacecraft serves", addr, link, trusted=True
        )
        return
    port.counters["tc_accepted"] += 1
    if tc.ack_flags & 0b0001:
        await port.verify_success(1, 1, ctx)
    try:
        await handler(port, ctx, data)
        await port.start(ctx)  # handlers that do their checks first start themselves; the rest start here
    except Reject as rej:
        await _fail(port, ctx, rej.code, rej.message)
        return
    except CommandError as err:
        failure = command_failure(err)
        await _fail(port, ctx, failure.code, failure.message)
        return
    except Exception as exc:  # a bug here must not take the link down
        port.log.exception("ground.handler_failed", tc=tc.label)
        await _fail(port, ctx, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
        return
    port.counters["tc_completed"] += 1
    if tc.ack_flags & 0b1000:
        await port.verify_success(1, 7, ctx)


async def _fail(port: TcPort, ctx: Context, code: Failure, message: str) -> None:
    """Start failure if the command never started, completion failure if it did; both always sent."""
    port.counters["tc_failed"] += 1
    subtype = 8 if ctx.started else 4
    await port.verify_failure(1, subtype, ctx.tc.request_id, code, message, ctx.addr, ctx.link, trusted=True)
