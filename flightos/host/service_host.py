"""Runs one Service instance inside its process: sockets, heartbeats, commands, periodic tasks."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import signal
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import zmq

from flightos.aio import TaskSet
from flightos.bus import envelope as wire
from flightos.bus import started
from flightos.bus.aiozmq import LINGER_MS, AsyncSocket
from flightos.bus.commands import CommandChannel, error_payload, frame_cap, ok_payload
from flightos.bus.direct import DIRECT_TOPIC, DirectServer, direct_path
from flightos.bus.eager import start_eagerly
from flightos.bus.endpoints import Endpoints
from flightos.bus.envelope import Envelope, FrameError, Kind
from flightos.bus.errors import (
    BadArguments,
    CommandError,
    DeadlineExceeded,
    FrameTooLarge,
    HandlerError,
    PublishDenied,
    ServiceFailed,
    UnknownCommand,
)
from flightos.bus.pubsub import KernelChannel, Publisher, RejectCounter, Subscriber
from flightos.hardening import forbid_ptrace
from flightos.host.periodic import PeriodicStats, run_periodic
from flightos.host.spawn_spec import SpawnSpec
from flightos.sdk.service import Message, Service, ServiceShape
from flightos.sdk.severity import Severity
from flightos.sdk.store import Store
from flightos.sdk.validation import describe_arguments, validate

if TYPE_CHECKING:
    from flightos.sdk.devices import DeviceGrants

log = structlog.get_logger("flightos.service")

DONE_CACHE = 4096
"""Completed command ids remembered by a service, so a redelivery returns the same result."""
COPY_DELAY_S = 0.010
"""Direct results' copies wait this long for others, then go to the kernel together: each kernel wake-up
costs more than the copies it takes (2 ms: kernel 20-22 us of CPU per direct command, 10 ms: 12-14)."""
PARAM_PREFIX = "__param__/"


class ServiceHost:
    """Hosts a Service: joins the bus, serves commands, runs periodic tasks, sends heartbeats."""

    def __init__(self, service: Service, spec: SpawnSpec) -> None:
        self.service = service
        self.spec = spec
        forbid_ptrace()  # another service of the same user cannot attach to this one and act as it
        self.shape = ServiceShape.of(type(service))
        self.endpoints = Endpoints(Path(spec.runtime_dir))
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context(io_threads=1)
        self.store = Store(Path(spec.state_dir) / spec.name / "store.sqlite")
        self.publisher = Publisher(self.ctx, self.endpoints.publish, spec.name)
        self.started = self._open_started_ledger()
        self.commands = CommandChannel(
            self.ctx,
            self.endpoints.command,
            spec.identity,
            spec.name,
            on_commands=self._on_commands,
            max_frame_bytes=spec.max_frame_bytes,
        )
        self._ctl = self.ctx.socket(zmq.DEALER)
        self._ctl.setsockopt(zmq.IDENTITY, spec.identity.encode())
        self._ctl.setsockopt(zmq.LINGER, LINGER_MS)
        self._ctl.connect(self.endpoints.control)
        self._actl: AsyncSocket | None = None
        self._subscriber: Subscriber | None = None
        self._sub_handlers: list[tuple[str, Callable[[Message], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._routes: dict[str, list[bytes | None]] = {}
        """Where to answer a running command that came directly (a routing id; None: the kernel too)."""
        self._builtin_table = self._builtins()
        """Built once: dispatch looks a command up here on every call."""
        self._deadlines: dict[str, asyncio.TimerHandle] = {}
        """Deadline timers of running commands that waited (a command answered at once never gets one)."""
        self._expired: set[str] = set()
        """Commands whose deadline cancelled their task (their handler's CancelledError becomes deadline_exceeded)."""
        self._direct_ms: dict[str, int] = {}
        """Timeouts of running commands that came directly (their results' copies to the kernel say it)."""
        self._copies: list[bytes] = []
        """Copies of direct results not yet sent to the kernel (sent within COPY_DELAY_S)."""
        self.direct: DirectServer | None = None
        self._done: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stop = asyncio.Event()
        self._ready_sent = False
        self._denied: set[str] = set()
        self._publish_ok: dict[str, bool] = {}
        self._replies = TaskSet("replies")
        self.periodic_stats: dict[str, PeriodicStats] = {}
        self.ctl_rejects = RejectCounter(f"control:{spec.identity}")
        self.throttle = 0
        self.commands_run = 0
        self.commands_failed = 0
        self.unvouched = 0
        """Events and products the kernel could not be asked to vouch for (control channel full)."""
        self.publisher.vouch = self._vouch
        self._hb_seq = 0
        self.exit_code = 0
        service._host = self

    # ---- the port a Service uses (flightos.sdk.port.HostPort) ------------------------------
    @property
    def state_dir(self) -> Path:
        """The runtime's state directory (the service's files live in ``state_dir / <name>``)."""
        return Path(self.spec.state_dir)

    @property
    def options(self) -> dict[str, Any]:
        """The service's table from the target file."""
        return self.spec.options

    @property
    def device_grants(self) -> DeviceGrants:
        """The payload devices the target grants this service (simulated on sim targets)."""
        from flightos.sdk.devices import DeviceGrants  # loads the HAL's device layer only when a service asks

        return DeviceGrants(
            self.spec.name,
            self.spec.devices,
            Path(self.spec.runtime_dir),
            self.spec.devices_simulated,
            self.spec.kernel_pid,
        )

    async def call(self, service: str, command: str, args: dict[str, Any], *, timeout: float) -> Any:
        """Run another service's command through this process's command channel."""
        return await self.commands.call(service, command, args, timeout=timeout)

    def publish(self, topic: str, payload: Any, kind: Kind = Kind.TELEMETRY) -> None:
        """Publish one message on the bus; raise PublishDenied if the target's ``[acl]`` forbids the topic."""
        allowed = self.spec.publish
        if allowed is not None and not self._may_publish(topic, allowed):
            if topic not in self._denied and len(self._denied) < 100 and self._actl is not None:
                self._denied.add(topic)  # the kernel raises the security event, once per topic
                self._tasks.append(
                    asyncio.get_running_loop().create_task(self._send_control({"op": "publish_denied", "topic": topic}))
                )
            raise PublishDenied(
                f"{self.spec.name} may not publish {topic} (the target's [acl] publish allows {allowed})"
            )
        self.publisher.publish(topic, payload, kind)

    def _may_publish(self, topic: str, allowed: list[str]) -> bool:
        """The ACL's answer for a topic, matched once and then remembered (publish is the bus's hot path)."""
        ok = self._publish_ok.get(topic)
        if ok is None:
            ok = self._publish_ok[topic] = any(fnmatch.fnmatchcase(topic, p) for p in allowed)
        return ok

    def _vouch(self, frame: bytes) -> None:
        """Hand an event or product frame to the kernel, which checks it is ours and vouches for it."""
        data = wire.encode(wire.make(Kind.CONTROL, "kernel", self.spec.identity, {"op": "vouch", "frame": frame}))
        try:
            if self._actl is not None:
                self._actl.send_multipart_nowait([data])
            else:
                self._ctl.send(data, zmq.NOBLOCK)
        except zmq.ZMQError:  # the control channel is full: this event reaches no subscriber (counted)
            self.unvouched += 1

    def raise_event(self, message: str, severity: Severity, event_id: int, data: dict[str, Any]) -> None:
        """Publish an event and log it at a matching level."""
        payload = {
            "id": event_id,
            "severity": int(severity),
            "severity_name": severity.name,
            "message": message,
            "data": data,
        }
        self.publisher.publish(f"ev.{self.spec.name}", payload, Kind.EVENT)
        level = {Severity.INFO: "info", Severity.LOW: "warning", Severity.MEDIUM: "warning", Severity.HIGH: "error"}[
            severity
        ]
        getattr(log, level)("service.event", service=self.spec.name, event_id=event_id, message=message, **data)

    def add_subscription(self, prefix: str, handler: Callable[[Message], Awaitable[None]]) -> None:
        """Route messages under ``prefix`` to ``handler``."""
        if self._subscriber is None:
            self._subscriber = Subscriber(  # the kernel's topics only from the kernel's own endpoint
                self.ctx,
                self.endpoints.subscribe,
                f"sub:{self.spec.name}",
                kernel=KernelChannel(self.endpoints.kernel_events, self.spec.kernel_pid),
            )
            self._tasks.append(asyncio.get_running_loop().create_task(self._subscriber.run(self._on_message)))
        self._sub_handlers.append((prefix, handler))
        self._subscriber.subscribe(prefix)
        if self._ready_sent:  # tell the kernel, so peers on other boards send this topic here too
            self._tasks.append(
                asyncio.get_running_loop().create_task(
                    self._send_control({"op": "interest", "prefixes": self.interest()})
                )
            )

    def interest(self) -> list[str]:
        """Every topic prefix this service subscribes to."""
        return sorted({p for p, _ in self._sub_handlers})

    async def _on_message(self, env: Envelope) -> None:
        for prefix, handler in self._sub_handlers:
            if env.topic.startswith(prefix):
                await handler(env)

    # ---- lifecycle --------------------------------------------------------------------------
    async def run(self) -> int:
        """Start, declare ready, serve until told to stop, then stop gracefully; return the exit code."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._actl = AsyncSocket(self._ctl)
        self.commands.start()
        await self.commands.send_envelope(wire.make(Kind.CONTROL, "kernel", self.spec.identity, {"op": "attach"}))
        self._load_parameters()
        self._tasks.append(loop.create_task(self._control_loop()))
        self._tasks.append(loop.create_task(self._heartbeat_loop()))
        for attr, sspec in self.shape.subscriptions.items():
            self.add_subscription(sspec.prefix, getattr(self.service, attr))
        await self.service.on_start()
        for attr, pspec in self.shape.periodics.items():
            stats = self.periodic_stats[attr] = PeriodicStats()
            self._tasks.append(
                loop.create_task(run_periodic(attr, self._rate(attr, pspec.hz), getattr(self.service, attr), stats))
            )
        await self._send_control(
            {"op": "ready", "pid": os.getpid(), "commands": sorted(self.shape.commands), "interest": self.interest()}
        )
        self._ready_sent = True
        self._open_direct()
        for incident in self.store.incidents:  # a damaged store was kept aside and replaced: say so, loudly
            log.error("service.store_quarantined", service=self.spec.name, message=incident)
            await self._send_control(
                {"op": "incident", "kind": "store_quarantined", "message": incident, "file": str(self.store.path)}
            )  # lossless: the kernel raises the event
        log.info(
            "service.ready",
            service=self.spec.name,
            incarnation=self.spec.incarnation,
            pid=os.getpid(),
            cpus=sorted(os.sched_getaffinity(0)),
        )
        await self._stop.wait()
        await self._shutdown()
        return self.exit_code

    def _rate(self, task: str, hz: float | str) -> Callable[[], float]:
        if isinstance(hz, str):
            if hz not in self.shape.parameters:
                raise TypeError(f"@periodic {task}: no parameter {hz!r} to take the rate from")
            return lambda: float(getattr(self.service, hz))
        return lambda: float(hz)

    async def _shutdown(self) -> None:
        log.info("service.stopping", service=self.spec.name)
        if self.direct is not None:  # direct callers go through the kernel from now on (it holds their commands)
            self.direct.close()
        self._send_copies()
        for t in self._tasks:
            t.cancel()
        for t in list(self._running.values()):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.service.on_stop(), timeout=3.0)
        if self.service._devices is not None:  # release lines and buses; a hung transfer's thread is left to exit
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service._devices.close(), timeout=1.0)
        with contextlib.suppress(Exception):
            await self._send_control({"op": "bye"})
        self.close()

    def close(self) -> None:
        """Close every socket with bounded linger, then the store and the context."""
        if self.direct is not None:
            self.direct.close()
        self.commands.close()
        self.publisher.close()
        if self._subscriber is not None:
            self._subscriber.close()
        if self._actl is not None:
            self._actl.close()
        else:
            self._ctl.close(linger=LINGER_MS)
        self.store.close()
        if self.started is not None:
            self.started.close()
        self.ctx.term()

    # ---- control channel ---------------------------------------------------------------------
    async def _send_control(self, payload: dict[str, Any], kind: Kind = Kind.CONTROL) -> None:
        assert self._actl is not None
        env = wire.make(kind, "kernel", self.spec.identity, payload)
        await self._actl.send(wire.encode(env))

    async def _heartbeat_loop(self) -> None:
        period = self.spec.heartbeat_period_s
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            self._hb_seq += 1
            await self._send_control(self._heartbeat_payload(), Kind.HEARTBEAT)
            next_t += period
            now = loop.time()
            if next_t < now:
                next_t = now
            await asyncio.sleep(next_t - now)

    def _heartbeat_payload(self) -> dict[str, Any]:
        return {
            "n": self._hb_seq,
            "t_mono_ns": time.monotonic_ns(),
            "cmds": self.commands_run,
            "cmd_errors": self.commands_failed,
            "overruns": sum(s.overruns for s in self.periodic_stats.values()),
            "periodic_errors": sum(s.errors for s in self.periodic_stats.values()),
            "dropped": self._subscriber.dropped if self._subscriber else 0,
            "rejected": self.ctl_rejects.total
            + self.commands.rejects.total
            + (self._subscriber.rejects.total if self._subscriber else 0),
        }

    async def _control_loop(self) -> None:
        assert self._actl is not None
        while True:
            await self._actl.wait_readable()
            for frame in self._actl.drain():
                try:
                    env = wire.decode(frame)
                except FrameError as err:
                    self.ctl_rejects.reject(err)
                    continue
                op = env.payload.get("op") if isinstance(env.payload, dict) else None
                if op == "stop":
                    self._stop.set()
                elif op == "throttle":
                    self.throttle = int(env.payload.get("level", 0))
                else:
                    self.ctl_rejects.reject(FrameError("unknown_control", f"op {op!r}"))

    # ---- commands ----------------------------------------------------------------------------
    def _open_direct(self) -> None:
        """Serve operators' commands one hop away once ready (``flightos.bus.direct``); else they use the kernel."""
        if self.spec.kernel_pid <= 0:
            return
        if self.started is None:  # without a ledger the kernel could not tell a re-sent command had run here
            log.warning(
                "service.direct_unavailable",
                service=self.spec.name,
                error="no started ledger",
                note="operators' commands go through the kernel",
            )
            return
        try:
            self.direct = DirectServer(
                self.ctx,
                direct_path(Path(self.spec.runtime_dir), self.spec.name),
                self.spec.kernel_pid,
                self.spec.identity,
                self._on_direct,
                self.commands.rejects.reject,
                self.spec.max_frame_bytes,
                frame_cap(self.spec.max_frame_bytes),
            )
        except (zmq.ZMQError, OSError) as exc:
            log.warning(
                "service.direct_unavailable",
                service=self.spec.name,
                error=str(exc),
                note="operators' commands go through the kernel",
            )

    def _open_started_ledger(self) -> started.StartedWriter | None:
        """The file that proves which commands this process took (without it the kernel assumes all were)."""
        try:
            return started.StartedWriter(
                started.ledger_path(Path(self.spec.runtime_dir), self.spec.name, self.spec.incarnation)
            )
        except OSError as exc:
            log.warning(
                "service.started_ledger_unavailable",
                service=self.spec.name,
                error=str(exc),
                note="if this process dies, its commands in flight are reported as started",
            )
            return None

    def _on_commands(self, envs: list[Envelope]) -> None:
        """A drained batch of commands: answer redeliveries from the cache, run the new ones."""
        loop = asyncio.get_running_loop()
        for env in envs:
            cid = env.corr
            cached = self._done.get(cid)
            if cached is not None:
                self._replies.spawn(self._reply(cid, cached, to=[None]))
                continue
            routes = self._routes.get(cid)
            if routes is not None:  # running for a direct caller too: answer both
                routes.append(None)
            elif cid not in self._running:  # runs now, in this callback, up to its first wait
                self._start(env, loop)

    def _on_direct(self, items: list[tuple[bytes, Envelope]]) -> None:
        """Commands from direct callers (``flightos.bus.direct``): the same de-duplication, answered on their route."""
        loop = asyncio.get_running_loop()
        for route, env in items:
            cid = env.corr
            cached = self._done.get(cid)
            if cached is not None:
                self._replies.spawn(self._reply(cid, cached, to=[route]))
            elif cid in self._running:
                self._routes.setdefault(cid, [None]).append(route)  # running for the kernel: answer both
            else:
                self._routes[cid] = [route]
                timeout_ms = env.payload.get("timeout_ms") if isinstance(env.payload, dict) else None
                self._direct_ms[cid] = timeout_ms if isinstance(timeout_ms, int) and timeout_ms > 0 else 0
                self._start(env, loop)

    def _start(self, env: Envelope, loop: asyncio.AbstractEventLoop) -> None:
        cid = env.corr
        begun = loop.time()
        task = start_eagerly(self._execute(env), loop)
        if cid not in self._done:  # still running: it waits, so its deadline (from ``begun``) is armed now
            self._running[cid] = task
            ms = self._deadline_ms(env.payload)
            if ms:
                self._deadlines[cid] = loop.call_at(begun + ms / 1000.0, self._expire, cid)

    def _deadline_ms(self, payload: Any) -> int:
        """A command's own deadline in ms (0: none); built-in commands have none, as before."""
        if not isinstance(payload, dict):
            return 0
        ms = payload.get("timeout_ms")
        if not (isinstance(ms, int) and ms > 0) or payload.get("name") in self._builtin_table:
            return 0
        return ms

    def _expire(self, cid: str) -> None:
        """A command's deadline passed while its handler waited: cancel its task (it answers deadline_exceeded)."""
        self._deadlines.pop(cid, None)
        task = self._running.get(cid)
        if task is not None and not task.done():
            self._expired.add(cid)
            task.cancel()

    def _settled(self, cid: str) -> None:
        """A command's handler is over: its deadline timer and expiry mark go."""
        timer = self._deadlines.pop(cid, None)
        if timer is not None:
            timer.cancel()
        self._expired.discard(cid)

    async def _execute(self, env: Envelope) -> None:
        cid = env.corr
        if self.started is not None:
            self.started.record(cid)  # before the handler can do anything: survives this process dying
        try:
            value = await self._dispatch(cid, env.payload)
            result = ok_payload(value)
            self.commands_run += 1
        except CommandError as err:
            result = error_payload(err)
            self.commands_failed += 1
        except asyncio.CancelledError:  # stopping: a redelivery (a direct caller's resend) must not run it again
            self._running.pop(cid, None)
            self._settled(cid)
            self._done[cid] = error_payload(
                ServiceFailed(
                    f"service {self.spec.name!r} stopped while running it; it had started and ran at most once",
                    incarnation=self.spec.incarnation,
                    started=True,
                )
            )
            raise
        except Exception as exc:
            log.exception("service.command_failed", service=self.spec.name, command_id=cid)
            result = error_payload(HandlerError(f"{type(exc).__name__}: {exc}"))
            self.commands_failed += 1
        if self._deadlines or self._expired:
            self._settled(cid)
        self._done[cid] = result
        if len(self._done) > DONE_CACHE:
            self._done.popitem(last=False)
        self._running.pop(cid, None)
        await self._reply(cid, result)

    async def _reply(self, cid: str, result: dict[str, Any], to: list[bytes | None] | None = None) -> None:
        """Send a result to the routes ``cid`` came by (None: the kernel), or to ``to``.

        A direct caller's result goes to the kernel too, as ``direct:<timeout ms>``: it keeps it for retries.
        """
        routes = self._routes.pop(cid, None) if to is None else to
        ms = self._direct_ms.pop(cid, None)
        topic = "kernel" if ms is None else f"{DIRECT_TOPIC}{ms}"
        try:
            frame = wire.encode(wire.make(Kind.RESULT, topic, self.spec.identity, result, corr=cid))
        except Exception:
            result = error_payload(HandlerError("result could not be encoded"))
            frame = wire.encode(wire.make(Kind.RESULT, topic, self.spec.identity, result, corr=cid))
        if len(frame) > self.spec.max_frame_bytes:  # the kernel would drop it (or this connection)
            result = error_payload(
                FrameTooLarge(
                    f"the command ran, but its result is {len(frame):,} bytes, over this runtime's limit of "
                    f"{self.spec.max_frame_bytes:,} bytes (runtime.max_frame_bytes)",
                    size=len(frame),
                    limit=self.spec.max_frame_bytes,
                    ran=True,
                )
            )
            self._done[cid] = result  # a redelivery gets the same answer
            frame = wire.encode(wire.make(Kind.RESULT, topic, self.spec.identity, result, corr=cid))
        if routes is None:
            await self.commands.send_frame(frame)
            return
        for route in routes:
            if route is not None and self.direct is not None:
                self.direct.send(route, frame)
        if None in routes:  # the kernel's requesters too
            await self.commands.send_frame(frame)
        elif ms is not None:  # the kernel's copy of a direct result, for retries through it and its statistics
            self._copies.append(frame)
            if len(self._copies) == 1:
                asyncio.get_running_loop().call_later(COPY_DELAY_S, self._send_copies)

    def _send_copies(self) -> None:
        """Send the kernel the copies of direct results together: it wakes once for many, not once each."""
        copies, self._copies = self._copies, []
        for i, frame in enumerate(copies):
            if not self.commands.send_nowait(frame):  # at the high-water mark: the rest wait their turn
                for rest in copies[i:] if not self.commands.closed else ():
                    self._replies.spawn(self.commands.send_frame(rest))
                return

    async def _dispatch(self, cid: str, payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            raise BadArguments("malformed command payload")
        name: str = payload["name"]
        args = payload.get("args") or {}
        builtin = self._builtin_table.get(name)
        if builtin is not None:
            return await builtin(args)
        bound = self.shape.commands.get(name)
        if bound is None:
            raise UnknownCommand(
                f"service {self.spec.name!r} has no command {name!r}", available=sorted(self.shape.commands)
            )
        kwargs = validate(f"{self.spec.name}.{name}", bound.arguments, args) if bound.arguments or args else {}
        # The deadline is armed by _start only if the handler waits (one that answers at once costs no timer);
        # at the deadline _expire cancels the command's own task, cheaper than wait_for's extra task.
        try:
            return await getattr(self.service, bound.attr)(**kwargs)
        except asyncio.CancelledError:
            if cid in self._expired:
                self._expired.discard(cid)
                raise DeadlineExceeded(
                    f"{self.spec.name}.{name}: deadline exceeded while running (the handler was cancelled)"
                ) from None
            raise

    # ---- built-in commands every service answers ----------------------------------------------
    def _builtins(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "describe": self._cmd_describe,
            "list_params": self._cmd_list_params,
            "get_param": self._cmd_get_param,
            "set_param": self._cmd_set_param,
            "stats": self._cmd_stats,
        }

    async def _cmd_describe(self, args: dict[str, Any]) -> Any:
        return {
            "service": self.spec.name,
            "commands": {
                name: {"doc": b.spec.doc, "args": describe_arguments(b.arguments)}
                for name, b in sorted(self.shape.commands.items())
            },
            "periodic": {k: self._rate(k, v.hz)() for k, v in self.shape.periodics.items()},
            "subscriptions": [p for p, _ in self._sub_handlers],
            "parameters": [p.describe() for p in self.shape.parameters.values()],
        }

    async def _cmd_list_params(self, args: dict[str, Any]) -> Any:
        return {name: getattr(self.service, name) for name in self.shape.parameters}

    def _param(self, args: dict[str, Any]) -> str:
        name = args.get("name")
        if not isinstance(name, str):
            raise BadArguments("missing argument 'name' (str)")
        if name not in self.shape.parameters:
            raise BadArguments(
                f"service {self.spec.name!r} has no parameter {name!r}", available=sorted(self.shape.parameters)
            )
        return name

    async def _cmd_get_param(self, args: dict[str, Any]) -> Any:
        return getattr(self.service, self._param(args))

    async def _cmd_set_param(self, args: dict[str, Any]) -> Any:
        name = self._param(args)
        if "value" not in args:
            raise BadArguments("missing argument 'value'")
        value = self.shape.parameters[name].check(args["value"])
        setattr(self.service, name, value)
        self.store.set(PARAM_PREFIX + name, value)
        await self.service.on_parameter(name, value)
        return value

    async def _cmd_stats(self, args: dict[str, Any]) -> Any:
        return {
            **self._heartbeat_payload(),
            "periodic": {k: vars(v) for k, v in self.periodic_stats.items()},
            "throttle": self.throttle,
        }

    def _load_parameters(self) -> None:
        """Defaults, then the target file's values, then values set over the bus (persisted)."""
        for name, param in self.shape.parameters.items():
            if name in self.spec.params:
                setattr(self.service, name, param.check(self.spec.params[name], what="target value"))
            stored = self.store.get(PARAM_PREFIX + name)
            if stored is not None:
                try:
                    setattr(self.service, name, param.check(stored, what="stored value"))
                except CommandError as err:
                    log.warning("service.stored_parameter_invalid", parameter=name, error=str(err))
        unknown = sorted(set(self.spec.params) - set(self.shape.parameters))
        if unknown:
            log.warning("service.unknown_parameters_in_target", service=self.spec.name, names=unknown)
