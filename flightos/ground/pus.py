"""CCSDS Space Packets with PUS-C, through the ``spacepackets`` library: parse telecommands, build telemetry.

No CRCs by hand: spacepackets packs and checks them. Every malformed input becomes a ``TcError``
with a ST[01] failure code (or is dropped and counted when not even a header can be read).
"""

from __future__ import annotations

import struct
import time
import warnings
from dataclasses import dataclass
from typing import Any

import msgspec
from spacepackets.ccsds import CdsShortTimestamp, PacketType, SpacePacketHeader
from spacepackets.ecss import PusTc, PusTm, RequestId
from spacepackets.ecss.pus_1_verification import (
    ErrorCode,
    FailureNotice,
    Service1Tm,
    StepId,
    VerificationParams,
)

from flightos.ground.codes import Failure

warnings.filterwarnings("ignore", category=DeprecationWarning, module="spacepackets")

TIMESTAMP_LEN = 7
"""CDS short time code: a 1-byte P-field (0x40), then 16-bit day and 32-bit millisecond of day."""
HEADER_LEN = 6
ERROR_CODE_BITS = 16
STEP_ID_BITS = 8


class TcError(Exception):
    """A telecommand that cannot be accepted; ``request_id`` is None when even the header is unreadable."""

    def __init__(self, code: Failure, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Telecommand:
    """A parsed, CRC-checked PUS-C telecommand."""

    raw: bytes
    tc: PusTc
    request_id: RequestId

    @property
    def service(self) -> int:
        """The PUS service type."""
        return int(self.tc.service)

    @property
    def subtype(self) -> int:
        """The PUS message subtype."""
        return int(self.tc.message_subtype)

    @property
    def app_data(self) -> bytes:
        """The application data field."""
        return bytes(self.tc.app_data)

    @property
    def ack_flags(self) -> int:
        """Which success reports the sender asked for: bit 0 acceptance, 1 start, 2 progress, 3 completion."""
        return int(self.tc.pus_tc_sec_header.ack_flags)

    @property
    def label(self) -> str:
        """``TC[8,1] apid 100 seq 12`` for logs and events."""
        return f"TC[{self.service},{self.subtype}] apid {self.tc.apid} seq {self.tc.seq_count}"


def request_id_of(raw: bytes) -> RequestId | None:
    """The request id from the first six bytes, if they are there."""
    if len(raw) < HEADER_LEN:
        return None
    try:
        return RequestId.from_sp_header(SpacePacketHeader.unpack(raw[:HEADER_LEN]))
    except Exception:
        return None


def parse_tc(raw: bytes, apid: int | None = None) -> Telecommand:
    """Parse one telecommand packet; raise TcError with the ST[01] code of what is wrong."""
    rid = request_id_of(raw)
    if rid is None:
        raise TcError(Failure.MALFORMED_PACKET, f"{len(raw)} bytes: shorter than a packet header")
    header = SpacePacketHeader.unpack(raw[:HEADER_LEN])
    if header.packet_type != PacketType.TC:
        raise TcError(Failure.MALFORMED_PACKET, "not a telecommand (packet type is TM)", rid)
    if header.packet_len != len(raw):
        raise TcError(
            Failure.MALFORMED_PACKET, f"length field says {header.packet_len} bytes, datagram has {len(raw)}", rid
        )
    if apid is not None and header.apid != apid:
        raise TcError(Failure.WRONG_APID, f"APID {header.apid}, this spacecraft listens on {apid}", rid)
    try:
        tc = PusTc.unpack(raw)
    except Exception as exc:
        code = Failure.CRC_ERROR if "crc" in type(exc).__name__.lower() else Failure.MALFORMED_PACKET
        raise TcError(code, f"{type(exc).__name__}: {exc}", rid) from None
    return Telecommand(raw=bytes(raw), tc=tc, request_id=rid)


def now_cds() -> bytes:
    """The current UTC as a CDS short time code."""
    return bytes(CdsShortTimestamp.now().pack())


def cds_to_unix(data: bytes) -> float:
    """Unix seconds from a CDS short time code (days since 1958-01-01, ms of day)."""
    if len(data) < TIMESTAMP_LEN:
        raise ValueError(f"a CDS short time code has {TIMESTAMP_LEN} bytes, got {len(data)}")
    return float(CdsShortTimestamp.unpack(bytes(data[:TIMESTAMP_LEN])).as_unix_seconds())


def unix_to_cds(t: float) -> bytes:
    """A CDS short time code for unix seconds."""
    import datetime as dt

    return bytes(CdsShortTimestamp.from_datetime(dt.datetime.fromtimestamp(t, tz=dt.timezone.utc)).pack())


def tm(service: int, subtype: int, data: bytes, apid: int, seq_count: int, timestamp: bytes | None = None) -> bytes:
    """One telemetry packet (PUS-C, CDS short time, CRC)."""
    return bytes(
        PusTm(
            service=service,
            message_subtype=subtype,
            timestamp=timestamp or now_cds(),
            source_data=data,
            apid=apid,
            seq_count=seq_count & 0x3FFF,
        ).pack()
    )


def verification(
    subtype: int,
    request_id: RequestId,
    apid: int,
    seq_count: int,
    failure: Failure | None = None,
    data: bytes = b"",
    step: int | None = None,
) -> bytes:
    """A TM[1,x] report: 1/2 acceptance, 3/4 start, 5/6 progress, 7/8 completion (even = failure)."""
    notice = FailureNotice(ErrorCode(ERROR_CODE_BITS, int(failure)), data) if failure is not None else None
    step_id = StepId(STEP_ID_BITS, step) if step is not None else None
    report = Service1Tm(
        apid=apid,
        message_subtype=subtype,
        timestamp=now_cds(),
        seq_count=seq_count & 0x3FFF,
        verif_params=VerificationParams(request_id, step_id, notice),
    )
    return bytes(report.pack())


def parse_tm(raw: bytes) -> PusTm:
    """Parse a telemetry packet (for ground tools and tests)."""
    return PusTm.unpack(raw, timestamp_len=TIMESTAMP_LEN)


# ---- acknowledging telemetry (TC[15,130], flightos) ------------------------------------------------
IDENTITY_LEN = 2 + TIMESTAMP_LEN
"""A TM packet's identity: its 14-bit sequence count (u16) and its CDS short time stamp (7 bytes)."""
ACK_MAX = 500
"""Identities per TC[15,130] (4.5 kB of application data)."""
_TM_TIME_AT = HEADER_LEN + 7  # PUS-C TM secondary header: version, service, subtype, counter u16, destination u16


def tm_identity(raw: bytes) -> bytes | None:
    """The identity of a PUS-C TM packet (sequence count, time stamp): what ground acknowledges; None if not TM."""
    if len(raw) < _TM_TIME_AT + TIMESTAMP_LEN or raw[0] & 0x10 or not raw[0] & 0x08:
        return None
    return bytes((raw[2] & 0x3F, raw[3])) + bytes(raw[_TM_TIME_AT : _TM_TIME_AT + TIMESTAMP_LEN])


def ack_data(identities: list[bytes]) -> bytes:
    """Application data of TC[15,130]: N (u16), then N identities of ``IDENTITY_LEN`` bytes."""
    if len(identities) > 0xFFFF or any(len(i) != IDENTITY_LEN for i in identities):
        raise ValueError(f"an acknowledgement holds up to 65535 identities of {IDENTITY_LEN} bytes")
    return pack_u16(len(identities)) + b"".join(identities)


def parse_ack(data: bytes) -> list[bytes]:
    """The identities of a TC[15,130]; ValueError naming what does not fit."""
    n = u16(data, 0)
    if len(data) != 2 + n * IDENTITY_LEN:
        raise ValueError(f"{n} identities need {2 + n * IDENTITY_LEN} bytes, got {len(data)}")
    return [bytes(data[2 + i * IDENTITY_LEN : 2 + (i + 1) * IDENTITY_LEN]) for i in range(n)]


# ---- typed values in application data ------------------------------------------------------------
_I64, _F64, _U8, _U16, _U32 = (
    struct.Struct(">q"),
    struct.Struct(">d"),
    struct.Struct(">B"),
    struct.Struct(">H"),
    struct.Struct(">I"),
)


def encode_value(type_name: str, value: Any) -> bytes:
    """One argument or parameter value by its declared type (docs/ground.md has the table)."""
    if type_name == "int":
        return _I64.pack(int(value))
    if type_name == "float":
        return _F64.pack(float(value))
    if type_name == "bool":
        return _U8.pack(1 if value else 0)
    if type_name == "str":
        b = str(value).encode()
        return _U16.pack(len(b)) + b
    if type_name == "bytes":
        b = bytes(value)
        return _U16.pack(len(b)) + b
    b = msgspec.msgpack.encode(value)
    return _U32.pack(len(b)) + b


def decode_value(type_name: str, data: bytes, offset: int) -> tuple[Any, int]:
    """Read one value of a declared type at ``offset``; return (value, new offset); ValueError if it does not fit."""
    try:
        if type_name == "int":
            return _I64.unpack_from(data, offset)[0], offset + 8
        if type_name == "float":
            return _F64.unpack_from(data, offset)[0], offset + 8
        if type_name == "bool":
            v = _U8.unpack_from(data, offset)[0]
            if v > 1:
                raise ValueError(f"a bool is 0 or 1, got {v}")
            return bool(v), offset + 1
        if type_name in ("str", "bytes"):
            (n,) = _U16.unpack_from(data, offset)
            end = offset + 2 + n
            if end > len(data):
                raise ValueError(f"{type_name} of {n} bytes runs past the end")
            chunk = data[offset + 2 : end]
            return (chunk.decode() if type_name == "str" else bytes(chunk)), end
        (n,) = _U32.unpack_from(data, offset)
        end = offset + 4 + n
        if end > len(data):
            raise ValueError(f"value of {n} bytes runs past the end")
        return msgspec.msgpack.decode(data[offset + 4 : end]), end
    except (struct.error, UnicodeDecodeError, msgspec.DecodeError) as exc:
        raise ValueError(f"{type_name} at byte {offset}: {exc}") from None


def encode_values(types: list[str], values: list[Any]) -> bytes:
    """Several values in order."""
    return b"".join(encode_value(t, v) for t, v in zip(types, values, strict=True))


def decode_values(types: list[str], data: bytes, offset: int = 0, exact: bool = True) -> tuple[list[Any], int]:
    """Several values in order; with ``exact``, trailing bytes are an error."""
    out = []
    for t in types:
        v, offset = decode_value(t, data, offset)
        out.append(v)
    if exact and offset != len(data):
        raise ValueError(f"{len(data) - offset} unexpected trailing byte(s)")
    return out, offset


def u16(data: bytes, offset: int) -> int:
    """A big-endian u16, or ValueError."""
    try:
        return int(_U16.unpack_from(data, offset)[0])
    except struct.error:
        raise ValueError(f"expected a 16-bit field at byte {offset}, the data has {len(data)} bytes") from None


def u32(data: bytes, offset: int) -> int:
    """A big-endian u32, or ValueError."""
    try:
        return int(_U32.unpack_from(data, offset)[0])
    except struct.error:
        raise ValueError(f"expected a 32-bit field at byte {offset}, the data has {len(data)} bytes") from None


def pack_u16(v: int) -> bytes:
    """A big-endian u16."""
    return _U16.pack(v)


def pack_u32(v: int) -> bytes:
    """A big-endian u32."""
    return _U32.pack(v)


def utc_now() -> float:
    """Unix time now."""
    return time.time()
