"""Mission-database export (JSON, XTCE) and id assignment for new services."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import msgspec
import pytest
from spacepackets.ecss import PusTc

from flightos import Parameter, Service, command, plugins
from flightos.ground import mdb, pus
from flightos.ground.codes import Failure
from flightos.groundtools.mdb_export import XTCE_NS, as_json, assign_missing, xtce
from services.ground import reports

X = f"{{{XTCE_NS}}}"


class Camera(Service):
    """A mission service that flightos does not ship."""

    name = "camera"
    exposure_ms = Parameter(10, min=1, max=1000, doc="exposure time")
    gain = Parameter(1.0, doc="analogue gain")

    @command()
    async def capture(self, count: int, label: str = "") -> int:
        """Take pictures."""
        return count

    @command()
    async def reset(self) -> None:
        """Reset the sensor."""


@pytest.fixture
def camera_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed plugins are just ``camera``."""
    monkeypatch.setattr(plugins, "installed", lambda: {"camera": plugins.PluginInfo("camera", "tests:Camera", "tests")})
    monkeypatch.setattr(plugins, "load", lambda name: Camera)


def functions_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{f['service']}.{f['command']}": f for f in doc["functions"]}


# ---- a tiny reader of the XTCE subset the export writes, to check it against real packets ----------------
def kids(parent: ET.Element, tag: str) -> list[ET.Element]:
    """The children of ``parent``'s child ``tag`` (none if it has no such child)."""
    found = parent.find(f"{X}{tag}")
    return list(found) if found is not None else []


