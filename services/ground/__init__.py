"""The ``ground`` service: CCSDS Space Packets with PUS-C over UDP and TCP, authenticated, store-and-forward.

It maps ground's telecommands onto the bus (ST[08] functions are service commands, ST[20]
parameters are SDK parameters), reports what happens (ST[01], ST[05] events, ST[03] housekeeping),
releases time-tagged commands (ST[11]), and queues telemetry in SQLite while there is no contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from flightos import CommandError, Message, Service, Severity, command, periodic, subscribe
from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from flightos.ground.security import KeyStore, ReplayGuard
from services.ground import contact as contacts
from services.ground.downlink import Notice, RateLimit, Retention, TokenBucket
from services.ground.durable import is_corruption, open_store, quarantine
from services.ground.events import GroundEvent
from services.ground.generation import EventFilter, HousekeepingReports
from services.ground.handlers import Reject, command_failure, replay_lost
from services.ground.link import Address, TcpLimits, TcpTransport, Transport, UdpTransport
from services.ground.options import GroundOptions, endpoint
from services.ground.ports import Context
from services.ground.protection import REQUEST_SIZE, Bucket, RejectionLog, Summary
from services.ground.reports import SEVERITY_SUBTYPE, event_data, priority
from services.ground.schedule import Schedule
from services.ground.tc import handle

REJECTIONS: dict[str, tuple[GroundEvent, Severity, str, str]] = {
    "auth": (GroundEvent.TC_REJECTED, Severity.HIGH, "telecommand rejected", "telecommands rejected"),
    "malformed": (
        GroundEvent.PACKETS_MALFORMED,
        Severity.LOW,
        "malformed packet rejected",
        "malformed packets rejected",
    ),
    "tcp": (GroundEvent.TCP_LIMITED, Severity.LOW, "TCP connection limited", "TCP connections limited"),
}
"""Event id, severity and wording of each kind of rejection report (docs/events.md)."""
STORE_EVENTS: dict[str, tuple[GroundEvent, Severity]] = {
    "unusable": (GroundEvent.DOWNLINK_STORE_UNUSABLE, Severity.MEDIUM),
    "recovered": (GroundEvent.DOWNLINK_STORE_RECOVERED, Severity.INFO),
    "dropped": (GroundEvent.TELEMETRY_DROPPED, Severity.MEDIUM),
    "quarantined": (GroundEvent.GROUND_STORE_QUARANTINED, Severity.HIGH),
    "schedule_unusable": (GroundEvent.SCHEDULE_UNUSABLE, Severity.MEDIUM),
}
"""Event id and severity of what the ground's stores report (docs/events.md)."""
STORE_EVENT_INTERVAL_S = 60.0
"""At most one store event of a kind per this many seconds (counts are summed); quarantines are never held."""
TCP_NOTICES = {
    "tcp_refused": "connection cap reached",
    "tcp_idle_closed": "idle timeout",
    "tcp_stalled_closed": "peer stopped reading",
}
"""TCP link notices that are reported as events (the rest are only counted)."""


