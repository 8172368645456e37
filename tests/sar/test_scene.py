"""Synthetic SAR scenes: speckle and clutter statistics, ships, coastline, determinism, streaming to disk."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from services.sar import scene
from services.sar.scene import GeoTransform, Ship


def _hull(shape: tuple[int, int], s: Ship) -> np.ndarray:
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    th = math.radians(s.heading_deg)
    along = -(rr - s.row) * math.cos(th) + (cc - s.col) * math.sin(th)
    across = (rr - s.row) * math.sin(th) + (cc - s.col) * math.cos(th)
    return (np.abs(along) <= s.length_px / 2) & (np.abs(across) <= max(s.width_px / 2, 0.5))


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    """A scene is a pure function of its seed and parameters: same seed, same pixels and ships."""
    a = scene.generate((300, 400), seed=11, n_ships=3, land=True)
    b = scene.generate((300, 400), seed=11, n_ships=3, land=True)
    c = scene.generate((300, 400), seed=12, n_ships=3, land=True)
    assert a.image.dtype == np.float32 and a.image.shape == (300, 400)
    assert np.array_equal(a.image, b.image) and a.truth.ships == b.truth.ships
    assert a.truth.land_mask is not None and b.truth.land_mask is not None
    assert np.array_equal(a.truth.land_mask, b.truth.land_mask)
    assert not np.array_equal(a.image, c.image) and a.truth.ships != c.truth.ships


@pytest.mark.parametrize("looks", [1, 2, 4])
def test_gamma_clutter_has_multilook_speckle_statistics(looks: int) -> None:
    """Ship-free gamma clutter has mean 1 and variance 1/L, the L-look speckle of a SAR intensity image."""
    x = scene.generate((1024, 1024), seed=looks, n_ships=0, clutter="gamma", looks=looks).image.astype(np.float64)
    assert x.mean() == pytest.approx(1.0, abs=0.01)
    assert x.var() == pytest.approx(1.0 / looks, rel=0.03)
    # exponential tail for one look: P(I > 5) = e^-5
    if looks == 1:
        assert (x > 5).mean() == pytest.approx(math.exp(-5), rel=0.1)


@pytest.mark.parametrize("nu", [2.0, 6.0])
def test_k_clutter_moments_match_the_k_distribution(nu: float) -> None:
    """K clutter (gamma texture x speckle) has mean 1 and E[I^2] = (1 + 1/L)(1 + 1/nu), correlated or not."""
    for corr in (0.0, 8.0):
        x = scene.generate((1024, 1024), seed=3, n_ships=0, shape_param=nu, texture_corr_px=corr).image
        x = x.astype(np.float64)
        assert x.mean() == pytest.approx(1.0, abs=0.03)
        assert (x**2).mean() == pytest.approx(2 * (1 + 1 / nu), rel=0.06)


def test_correlated_texture_is_smooth_and_speckle_is_not() -> None:
    """The K texture varies over ~texture_corr_px pixels: neighbouring local means correlate, pixels do not."""
    x = scene.generate((1024, 1024), seed=5, n_ships=0, shape_param=2.0, texture_corr_px=8.0).image.astype(float)
    px_corr = np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1]
    m = x.reshape(256, 4, 256, 4).mean(axis=(1, 3))  # 4x4 means average the speckle away
    block_corr = np.corrcoef(m[:, :-1].ravel(), m[:, 1:].ravel())[0, 1]
    assert 0.1 < px_corr < 0.6 and block_corr > 0.6


def test_ships_are_bright_rotated_rectangles_at_their_contrast() -> None:
    """Each ship is a rectangle of its stated size whose mean intensity is contrast_db above the sea."""
    s = scene.generate(
        (768, 768), seed=9, n_ships=6, clutter="gamma", looks=4, ship_length_px=(30, 50), contrast_db=(12, 18)
    )
    assert len(s.truth.ships) == 6
    for ship in s.truth.ships:
        hull = _hull(s.image.shape, ship)
        assert hull.sum() >= ship.length_px * max(ship.width_px, 1) * 0.6
        mean_db = 10 * math.log10(float(s.image[hull].mean()))
        assert mean_db == pytest.approx(ship.contrast_db, abs=1.0)
    for i, a in enumerate(s.truth.ships):  # hulls never touch
        for b in s.truth.ships[i + 1 :]:
            assert math.hypot(a.row - b.row, a.col - b.col) >= (a.length_px + b.length_px) / 2


def test_coastline_scene_has_bright_land_and_ships_only_at_sea() -> None:
    """With land, the left part is bright textured land in the mask, and every ship lies at sea."""
    s = scene.generate((1024, 1024), seed=4, n_ships=8, land=True, land_fraction=0.3, land_db=10.0)
    land = s.truth.land_mask
    assert land is not None and land.dtype == np.bool_
    assert 0.2 < land.mean() < 0.4
    sea_db = 10 * math.log10(float(np.median(s.image[~land])) / math.log(2))  # median of exp = ln2 * mean
    land_db = 10 * math.log10(float(s.image[land].mean()))
    assert land_db - sea_db > 8
    for ship in s.truth.ships:
        assert not (land & _hull(land.shape, ship)).any()


def test_geotransform_maps_pixels_to_lat_lon() -> None:
    """The geotransform puts pixel (0, 0) at the origin, rows south, columns east, at the pixel size."""
    g = GeoTransform.from_pixel_size(54.0, 7.0, 10.0)
    assert g.pixel_to_latlon(0, 0) == (54.0, 7.0)
    lat, lon = g.pixel_to_latlon(100, 200)
    assert lat < 54.0 and lon > 7.0
    assert (54.0 - lat) * scene.M_PER_DEG == pytest.approx(1000.0)
    assert g.pixel_m == pytest.approx(10.0, rel=1e-3)
    rows = np.array([0.0, 10.0])
    assert np.allclose(g.pixel_to_latlon(rows, rows)[0], [54.0, 54.0 - 100 / scene.M_PER_DEG])
    assert GeoTransform.from_dict(g.to_dict()) == g


def test_write_scene_streams_the_same_pixels_to_disk(tmp_path: Path) -> None:
    """write_scene produces exactly generate()'s pixels as a .npy memmap, truth.json and land.npy."""
    kw = {"n_ships": 5, "land": True, "seed": 21}
    mem = scene.generate((600, 500), **kw)
    disk = scene.write_scene(tmp_path / "s1", (600, 500), **kw)
    assert isinstance(disk.image, np.memmap)
    assert np.array_equal(np.asarray(disk.image), mem.image)
    assert disk.truth.ships == mem.truth.ships
    assert disk.truth.land_mask is not None and mem.truth.land_mask is not None
    assert np.array_equal(np.asarray(disk.truth.land_mask), mem.truth.land_mask)
    assert disk.geo == mem.geo
    meta = json.loads((tmp_path / "s1" / "truth.json").read_text())
    assert meta["format"] == scene.FORMAT and meta["shape"] == [600, 500] and len(meta["ships"]) == 5
    stripes = list(scene.generate_tiles((600, 500), **kw))
    assert [r0 for r0, _, _ in stripes] == [0, 128, 256, 384, 512]
    assert np.array_equal(np.concatenate([img for _, img, _ in stripes]), mem.image)


def test_write_scene_holds_one_stripe_not_the_scene(tmp_path: Path) -> None:
    """Writing a 16 MiB scene to disk holds a few stripes (128 rows each) in memory, never the scene."""
    tracemalloc.start()
    try:
        s = scene.write_scene(tmp_path / "big", (2048, 2048), seed=1, n_ships=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.image.nbytes == 16 << 20
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB"  # half the scene; one stripe is 1 MiB


def test_invalid_parameters_are_refused() -> None:
    """Impossible scenes are refused with a clear error rather than generated wrong."""
    with pytest.raises(ValueError, match="clutter"):
        scene.generate((64, 64), clutter="weibull")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="looks"):
        scene.generate((64, 64), looks=0)
    with pytest.raises(ValueError, match="could not place"):
        scene.generate((64, 64), n_ships=50, ship_length_px=(30, 40))
    with pytest.raises(TypeError, match="unknown"):
        scene.write_scene("/nonexistent", (64, 64), colour="blue")
