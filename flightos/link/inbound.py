"""What arrives on the link's ROUTER: checked for who sent it, then handed to the part that handles it."""

from __future__ import annotations

import zmq

from flightos.bus.envelope import FrameError
from flightos.link import protocol
from flightos.link.forwarding import Forwarding
from flightos.link.peers import Peers
from flightos.link.protocol import LinkProtocolError
from flightos.link.replication import Replicator
from flightos.link.sockets import LinkSockets
from flightos.link.state import LinkState
from flightos.link.telemetry import Telemetry


class Inbound:
    """Dispatches peers' hellos, commands, telemetry and replicas, and authorised clients' commands."""

    def __init__(
        self,
        state: LinkState,
        sockets: LinkSockets,
        peers: Peers,
        forwarding: Forwarding,
        telemetry: Telemetry,
        replicator: Replicator,
    ) -> None:
        self.s = state
        self.sockets = sockets
        self.peers = peers
        self.forwarding = forwarding
        self.telemetry = telemetry
        self.replicator = replicator

    def on_server(self, batch: list[list[zmq.Frame]]) -> None:
        """Messages from peers' DEALERs and from authorised service clients: [routing id, tag, body...]."""
        for frames in batch:
            if len(frames) < 3:
                self.s.rejects.reject(FrameError("malformed", f"{len(frames)} frames on the link, expected 3"))
                continue
            parts = [f.bytes for f in frames]
            who = self._who(parts[0], frames[1])
            rid, tag, body = parts[0], parts[1], parts[2]
            try:
                if who.startswith("kernel:"):
                    self._from_kernel(who[7:], rid, tag, parts[2:])
                elif who.startswith("service:") and tag == protocol.COMMAND:
                    self.forwarding.accept_command(rid, who[8:], body, client=True)
                else:
                    self.s.rejects.reject(FrameError("unexpected", f"tag {tag!r} from {who or 'an unknown peer'}"))
            except (FrameError, LinkProtocolError) as err:
                self.s.rejects.reject(err if isinstance(err, FrameError) else FrameError("link_protocol", str(err)))

    def _who(self, rid: bytes, frame: zmq.Frame) -> str:
        """The authenticated identity of a link connection (ZAP's User-Id), or the claimed one without CURVE."""
        if self.sockets.gate is None:  # a lab bench without CURVE: take the peer's word for who it is
            claimed = rid.decode(errors="replace")
            return f"kernel:{claimed[2:]}" if claimed.startswith("k/") else ""
        try:
            return str(frame.get("User-Id"))
        except zmq.ZMQError:
            return ""

    def _from_kernel(self, board: str, rid: bytes, tag: bytes, frames: list[bytes]) -> None:
        peer = self.s.peers.get(board)
        if peer is None:
            self.s.rejects.reject(FrameError("unknown_board", f"{board} is not a peer in [link.peers]"))
            return
        peer.stats["received"] += 1
        body = frames[0]
        if tag == protocol.HELLO:
            hello = protocol.decode_hello(body)
            if hello.board != board:
                self.s.stats["spoofed"] += 1
                self.s.rejects.reject(FrameError("spoofed", f"kernel {board} sent a hello as {hello.board}"))
                return
            self.peers.on_hello(peer, hello)
        elif peer.hello is None:
            # Never heard: wait for its hello before trusting what it says it runs.
            self.s.rejects.reject(FrameError("peer_unknown", f"{tag!r} from board {board} before its first hello"))
        elif tag == protocol.COMMAND and len(frames) == 2:
            # Accepted even if its hellos have not got through yet after a cut: the key proves who sent it.
            self.forwarding.accept_command(
                rid, frames[0].decode(errors="replace"), frames[1], client=False, board=board
            )
        elif not peer.up:
            self.s.rejects.reject(FrameError("peer_down", f"{tag!r} from board {board} while its hellos are missing"))
        elif tag == protocol.TELEMETRY:
            self.telemetry.import_frame(peer, body)
        elif tag == protocol.REPLICA:
            self.replicator.keep_replica(peer, protocol.decode_replica(body))
        else:
            self.s.rejects.reject(FrameError("unexpected", f"tag {tag!r} from board {board}"))
