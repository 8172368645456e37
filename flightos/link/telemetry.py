"""Telemetry across the link: export what peers' hellos ask for, import what peers send, both checked.

Events and products are exported only from the kernel's vouched endpoint (``kev.sock``); imported ones
are mirrored there, so this kernel vouches for what a peer kernel vouched for.
"""

from __future__ import annotations

import zmq

from flightos.bus import envelope as wire
from flightos.bus.envelope import FrameError
from flightos.bus.pubsub import VOUCHED_PREFIXES
from flightos.kernel.records import State
from flightos.link import protocol
from flightos.link.protocol import PeerView
from flightos.link.sockets import LinkSockets
from flightos.link.state import LinkState


class Telemetry:
    """Exports local telemetry to the peers that want it and imports theirs onto the local bus."""

    def __init__(self, state: LinkState, sockets: LinkSockets) -> None:
        self.s = state
        self.host = state.host
        self.sockets = sockets
        self._exported: set[str] = set()

    def sync_exports(self) -> None:
        """Subscribe the export taps to exactly the prefixes the up peers' last hellos asked for."""
        wanted = {p for peer in self.s.peers.values() if peer.up and peer.hello for p in peer.hello.interest}
        for prefix in wanted - self._exported:
            for sub in (self.sockets.export_sub, self.sockets.export_vouched):
                sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for prefix in self._exported - wanted:
            for sub in (self.sockets.export_sub, self.sockets.export_vouched):
                sub.setsockopt(zmq.UNSUBSCRIBE, prefix.encode())
        self._exported = wanted

    def on_export(self, frames: list[bytes], *, vouched: bool) -> None:
        """Local telemetry a peer wants: sent on if a service here published it and may publish it.

        Events and products go only from the kernel's endpoint (``vouched``), where the kernel put them after
        checking their sender; their copies through the shared proxy are not exported (they may be forged).
        """
        acl = self.host.target.acl
        for frame in frames:
            try:  # a batch of telemetry goes on as it is: only its head is read, never its payloads
                topic, source = wire.peek_topic_frame(frame)
            except FrameError:
                continue  # the kernel's own subscribers count malformed frames; not ours to count twice
            if topic.startswith(VOUCHED_PREFIXES) != vouched:
                continue
            rec = self.host.records.get(source)
            if rec is None or rec.state in (State.REMOTE, State.DISABLED):
                continue  # imported from a peer, or the kernel's own: each board keeps its kernel telemetry
            if not acl.allows_publish(source, topic):
                self._publish_denied(source, topic, self.s.board)
                continue
            for board, peer in self.s.peers.items():
                if peer.wants(topic):
                    if self.s.send(board, [protocol.TELEMETRY, frame]):
                        self.s.stats["telemetry_out"] += 1
                    else:
                        self.s.stats["telemetry_dropped"] += 1

    def import_frame(self, peer: PeerView, frame: bytes) -> None:
        """A peer's telemetry (one envelope or a batch, published here as it came): if that peer runs its source
        and the ACL lets the source publish it."""
        topic, source = wire.peek_topic_frame(frame)
        if not peer.hosts(source):
            self.s.stats["spoofed"] += 1
            self.s.rejects.reject(
                FrameError("spoofed", f"board {peer.board} sent {topic} as {source}, a service it does not run")
            )
            return
        if not self.host.target.acl.allows_publish(source, topic):
            self._publish_denied(source, topic, peer.board)
            return
        self.sockets.import_pub.send(frame)
        if topic.startswith(VOUCHED_PREFIXES):  # a peer kernel vouched for it; this kernel does so here
            self.host.publisher.mirror_frame(frame)
        self.s.stats["telemetry_in"] += 1

    def _publish_denied(self, source: str, topic: str, board: str) -> None:
        self.s.stats["publish_denied"] += 1
        self.host.publish_denied(source, topic, board, "not carried across the link")
