"""An independent sea-state generator for the detector's tests and benchmark, seeded, with its truth.

Written apart from ``services.sar.scene`` so the detector is not judged only on its own model:
L-look gamma speckle times a Gamma(nu) texture that is either white or correlated (a white
Gaussian field box-averaged over ``corr_px`` and mapped to the gamma marginal by rank), a bright
masked land region, and rectangular ships at a contrast (dB above the mean sea) with their own speckle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.sar.scene import Ship


@dataclass(frozen=True)
class Sea:
    """A generated sea: intensity image, land mask (or None), the ships placed and the true texture map.

    ``texture`` is the Gamma(nu) modulation the speckle was multiplied by (under ships and land too):
    only the oracle experiment (bench/sar_oracle.py) may look at it; a detector never knows it.
    """

    image: NDArray[np.float32]
    land: NDArray[np.bool_] | None
    ships: list[Ship]
    texture: NDArray[np.float32]


def _smooth(a: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Moving average of width ``k`` along both axes (cyclic), from cumulative sums."""
    for axis in (0, 1):
        n = a.shape[axis]
        ext = np.concatenate([a, np.take(a, np.arange(k), axis=axis)], axis=axis)
        c = np.cumsum(ext, axis=axis)
        a = (np.take(c, np.arange(k, n + k), axis=axis) - np.take(c, np.arange(n), axis=axis)) / k
    return a


def texture(rng: np.random.Generator, shape: tuple[int, int], nu: float, corr_px: int) -> NDArray[np.float32]:
    """Gamma(nu, 1/nu) texture, white (``corr_px`` 0) or correlated over ``corr_px`` pixels (rank transform)."""
    n = shape[0] * shape[1]
    g = np.sort(rng.gamma(nu, 1.0 / nu, n)).astype(np.float32)
    if corr_px <= 0:
        return rng.permutation(g).reshape(shape)
    field = _smooth(rng.standard_normal(shape), corr_px)
    out = np.empty(n, dtype=np.float32)
    out[np.argsort(field, axis=None)] = g
    return out.reshape(shape)


def sea(
    shape: tuple[int, int],
    seed: int,
    *,
    nu: float,
    looks: int = 1,
    corr_px: int = 8,
    ships: int = 0,
    length_px: tuple[float, float] = (6.0, 40.0),
    contrast_db: tuple[float, float] = (8.0, 16.0),
    land: bool = False,
) -> Sea:
    """A seeded K sea (``nu`` texture shape, ``looks`` looks), optionally land on the left and ships."""
    rng = np.random.default_rng(seed)
    h, w = shape
    speckle = rng.gamma(looks, 1.0 / looks, shape).astype(np.float32)
    tex = texture(rng, shape, nu, corr_px)
    img = speckle * tex
    mask = None
    if land:
        rows = np.arange(h)[:, None]
        coast = w * (0.25 + 0.04 * np.sin(2 * math.pi * rows / h * 2 + rng.uniform(0, 6)))
        mask = np.arange(w)[None, :] < coast
        bright = np.float32(10.0) * np.exp(rng.normal(-0.5, 1.0, shape)).astype(np.float32) * speckle
        img[mask] = bright[mask]
    placed: list[Ship] = []
    tries = 0
    while len(placed) < ships and tries < 5000:
        tries += 1
        length = float(rng.uniform(*length_px))
        width = max(2.0, length * float(rng.uniform(0.15, 0.25)))
        heading = float(rng.uniform(0, 180))
        contrast = float(rng.uniform(*contrast_db))
        half = length / 2 + 4
        row, col = float(rng.uniform(half, h - half)), float(rng.uniform(half, w - half))
        if mask is not None and col - half < w * 0.3 + 30:
            continue
        if any(math.hypot(row - s.row, col - s.col) < (length + s.length_px) / 2 + 30 for s in placed):
            continue
        placed.append(Ship(row, col, length, width, heading, contrast))
        r0, r1 = max(0, int(row - half)), min(h, int(row + half) + 1)
        c0, c1 = max(0, int(col - half)), min(w, int(col + half) + 1)
        rr = np.arange(r0, r1)[:, None] - row
        cc = np.arange(c0, c1)[None, :] - col
        th = math.radians(heading)
        along = -rr * math.cos(th) + cc * math.sin(th)
        across = rr * math.sin(th) + cc * math.cos(th)
        inside = (np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)
        box = img[r0:r1, c0:c1]
        box[inside] = np.float32(10 ** (contrast / 10)) * speckle[r0:r1, c0:c1][inside]
    return Sea(img, mask, placed, tex)
