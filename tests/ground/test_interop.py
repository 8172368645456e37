"""Our telemetry read by independent decoders: spacepackets' PUS parser and NASA's ccsdspy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from ccsdspy import FixedLength, PacketField
from spacepackets.ecss.pus_1_verification import ManagedParams, ManagedParamsVerification, Service1Tm

from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from services.ground.reports import hk_data

TABLES = mdb.load()


def test_verification_reports_parse_with_spacepackets() -> None:
    """A failure report we build is read back by spacepackets' own Service 1 parser, code and request id intact."""
    tc = pus.parse_tc(
        bytes(__import__("spacepackets").ecss.PusTc(service=8, message_subtype=1, apid=100, seq_count=9).pack()), 100
    )
    raw = pus.verification(8, tc.request_id, 100, 3, failure=Failure.COMMAND_FAILED, data=b"boom")
    rep = Service1Tm.unpack(
        raw,
        ManagedParams(timestamp_len=pus.TIMESTAMP_LEN),
        ManagedParamsVerification(bytes_step_id=1, bytes_err_code=2),
    )
    assert rep.tc_req_id.as_u32() == tc.request_id.as_u32()
    assert rep.error_code is not None and rep.error_code.val == Failure.COMMAND_FAILED


def test_housekeeping_archive_reads_with_ccsdspy(tmp_path: Path) -> None:
    """An archive of TM[3,25] packets of structure 1 decodes with ccsdspy to the values we packed."""
    structure = TABLES.hk[1]
    samples = [
        {
            "memory": {"used_pct": 10.0 + i, "available_mb": 1000 - i},
            "disk": {"used_pct": 50.5, "free_mb": 7 * i},
            "load_avg": [0.25 * i, 0.0, 0.0],
        }
        for i in range(5)
    ]
    archive = tmp_path / "hk.bin"
    archive.write_bytes(b"".join(pus.tm(3, 25, hk_data(structure, s), 100, i) for i, s in enumerate(samples)))
    fields = [
        PacketField("pus_version", "uint", 4),
        PacketField("time_ref", "uint", 4),
        PacketField("service", "uint", 8),
        PacketField("subtype", "uint", 8),
        PacketField("counter", "uint", 16),
        PacketField("destination", "uint", 16),
        PacketField("time_pfield", "uint", 8),
        PacketField("time_days", "uint", 16),
        PacketField("time_ms", "uint", 32),
        PacketField("sid", "uint", 16),
    ]
    kinds = {"float": ("float", 64), "int": ("int", 64)}
    for f in structure.fields:
        kind, bits = kinds[f.type]
        fields.append(PacketField(f.path.replace(".", "_"), kind, bits))
    fields.append(PacketField("crc", "uint", 16))
    decoded = FixedLength(fields).load(str(archive), include_primary_header=True)
    assert list(decoded["CCSDS_APID"]) == [100] * 5
    assert list(decoded["service"]) == [3] * 5 and list(decoded["subtype"]) == [25] * 5
    assert list(decoded["sid"]) == [1] * 5
    assert np.allclose(decoded["memory_used_pct"], [10.0 + i for i in range(5)])
    assert list(decoded["memory_available_mb"]) == [1000 - i for i in range(5)]
    assert list(decoded["disk_free_mb"]) == [7 * i for i in range(5)]
    assert not any(math.isnan(v) for v in decoded["load_avg_0"])
