"""A simulated CAN bus: python-can's ``virtual`` interface when installed, else an in-process bus.

Both deliver a node's own frames back to it (as socketcan does with ``recv_own_msgs``), so one service
can exercise its protocol alone. Injected fault: ``can-bus-off``: every send fails with ENETDOWN.
"""

from __future__ import annotations

import errno
import importlib
import queue
from typing import Any

from hal.devices.errors import DeviceError
from hal.devices.protocol import CanFrame
from hal.devices.sim.bench import SimBench


class SimCan:
    """A CAN node on a simulated bus named after the interface."""

    def __init__(self, name: str, interface: str, bench: SimBench) -> None:
        self.name, self.bench = name, bench
        self._queue: queue.Queue[CanFrame] = queue.Queue(maxsize=1024)
        self._bus: Any = None
        try:
            can = importlib.import_module("can")
        except ImportError:
            self.backend = "in-process"
        else:
            self._can = can
            self._bus = can.Bus(interface="virtual", channel=f"flightos-{interface}", receive_own_messages=True)
            self.backend = "python-can virtual"
        bench.register(name, "can")

    def _bus_off(self) -> bool:
        fault = self.bench.fault(self.name)
        return bool(fault and fault["fault"] == "can-bus-off")

    def send(self, frame: CanFrame, timeout_s: float) -> None:
        """Put a frame on the bus, unless the controller is bus-off."""
        if self._bus_off():
            raise DeviceError(self.name, "controller is bus-off (too many transmit errors)", errno.ENETDOWN)
        if self._bus is not None:
            self._bus.send(
                self._can.Message(arbitration_id=frame.arbitration_id, data=frame.data, is_extended_id=frame.extended),
                timeout=timeout_s,
            )
            return
        try:
            self._queue.put(frame, timeout=timeout_s)
        except queue.Full:
            raise DeviceError(self.name, "transmit queue full", errno.ENOBUFS) from None

    def recv(self, timeout_s: float) -> CanFrame | None:
        """The next frame on the bus, or None."""
        if self._bus is not None:
            msg = self._bus.recv(timeout=timeout_s)
            return None if msg is None else CanFrame(int(msg.arbitration_id), bytes(msg.data), bool(msg.is_extended_id))
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Leave the bus."""
        if self._bus is not None:
            self._bus.shutdown()
