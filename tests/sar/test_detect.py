"""Ship detection: quality against the generator's truth, tiling, memory budget, alerts, the job processor."""

from __future__ import annotations

import json
import math
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from flightos.sdk.jobs import JobContext
from services.sar import detect as D
from services.sar import scene
from services.sar.processor import detect_processor
from services.sar.scene import Ship

# The operating point docs/sar.md states: ships of 10..60 px at 12..20 dB above the mean sea.
SHIPS: dict[str, Any] = {"n_ships": 30, "ship_length_px": (10.0, 60.0), "contrast_db": (12.0, 20.0)}


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory) -> scene.Scene:
    """A 4096 x 4096 float32 scene on disk: 64 MiB, K clutter, 25 ships."""
    return scene.write_scene(
        tmp_path_factory.mktemp("sar") / "big",
        (4096, 4096),
        seed=42,
        n_ships=25,
        ship_length_px=(10.0, 60.0),
        contrast_db=(12.0, 20.0),
    )


def _pooled(kind: dict[str, Any], seeds: range, **detect_kw: Any) -> tuple[float, float]:
    """Precision and recall pooled over several 2048 x 2048 scenes."""
    tp = n_det = n_ship = 0
    for seed in seeds:
        s = scene.generate((2048, 2048), seed=seed, **SHIPS, **kind)
        found = D.detect(s.image, land_mask=s.truth.land_mask, geo=s.geo, **detect_kw)
        _, _, matches = D.score(found, s.truth)
        tp, n_det, n_ship = tp + len(matches), n_det + len(found), n_ship + len(s.truth.ships)
    return tp / n_det, tp / n_ship


def test_detects_ships_in_k_distributed_sea_clutter() -> None:
    """At the default settings, >= 90 % of ships are found and >= 90 % of alerts are ships (K sea, nu = 6)."""
    precision, recall = _pooled({}, range(3))
    assert recall >= 0.9 and precision >= 0.9, (precision, recall)


def test_detects_ships_off_a_coastline_without_alerting_on_land() -> None:
    """With the land mask, a coastline scene gives the same quality and no alert on land."""
    precision, recall = _pooled({"land": True}, range(3, 6))
    assert recall >= 0.9 and precision >= 0.9, (precision, recall)
    s = scene.generate((1024, 1024), seed=7, land=True, **{**SHIPS, "n_ships": 8})
    land = s.truth.land_mask
    assert land is not None
    masked = D.detect(s.image, land_mask=land)
    assert not any(land[round(d.row), round(d.col)] for d in masked)
    unmasked = D.detect(s.image)
    assert sum(land[round(d.row), round(d.col)] for d in unmasked) > 20  # without it the coast lights up


def test_ship_attributes_match_the_truth() -> None:
    """Reported position, length (px and m), heading and lat/lon agree with the generated ships."""
    s = scene.generate((1536, 1536), seed=12, clutter="k", **{**SHIPS, "n_ships": 20, "ship_length_px": (20, 60)})
    found = D.detect(s.image, geo=s.geo)
    _, recall, matches = D.score(found, s.truth)
    assert recall == 1.0
    for i, j, _ in matches:
        d, ship = found[i], s.truth.ships[j]
        assert math.hypot(d.row - ship.row, d.col - ship.col) < 2.0
        assert d.length_px == pytest.approx(ship.length_px, rel=0.15)
        assert d.length_m == pytest.approx(d.length_px * s.geo.pixel_m)
        assert abs((d.heading_deg - ship.heading_deg + 90) % 180 - 90) < 5
        lat, lon = s.geo.pixel_to_latlon(d.row, d.col)
        assert (d.lat, d.lon) == (lat, lon)
        assert 0 < d.confidence < 1 and d.snr_db > 0 and d.peak >= d.mean > 1


def _same_ships(a: list[D.ShipDetection], b: list[D.ShipDetection], px: float = 1.5) -> bool:
    """The same ships (one-to-one within ``px``), allowing one more or fewer faint one."""
    near = sum(any(math.hypot(x.row - y.row, x.col - y.col) < px for y in b) for x in a)
    return abs(len(a) - len(b)) <= 1 and near >= min(len(a), len(b)) - 1


def test_k_cfar_tiled_result_matches_whole_image_result() -> None:
    """With the K fit per haloed tile, tiling changes at most a faint ship; positions stay the same."""
    s = scene.generate((1100, 1300), seed=31, land=True, **{**SHIPS, "n_ships": 14})
    kw: dict[str, Any] = {"land_mask": s.truth.land_mask, "method": "k", "pixel_m": 10.0, "geo": s.geo}
    whole = D.detect(s.image, tile=None, **kw)
    assert len(whole) >= 12
    for tile in (256, 500):
        assert _same_ships(D.detect(s.image, tile=tile, **kw), whole)


