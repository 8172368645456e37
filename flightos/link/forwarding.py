"""Commands across the link: where a service runs, forwarding with resends until the result, and commands in.

A command sent to a peer is kept until its result arrives and sent again every ``retry_s`` while the link
is up: the peer's router runs one id once, so a healed link never loses or duplicates a command.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
import zmq

from flightos.bus import envelope as wire
from flightos.bus.commands import error_payload
from flightos.bus.envelope import FrameError, Kind
from flightos.bus.errors import ServiceFailed
from flightos.kernel.events import EventId
from flightos.kernel.records import PendingCommand, State
from flightos.kernel.routing.router import LinkRequester
from flightos.link import protocol
from flightos.link.sockets import LinkSockets
from flightos.link.state import LinkState
from flightos.sdk.severity import Severity

log = structlog.get_logger("flightos.link")


@dataclass
class Outgoing:
    """A command this kernel forwards to another board, until its result comes back."""

    cmd: PendingCommand
    board: str = ""
    last_sent: float = 0.0
    sends: int = 0


class Forwarding:
    """Commands to and from peers, and their results."""

    def __init__(self, state: LinkState, sockets: LinkSockets) -> None:
        self.s = state
        self.host = state.host
        self.sockets = sockets
        self.outgoing: dict[str, Outgoing] = {}

    def locate(self, service: str) -> str | None:
        """The board that runs ``service`` now, by its peers' hellos (None: no peer does)."""
        if service.startswith("kernel@"):
            board = service[7:]
            return board if board in self.s.peers else None
        owners = sorted(b for b, p in self.s.peers.items() if p.hosts(service))
        return owners[0] if owners else None

    def knows(self, service: str) -> bool:
        """Whether some peer's last hello named ``service`` (even a peer that is unreachable right now)."""
        if service.startswith("kernel@"):
            return service[7:] in self.s.peers
        return any(p.hello is not None and service in p.hello.services for p in self.s.peers.values())

    def known_services(self) -> list[str]:
        """Every service some peer's last hello named."""
        return sorted({s for p in self.s.peers.values() if p.hello for s in p.hello.services})

    def forward(self, cmd: PendingCommand) -> None:
        """Send a command to the board that runs its destination (or hold it until one does)."""
        out = Outgoing(cmd)
        self.outgoing[cmd.cid] = out
        self.s.stats["commands_out"] += 1
        self._send_command(out, asyncio.get_running_loop().time())

    def _send_command(self, out: Outgoing, now: float) -> None:
        cmd = out.cmd
        board = self.locate(cmd.destination)
        if board is None:
            return  # no board runs it right now: held until one does, or its deadline
        remaining = cmd.deadline - now
        if remaining <= 0:
            return
        if out.sends == 0 and cmd.frame is not None and now - cmd.received_at < 0.005:
            frame = cmd.frame
        else:
            frame = wire.encode(
                wire.make(
                    Kind.COMMAND,
                    cmd.destination,
                    cmd.source,
                    {"name": cmd.name, "args": cmd.args, "timeout_ms": max(1, int(remaining * 1000))},
                    corr=cmd.cid,
                )
            )
        if self.s.send(board, [protocol.COMMAND, cmd.caller.encode(), frame]):
            out.board = board
            out.last_sent = now
            out.sends += 1
            if out.sends > 1:
                self.s.stats["resends"] += 1

    def retry(self, force: bool = False) -> None:
        """Send again what is unanswered; fail what went to a board that restarted or gave the service up."""
        now = asyncio.get_running_loop().time()
        for cid, out in list(self.outgoing.items()):
            cmd = out.cmd
            if cid not in self.host.router.pending:
                del self.outgoing[cid]  # answered by its deadline meanwhile
                continue
            rec = self.host.records.get(cmd.destination)
            if rec is not None and rec.state not in (State.REMOTE, State.DISABLED):
                del self.outgoing[cid]  # it runs here now (failed over to us)
                if out.sends:
                    self._at_most_once(out, f"{cmd.destination} moved to this board")
                else:
                    self.host.router.route_local(rec, cmd)
                continue
            if out.sends and self.locate(cmd.destination) not in (None, out.board):
                del self.outgoing[cid]
                self._at_most_once(out, f"{cmd.destination} moved from board {out.board}")
                continue
            if out.sends == 0 or force or now - out.last_sent >= self.s.cfg.retry_s:
                peer = self.s.peers.get(out.board) if out.board else None
                if out.sends == 0 or (peer is not None and peer.up):
                    self._send_command(out, now)

    def _at_most_once(self, out: Outgoing, why: str) -> None:
        self.s.stats["failed_over_commands"] += 1
        self.host.router.complete(
            out.cmd,
            error_payload(
                ServiceFailed(
                    f"{why} while {out.cmd.destination}.{out.cmd.name} was there; it ran at most once",
                    board=out.board,
                    started=True,
                )
            ),
        )  # that board may have started it: remembered, never rerun

    def fail_outgoing(self, board: str, why: str) -> None:
        """Fail what was sent to ``board`` (it restarted): it ran there at most once and is never sent again."""
        for cid, out in list(self.outgoing.items()):
            if out.board == board and out.sends:
                del self.outgoing[cid]
                if cid in self.host.router.pending:
                    self._at_most_once(out, why)

    def accept_command(self, rid: bytes, caller: str, frame: bytes, *, client: bool, board: str = "") -> None:
        """A command from a peer kernel (as one of its services) or an authorised client, into the router."""
        env = wire.decode(frame)
        if env.kind != Kind.COMMAND:
            raise FrameError("unexpected_kind", f"kind {env.kind} sent as a link command")
        self.s.stats["commands_in"] += 1
        if not client and caller:
            peer = self.s.peers[board]
            if not (peer.hello is not None and caller in peer.hello.services):
                self.s.stats["spoofed"] += 1
                self.host.emit(
                    EventId.ACCESS_DENIED,
                    Severity.HIGH,
                    f"board {board} sent a command as {caller}, a service it does not run",
                    caller=caller,
                    board=board,
                    destination=env.topic,
                )
                caller = f"{caller}@{board}?"  # a name no ACL grants: refused below unless the ACL allows all
        self.host.router.accept_remote(LinkRequester(rid), env, frame, caller)

    def send_result(self, requester: LinkRequester, frame: bytes) -> bool:
        """Answer a command that came in over the link, on the connection it came in on."""
        try:
            self.sockets.server.send_multipart_nowait([bytes(requester), protocol.RESULT, frame])
        except zmq.ZMQError as exc:
            log.warning(
                "link.result_undeliverable", error=str(exc), note="kept in the result cache: the peer's resend gets it"
            )
            return False
        self.s.stats["results_out"] += 1
        return True

    def on_results(self, board: str, batch: list[list[bytes]]) -> None:
        """Results of commands this kernel forwarded to ``board``."""
        for parts in batch:
            if len(parts) != 2 or parts[0] != protocol.RESULT:
                self.s.rejects.reject(FrameError("unexpected", f"{len(parts)} frames from board {board}'s router"))
                continue
            try:
                env = wire.decode(parts[1])
            except FrameError as err:
                self.s.rejects.reject(err)
                continue
            self.s.stats["results_in"] += 1
            out = self.outgoing.pop(env.corr, None)
            if out is not None:
                self.host.router.finish_remote(out.cmd, parts[1])
