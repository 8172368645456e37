"""Issue 16's bound on spiky correlated sea: what a detector could reach if it knew the texture, or the ship's shape.

An experiment, not flight code: it reads the generator's true texture map (tests/sar/seas.py), which no
detector on board knows. Per sea state (2048^2, 40 ships 6-40 px at 8-16 dB, as ``sar_bench --states``):

- **oracle CFAR**: the image divided by the true texture is pure L-look speckle on the sea (a ship
  becomes C/T under it), then the ordinary censored CA-CFAR for L looks at 1e-6 and the same
  clustering; precision and recall against the truth. Only the texture knowledge separates it from
  the flight detectors.
- **shape-matched separability**: for each ship, the mean intensity over its own rectangle, and the
  mean over that rectangle against a ring 2-6 px outside it (the contrast a step-edged ship has and a
  smooth texture bump has not). The same two statistics are computed at every position of a plain
  sea of the same state (same shape and heading, FFT correlation) and the connected regions at or
  above the ship's value are counted: the false "ships" of its own shape that a detector knowing the
  ship's exact shape, heading and level would have to accept to find it. A ship with more than
  ``budget`` (4: P >= 0.9 of 40) such regions is not separable by that statistic.

Run ``python -m bench.sar_oracle`` (a few minutes; ``--all`` adds the white-texture states). ``--bank``
prints, for nu 1 / 1 look / 8 px, how a bank of oriented rectangles (a detector that knows ships are
rectangles but not their size or heading) separates the 8-10.5 dB ships; ``--bank-union`` what such a
bank, cut at a level only the oracle knows, would add to K with elongation on the correlated states.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from numpy.typing import NDArray

from services.sar import detect as D
from services.sar.scene import Ship
from tests.sar.seas import sea

F64 = NDArray[np.float64]
N = 2048
SHIPS = max(10, N * N // 104858)  # the density of bench.sar_bench --states
BUDGET = 4


def _kernels(s: Ship, shape: tuple[int, int]) -> tuple[F64, F64, int, int]:
    """The ship's hull and its 2-6 px outer ring as full-size kernels centred on (0, 0), and their areas."""
    half = int(s.length_px / 2 + 8)
    rr = np.arange(-half, half + 1)[:, None].astype(np.float64)
    cc = np.arange(-half, half + 1)[None, :].astype(np.float64)
    th = math.radians(s.heading_deg)
    along = -rr * math.cos(th) + cc * math.sin(th)
    across = rr * math.sin(th) + cc * math.cos(th)
    d = np.hypot(np.maximum(np.abs(along) - s.length_px / 2, 0), np.maximum(np.abs(across) - s.width_px / 2, 0))
    inside = (np.abs(along) <= s.length_px / 2) & (np.abs(across) <= s.width_px / 2)
    ring = (d > 2) & (d <= 6)
    out = []
    for k in (inside, ring):
        full = np.zeros(shape)
        full[: 2 * half + 1, : 2 * half + 1] = k
        out.append(np.roll(full, (-half, -half), axis=(0, 1)))
    return out[0], out[1], int(inside.sum()), int(ring.sum())


def _exact(image: NDArray[np.float32], s: Ship) -> tuple[float, float]:
    """Mean intensity over the ship's hull (exactly the generator's pixels) and over its 2-6 px ring."""
    h, w = image.shape
    half = int(s.length_px / 2 + 8)
    r0, r1 = max(0, int(s.row) - half), min(h, int(s.row) + half + 1)
    c0, c1 = max(0, int(s.col) - half), min(w, int(s.col) + half + 1)
    rr = np.arange(r0, r1)[:, None] - s.row
    cc = np.arange(c0, c1)[None, :] - s.col
    th = math.radians(s.heading_deg)
    along = -rr * math.cos(th) + cc * math.sin(th)
    across = rr * math.sin(th) + cc * math.cos(th)
    d = np.hypot(np.maximum(np.abs(along) - s.length_px / 2, 0), np.maximum(np.abs(across) - s.width_px / 2, 0))
    inside = (np.abs(along) <= s.length_px / 2) & (np.abs(across) <= s.width_px / 2)
    win = image[r0:r1, c0:c1]
    return float(win[inside].mean()), float(win[(d > 2) & (d <= 6)].mean())


