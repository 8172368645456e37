"""Sockets driven from their FD callback keep receiving: lone messages, bursts, and replies sent from the handler."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import zmq

from flightos.bus.aiozmq import FAIR_SHARE, AsyncSocket
from flightos.testing.eventually import eventually


async def _echo_pair(tmp_path: Path) -> tuple[zmq.Context[zmq.Socket[bytes]], AsyncSocket, zmq.Socket[bytes]]:
    """A ROUTER answering every message from its handler, and a DEALER connected to it."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 0)  # a ROUTER drops what is over its HWM: here every reply must arrive
    router.setsockopt(zmq.RCVHWM, 0)
    router.bind(f"ipc://{tmp_path}/echo.sock")
    server = AsyncSocket(router)

    def echo(batch: list[list[Any]]) -> None:
        for route, frame in batch:
            server.send_routed_nowait(route, frame)

    server.on_messages(echo, multipart=True)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVHWM, 0)
    dealer.connect(f"ipc://{tmp_path}/echo.sock")
    return ctx, server, dealer


async def test_one_message_at_a_time_and_bursts_are_all_answered(tmp_path: Path) -> None:
    ctx, server, dealer = await _echo_pair(tmp_path)
    client = AsyncSocket(dealer)
    got: list[bytes] = []
    waiter: dict[str, asyncio.Future[None]] = {}
    want = {"n": 0}

    def on_replies(batch: list[bytes]) -> None:
        got.extend(batch)
        fut = waiter.get("f")
        if fut is not None and not fut.done() and len(got) >= want["n"]:
            fut.set_result(None)

    client.on_messages(on_replies)
    loop = asyncio.get_running_loop()

    async def expect(n: int) -> None:
        want["n"] = n
        waiter["f"] = loop.create_future()
        if len(got) < n:
            try:
                await asyncio.wait_for(waiter["f"], 20)
            except TimeoutError:
                raise AssertionError(f"got {len(got)} of {n}") from None

    try:
        for i in range(500):  # ping-pong: each reply is a lone message on both sides
            client.send_nowait(b"%d" % i)
            await expect(i + 1)
        assert got == [b"%d" % i for i in range(500)]
        burst = 3 * FAIR_SHARE + 5  # more than one fair share: the rest is handled on later turns
        for i in range(burst):
            await client.send(b"b%d" % i)
        await expect(500 + burst)
        assert got[500:] == [b"b%d" % i for i in range(burst)]
    finally:
        client.close(0)
        server.close(0)
        ctx.term()


async def test_messages_arriving_while_the_handler_runs_are_not_left_waiting(tmp_path: Path) -> None:
    ctx, server, dealer = await _echo_pair(tmp_path)
    peer = ctx.socket(zmq.DEALER)
    peer.connect(f"ipc://{tmp_path}/echo.sock")
    client = AsyncSocket(dealer)
    got: list[bytes] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_replies(batch: list[bytes]) -> None:
        for frame in batch:
            got.append(frame)
            if frame.startswith(b"a") and len(got) < 200:
                peer.send(b"x")  # another client's message reaches the server while this one is being answered
                client.send_nowait(b"a%d" % len(got))
        if len(got) >= 200 and not done.done():
            done.set_result(None)

    client.on_messages(on_replies)
    try:
        client.send_nowait(b"a0")
        await asyncio.wait_for(done, 20)
        assert len(got) == 200
    finally:
        peer.close(0)
        client.close(0)
        server.close(0)
        ctx.term()


async def test_a_sender_held_at_the_high_water_mark_goes_on_once_the_peer_reads(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 4)
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.RCVHWM, 4)
    router.bind(f"ipc://{tmp_path}/hwm.sock")
    dealer.connect(f"ipc://{tmp_path}/hwm.sock")
    sender = AsyncSocket(dealer)
    sender.on_messages(lambda batch: None)  # driven from its FD callback, as a client's socket is
    reader = AsyncSocket(router)
    got: list[int] = []
    frame = b"x" * (256 << 10)  # 50 of these fill the HWMs and the OS buffers: the sender must wait
    try:
        sending = asyncio.gather(*[sender.send(frame) for _ in range(50)])
        await asyncio.sleep(0.2)
        assert not sending.done(), "the sender is held at the high-water mark"
        reader.on_messages(lambda batch: got.extend(len(parts[1]) for parts in batch), multipart=True)
        await asyncio.wait_for(sending, 20)
        await eventually(lambda: len(got), until=lambda n: n == 50, timeout=20, what="every frame read")
    finally:
        sender.close(0)
        reader.close(0)
        ctx.term()