@pytest.mark.parametrize("method", ["ca", "os"])
def test_tiled_result_equals_whole_image_result(method: str) -> None:
    """Cutting the scene into tiles (any size) changes nothing: same ships, same attributes, no duplicates."""
    s = scene.generate((1100, 1300), seed=31, land=True, **{**SHIPS, "n_ships": 14})
    kw: dict[str, Any] = {"land_mask": s.truth.land_mask, "method": method, "pixel_m": 10.0, "geo": s.geo}
    whole = D.detect(s.image, tile=None, **kw)
    assert len(whole) >= 12
    for tile in (200, 256, 500):
        tiled = D.detect(s.image, tile=tile, **kw)
        assert len(D.plan(s.image.shape, D.Settings(method=method), tile=tile).tiles) > 4  # type: ignore[arg-type]
        assert tiled == whole


def test_memory_budget_is_kept_on_a_memmapped_scene_larger_than_it(big_scene: scene.Scene) -> None:
    """With a 24 MiB budget, the 64 MiB memmapped scene is processed within 24 MiB, with the same result."""
    budget = 24 << 20
    assert big_scene.image.nbytes > 2 * budget
    pl = D.plan(big_scene.image.shape, tile=None, memory_budget_bytes=budget)
    assert len(pl.tiles) > 4
    tracemalloc.start()
    try:
        found = D.detect(big_scene.image, geo=big_scene.geo, tile=None, memory_budget_bytes=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= budget, f"peak {peak / 2**20:.1f} MiB over the {budget / 2**20:.0f} MiB budget"
    precision, recall, _ = D.score(found, big_scene.truth)
    assert precision >= 0.9 and recall >= 0.9
    # K-CFAR fits its cells within each haloed tile: another tiling moves thresholds near tile edges a little
    assert _same_ships(found, D.detect(big_scene.image, geo=big_scene.geo, tile=1024))
    with pytest.raises(ValueError, match="too small"):
        D.plan((4096, 4096), tile=None, memory_budget_bytes=1 << 20)


def test_a_64_mb_scene_becomes_alerts_under_10_kb(big_scene: scene.Scene) -> None:
    """A 64 MiB scene is downlinked as a ship alert of under 10 kB: a reduction of several thousand times."""
    assert big_scene.image.nbytes == 64 << 20
    found = D.detect(big_scene.image, geo=big_scene.geo)
    blob = D.alert(found, "scene-42", big_scene.geo)
    assert len(found) >= 20
    assert len(blob) < 10_000
    assert len(blob) == 7 + len("scene-42") + 16 * len(found)
    assert big_scene.image.nbytes / len(blob) > 5000


def test_alert_round_trips_positions_and_attributes() -> None:
    """The alert decodes to the detections' lat/lon (1e-7 deg), length, heading, confidence and peak."""
    s = scene.generate((800, 800), seed=3, **{**SHIPS, "n_ships": 5})
    found = D.detect(s.image, geo=s.geo)
    msg = D.parse_alert(D.alert(found, "S-3", s.geo))
    assert msg["scene_id"] == "S-3" and msg["geo"] and len(msg["ships"]) == len(found) == 5
    for d, m in zip(found, msg["ships"], strict=True):
        assert m["lat"] == pytest.approx(d.lat, abs=1e-7) and m["lon"] == pytest.approx(d.lon, abs=1e-7)
        assert m["length_m"] == pytest.approx(d.length_m, abs=0.05)
        assert m["heading_deg"] == int(d.heading_deg)
        assert m["confidence"] == pytest.approx(d.confidence, abs=1 / 255)
        assert m["peak_db"] == pytest.approx(10 * math.log10(d.peak), abs=0.01)
    no_geo = D.parse_alert(D.alert(found, 7))
    assert not no_geo["geo"] and no_geo["ships"][0]["row"] == pytest.approx(found[0].row, abs=0.01)
    with pytest.raises(ValueError):
        D.parse_alert(b"XX" + bytes(10))


def test_connected_components_match_scipy_labelling() -> None:
    """The run-length union-find labels the same 8-connected components as scipy.ndimage.label."""
    rng = np.random.default_rng(1)
    for density in (0.05, 0.3, 0.45):
        m = rng.random((211, 173)) < density
        for gap in (0, 1, 2):
            rows, cols, lab, n = D.components(m, gap)
            grown = ndimage.binary_dilation(m, np.ones((2 * gap + 1,) * 2, dtype=bool)) if gap else m
            ref, n_ref = ndimage.label(grown, structure=np.ones((3, 3), dtype=bool))
            assert n == n_ref and len(rows) == m.sum()
            assert len(set(zip(ref[rows, cols].tolist(), lab.tolist(), strict=True))) == n  # the same partition
            _, first = np.unique(lab, return_index=True)
            assert (np.diff(first) > 0).all()  # numbered in raster order of their first pixel


def test_score_matches_one_to_one_within_the_tolerance() -> None:
    """A detection on a ship's hull matches it once; a second piece of the same ship is a false alarm."""
    ship = Ship(100.0, 100.0, 40.0, 6.0, 90.0, 15.0)  # heading east: the hull spans cols 80..120
    det = lambda r, c: D.ShipDetection(r, c, 10, 5, 2, 90, 50, 30, 20, 5, 0.7)  # noqa: E731
    assert D.score([det(100, 115)], [ship])[:2] == (1.0, 1.0)
    assert D.score([det(100, 115), det(100, 85)], [ship])[:2] == (0.5, 1.0)
    assert D.score([det(100, 128)], [ship], tolerance_px=5)[:2] == (0.0, 0.0)
    assert D.score([], [ship])[:2] == (1.0, 0.0) and D.score([det(1, 1)], [])[:2] == (0.0, 1.0)


class RecordingContext(JobContext):
    """A JobContext that also keeps every checkpoint it was given."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.checkpoints: list[dict[str, Any]] = []

    def checkpoint(self, partial: dict[str, Any]) -> None:
        self.checkpoints.append(dict(partial))
        super().checkpoint(partial)


def test_processor_turns_a_stored_scene_into_alerts(tmp_path: Path) -> None:
    """sar.detect reads a stored scene, checkpoints every tile, writes alerts.bin and detections.json."""
    s = scene.write_scene(tmp_path / "store" / "pass-0815", (1024, 1024), seed=5, land=True, **{**SHIPS, "n_ships": 10})
    out = tmp_path / "out"
    out.mkdir()
    ctx = RecordingContext(
        "job-1",
        "tenant-a",
        {"tile": 256, "pfa": 1e-6},
        [
            tmp_path / "store" / "pass-0815" / "scene.npy",
            tmp_path / "store" / "pass-0815" / "truth.json",
            tmp_path / "store" / "pass-0815" / "land.npy",
        ],
        out,
    )
    summary = detect_processor(ctx)
    assert summary["scene_id"] == "pass-0815" and summary["tiles"] == 16
    assert [c["tiles_done"] for c in ctx.checkpoints] == list(range(1, 17))
    assert ctx.checkpoints[-1]["detections"] == summary["ships"]
    assert json.loads((out / "partial.json").read_text())["tiles_done"] == 16
    blob = (out / "alerts.bin").read_bytes()
    assert summary["raw_bytes"] == s.image.nbytes == 4 << 20
    assert summary["alert_bytes"] == len(blob) < 1000
    assert summary["ratio"] == pytest.approx(summary["raw_bytes"] / summary["alert_bytes"])
    assert summary["precision"] >= 0.9 and summary["recall"] >= 0.9 and summary["truth_ships"] == 10
    assert summary["seconds"] > 0 and summary["megapixels_per_s"] > 0 and summary["throttle_wait_s"] == 0
    assert summary["method"] == "k" and 3 < summary["clutter_nu_median"] < 12  # the scene's sea has nu = 6
    assert summary["fa_observed"] <= max(3, 3 * summary["fa_expected"]), summary  # about 0.7 expected at 1e-6
    saved = json.loads((out / "detections.json").read_text())
    assert saved["summary"] == summary and len(saved["detections"]) == summary["ships"]
    assert len(D.parse_alert(blob)["ships"]) == summary["ships"]


def test_processor_slows_down_when_throttled(tmp_path: Path) -> None:
    """At throttle level 2 the processor rests twice each tile's time between tiles: a third of the rate."""
    scene.write_scene(tmp_path / "s", (512, 512), seed=2, n_ships=3)
    levels: list[int] = []

    def throttle() -> int:
        levels.append(2)
        return 2

    ctx = JobContext("job-2", "tenant-a", {"tile": 128}, [tmp_path / "s" / "scene.npy"], tmp_path, throttle)
    t0 = time.perf_counter()
    summary = detect_processor(ctx)
    wall = time.perf_counter() - t0
    assert len(levels) == summary["tiles"] == 16 and summary["throttle_max"] == 2
    assert summary["throttle_wait_s"] > 0 and wall >= summary["throttle_wait_s"]
    assert "precision" not in summary  # no truth given, no score


def test_processor_refuses_bad_jobs(tmp_path: Path) -> None:
    """Missing scenes, unknown parameters and foreign inputs fail with a clear error, before any work."""
    scene.write_scene(tmp_path / "s", (128, 128), seed=1, n_ships=0)
    npy = tmp_path / "s" / "scene.npy"
    with pytest.raises(ValueError, match="first input"):
        detect_processor(JobContext("j", "t", {}, [], tmp_path))
    with pytest.raises(ValueError, match="unknown"):
        detect_processor(JobContext("j", "t", {"colour": 1}, [npy], tmp_path))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="unexpected input"):
        detect_processor(JobContext("j", "t", {}, [npy, tmp_path / "notes.txt"], tmp_path))