def separability(nu: float, looks: int, corr: int) -> list[tuple[float, int, int]]:
    """Per ship: (contrast dB, false same-shape regions at its mean, at its mean AND its ring contrast)."""
    ships = sea((N, N), 2, nu=nu, looks=looks, corr_px=corr, ships=SHIPS)
    plain = sea((N, N), 3, nu=nu, looks=looks, corr_px=corr).image
    fp = np.fft.rfft2(plain.astype(np.float64))
    out = []
    for s in ships.ships:
        ki, kr, ai, ar = _kernels(s, plain.shape)
        m_ship, ring = _exact(ships.image, s)
        c_ship = m_ship / max(ring, 1e-9)
        # correlation (not convolution): conjugate of the kernel's transform
        mi = np.fft.irfft2(fp * np.conj(np.fft.rfft2(ki)), plain.shape) / ai
        mr = np.fft.irfft2(fp * np.conj(np.fft.rfft2(kr)), plain.shape) / ar
        above = mi >= m_ship
        n_mean = D.components(above)[3]
        n_both = D.components(above & (mi >= c_ship * mr))[3]
        out.append((s.contrast_db, n_mean, n_both))
    return out


def oracle(nu: float, looks: int, corr: int) -> tuple[float, float, float, float, float]:
    """(P, R, R of 8-10 dB ships) of CA-CFAR on image / true texture; (P, R) of the default K, same scene."""
    s = sea((N, N), 2, nu=nu, looks=looks, corr_px=corr, ships=SHIPS)
    found = D.detect(s.image / s.texture, method="ca", looks=looks)
    p, r, matches = D.score(found, s.ships)
    faint = [i for i, sh in enumerate(s.ships) if sh.contrast_db < 10]
    hit = {j for _, j, _ in matches}
    r_faint = sum(j in hit for j in faint) / max(len(faint), 1)
    pk, rk, _ = D.score(D.detect(s.image, looks=looks), s.ships)
    return p, r, r_faint, pk, rk


def _rect_kernel(length: float, width: float, heading_deg: float, shape: tuple[int, int]) -> F64:
    """A ``length`` x ``width`` rectangle at ``heading_deg`` as a unit-sum full-size kernel centred on (0, 0)."""
    half = int(length / 2 + 2)
    rr = np.arange(-half, half + 1)[:, None].astype(np.float64)
    cc = np.arange(-half, half + 1)[None, :].astype(np.float64)
    th = math.radians(heading_deg)
    k = (np.abs(-rr * math.cos(th) + cc * math.sin(th)) <= length / 2) & (
        np.abs(rr * math.sin(th) + cc * math.cos(th)) <= width / 2
    )
    full = np.zeros(shape)
    full[: 2 * half + 1, : 2 * half + 1] = k / k.sum()
    out: F64 = np.roll(full, (-half, -half), axis=(0, 1))
    return out


def bank(nu: float, looks: int, corr: int, sizes: tuple[tuple[float, float], ...] = ((14, 3), (24, 5))) -> None:
    """A detector that knows ships are rectangles but not which: each 8-10.5 dB ship against a filter bank.

    The statistic is the largest mean over a ``length`` x ``width`` rectangle at 8 headings (every
    22.5 deg); a ship's value is the largest within 3 px of its centre, and its count is the regions
    of the plain sea at or above it (the fewest over the sizes).
    """
    ships = sea((N, N), 2, nu=nu, looks=looks, corr_px=corr, ships=SHIPS)
    plain = sea((N, N), 3, nu=nu, looks=looks, corr_px=corr).image
    maps = []
    for length, width in sizes:
        fs, fp = np.fft.rfft2(ships.image.astype(np.float64)), np.fft.rfft2(plain.astype(np.float64))
        best_s, best_p = np.full(plain.shape, -np.inf), np.full(plain.shape, -np.inf)
        for i in range(8):
            kf = np.conj(np.fft.rfft2(_rect_kernel(length, width, 22.5 * i, plain.shape)))
            best_s = np.maximum(best_s, np.fft.irfft2(fs * kf, plain.shape))
            best_p = np.maximum(best_p, np.fft.irfft2(fp * kf, plain.shape))
        maps.append((best_s, best_p))
    for s in sorted(ships.ships, key=lambda x: x.contrast_db):
        if s.contrast_db > 10.5:
            continue
        r, c = round(s.row), round(s.col)
        counts = []
        for best_s, best_p in maps:
            v = float(best_s[max(0, r - 3) : r + 4, max(0, c - 3) : c + 4].max())
            counts.append(D.components(best_p >= v)[3])
        print(f"| {s.contrast_db:.1f} | {s.length_px:.1f} x {s.width_px:.1f} | " + " | ".join(map(str, counts)) + " |")


