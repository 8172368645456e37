"""SAR ship-detection benchmarks: CFAR and full-scene throughput, the scipy reference, downlink reduction.

Every figure is measured in the same run on this machine: the summed-area-table CA-CFAR against a
straightforward CA-CFAR built on ``scipy.ndimage.uniform_filter`` (same thresholds, checked), the
blocked OS-CFAR, the K-CFAR, and ``detect()`` end to end on a memmapped 64 MiB scene written to a temporary
directory (a 16 MiB scene with ``quick``), whose alert gives the downlink reduction ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.sar import cfar, kcfar, scene
from services.sar import detect as D
from services.sar.figures import clutter_figures


def scipy_ca_cfar(
    image: NDArray[np.float32], pfa: float = 1e-6, guard: int = 4, train: int = 12
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """The reference: CA-CFAR from two uniform filters (window means) and the same threshold factor."""
    from scipy import ndimage

    x = image.astype(np.float64)
    r = guard + train
    k_out, k_in = 2 * r + 1, 2 * guard + 1
    outer = ndimage.uniform_filter(x, k_out, mode="constant") * (k_out * k_out)
    inner = ndimage.uniform_filter(x, k_in, mode="constant") * (k_in * k_in)
    ones = np.ones_like(x)
    n = np.rint(
        ndimage.uniform_filter(ones, k_out, mode="constant") * (k_out * k_out)
        - ndimage.uniform_filter(ones, k_in, mode="constant") * (k_in * k_in)
    )
    thr = n * np.expm1(-np.log(pfa) / n) * (outer - inner) / n
    return x > thr, thr


def _timed(fn: Callable[[], Any], reps: int) -> float:
    """Median wall seconds of ``reps`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _adapt_white(clutter: NDArray[np.float32]) -> None:
    """What ``adapt`` does on a white-texture tile (the costlier branch): measure, trimmed 3x3 mean, K at 8 looks."""
    if not kcfar.texture_correlation(clutter) < kcfar.WHITE_TEXTURE_RHO:
        raise RuntimeError("the benchmark clutter is white: adapt should take its smoothed branch")
    kcfar.k_cfar(cfar.trimmed_box_mean(clutter, 3), 1e-6, looks=8)


def _cfar_rows(n: int, reps: int) -> list[tuple[str, float, str]]:
    """CA-CFAR (ours and the scipy reference, interleaved) and OS-CFAR on n x n exponential clutter."""
    clutter = scene.generate((n, n), seed=1, n_ships=0, clutter="gamma").image
    mpx = clutter.size / 1e6
    ours_t: list[float] = []
    ref_t: list[float] = []
    os_t: list[float] = []
    k_t: list[float] = []
    k3_t: list[float] = []
    ad_t: list[float] = []
    for _ in range(reps):  # interleaved, so a drifting clock hits all four alike
        ours_t.append(_timed(lambda: cfar.ca_cfar(clutter), 1))
        ref_t.append(_timed(lambda: scipy_ca_cfar(clutter), 1))
        os_t.append(_timed(lambda: cfar.os_cfar(clutter), 1))
        k_t.append(_timed(lambda: kcfar.k_cfar(clutter), 1))
        k3_t.append(_timed(lambda: kcfar.k_cfar(cfar.box_mean(clutter, 3), looks=9), 1))
        ad_t.append(_timed(lambda: _adapt_white(clutter), 1))
    ours, ref, os_ = statistics.median(ours_t), statistics.median(ref_t), statistics.median(os_t)
    k_, k3, ad = statistics.median(k_t), statistics.median(k3_t), statistics.median(ad_t)
    det, thr = cfar.ca_cfar(clutter, min_train=1)
    ref_det, ref_thr = scipy_ca_cfar(clutter)
    agree = float((det == ref_det).mean())
    max_rel = float(np.max(np.abs(thr - ref_thr) / ref_thr))
    return [
        ("sar.ca_cfar", mpx / ours, f"Mpx/s ({n}x{n}, summed-area tables)"),
        ("sar.ca_cfar.scipy_ref", mpx / ref, "Mpx/s (scipy.ndimage.uniform_filter CA-CFAR)"),
        ("sar.ca_cfar.speedup", ref / ours, "x faster than the scipy reference"),
        ("sar.ca_cfar.agreement", agree * 100, f"% same decisions (max threshold diff {max_rel:.1e})"),
        ("sar.os_cfar", mpx / os_, f"Mpx/s ({n}x{n}, blocked OS-CFAR)"),
        ("sar.k_cfar", mpx / k_, f"Mpx/s ({n}x{n}, K-CFAR fitted per cell)"),
        ("sar.k_cfar.vs_ca", ours / k_, "of the CA-CFAR's throughput, same run (goal >= 0.5)"),
        ("sar.k_cfar.smooth3", mpx / k3, f"Mpx/s ({n}x{n}, K-CFAR on the 3x3 mean, smooth=3)"),
        ("sar.k_cfar.smooth3.vs_ca", ours / k3, "of the CA-CFAR's throughput, same run (goal >= 0.5)"),
        ("sar.k_cfar.adapt", mpx / ad, f"Mpx/s ({n}x{n}, adapt: texture correlation + its white-texture branch)"),
        ("sar.k_cfar.adapt.vs_ca", ours / ad, "of the CA-CFAR's throughput, same run (goal >= 0.5)"),
    ]


def _detect_rows(n: int, quick: bool) -> list[tuple[str, float, str]]:
    """detect() end to end on an n x n memmapped scene, CA and OS; the alert's downlink reduction."""
    rows: list[tuple[str, float, str]] = []
    reps = 2 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        s = scene.write_scene(
            Path(tmp) / "scene",
            (n, n),
            seed=42,
            n_ships=10 if quick else 25,
            ship_length_px=(10.0, 60.0),
            contrast_db=(12.0, 20.0),
        )
        mib = s.image.nbytes >> 20
        for method in ("k", "ca", "os"):
            found = D.detect(s.image, geo=s.geo, method=method)  # warm-up (and the result)
            cpu0 = time.process_time()
            wall = _timed(lambda m=method: D.detect(s.image, geo=s.geo, method=m), reps - 1)
            cpu = (time.process_time() - cpu0) / reps
            precision, recall, _ = D.score(found, s.truth)
            rows += [
                (f"sar.detect.{method}", s.image.size / 1e6 / wall, f"Mpx/s (full detect, {mib} MiB memmap)"),
                (f"sar.detect.{method}.cpu_s", cpu, f"CPU s per {mib} MiB scene"),
                (f"sar.detect.{method}.precision", precision, f"{len(found)} alerts, {len(s.truth.ships)} ships"),
                (f"sar.detect.{method}.recall", recall, ""),
            ]
            if method == "k":
                blob = D.alert(found, "bench", s.geo)
                rows += [
                    ("sar.downlink.raw", s.image.nbytes / 1e6, "MB scene"),
                    ("sar.downlink.alert", float(len(blob)), f"bytes alert ({len(found)} ships)"),
                    ("sar.downlink.ratio", s.image.nbytes / len(blob), "x reduction (scene bytes / alert bytes)"),
                ]
    return rows


STATE_VARIANTS: dict[str, dict[str, Any]] = {
    "ca": {"method": "ca"},
    "k": {"method": "k"},
    "k-smooth3": {"method": "k", "smooth": 3, "pfa": 1e-6},
    "k-elong2": {"method": "k", "elongation": 2.0},
    "k-adapt": {"method": "k", "adapt": True},
    "k-smooth3-trim": {"method": "k", "smooth": 3, "trim": True, "pfa": 1e-6},
}


def sea_states(n: int = 2048, methods: tuple[str, ...] = ("ca", "k")) -> list[str]:
    """Markdown rows: precision, recall and plain-sea false alarms per sea state (tests/sar/seas.py scenes).

    Ships 6-40 px at 8-16 dB (40 per 2048^2), texture correlated over 8 px or white; each method at
    its default pfa (k-smooth3: K on the 3x3 mean at 1e-6; k-elong2: K keeping clusters at least twice
    as long as wide; k-adapt: per tile, the trimmed 3x3 mean at pfa/100 on white texture, else k-elong2;
    k-smooth3-trim: the 3x3 mean without its brightest pixel at 1e-6); observed/expected
    false pixels on a ship-free scene at pfa 1e-5, counting every crossing, also those inside a reported
    cluster (k-adapt: its smoothed tiles at 1e-5 too), and the false
    clusters reported on it at the method's own pfa.
    """
    from tests.sar.seas import sea

    head = ["nu", "looks", "texture"]
    for m in methods:
        head += [f"{m} P", f"{m} R", f"{m} FA obs/exp", f"{m} false ships"]
        head += [f"{m} nu fitted"] if STATE_VARIANTS[m]["method"] == "k" else []
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
    rows = []
    for nu in (1.0, 1.5, 4.0, 10.0, 20.0):
        for looks in (1, 2, 4):
            for corr in (8, 0):
                ships = sea((n, n), 2, nu=nu, looks=looks, corr_px=corr, ships=max(10, n * n // 104858))
                plain = sea((n, n), 3, nu=nu, looks=looks, corr_px=corr)
                cells = []
                for m in methods:
                    v = STATE_VARIANTS[m]
                    found = D.detect(ships.image, looks=looks, **v)
                    precision, recall, _ = D.score(found, ships.ships)
                    tiles = list(D.detect_iter(plain.image, looks=looks, **{**v, "pfa": 1e-5}))
                    if v.get("adapt") and min(t.pfa for t in tiles) < 1e-5:  # smoothed tiles run at pfa/100
                        tiles = list(D.detect_iter(plain.image, looks=looks, **{**v, "pfa": 1e-3}))
                    fig = clutter_figures(tiles, 1e-5)
                    crossed = sum(t.crossings for t in tiles)  # ship-free: every crossing is a false alarm
                    false_ships = len(D.detect(plain.image, looks=looks, **v))
                    cells += [
                        f"{precision:.2f}",
                        f"{recall:.2f}",
                        f"{crossed}/{fig['fa_expected']:.0f}",
                        str(false_ships),
                    ]
                    if v["method"] == "k":
                        cells.append(f"{fig['clutter_nu_median']:.2f}")
                rows.append(f"| {nu:g} | {looks} | {corr or 'white'} | " + " | ".join(cells) + " |")
                print(rows[-1], flush=True)
    return rows


def run(quick: bool = False) -> list[tuple[str, float, str]]:
    """Measure and return (name, value, unit) rows."""
    n = 2048 if quick else 4096
    return _cfar_rows(n, 3 if quick else 5) + _detect_rows(n, quick)


if __name__ == "__main__":
    import sys

    if "--states" in sys.argv:  # the sea-state table of docs/sar.md (several minutes)
        picked = [tuple(a.split("=", 1)[1].split(",")) for a in sys.argv if a.startswith("--methods=")]
        sea_states(1024 if "--quick" in sys.argv else 2048, *picked[-1:])  # --methods=ca,k,k-smooth3
        sys.exit(0)
    for name, value, unit in run(quick="--quick" in sys.argv):
        print(f"{name:30s} {value:14.3f} {unit}")
