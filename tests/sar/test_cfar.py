"""CFAR detectors: false-alarm rates as configured, thresholds as the reference, masks, clutter edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from services.sar import cfar, scene


@pytest.fixture(scope="module")
def exponential() -> np.ndarray:
    """2048 x 2048 single-look (exponential) ship-free clutter: 4.2 M cells."""
    return scene.generate((2048, 2048), seed=101, n_ships=0, clutter="gamma", looks=1).image


def _expected(pfa: float, n: int) -> tuple[float, float]:
    """Bounds for a false-alarm count: the factor-of-2 band, which is > 6 sigma wide at these counts."""
    mean = pfa * n
    assert mean > 100, "too few expected false alarms to be meaningful"
    return mean / 2, mean * 2


def test_ca_cfar_false_alarm_rate_matches_the_configured_pfa(exponential: np.ndarray) -> None:
    """On ship-free exponential clutter, CA-CFAR at Pfa 1e-4 raises 1e-4 of the cells (within 2x; ~420 here)."""
    det, thr = cfar.ca_cfar(exponential, pfa=1e-4, guard=4, train=12)
    lo, hi = _expected(1e-4, det.size)
    assert lo < det.sum() < hi
    assert abs(det.sum() / det.size / 1e-4 - 1) < 0.2  # in practice much closer than the factor 2
    assert np.isfinite(thr).all()


def test_ca_cfar_false_alarm_rate_on_multilook_clutter() -> None:
    """On 4-look gamma clutter the threshold follows the looks, so the rate is still the configured Pfa."""
    x = scene.generate((2048, 2048), seed=102, n_ships=0, clutter="gamma", looks=4).image
    det, _ = cfar.ca_cfar(x, pfa=1e-4, looks=4)
    lo, hi = _expected(1e-4, det.size)
    assert lo < det.sum() < hi
    wrong, _ = cfar.ca_cfar(x, pfa=1e-4, looks=1)  # a single-look threshold on 4 looks is far too high
    assert wrong.sum() < det.sum() / 10


def test_os_cfar_false_alarm_rate_matches_the_configured_pfa(exponential: np.ndarray) -> None:
    """The blocked OS-CFAR's numerically derived factor also gives the configured Pfa (within 2x)."""
    det, _ = cfar.os_cfar(exponential, pfa=1e-4, guard=4, train=12)
    lo, hi = _expected(1e-4, det.size)
    assert lo < det.sum() < hi


def test_threshold_factors_follow_the_closed_forms() -> None:
    """alpha = N(Pfa^(-1/N) - 1) for one look; the L-look series reproduces it and solves its own Pfa."""
    n = np.array([8, 100, 544])
    assert np.allclose(cfar.ca_alpha(1e-6, n), n * (1e-6 ** (-1 / n) - 1))
    assert np.allclose(cfar._ca_pfa(cfar.ca_alpha(1e-6, n), n.astype(float), 1), 1e-6)
    for looks in (2, 3, 4):
        a = cfar.ca_alpha(1e-5, n, looks)
        assert np.allclose(cfar._ca_pfa(a, n.astype(float), looks), 1e-5, rtol=1e-6)
        assert (a < cfar.ca_alpha(1e-5, n)).all()  # more looks, less speckle, lower factor
    # one block of one exponential cell, ranked first: Z ~ Exp(1), Pfa = 1/(1 + alpha)
    assert cfar.os_alpha(1e-2, 1, 1, 1, 1) == pytest.approx(99.0, rel=1e-3)


def test_ca_cfar_equals_the_scipy_uniform_filter_reference() -> None:
    """The summed-area-table CA-CFAR gives the thresholds of a straightforward scipy implementation."""
    x = scene.generate((400, 300), seed=5, n_ships=3).image
    guard, train, pfa = 3, 8, 1e-5
    det, thr = cfar.ca_cfar(x, pfa, guard, train, min_train=1)
    r = guard + train
    x64 = x.astype(np.float64)
    ones = np.ones_like(x64)
    box = lambda a, k: ndimage.uniform_filter(a, k, mode="constant") * k * k  # noqa: E731
    n = np.rint(box(ones, 2 * r + 1) - box(ones, 2 * guard + 1))
    ref = cfar.ca_alpha(pfa, n) * (box(x64, 2 * r + 1) - box(x64, 2 * guard + 1)) / n
    assert np.allclose(thr, ref, rtol=1e-5)
    assert (det == (x64 > ref)).mean() > 0.9999


def test_masked_land_is_neither_trained_on_nor_detected() -> None:
    """Whatever the land under the mask looks like, thresholds at sea are unchanged and land never detects."""
    s = scene.generate((512, 512), seed=8, n_ships=4, land=True)
    land = s.truth.land_mask
    assert land is not None
    brighter = s.image.copy()
    brighter[land] *= 1000
    for fn in (cfar.ca_cfar, cfar.os_cfar):
        d1, t1 = fn(s.image, 1e-4, mask=land)
        d2, t2 = fn(brighter, 1e-4, mask=land)
        assert not d1[land].any() and not d2[land].any()
        assert np.isinf(t1[land]).all()
        assert np.array_equal(t1[~land], t2[~land]) and np.array_equal(d1, d2)
    unmasked, _ = cfar.ca_cfar(s.image, 1e-4)
    assert unmasked[land].sum() > 100  # the mask is what keeps the coast quiet


