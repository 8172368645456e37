"""The control channel: ready, heartbeats, interest, vouching and incidents from services.

Only a service's own process, on its own routing id, counts (the router's identities judge each frame).
It joins routing (identity) and supervision (heartbeats), so it lives at the kernel level.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flightos.bus import envelope as wire
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.pubsub import Publisher, RejectCounter, vouched_namespace
from flightos.config.target import Acl
from flightos.kernel.event_log import EventLog
from flightos.kernel.events import EventId
from flightos.kernel.records import ServiceRecord
from flightos.kernel.routing.identity import Gate, Peer
from flightos.kernel.routing.identity import Kind as PeerKind
from flightos.kernel.routing.router import CommandRouter, _parse_identity
from flightos.kernel.supervision.supervisor import Supervisor
from flightos.sdk.severity import Severity


class ControlChannel:
    """Turns control frames into heartbeats, readiness, interest, vouched events and raised incidents."""

    def __init__(
        self,
        records: Mapping[str, ServiceRecord],
        router: CommandRouter,
        supervisor: Supervisor,
        events: EventLog,
        publisher: Publisher,
        acl: Acl,
        board: str,
        rejects: RejectCounter,
    ) -> None:
        self.records = records
        self.router = router
        self.supervisor = supervisor
        self.events = events
        self.publisher = publisher
        self.acl = acl
        self.board = board
        """This board's name in events about refused publishing ("local" when not linked)."""
        self.rejects = rejects
        self.gate = Gate(router.identities, self._on_frame)

    def on_frames(self, batch: list[list[Any]]) -> None:
        """Handle a drained batch of control messages: [routing id, frame] as zmq.Frame (they carry the pid)."""
        self.gate.feed_batch(batch, self.rejects.reject)

    def _on_frame(self, who: Peer, ident: bytes, frame: bytes) -> None:
        """Ready, heartbeats and control from a service: only its own process, on its own routing id, counts."""
        try:
            env = wire.decode(frame)
        except FrameError as err:
            self.rejects.reject(err)
            return
        rec = self.records.get(who.name) if who.kind is PeerKind.SERVICE else None
        if rec is None or ident != rec.identity.encode():
            if who.kind is PeerKind.SERVICE or (who.kind is PeerKind.OPERATOR and _parse_identity(ident)[0]):
                # a heartbeat or ready claimed for another service (or incarnation): ignored, counted, raised
                self.router.identity_problem(who, ident, "sent control frames", "identity_forged")
            elif who.kind is PeerKind.REFUSED:
                self.router.identity_problem(who, ident, "sent control frames", "identity_refused")
            return  # a stale incarnation (gone) or a stranger: ignored
        if env.kind == Kind.HEARTBEAT:
            self.supervisor.heartbeat(rec, env.payload)
        elif env.kind == Kind.CONTROL and isinstance(env.payload, dict):
            op = env.payload.get("op")
            if op in ("ready", "interest"):
                prefixes = env.payload.get("interest", env.payload.get("prefixes"))
                if isinstance(prefixes, list):
                    rec.interest = [p for p in prefixes if isinstance(p, str)][:256]
            if op == "publish_denied" and isinstance(env.payload.get("topic"), str):
                self.events.publish_denied(rec.name, env.payload["topic"], self.board, "refused by the SDK")
            if op == "incident" and isinstance(env.payload.get("message"), str):
                self._incident(rec, env.payload)
            if op == "vouch" and isinstance(env.payload.get("frame"), bytes):
                self._vouch(rec, env.payload["frame"])
            if op == "ready":
                rec.ctl_ready = True
                self.supervisor.heartbeat(rec, None)
                self.supervisor.mark_ready_part(rec)
        else:
            self.rejects.reject(FrameError("unexpected_kind", f"kind {env.kind} on control"))

    def _vouch(self, rec: ServiceRecord, frame: bytes) -> None:
        """A service's event or product: vouched for on kev.sock if it is its own, so subscribers accept it."""
        try:
            topic, env = wire.decode_topic_frame(frame)
        except FrameError as err:
            self.rejects.reject(err)
            return
        if env.source != rec.name or not vouched_namespace(topic, rec.name):
            self.rejects.reject(
                FrameError("not_its_own", f"{rec.name} asked the kernel to vouch for {topic} from {env.source!r}")
            )
            return
        if not self.acl.allows_publish(rec.name, topic):
            self.events.publish_denied(rec.name, topic, self.board, "not vouched by the kernel")
            return
        self.publisher.mirror_frame(frame)

    def _incident(self, rec: ServiceRecord, payload: dict[str, Any]) -> None:
        """A service's host reports damage it found and worked around (a store kept aside): raise it, loudly."""
        if payload.get("kind") == "store_quarantined":
            self.events.emit(
                EventId.STORE_QUARANTINED,
                Severity.HIGH,
                f"{rec.name}: {payload['message'][:400]}",
                service=rec.name,
                file=str(payload.get("file", ""))[:300],
            )
