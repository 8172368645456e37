"""The telecommand path: parse, authenticate, accept, start, execute, complete — every step reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flightos import CommandError
from flightos.ground import pus
from flightos.ground.codes import Failure
from flightos.ground.security import COUNTER_FREE, AuthError, open_tc
from services.ground.handlers import HANDLERS, Reject, command_failure
from services.ground.link import Address, Transport
from services.ground.protection import REQUEST_SIZE

if TYPE_CHECKING:
    from services.ground import Ground


@dataclass
class Context:
    """One telecommand in flight: where it came from and which reports it asked for."""

    tc: pus.Telecommand
    addr: Address | None
    link: Transport | None
    scheduled: bool = False
    started: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """For logs and the schedule's source column."""
        return self.tc.label + (" (scheduled)" if self.scheduled else "")


async def handle(g: Ground, raw: bytes, addr: Address | None, link: Transport | None, scheduled: bool = False) -> None:
    """Run one telecommand packet through the whole path; never raises."""
    g.counters["tc_received"] += 1
    REQUEST_SIZE.set(len(raw))  # this task's answers to untrusted input are never larger than this
    try:
        tc = pus.parse_tc(raw, g.apid)
    except pus.TcError as exc:
        g.counters["tc_rejected"] += 1
        if exc.request_id is None:
            g.counters["tc_dropped"] += 1
            await g.reject("malformed", "UNREADABLE", addr, exc.message)
            return
        await g.reject("malformed", exc.code.name, addr, exc.message)
        await g.verify_failure(1, 2, exc.request_id, exc.code, exc.message, addr, link)
        return
    ctx = Context(tc, addr, link, scheduled)
    data = tc.app_data
    if g.auth and not scheduled:
        try:
            sealed = open_tc(tc.raw, data, g.keys)
            if (tc.service, tc.subtype) not in COUNTER_FREE:  # nonce and resync: fresh by the on-board nonce
                g.replay.accept(sealed.key_id, sealed.counter)  # committed before anything runs; locked keys refused
            data = sealed.payload
            ctx.extra["key_id"] = sealed.key_id
        except AuthError as exc:
            g.counters["tc_auth_rejected"] += 1
            await g.verify_failure(1, 2, tc.request_id, exc.code, exc.message, addr, link)
            await g.reject("auth", exc.code.name, addr, f"{tc.label}: {exc.message}")
            return
    if not scheduled and addr is not None and link is not None and (tc.service, tc.subtype) not in COUNTER_FREE:
        g.authenticated(addr, link)  # only now (and not for a replayable nonce request) may this source become
        #                              the downlink destination and bring contact
    handler = HANDLERS.get(tc.service, {}).get(tc.subtype)
    if handler is None:
        code = Failure.UNKNOWN_SERVICE if tc.service not in HANDLERS else Failure.UNKNOWN_SUBTYPE
        g.counters["tc_rejected"] += 1
        await g.verify_failure(1, 2, tc.request_id, code, f"{tc.label}: not a telecommand this spacecraft serves",
                               addr, link, trusted=True)
        return
    g.counters["tc_accepted"] += 1
    if tc.ack_flags & 0b0001:
        await g.verify_success(1, 1, ctx)
    try:
        await handler(g, ctx, data)
        await g.start(ctx)  # handlers that do their checks first start themselves; the rest start here
    except Reject as rej:
        await _fail(g, ctx, rej.code, rej.message)
        return
    except CommandError as err:
        failure = command_failure(err)
        await _fail(g, ctx, failure.code, failure.message)
        return
    except Exception as exc:  # a bug here must not take the link down
        g.log.exception("ground.handler_failed", tc=tc.label)
        await _fail(g, ctx, Failure.INTERNAL, f"{type(exc).__name__}: {exc}")
        return
    g.counters["tc_completed"] += 1
    if tc.ack_flags & 0b1000:
        await g.verify_success(1, 7, ctx)


async def _fail(g: Ground, ctx: Context, code: Failure, message: str) -> None:
    """Start failure if the command never started, completion failure if it did; both always sent."""
    g.counters["tc_failed"] += 1
    subtype = 8 if ctx.started else 4
    await g.verify_failure(1, subtype, ctx.tc.request_id, code, message, ctx.addr, ctx.link, trusted=True)
