"""``[services.ground.options]``: the ground service's typed options, checked by the kernel when the target loads.

A wrong value is a configuration error naming the key (``flightos run`` exits 5) instead of a
ground service that crash-loops: the link to the ground is the last thing that may fail.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from flightos import Options
from services.ground import contact as contacts
from services.ground.link import Address, parse_endpoint

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def endpoint(text: str, what: str) -> Address:
    """``host:port`` with an IP address or a host name and a port in 0..65535, or ValueError naming ``what``."""
    host, port = parse_endpoint(text, what)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError(f"{what}: expected host:port (an IP address or a host name), got {text!r}") from None
    return host, port


class StationOptions(Options, frozen=True):
    """A ground station of ``contact.mode = "stations"``."""

    name: str
    lat_deg: float
    lon_deg: float


class ContactOptions(Options, frozen=True):
    """``contact``: when the spacecraft is in contact with the ground (docs/ground.md)."""

    mode: Annotated[
        Literal["always", "never", "after_tc", "windows", "stations"],
        Meta(description="always, never, after_tc, windows, or stations"),
    ]
    hold_s: Annotated[float, Meta(description="after_tc: contact lasts this long after an authenticated TC")] = 600.0
    windows: Annotated[list[tuple[float, float]] | None, Meta(description="windows: [start_utc, end_utc] pairs")] = None
    stations: Annotated[list[StationOptions] | None, Meta(description="stations: {name, lat_deg, lon_deg}")] = None
    altitude_km: Annotated[float | None, Meta(description="stations: orbit altitude")] = None
    min_elevation_deg: Annotated[float, Meta(description="stations: elevation mask")] = 10.0

    def table(self) -> dict[str, Any]:
        """The set keys as a plain table (what ``contact.from_config`` reads)."""
        return {k: v for k, v in msgspec.to_builtins(self).items() if v is not None}


def _after_tc() -> ContactOptions:
    return ContactOptions(mode="after_tc")


class GroundOptions(Options, frozen=True):
    """What ``[services.ground.options]`` may hold (one flat table, plus ``contact``)."""

    udp_bind: Annotated[str, Meta(description="UDP endpoint host:port (port 0: any free port)")] = "127.0.0.1:10025"
    tcp_bind: Annotated[str, Meta(description="TCP endpoint host:port; empty: no TCP link")] = ""
    ground_addr: Annotated[
        str | list[str], Meta(description="host:port (or a list) that spontaneous and stored telemetry always goes to")
    ] = ""
    apid: Annotated[int, Meta(description="application process id of telecommands and telemetry, 0..2047")] = 100
    auth: Annotated[bool, Meta(description="authenticated telecommands; false is for a lab bench only")] = True
    replay_window: Annotated[int, Meta(description="how far past the highest accepted counter one may jump")] = (
        1_000_000
    )
    keys_file: Annotated[str, Meta(description="key file; empty: <state_dir>/ground/keys.json")] = ""
    resync_nonce_s: Annotated[
        float, Meta(description="how long the on-board nonce of an anti-replay resync (TC[129,1]) stays valid")
    ] = 60.0
    mdb: Annotated[list[str], Meta(description="mission tables added to the shipped one")] = []
    downlink_rate_bytes_s: Annotated[float, Meta(description="downlink budget in bytes/s; 0: no limit")] = 0.0
    downlink_burst_bytes: Annotated[float, Meta(description="burst allowance of the downlink budget")] = 65536.0
    store_max_mb: Annotated[int, Meta(description="store-and-forward capacity in MiB")] = 64
    ack_timeout_s: Annotated[
        float, Meta(description="telemetry sent but not acknowledged (TC[15,130]) this long is sent again")
    ] = 30.0
    store_memory_kb: Annotated[
        int, Meta(description="telemetry held in memory while the downlink store cannot be written (disk full)")
    ] = 1024
    contact: Annotated[ContactOptions, Meta(description="contact model")] = msgspec.field(default_factory=_after_tc)
    command_timeout_s: Annotated[float, Meta(description="deadline of the bus command behind a TC[8,1]")] = 10.0
    # ---- link protection (docs/ground.md, "Link protection")
    reject_replies: Annotated[
        bool, Meta(description="answer unauthenticated or malformed TCs with a failure report (no larger than the TC)")
    ] = True
    reject_reply_rate_hz: Annotated[
        float, Meta(description="at most this many such answers per second (all sources together)")
    ] = 10.0
    reject_reply_burst: Annotated[int, Meta(description="burst allowance of those answers")] = 20
    reject_report_s: Annotated[
        float, Meta(description="rejections are reported as one event per reason per this many seconds")
    ] = 10.0
    tcp_max_connections: Annotated[int, Meta(description="TCP connections served at once; more are closed")] = 8
    tcp_idle_s: Annotated[float, Meta(description="a TCP connection that sends nothing this long is closed")] = 300.0
    tcp_buffer_bytes: Annotated[int, Meta(description="unsent bytes held per TCP connection")] = 65536
    tcp_stall_s: Annotated[
        float, Meta(description="a TCP peer that leaves its buffer full this long is disconnected")
    ] = 10.0

    def __post_init__(self) -> None:
        endpoint(self.udp_bind, "udp_bind")
        if self.tcp_bind:
            endpoint(self.tcp_bind, "tcp_bind")
        for i, text in enumerate(self.ground_addrs_text()):
            endpoint(text, "ground_addr" if isinstance(self.ground_addr, str) else f"ground_addr[{i}]")
        if not 0 <= self.apid <= 2047:
            raise self.invalid("apid", "an integer in 0..2047")
        if not 1 <= self.replay_window < 2**63:
            raise self.invalid("replay_window", "an integer >= 1")
        positive = (
            "downlink_burst_bytes",
            "command_timeout_s",
            "reject_report_s",
            "tcp_idle_s",
            "tcp_stall_s",
            "ack_timeout_s",
            "resync_nonce_s",
        )
        for key in positive:
            if getattr(self, key) <= 0:
                raise self.invalid(key, "a number > 0")
        for key in ("downlink_rate_bytes_s", "reject_reply_rate_hz"):
            if getattr(self, key) < 0:
                raise self.invalid(key, "a number >= 0")
        for key, low in (
            ("store_max_mb", 1),
            ("store_memory_kb", 16),
            ("reject_reply_burst", 1),
            ("tcp_max_connections", 1),
            ("tcp_buffer_bytes", 1024),
        ):
            if getattr(self, key) < low:
                raise self.invalid(key, f"an integer >= {low}")
        contacts.from_config(self.contact.table(), "contact")  # the checks of each mode, keys named

    def ground_addrs_text(self) -> list[str]:
        """``ground_addr`` as a list (empty when unset)."""
        if isinstance(self.ground_addr, str):
            return [self.ground_addr] if self.ground_addr else []
        return list(self.ground_addr)

    def ground_addrs(self) -> list[Address]:
        """The configured ground addresses, parsed."""
        return [endpoint(text, "ground_addr") for text in self.ground_addrs_text()]