def test_excluded_cells_are_tested_but_not_trained_on() -> None:
    """A pixel excluded from training is still tested, and its neighbours' thresholds ignore it."""
    x = np.ones((64, 64), dtype=np.float32)
    x[32, 32] = 1000.0
    _, thr = cfar.ca_cfar(x, 1e-3, 2, 4)
    det_x, thr_x = cfar.ca_cfar(x, 1e-3, 2, 4, exclude=x > 100)
    assert det_x[32, 32]
    # (32, 37) has the bright pixel in its ring (distance 5 > guard 2): excluded, 13^2 - 5^2 - 1 = 143 cells of 1
    assert thr[32, 37] > 5 * thr_x[32, 37]
    assert thr_x[32, 37] == pytest.approx(float(cfar.ca_alpha(1e-3, 143)), rel=1e-6)


def test_os_cfar_keeps_false_alarms_down_at_a_clutter_edge() -> None:
    """Half dark, half 10 dB brighter sea: CA false-alarms along the edge, OS-CFAR stays near the Pfa."""
    x = scene.generate((2048, 512), seed=9, n_ships=0, clutter="gamma").image.copy()
    x[:, 256:] *= 10.0
    pfa = 1e-4
    band = slice(256 - 24, 256 + 24)
    ca, _ = cfar.ca_cfar(x, pfa)
    os_, _ = cfar.os_cfar(x, pfa)
    expected = pfa * 2048 * 48  # ~10 in the band
    ca_edge, os_edge = int(ca[:, band].sum()), int(os_[:, band].sum())
    assert ca_edge > 4 * expected
    assert os_edge < ca_edge / 4 and os_edge < 3 * expected
    # away from the edge both behave
    away = np.r_[0:200, 312:512]
    n = 2048 * len(away)
    for d in (ca, os_):
        assert d[:, away].sum() < 2 * pfa * n


def test_dilate_is_a_square_binary_dilation() -> None:
    """The shifted-OR dilation equals scipy's binary dilation with a square structuring element."""
    m = np.random.default_rng(0).random((97, 131)) < 0.02
    for r in (0, 1, 3):
        ref = ndimage.binary_dilation(m, np.ones((2 * r + 1, 2 * r + 1), dtype=bool)) if r else m
        assert np.array_equal(cfar.dilate(m, r), ref)


def test_bad_settings_are_refused() -> None:
    """A Pfa outside (0, 1), a negative guard or zero training cells are refused."""
    x = np.ones((32, 32), dtype=np.float32)
    for kw in ({"pfa": 0.0}, {"pfa": 1.5}, {"guard": -1}, {"train": 0}, {"looks": 0}):
        with pytest.raises(ValueError):
            cfar.ca_cfar(x, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        cfar.os_cfar(x, rank=0.0)
    assert math.isinf(float(cfar._ca_table(1e-6, 1, 10)[0]))


def test_box_mean_is_the_mean_of_the_valid_pixels_around_each_pixel() -> None:
    """``box_mean`` equals a brute-force window mean, truncated at the edges and skipping masked land."""
    rng = np.random.default_rng(4)
    x = rng.exponential(1.0, (23, 31)).astype(np.float32)
    land = rng.random(x.shape) < 0.2
    for mask in (None, land):
        got = cfar.box_mean(x, 3, mask)
        want = np.empty(x.shape)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                win = x[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
                ok = np.ones(win.shape, bool) if mask is None else ~mask[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
                want[i, j] = win[ok].mean() if ok.any() else 0.0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    tiny = x[:2, :3]  # a window wider than the image: the mean of all of it
    np.testing.assert_allclose(cfar.box_mean(tiny, 7), np.full(tiny.shape, tiny.mean()), rtol=1e-5)
    assert np.array_equal(cfar.box_mean(x, 1), x)
    with pytest.raises(ValueError, match="odd"):
        cfar.box_mean(x, 4)


def test_trimmed_box_mean_leaves_out_the_brightest_valid_pixel_of_each_window() -> None:
    """``trimmed_box_mean`` is a brute-force (sum - max) / (n - 1) over the valid window; a spike does not lift it."""
    rng = np.random.default_rng(3)
    x = rng.exponential(size=(23, 31)).astype(np.float32)
    for mask in (None, rng.random(x.shape) < 0.3):
        got = cfar.trimmed_box_mean(x, 3, mask)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                rows, cols = slice(max(0, i - 1), i + 2), slice(max(0, j - 1), j + 2)
                win = x[rows, cols]
                ok = np.ones_like(win, dtype=bool) if mask is None else ~mask[rows, cols]
                v = win[ok]
                want = (v.sum() - v.max()) / (v.size - 1) if v.size > 1 else (v.sum() if v.size else 0.0)
                assert got[i, j] == pytest.approx(want, rel=1e-5, abs=1e-6), (i, j)
    spike = np.ones((9, 9), np.float32)
    spike[4, 4] = 1000.0
    assert cfar.trimmed_box_mean(spike, 3).max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="odd"):
        cfar.trimmed_box_mean(x, 2)
