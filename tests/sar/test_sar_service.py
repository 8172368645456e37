"""The SAR payload in a real runtime: a scene becomes a ship alert on the ground, with its figures on the bus."""

from __future__ import annotations

import pytest

from flightos.ground import pus
from flightos.reference.topics import TOPICS, field_names
from flightos.testing.bus import Bus
from services.sar import detect as det

pytestmark = pytest.mark.flightos(
    services=["sar", "ground"],
    overrides=[
        "services.sar.params.scene_px=1024",
        "services.sar.params.ships=8",
        "services.sar.params.interval_s=86400",
    ],
)


async def test_scene_becomes_an_alert_not_a_download(bus: Bus, ground: object) -> None:
    """One acquisition: the ships are found, an alert of bytes per ship is downlinked, the raw scene dropped."""
    assert await ground.ping() > 0  # type: ignore[attr-defined]  # the ground is in contact
    figures = await bus.call("sar", "process_scene", {"seed": 3}, timeout=60)
    assert figures["raw_bytes"] >= 1024 * 1024 * 4  # float32 pixels (plus the .npy header)
    assert figures["downlinked_bytes"] < 600 and figures["ratio"] > 5000
    assert figures["recall"] >= 0.9 and figures["precision"] >= 0.9
    # energy from the board's power over the processing time, never a silent 0 (issue 16, item 3)
    assert figures["energy_mj"] > 0 and figures["power_w"] > 0, figures
    assert figures["energy_source"] == "board power x processing time"
    # the clutter fit and the false alarms it predicts, so the ground sees when the model does not fit
    assert figures["clutter_nu_median"] > 0.5 and figures["clutter_nu_min"] <= figures["clutter_nu_median"]
    assert figures["fa_expected"] > 0 and figures["fa_observed"] <= 3 * figures["fa_expected"], figures
    published = await bus.telemetry("tm.sar.scene", lambda p: p["scene"] == figures["scene"], timeout=5)
    assert published["ships_found"] == figures["ships_found"]
    assert set(published) == field_names(next(t for t in TOPICS if t.name == "tm.sar.scene"))  # docs/topics.md
    while True:
        tm = await ground.next_tm(10)  # type: ignore[attr-defined]
        if tm.service == 128:
            break
    (source, name, data), _ = pus.decode_values(["str", "str", "any"], bytes(tm.source_data))
    assert (source, name) == ("sar", "ship-alert")
    assert det.parse_alert(data)["ships"].__len__() == figures["ships_found"]
    assert (await bus.call("sar", "figures"))["kept"] == []