class Xtce:
    def __init__(self, text: str) -> None:
        root = ET.fromstring(text)
        tm, cmd = root.find(f"{X}TelemetryMetaData"), root.find(f"{X}CommandMetaData")
        assert tm is not None and cmd is not None
        self.ptypes = {e.get("name", ""): e for e in kids(tm, "ParameterTypeSet")}
        self.params = {e.get("name", ""): e.get("parameterTypeRef", "") for e in kids(tm, "ParameterSet")}
        self.containers = {e.get("name", ""): e for e in kids(tm, "ContainerSet")}
        self.atypes = {e.get("name", ""): e for e in kids(cmd, "ArgumentTypeSet")}
        self.commands = {e.get("name", ""): e for e in kids(cmd, "MetaCommandSet") if e.tag == f"{X}MetaCommand"}

    @staticmethod
    def _size(enc: ET.Element, values: dict[str, Any]) -> int:
        dyn = enc.find(f".//{X}DynamicValue")
        assert dyn is not None
        ref = dyn.find(f"{X}ParameterInstanceRef")
        if ref is None:
            ref = dyn.find(f"{X}ArgumentInstanceRef")
        assert ref is not None
        adj = dyn.find(f"{X}LinearAdjustment")
        slope, intercept = (float(adj.get("slope", 1)), float(adj.get("intercept", 0))) if adj is not None else (1, 0)
        source = ref.get("parameterRef") or ref.get("argumentRef") or ""
        return int(values[source] * slope + intercept)

    def _chain(self, name: str) -> list[ET.Element]:
        chain: list[ET.Element] = []
        c = self.containers[name]
        while True:
            chain.insert(0, c)
            base = c.find(f"{X}BaseContainer")
            if base is None:
                return chain
            c = self.containers[base.get("containerRef", "")]

    def decode(self, packet: bytes) -> tuple[str, dict[str, Any]]:
        """The one concrete container that matches the packet, and its values."""
        matches = []
        for name, c in self.containers.items():
            if c.get("abstract") == "true":
                continue
            values = self._read(self._chain(name), packet)
            if values is not None:
                matches.append((name, values))
        assert len(matches) == 1, [m[0] for m in matches]
        return matches[0]

    def _read(self, chain: list[ET.Element], packet: bytes) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        bits, pos = int.from_bytes(packet, "big"), 0
        total = len(packet) * 8

        def take(n: int) -> int:
            nonlocal pos
            v = (bits >> (total - pos - n)) & ((1 << n) - 1)
            pos += n
            return v

        def raw(nbits: int) -> bytes:
            return take(nbits).to_bytes(nbits // 8, "big") if nbits else b""

        for c in chain:
            base = c.find(f"{X}BaseContainer")
            for cmp in base.iter(f"{X}Comparison") if base is not None else []:
                if values.get(cmp.get("parameterRef", "")) != int(cmp.get("value", "")):
                    return None
            for entry in kids(c, "EntryList"):
                pname = entry.get("parameterRef", "")
                t = self.ptypes[self.params[pname]]
                kind = t.tag.removeprefix(X)
                enc = t[0]
                if kind in ("IntegerParameterType", "EnumeratedParameterType", "BooleanParameterType"):
                    n = int(enc.get("sizeInBits", ""))
                    v: Any = take(n)
                    if enc.get("encoding") == "twosComplement" and v >= 1 << (n - 1):
                        v -= 1 << n
                    if kind == "BooleanParameterType":
                        v = bool(v)
                    if kind == "EnumeratedParameterType":
                        v = {int(e.get("value", "")): e.get("label") for e in t.iter(f"{X}Enumeration")}[v]
                elif kind == "FloatParameterType":
                    v = struct.unpack(">d", raw(64))[0]
                elif kind == "StringParameterType":
                    lead = enc.find(f".//{X}LeadingSize")
                    n = (
                        take(int(lead.get("sizeInBitsOfSizeTag", ""))) * 8
                        if lead is not None
                        else self._size(enc, values)
                    )
                    v = raw(n).decode()
                else:
                    v = raw(self._size(enc, values))
                values[pname] = v
        return values

    def telecommand(self, name: str, args: dict[str, Any]) -> bytes:
        """A MetaCommand's bits with these argument values (base commands first, their assignments applied)."""
        chain: list[ET.Element] = []
        values, types = dict(args), {}
        mc: ET.Element | None = self.commands[name]
        while mc is not None:
            chain.insert(0, mc)
            types.update({a.get("name", ""): a.get("argumentTypeRef", "") for a in mc.iter(f"{X}Argument")})
            for a in mc.iter(f"{X}ArgumentAssignment"):
                values[a.get("argumentName", "")] = int(a.get("argumentValue", ""))
            for a in mc.iter(f"{X}Argument"):
                initial = a.get("initialValue")
                if a.get("name", "") not in values and initial is not None:
                    values[a.get("name", "")] = int(initial) if initial.lstrip("-").isdigit() else initial
            base = mc.find(f"{X}BaseMetaCommand")
            mc = self.commands[base.get("metaCommandRef", "")] if base is not None else None
        acc, nbits = 0, 0

        def put(value: int, n: int) -> None:
            nonlocal acc, nbits
            acc, nbits = (acc << n) | (value & ((1 << n) - 1)), nbits + n

        for m in chain:
            container = m.find(f"{X}CommandContainer")
            assert container is not None
            for entry in kids(container, "EntryList"):
                if entry.tag == f"{X}FixedValueEntry":
                    put(int(entry.get("binaryValue", ""), 16), int(entry.get("sizeInBits", "")))
                    continue
                aname = entry.get("argumentRef", "")
                t, value = self.atypes[types[aname]], values[aname]
                kind = t.tag.removeprefix(X)
                if kind == "IntegerArgumentType":
                    put(value, int(t.get("sizeInBits", "")))
                elif kind == "FloatArgumentType":
                    put(int.from_bytes(struct.pack(">d", value), "big"), 64)
                elif kind == "BooleanArgumentType":
                    put(1 if value else 0, 8)
                elif kind == "StringArgumentType":
                    put(len(value.encode()), 16)
                    put(int.from_bytes(value.encode(), "big"), 8 * len(value.encode()))
                else:
                    assert self._size(t, values) == len(value) * 8
                    put(int.from_bytes(value, "big"), 8 * len(value))
        assert nbits % 8 == 0
        return acc.to_bytes(nbits // 8, "big")


# ---- JSON -----------------------------------------------------------------------------------------------
def test_json_lists_every_shipped_function_with_its_argument_types() -> None:
    """Every shipped function is listed with its arguments' wire types, and none is unresolved."""
    tables = mdb.load()
    doc = as_json(tables)
    json.dumps(doc)  # plain data
    by_name = functions_by_name(doc)
    assert set(by_name) == {f.name for f in tables.functions.values()}
    assert by_name["test.sleep"]["id"] == 5
    assert by_name["test.sleep"]["args"] == [{"name": "seconds", "type": "float", "required": True, "default": None}]
    assert by_name["test.hang"]["args"] == [{"name": "seconds", "type": "float", "required": False, "default": 3600.0}]
    assert [(a["name"], a["type"]) for a in by_name["kernel.core"]["args"]] == [("core", "int"), ("action", "str")]
    assert [a["type"] for a in by_name["test.relay"]["args"]] == ["str", "str", "any", "float"]
    assert by_name["test.ping"]["doc"].startswith("Are-you-alive")
    assert doc["unresolved"] == []


def test_json_lists_parameters_housekeeping_failure_codes_and_events() -> None:
    """Parameters carry type, default, bounds and doc; HK structures, failure codes and the event layout are there."""
    doc = as_json(mdb.load())
    duty = next(p for p in doc["parameters"] if p["name"] == "duty_pct")
    assert (
        duty
        == {
            "id": 2,
            "service": "test",
            "name": "duty_pct",
            "type": "float",
            "default": 0.0,
            "min": 0.0,
            "max": 95.0,
            "doc": duty["doc"],
        }
        and duty["doc"]
    )
    system = next(s for s in doc["hk"] if s["sid"] == 1)
    assert system["topic"] == "tm.housekeeping.system"
    assert {"path": "memory.used_pct", "type": "float"} in system["fields"]
    assert {"code": int(Failure.BAD_ARGUMENTS), "name": "BAD_ARGUMENTS"} in doc["failure_codes"]
    assert [f["name"] for f in doc["events"]["fields"]] == ["event_id", "source", "message", "details"]
    assert {"id": 1106, "name": "SERVICE_FAILED"} in doc["events"]["kernel_event_ids"]


def test_json_lists_an_uninstalled_service_as_unresolved_instead_of_crashing(tmp_path: Path) -> None:
    """A table naming a service that is not installed exports fine and names what could not be resolved."""
    table = tmp_path / "mission.toml"
    table.write_text(
        '[functions]\n20000 = "nosuch.fire"\n20001 = "test.no_such_command"\n'
        '20002 = { command = "nosuch.typed", args = [{ name = "n", type = "int" }] }\n'
        '[parameters]\n20000 = "nosuch.level"\n20001 = { name = "nosuch.typed", type = "bool" }\n'
    )
    doc = as_json(mdb.load([table]))
    assert doc["unresolved"] == ["nosuch.fire", "nosuch.level", "test.no_such_command"]
    by_name = functions_by_name(doc)
    assert by_name["nosuch.fire"]["args"] is None
    assert by_name["nosuch.typed"]["args"] == [{"name": "n", "type": "int", "required": True, "default": None}]
    typed = next(p for p in doc["parameters"] if p["id"] == 20001)
    assert typed["type"] == "bool"


# ---- XTCE -----------------------------------------------------------------------------------------------
def test_xtce_has_one_metacommand_per_function_and_one_container_per_hk_structure() -> None:
    """The XTCE export parses, is in the XTCE 1.2 namespace, and covers every function and HK structure."""
    tables = mdb.load()
    root = ET.fromstring(xtce(tables))
    assert root.tag == f"{X}SpaceSystem" and root.get("name") == "flightos"
    commands = [m for m in root.iter(f"{X}MetaCommand") if m.get("abstract") != "true"]
    assert len(commands) == len(tables.functions)
    ids = {
        int(e.get("binaryValue", ""), 16)
        for m in commands
        for e in m.iter(f"{X}FixedValueEntry")
        if e.get("name") == "function_id"
    }
    assert ids == set(tables.functions)
    hk = [
        c
        for c in root.iter(f"{X}SequenceContainer")
        if any(cmp.get("parameterRef") == "hk_sid" for cmp in c.iter(f"{X}Comparison"))
    ]
    assert sorted(int(next(c.iter(f"{X}Comparison")).get("value", "")) for c in hk) == sorted(tables.hk)


def test_xtce_names_have_no_dots_and_the_output_is_deterministic() -> None:
    """Every XTCE name is dot-free (flightos names become aliases) and two exports are byte-identical."""
    tables = mdb.load()
    text = xtce(tables)
    assert text == xtce(mdb.load())
    root = ET.fromstring(text)
    names = [e.get("name", "") for e in root.iter() if e.get("name") is not None]
    assert names and not [n for n in names if "." in n or " " in n or "/" in n]
    assert "test_sleep" in names
    aliases = {a.get("alias") for a in root.iter(f"{X}Alias") if a.get("nameSpace") == "flightos"}
    assert {"test.sleep", "system.memory.used_pct"} <= aliases


def test_xtce_decodes_real_telemetry_packets() -> None:
    """A ground system reading the XTCE gets the right values out of HK, event, verification and value packets."""
    tables = mdb.load()
    doc = Xtce(xtce(tables))

    payload = {
        "memory": {"used_pct": 41.5, "available_mb": 3000},
        "disk": {"used_pct": 12.25, "free_mb": 900},
        "load_avg": [0.75, 0.5, 0.25],
    }
    name, v = doc.decode(pus.tm(3, 25, reports.hk_data(tables.hk[1], payload), apid=100, seq_count=7))
    assert name == "hk_system" and v["ccsds_apid"] == 100 and v["ccsds_seq_count"] == 7
    assert v["pus_time_pfield"] == 0x40 and v["pus_time_days"] > 365 * 60  # days since 1958
    assert (v["hk_system__memory__used_pct"], v["hk_system__memory__available_mb"]) == (41.5, 3000)
    assert (v["hk_system__disk__free_mb"], v["hk_system__load_avg__0"]) == (900, 0.75)
    health = {"mode": "safe", "junction_c": 71.0, "watchdog": {"resets": -2}}
    name, v = doc.decode(pus.tm(3, 25, reports.hk_data(tables.hk[2], health), apid=100, seq_count=8))
    assert name == "hk_health" and v["hk_health__mode"] == "safe" and v["hk_health__watchdog__resets"] == -2
    assert v["hk_health__thermal_level"] == -(2**63)  # missing: the minimum

    name, v = doc.decode(pus.tm(5, 3, reports.event_data(17001, "test", "héllo", {"a": [1, 2]}), 100, 9))
    assert name == "event_report" and v["pus_service_subtype"] == 3
    assert (v["event_id"], v["event_source"], v["event_message"]) == (17001, "test", "héllo")
    assert msgspec.msgpack.decode(v["event_details"]) == {"a": [1, 2]}

    tc = PusTc(service=8, message_subtype=1, apid=100, seq_count=42, app_data=b"\x00\x05")
    rid = pus.request_id_of(tc.pack())
    assert rid is not None
    name, v = doc.decode(pus.verification(8, rid, 100, 10, Failure.COMMAND_FAILED, b"it broke"))
    assert name == "verification_completion_failed" and v["verif_seq_count"] == 42
    assert (v["verif_failure_code"], v["verif_failure_reason"]) == ("COMMAND_FAILED", "it broke")
    name, v = doc.decode(pus.verification(6, rid, 100, 11, Failure.INTERNAL, b"step 3 failed", step=3))
    assert name == "verification_progress_failed" and v["verif_step_id"] == 3
    assert v["verif_failure_code"] == "INTERNAL" and v["verif_progress_failure_reason"] == "step 3 failed"
    assert doc.decode(pus.verification(1, rid, 100, 12))[0] == "verification_accepted"

    name, v = doc.decode(pus.tm(8, 130, reports.value_report(5, {"slept": 2.5}), 100, 13))
    assert name == "function_value" and v["function_value_id"] == 5
    assert msgspec.msgpack.decode(v["function_value"]) == {"slept": 2.5}
    assert doc.decode(pus.tm(17, 2, b"", 100, 14))[0] == "are_you_alive_report"
    name, v = doc.decode(pus.tm(9, 2, pus.unix_to_cds(86400 * 1.5), 100, 15))
    assert name == "time_report" and (v["onboard_time_days"], v["onboard_time_ms"]) == (4383 + 1, 43_200_000)


def test_xtce_encodes_function_telecommands_as_the_spacecraft_decodes_them() -> None:
    """A TC[8,1] built from the XTCE has the PUS-C header, function id and arguments exactly as on board."""
    doc = Xtce(xtce(mdb.load()))

    def expected(fid: int, types: list[str], values: list[Any]) -> bytes:
        packet = PusTc(
            service=8,
            message_subtype=1,
            apid=100,
            seq_count=0,
            ack_flags=0b1111,
            source_id=0,
            app_data=pus.pack_u16(fid) + pus.encode_values(types, values),
        ).pack()
        return bytes(packet[:4]) + b"\0\0" + bytes(packet[6:-2])  # the ground system fills length and CRC

    relay = {"service": "kernel", "command": "ping", "args_size": 1, "args": b"\x80", "timeout": 2.5}
    assert doc.telecommand("test_relay", relay) == expected(
        11, ["str", "str", "any", "float"], ["kernel", "ping", {}, 2.5]
    )
    assert doc.telecommand("kernel_core", {"core": 3, "action": "disable"}) == expected(
        1004, ["int", "str"], [3, "disable"]
    )
    assert doc.telecommand("test_announce", {"message": "hé", "severity": -1}) == expected(
        12, ["str", "int"], ["hé", -1]
    )
    assert doc.telecommand("test_ping", {}) == expected(1, [], [])


def test_xtce_leaves_out_functions_whose_service_is_not_installed(tmp_path: Path) -> None:
    """A function of an uninstalled service is left out of the XTCE (with a comment) rather than guessed."""
    table = tmp_path / "mission.toml"
    table.write_text('[functions]\n20000 = "nosuch.fire"\n')
    text = xtce(mdb.load([table]))
    root = ET.fromstring(text)
    assert "nosuch" not in {m.get("name", "").split("_")[0] for m in root.iter(f"{X}MetaCommand")}
    assert "function 20000 (nosuch.fire) left out" in text


# ---- assigning ids --------------------------------------------------------------------------------------
def test_assign_appends_mission_ids_for_a_new_service(tmp_path: Path, camera_only: None) -> None:
    """A new service's commands and parameters get ids from 20000 up, appended to the mission table."""
    table = tmp_path / "mission.toml"
    original = (
        '# our mission\n\n[functions]\n20000 = "camera.capture"  # flown since launch\n\n'
        '# the star tracker\n[hk.20000]\nname = "cam"\ntopic = "tm.camera.status"\n'
        'fields = [{ path = "t", type = "float" }]\n'
    )
    table.write_text(original)
    added = assign_missing(mdb.load([table]), table)
    assert added == [(20001, "camera.reset"), (20000, "camera.exposure_ms"), (20001, "camera.gain")]
    new_lines = ['20001 = "camera.reset"', "[parameters]", '20000 = "camera.exposure_ms"', '20001 = "camera.gain"']
    kept = [line for line in table.read_text().splitlines() if line not in new_lines]
    assert [line for line in kept if line] == [line for line in original.splitlines() if line]
    tables = mdb.load([table])
    assert tables.function_id("camera", "capture") == 20000
    assert tables.function_id("camera", "reset") == 20001
    assert tables.parameter_id("camera", "gain") == 20001
    assert tables.hk[20000].name == "cam"


def test_assign_again_adds_nothing(tmp_path: Path, camera_only: None) -> None:
    """Running assign a second time changes nothing."""
    table = tmp_path / "mission.toml"
    table.write_text("[functions]\n")
    assert len(assign_missing(mdb.load([table]), table)) == 4
    before = table.read_text()
    assert assign_missing(mdb.load([table]), table) == []
    assert table.read_text() == before


def test_assign_creates_a_missing_table_and_continues_after_the_highest_id(tmp_path: Path, camera_only: None) -> None:
    """A missing mission table is created; ids continue after the highest in use, never renumbering."""
    table = tmp_path / "mission.toml"
    assert assign_missing(mdb.load(), table)[:2] == [(20000, "camera.capture"), (20001, "camera.reset")]
    assert table.read_text().startswith("#")
    assert mdb.load([table]).function_id("camera", "reset") == 20001

    other = tmp_path / "other.toml"
    other.write_text('[functions]\n20040 = "camera.capture"\n[parameters]\n31000 = "camera.gain"\n')
    assert assign_missing(mdb.load([other]), other) == [(20041, "camera.reset"), (31001, "camera.exposure_ms")]
    assert mdb.load([other]).function_id("camera", "capture") == 20040


def test_assign_refuses_a_table_it_cannot_extend_and_leaves_it_alone(tmp_path: Path, camera_only: None) -> None:
    """A table written so that new lines cannot be added is reported and left unchanged."""
    table = tmp_path / "mission.toml"
    original = 'functions = { 20000 = "camera.capture" }\n'
    table.write_text(original)
    with pytest.raises(mdb.MdbError, match="not changed"):
        assign_missing(mdb.load([table]), table)
    assert table.read_text() == original
    assert [p.name for p in tmp_path.iterdir()] == ["mission.toml"]


def test_mdb_rejects_typos_duplicates_and_wrong_types(tmp_path: Path) -> None:
    """Mission tables with an unknown key, a repeated argument or a wrong type fail with the entry named."""
    cases = {
        '[functions]\n20000 = { command = "x.y", arg = [] }\n': "functions.20000.arg: unknown key",
        (
            '[functions]\n20000 = { command = "x.y", args = [{name="a", type="int"}, {name="a", type="int"}] }\n'
        ): "appears twice",
        "functions = 3\n": "functions: expected a table",
        '[hk.20000]\ntopic = "tm.x"\nenabled = "false"\n': "enabled: expected true or false",
        '[hk.20000]\ntopic = "tm.x"\ninterval_s = true\n': "interval_s: expected a number",
    }
    for text, message in cases.items():
        path = tmp_path / "mission.toml"
        path.write_text(text)
        with pytest.raises(mdb.MdbError, match=message):
            mdb.load([path])


def test_hk_fill_never_breaks_on_odd_numbers() -> None:
    """NaN, infinity, huge and non-numeric values in telemetry encode as the missing markers."""
    f = mdb.HkField("x", "int")
    assert [f.fill(v) for v in (float("nan"), float("inf"), 2**70, "3", None, 7)] == [mdb.INT_MISSING] * 5 + [7]