def _bank_map(image: NDArray[np.float32], length: float, width: float) -> F64:
    """The largest mean over a ``length`` x ``width`` rectangle at 8 headings, at every pixel (FFT)."""
    f = np.fft.rfft2(image.astype(np.float64))
    best = np.full(image.shape, -np.inf)
    for i in range(8):
        k = np.conj(np.fft.rfft2(_rect_kernel(length, width, 22.5 * i, image.shape)))
        best = np.maximum(best, np.fft.irfft2(f * k, image.shape))
    return best


def bank_union(nu: float, looks: int, corr: int) -> tuple[float, float, float, float, int]:
    """K with elongation 2, then the same plus a rectangle bank (14x3, 24x5) cut at the plain sea's maximum.

    The cut comes from a ship-free scene of the same state (about one false region per size), which no
    detector on board has: an optimistic bank stage. Returns (P, R) before, (P, R) after, regions added.
    """
    s = sea((N, N), 2, nu=nu, looks=looks, corr_px=corr, ships=SHIPS)
    plain = sea((N, N), 3, nu=nu, looks=looks, corr_px=corr).image
    base = D.detect(s.image, looks=looks, elongation=2.0)
    added: list[D.ShipDetection] = []
    for length, width in ((14.0, 3.0), (24.0, 5.0)):
        rows, cols, lab, n = D.components(_bank_map(s.image, length, width) >= _bank_map(plain, length, width).max(), 2)
        if n == 0:
            continue
        cnt = np.bincount(lab, minlength=n)
        rr, cc = np.bincount(lab, rows, n) / cnt, np.bincount(lab, cols, n) / cnt
        for r, c, px in zip(rr, cc, cnt, strict=True):
            if all(math.hypot(r - e.row, c - e.col) > 8 for e in base + added):
                nan = float("nan")
                added.append(D.ShipDetection(float(r), float(c), int(px), length, width, 0.0, nan, nan, nan, nan, nan))
    p0, r0, _ = D.score(base, s.ships)
    p1, r1, _ = D.score(base + added, s.ships)
    return p0, r0, p1, r1, len(added)


def main(states: list[tuple[float, int, int]]) -> None:
    """Print the oracle and separability table (markdown)."""
    print(
        "| nu | looks | texture | oracle P | oracle R | oracle R 8-10 dB | K P | K R | 8-10 dB ships "
        f"| separable by mean (<={BUDGET} false) | by mean + ring contrast | all ships by mean + contrast |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for nu, looks, corr in states:
        p, r, rf, pk, rk = oracle(nu, looks, corr)
        sep = separability(nu, looks, corr)
        faint = [x for x in sep if x[0] < 10]
        by_mean = sum(x[1] <= BUDGET for x in faint)
        by_both = sum(x[2] <= BUDGET for x in faint)
        all_both = sum(x[2] <= BUDGET for x in sep)
        print(
            f"| {nu:g} | {looks} | {corr or 'white'} | {p:.2f} | {r:.2f} | {rf:.2f} | {pk:.2f} | {rk:.2f} "
            f"| {len(faint)} | {by_mean} | {by_both} | {all_both}/{len(sep)} |",
            flush=True,
        )


if __name__ == "__main__":
    if "--bank-union" in sys.argv:  # the correlated states K + elongation leaves short of the goal
        print("| nu | looks | K + elongation P / R | + bank at the plain-sea max P / R | regions added |")
        print("|---|---|---|---|---|")
        for nu_, lk in ((1.0, 1), (1.0, 4), (1.5, 1), (1.5, 2)):
            p0, r0, p1, r1, k = bank_union(nu_, lk, 8)
            print(f"| {nu_:g} | {lk} | {p0:.2f} / {r0:.2f} | {p1:.2f} / {r1:.2f} | {k} |", flush=True)
        sys.exit(0)
    if "--bank" in sys.argv:  # nu 1, 1 look, texture over 8 px: the hardest state
        print("| dB | ship (px) | false regions, 14x3 bank | false regions, 24x5 bank |\n|---|---|---|---|")
        bank(1.0, 1, 8)
        sys.exit(0)
    corrs = (8, 0) if "--all" in sys.argv else (8,)
    picked = [(nu, lk, c) for nu in (1.0, 1.5) for lk in (1, 2, 4) for c in corrs] + [(4.0, 1, 8)]
    main(picked)