class Ground(Service):
    """The spacecraft's link to the ground."""

    name = "ground"
    options_schema: ClassVar[type[GroundOptions]] = GroundOptions

    def __init__(self) -> None:
        super().__init__()
        self.links: list[Transport] = []
        self.last_peer: tuple[Address, Transport] | None = None
        """Where the last authenticated telecommand came from: replies and telemetry go there."""
        self.ground_addrs: list[Address] = []
        self.counters: Counter[str] = Counter()
        self._signatures: dict[str, list[tuple[str, str]] | None] = {}
        self._param_types: dict[str, str] = {}
        self._seq = 0
        self._position: tuple[float, float] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def on_start(self) -> None:
        cfg: GroundOptions = self.config  # checked by the kernel at load: a bad value never gets here
        self.apid = cfg.apid
        self.auth = cfg.auth
        self.command_timeout = cfg.command_timeout_s
        self.reply_budget = Bucket(cfg.reject_reply_rate_hz, cfg.reject_reply_burst)
        self.rejections = RejectionLog(cfg.reject_report_s)
        self.min_failure_report = len(
            pus.verification(2, pus.request_id_of(bytes(6)), self.apid, 0, failure=Failure.INTERNAL)
        )  # with no reason text
        self.tables = mdb.load([Path(p) for p in cfg.mdb])
        keys_file = Path(cfg.keys_file) if cfg.keys_file else self.data_dir / "keys.json"
        self.keys = KeyStore(keys_file)
        self.replay = ReplayGuard(
            self.data_dir / "replay.sqlite", cfg.replay_window, self.keys, nonce_s=cfg.resync_nonce_s
        )
        if self.replay.loss is not None:  # lost, empty or corrupt: say so; keys that had started stay locked
            await replay_lost(self)
        self.store_forward = Retention(
            self.data_dir / "downlink.sqlite", cfg.store_max_mb << 20, memory_bytes=cfg.store_memory_kb << 10
        )
        self.ack_timeout = cfg.ack_timeout_s
        self.store_events = RateLimit(STORE_EVENT_INTERVAL_S)
        self._store_notices: list[Notice] = []
        self._contact_before = False
        self._heard_before: set[Address] = set()
        rate = cfg.downlink_rate_bytes_s
        self.budget = TokenBucket(rate, cfg.downlink_burst_bytes) if rate > 0 else None
        self.contact = contacts.from_config(cfg.contact.table(), "services.ground.options.contact")
        self.schedule: Schedule | None = None
        self.schedule_cause = ""
        self._open_schedule()
        self.housekeeping = HousekeepingReports(self.tables.hk, self.store)
        self.events = EventFilter(self.store)
        self.ground_addrs = cfg.ground_addrs()
        if not self.auth:
            await self.event(
                "telecommand authentication is DISABLED by the target (lab bench only)",
                Severity.MEDIUM,
                event_id=GroundEvent.AUTH_DISABLED,
            )
        elif not self.keys.ids():
            await self.event(
                f"no telecommand keys provisioned in {keys_file}: every TC will be rejected (flightos keys add)",
                Severity.MEDIUM,
                event_id=GroundEvent.NO_KEYS,
            )
        self.links.append(await UdpTransport.open(endpoint(cfg.udp_bind, "udp_bind"), self._on_packet))
        if cfg.tcp_bind:
            limits = TcpLimits(cfg.tcp_max_connections, cfg.tcp_idle_s, cfg.tcp_buffer_bytes, cfg.tcp_stall_s)
            self.links.append(
                await TcpTransport.open(
                    endpoint(cfg.tcp_bind, "tcp_bind"), self._on_packet, self._garbage, limits, self._tcp_notice
                )
            )
        for s in self.tables.hk.values():
            self.subscribe(s.topic, self._on_hk_topic)
        self.log.info(
            "ground.listening",
            links=[f"{lk.name}:{lk.bound}" for lk in self.links],
            apid=self.apid,
            auth=self.auth,
            keys=self.keys.ids(),
            functions=len(self.tables.functions),
        )
        await self.store_notices()

    async def on_stop(self) -> None:
        for lk in self.links:
            lk.close()
        schedule, self.schedule = self.schedule, None  # a TC racing the stop is refused, never run on a closed file
        for closer in (self.store_forward.close, schedule.close if schedule else None, self.replay.close):
            with contextlib.suppress(Exception):
                if closer is not None:
                    closer()

    # ---- receiving ---------------------------------------------------------------------------------
    def _on_packet(self, raw: bytes, addr: Address, link: Transport) -> None:
        """A packet from a link: nothing about the link changes until it is authenticated (``authenticated``)."""
        task = asyncio.get_running_loop().create_task(handle(self, raw, addr, link))
        self._inflight.add(task)  # keep a reference until it is done
        task.add_done_callback(self._inflight.discard)

    def authenticated(self, addr: Address, link: Transport) -> None:
        """A telecommand from ``addr`` passed authentication (or is well formed, with auth off): ground is there."""
        self.last_peer = (addr, link)
        if isinstance(self.contact, contacts.Heeds):
            self.contact.heard(time.time())

    def _garbage(self, reason: str, addr: Address) -> None:
        self.counters["tc_dropped"] += 1
        self._note_later("malformed", "UNREADABLE", addr, reason)

    def _tcp_notice(self, what: str, addr: Address) -> None:
        self.counters[what] += 1
        if what in TCP_NOTICES:
            self._note_later("tcp", TCP_NOTICES[what], addr, what)

    def _note_later(self, kind: str, reason: str, addr: Address | None, example: str) -> None:
        """``reject`` from synchronous code (a link callback)."""
        first = self.rejections.note(kind, reason, addr, example)
        if first is not None:
            task = asyncio.get_running_loop().create_task(self._report(first))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def reject(self, kind: str, reason: str, addr: Address | None, example: str) -> None:
        """Count a rejection towards its reason's report; the first after a quiet interval is reported now."""
        first = self.rejections.note(kind, reason, addr, example)
        if first is not None:
            await self._report(first)

    async def _report(self, s: Summary) -> None:
        event_id, severity, one, many = REJECTIONS[s.kind]
        await self.event(
            s.text(one, many),
            severity,
            event_id=event_id,
            reason=s.reason,
            count=s.count,
            sources=s.sources,
            seconds=round(s.seconds, 1),
            source=s.source,
        )

    @periodic(hz=2)
    async def report_rejections(self) -> None:
        """One event per rejection reason per ``reject_report_s`` while rejections keep coming."""
        for summary in self.rejections.due():
            await self._report(summary)

    # ---- what handlers use -------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The next TM source sequence count."""
        self._seq = (self._seq + 1) & 0x3FFF
        return self._seq

    async def call(
        self, service: str, command: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> Any:
        """A bus command (typed errors propagate)."""
        return await super().call(service, command, args, timeout=timeout)

    async def run_command(self, service: str, command_name: str, args: dict[str, Any]) -> Any:
        """A bus command whose typed error becomes an ST[01] failure."""
        try:
            return await self.call(service, command_name, args, timeout=self.command_timeout)
        except CommandError as err:
            raise command_failure(err) from None

    async def signature(self, fn: mdb.Function) -> list[tuple[str, str]] | None:
        """A function's (name, type) arguments: from the table, else from the service's describe (cached)."""
        if fn.args is not None:
            return list(fn.args)
        if fn.name not in self._signatures:
            try:
                desc = await self.call(fn.service, "describe", {}, timeout=3.0)
            except CommandError:
                return None  # not cached: ask again next time
            spec = desc.get("commands", {}).get(fn.command)
            self._signatures[fn.name] = (
                None
                if spec is None
                else [(a["name"], a["type"] if a["type"] in mdb.VALUE_TYPES else "any") for a in spec["args"]]
            )
            for p in desc.get("parameters", []):
                self._param_types[f"{fn.service}.{p['name']}"] = p["type"] if p["type"] in mdb.VALUE_TYPES else "any"
        sig = self._signatures[fn.name]
        if sig is None:
            raise Reject(Failure.UNKNOWN_FUNCTION, f"{fn.name} is in the mission database but not on board")
        return sig

    async def parameter_type(self, p: mdb.ParameterDef) -> str:
        """A parameter's value type: from the table, else from the service's describe."""
        if p.type is not None:
            return p.type
        key = f"{p.service}.{p.name}"
        if key not in self._param_types:
            try:
                desc = await self.call(p.service, "describe", {}, timeout=3.0)
            except CommandError as err:
                raise command_failure(err) from None
            for d in desc.get("parameters", []):
                self._param_types[f"{p.service}.{d['name']}"] = d["type"] if d["type"] in mdb.VALUE_TYPES else "any"
        if key not in self._param_types:
            raise Reject(Failure.UNKNOWN_PARAMETER, f"{key} is in the mission database but not on board")
        return self._param_types[key]

    async def start(self, ctx: Context) -> None:
        """Report the start of execution once (if asked for)."""
        if ctx.started:
            return
        ctx.started = True
        if ctx.tc.ack_flags & 0b0010:
            await self.verify_success(1, 3, ctx)

    async def progress(self, ctx: Context, step: int) -> None:
        """A progress report TM[1,5] with a step number, if the TC asked for progress reports."""
        if ctx.tc.ack_flags & 0b0100:
            packet = pus.verification(5, ctx.tc.request_id, self.apid, self.next_seq(), step=step & 0xFF)
            await self._answer(packet, ctx.addr, ctx.link, priority(1, 5))

    async def reply(self, ctx: Context, service: int, subtype: int, data: bytes) -> None:
        """A report answering a telecommand: straight back to its sender (or downlinked if scheduled).

        Execution has started once there is an answer, so TM[1,3] goes first (ECSS-E-ST-70-41C order).
        """
        await self.start(ctx)
        packet = pus.tm(service, subtype, data, self.apid, self.next_seq())
        if ctx.addr is not None and ctx.link is not None and ctx.link.send(packet, ctx.addr):
            self.counters["tm_sent"] += 1
            return
        await self.downlink_tm(packet, priority(service, subtype))

    async def verify_success(self, service: int, subtype: int, ctx: Context) -> None:
        """A success report of ST[01]."""
        packet = pus.verification(subtype, ctx.tc.request_id, self.apid, self.next_seq())
        await self._answer(packet, ctx.addr, ctx.link, priority(service, subtype))

    async def verify_failure(
        self,
        service: int,
        subtype: int,
        request_id: Any,
        code: Failure,
        message: str,
        addr: Address | None,
        link: Transport | None,
        trusted: bool = False,
    ) -> None:
        """A failure report of ST[01], its reason as data.

        For an authenticated (``trusted``) or scheduled TC it is always sent, and logged. Otherwise it goes only
        back to the source, within the reply budget, and no larger than the packet it answers (else not at all):
        the rejection itself is counted and reported by ``reject``.
        """
        if trusted or addr is None or link is None:
            packet = pus.verification(
                subtype, request_id, self.apid, self.next_seq(), failure=code, data=message.encode()[:200]
            )
            self.log.warning("ground.tc_failed", report=f"TM[1,{subtype}]", code=code.name, reason=message)
            await self._answer(packet, addr, link, priority(service, subtype))
            return
        room = (REQUEST_SIZE.get() or 0) - self.min_failure_report
        if not self.config.reject_replies:
            self.counters["replies_off"] += 1
        elif room < 0:
            self.counters["replies_too_large"] += 1  # even an empty report would be larger than what came in
        elif not self.reply_budget.take():
            self.counters["replies_rate_limited"] += 1
        else:
            packet = pus.verification(
                subtype, request_id, self.apid, self.next_seq(), failure=code, data=message.encode()[: min(200, room)]
            )
            if link.send(packet, addr):
                self.counters["replies_untrusted"] += 1

    async def _answer(self, packet: bytes, addr: Address | None, link: Transport | None, prio: int) -> None:
        if addr is not None and link is not None and link.send(packet, addr):
            self.counters["tm_sent"] += 1
        else:
            await self.downlink_tm(packet, prio)

    # ---- downlink with store-and-forward -----------------------------------------------------------------
    def destinations(self) -> list[tuple[Address, Transport]]:
        """Where spontaneous telemetry goes: the configured ground addresses and the source of the last
        authenticated telecommand (never an address that only sent unauthenticated input)."""
        out = []
        if self.last_peer is not None:
            out.append(self.last_peer)
        if self.links:
            udp = self.links[0]
            out += [(a, udp) for a in self.ground_addrs if not any(a == b for b, _ in out)]
        return out

    def in_contact(self) -> bool:
        """Whether the link is up now (per the configured contact model)."""
        return bool(self.destinations()) and self.contact.in_contact(time.time(), self._position)

    async def downlink_tm(self, packet: bytes, prio: int) -> None:
        """Keep a packet until ground acknowledges it; send it at once if in contact, nothing waits, budget allows."""
        send_now = self.in_contact() and self.store_forward.pending() == 0 and self._spend(len(packet))
        sent = send_now and self._send(packet) > 0
        if not self.store_forward.put(packet, prio, sent_at=time.monotonic() if sent else None):
            self.counters["tm_evicted"] += 1
        elif not sent:
            self.counters["tm_stored"] += 1
        await self.store_notices()

    def _spend(self, n: int) -> bool:
        return self.budget is None or self.budget.take(n)

    def _send(self, packet: bytes) -> int:
        """Send to every destination; how many took it."""
        took = sum(1 for addr, link in self.destinations() if link.send(packet, addr))
        self.counters["tm_sent"] += took
        return took

    @periodic(hz=10)
    async def drain(self) -> None:
        """In contact, send kept telemetry by priority within the budget: the never sent, then the unacknowledged.

        A packet not acknowledged within ``ack_timeout_s`` goes again; a new contact (or a new ground address:
        another station, a restarted ground tool) resends all of them.
        """
        contact = self.in_contact()
        heard = {addr for addr, _ in self.destinations()}
        if contact and (not self._contact_before or not heard <= self._heard_before):
            self.store_forward.requeue()
        self._contact_before, self._heard_before = contact, heard
        if not contact:
            return
        allowance = int(self.budget.available()) if self.budget is not None else 1 << 20
        now = time.monotonic()
        batch = self.store_forward.peek(max(allowance, 0), resend_before=now - self.ack_timeout)
        sent = []
        for row_id, packet in batch:
            if not self._spend(len(packet)) or self._send(packet) == 0:
                break  # out of budget, or no destination took it: the rest waits
            sent.append(row_id)
        if sent:
            self.store_forward.mark_sent(sent, now)
            self.counters["tm_forwarded"] += len(sent)

    def acknowledge(self, identities: list[bytes]) -> int:
        """Ground has these TM packets (TC[15,130]): they leave the store; how many were found."""
        found = self.store_forward.acknowledge(identities)
        self.counters["tm_acknowledged"] += found
        return found

    def _open_schedule(self) -> None:
        """Open the schedule (quarantining a damaged file); while it cannot be opened, schedule TCs are refused."""
        path = self.data_dir / "schedule.sqlite"
        opened = open_store(path, "schedule", lambda: Schedule(path))
        if opened.incident:
            self._store_notices.append(Notice("quarantined", opened.incident, fields={"file": str(path)}))
        self.schedule = opened.store
        if opened.store is None and not self.schedule_cause:
            self._store_notices.append(
                Notice(
                    "schedule_unusable",
                    f"schedule {path} cannot be used "
                    f"({opened.unusable}): schedule telecommands are refused until it can",
                    fields={"file": str(path), "cause": opened.unusable},
                )
            )
        self.schedule_cause = opened.unusable

    def schedule_failed(self, exc: Exception) -> None:
        """A schedule operation failed at run time: close it and open it again (quarantined if damaged)."""
        if self.schedule is not None:
            with contextlib.suppress(Exception):
                self.schedule.close()
        self.schedule = None
        if is_corruption(exc):
            kept = quarantine(self.data_dir / "schedule.sqlite")
            self._store_notices.append(
                Notice(
                    "quarantined",
                    f"schedule {self.data_dir / 'schedule.sqlite'} cannot be used ({exc})"
                    + (f"; kept as {kept.name}" if kept else "")
                    + "; starting afresh",
                    fields={"file": str(self.data_dir / "schedule.sqlite")},
                )
            )
        self._open_schedule()

    async def store_notices(self) -> None:
        """Events for what the stores reported: a quarantine at once, the rest at most once per kind a minute."""
        notices, self._store_notices = self.store_forward.take_notices() + self._store_notices, []
        for n in notices:
            out = n if n.kind == "quarantined" else self.store_events.offer(n)
            if out is not None:
                await self._store_event(out)
        for n in self.store_events.due():
            await self._store_event(n)

    async def _store_event(self, n: Notice) -> None:
        event_id, severity = STORE_EVENTS[n.kind]
        more = f" ({n.count} since the last report)" if n.count > 1 else ""
        await self.event(n.message + more, severity, event_id=event_id, count=n.count, **n.fields)

    # ---- spontaneous reports ----------------------------------------------------------------------------
    @subscribe("ev.")
    async def on_event(self, msg: Message) -> None:
        """Every bus event becomes an ST[05] report (unless its id is disabled)."""
        p = msg.payload if isinstance(msg.payload, dict) else {}
        eid = int(p.get("id") or 0)
        if eid in self.events.disabled:
            self.counters["events_filtered"] += 1
            return
        subtype = SEVERITY_SUBTYPE.get(int(p.get("severity", 1)), 1)
        data = event_data(eid, msg.source, str(p.get("message", "")), p.get("data", {}))
        await self.downlink_tm(pus.tm(5, subtype, data, self.apid, self.next_seq()), priority(5, subtype))

    @subscribe("dl.")
    async def on_product(self, msg: Message) -> None:
        """A service's product for the ground (SDK ``downlink``): TM[128,1] at the priority it asked for."""
        p = msg.payload if isinstance(msg.payload, dict) else {}
        prio = p.get("priority", 5)
        prio = prio if isinstance(prio, int) and 0 <= prio <= 7 else 5
        name = msg.topic.split(".", 2)[-1]
        data = (
            pus.encode_value("str", msg.source) + pus.encode_value("str", name) + pus.encode_value("any", p.get("data"))
        )
        self.counters["products"] += 1
        await self.downlink_tm(pus.tm(128, 1, data, self.apid, self.next_seq()), prio)

    async def _on_hk_topic(self, msg: Message) -> None:
        self.housekeeping.latest[msg.topic] = msg.payload

    @subscribe("tm.hal.reading")
    async def on_hal(self, msg: Message) -> None:
        """The sub-satellite point, for contact by ground-station visibility."""
        extras = msg.payload.get("extras", {}) if isinstance(msg.payload, dict) else {}
        if isinstance(extras.get("lat_deg"), (int, float)) and isinstance(extras.get("lon_deg"), (int, float)):
            self._position = (float(extras["lat_deg"]), float(extras["lon_deg"]))

    @periodic(hz=2)
    async def tick(self) -> None:
        """Periodic housekeeping reports, and release of scheduled telecommands that fell due."""
        now = time.time()
        for sid in self.housekeeping.due(now):
            await self.downlink_tm(
                pus.tm(3, 25, self.housekeeping.report(sid), self.apid, self.next_seq()), priority(3, 25)
            )
        self.store_forward.retry()
        if self.schedule is None:
            self._open_schedule()
        due = []
        if self.schedule is not None:
            try:
                corrupt = self.schedule.corrupt
                due = self.schedule.due(now)
                if self.schedule.corrupt > corrupt:
                    lost = self.schedule.corrupt - corrupt
                    self._store_notices.append(
                        Notice(
                            "dropped",
                            f"{lost} scheduled telecommand(s) failed their checksum and were dropped",
                            lost,
                            {"where": "schedule"},
                        )
                    )
            except Exception as exc:  # a full disk or a damaged file: never the end of the ground link
                self.schedule_failed(exc)
        for act in due:
            await handle(self, act.tc, None, None, scheduled=True)
        await self.store_notices()
        await self.publish(
            "link", {**self.counters, "in_contact": self.in_contact(), "stored": self.store_forward.stats()["stored"]}
        )

    # ---- commands on the bus ------------------------------------------------------------------------------
    @command()
    async def link_status(self) -> dict[str, Any]:
        """Counters, contact, the store-and-forward queue and the schedule."""
        return {
            "counters": dict(self.counters),
            "in_contact": self.in_contact(),
            "links": [lk.status() for lk in self.links if lk.bound is not None],
            "peer": f"{self.last_peer[1].name}:{self.last_peer[0][0]}:{self.last_peer[0][1]}"
            if self.last_peer
            else None,
            "downlink": self.store_forward.stats(),
            **self._schedule_status(),
            "auth": self.auth,
            "keys": self.keys.ids(),
        }

    def _schedule_status(self) -> dict[str, Any]:
        """The schedule's part of link_status (None while its store cannot be used)."""
        try:
            if self.schedule is not None:
                return {"schedule": len(self.schedule.summary()), "schedule_enabled": self.schedule.enabled}
        except Exception as exc:
            self.schedule_failed(exc)
        return {"schedule": None, "schedule_enabled": None, "schedule_cause": self.schedule_cause}

    @command()
    async def reload_keys(self) -> list[int]:
        """Re-read the key file after `flightos keys` changed it."""
        self.keys.reload()
        return self.keys.ids()
