"""K-CFAR: a threshold set from the K-distribution fitted per cell, so the false-alarm rate holds on spiky sea.

Each pixel's statistic is ``y = x / Z``, ``Z`` the mean of its CA training ring (summed-area
tables, as in ``cfar.ca_cfar``). The image is cut into ``cell x cell`` cells; in each, the
distribution of ``y`` is fitted by an L-look K distribution with scale ``c`` and texture shape
``nu``, from the trimmed log-cumulants of ``y`` (mean and variance of ``ln y`` below the model's
``trim`` quantile, iterated so that ship pixels above it do not count; on every second pixel and
row). The threshold is ``c * t(nu) * Z``, with ``t(nu)`` exceeded with probability ``pfa``
(``kdist.table``). Fitting ``y`` rather than ``x`` keeps the model honest where the texture is
correlated over the window: the ring mean already follows part of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from services.sar.cfar import _box, _check, _rim, _sat, _span
from services.sar.kdist import NU_MAX, table

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]

CELL = 128  # pixels per side of a fitting cell
MIN_CELL_SAMPLES = 512  # fewer (subsampled) valid pixels in a cell: it takes the tile's pooled fit
_ITER = 2


@dataclass(frozen=True)
class KFit:
    """The fit of one image: nu and log scale per cell, and how many pixels were tested."""

    nu: F64
    log_scale: F64
    tested: int
    cell: int


def _cells(a: NDArray[np.floating], cell: int) -> NDArray[np.floating]:
    """``a`` (2-D) as (cell rows, cell cols, cell*cell) samples, padded with NaN."""
    h, w = a.shape
    hc, wc = -(-h // cell), -(-w // cell)
    p = np.full((hc * cell, wc * cell), np.nan, dtype=a.dtype)
    p[:h, :w] = a
    out: NDArray[np.floating] = p.reshape(hc, cell, wc, cell).transpose(0, 2, 1, 3).reshape(hc, wc, cell * cell)
    return out


def _pool(a: F64, r: int) -> F64:
    """Sum of ``a`` over the (2r+1)^2 neighbouring cells (truncated at the edges)."""
    if r <= 0:
        return a
    out: F64 = a.copy()
    for k in range(1, r + 1):
        out[k:] += a[:-k]
        out[:-k] += a[k:]
    tmp = out.copy()
    for k in range(1, r + 1):
        out[:, k:] += tmp[:, :-k]
        out[:, :-k] += tmp[:, k:]
    return out


def fit(lny: NDArray[np.float32], looks: int, pfa: float, trim: float, cell: int, pool: int = 1) -> tuple[F64, F64]:
    """(nu, log scale) per cell from ``ln y`` samples (NaN = not a sample), trimmed iteratively.

    The log-moments of a cell are pooled with its neighbours within ``pool`` cells: the sea state
    varies slowly, and the variance of a nu fitted on one cell's samples would raise the false alarms.
    """
    tab = table(int(looks), float(pfa), float(trim))
    s = _cells(lny, cell)
    ok = np.isfinite(s)
    n = ok.sum(axis=2)
    v = np.where(ok, s, np.float32(0)).astype(np.float64)
    cut = np.full(n.shape, np.inf)
    nu = np.full(n.shape, NU_MAX)
    logc = np.zeros(n.shape)
    pooled = n < MIN_CELL_SAMPLES
    for it in range(_ITER + 1):
        w = ok & (s < cut[:, :, None]) if it else ok
        cnt = w.sum(axis=2).astype(np.float64)
        s1 = _pool(np.where(w, v, 0.0).sum(axis=2), pool)
        s2 = _pool(np.where(w, v * v, 0.0).sum(axis=2), pool)
        cnt = _pool(cnt, pool)
        if pooled.any():  # thin cells (edges, coast): the whole image's samples
            tot = max(cnt.sum(), 1.0)
            s1[pooled], s2[pooled], cnt[pooled] = s1.sum() / tot, s2.sum() / tot, 1.0
        m = s1 / np.maximum(cnt, 1.0)
        var = np.maximum(s2 / np.maximum(cnt, 1.0) - m * m, 0.0)
        if it:
            nu = tab.nu_from_var(var, trimmed=True)
            logc = m - tab.at(nu, tab.m_trim)
        else:
            nu = tab.nu_from_var(var, trimmed=False)
            logc = m - tab.at(nu, tab.m_full)
        cut = logc + tab.at(nu, tab.log_cut)
    return nu, logc


WHITE_TEXTURE_RHO = 0.05  # below: the texture counts as white (Settings.adapt); see texture_correlation


def texture_correlation(image: NDArray[np.floating], mask: Bool | None = None, lag: int = 2) -> float:
    """Correlation of ln(intensity) between pixels ``lag`` apart (mean of rows and columns), land left out.

    Speckle is white, so this is about 0 where the sea's texture is white too, and about the texture's
    own correlation times var(ln T) / var(ln I) where it is correlated (0.1-0.6 for nu <= 4 over 8 px).
    The log keeps a few bright ships from weighing. Every 8th row (column) is used: the estimate's
    noise is a few 1e-3 on a 1024^2 tile, against a cut at 0.05. NaN when fewer than 1000 pairs are valid.
    """
    x = np.asarray(image, dtype=np.float32)
    land = None if mask is None else np.asarray(mask, dtype=np.bool_)
    rhos = []
    for rows in (True, False):
        sub = x[::8] if rows else x[:, ::8].T  # pairs along axis 1 of ``sub``
        with np.errstate(divide="ignore", invalid="ignore"):
            lx = np.log(sub)
        if land is not None:
            lx[land[::8] if rows else land[:, ::8].T] = np.nan
        a, b = lx[:, :-lag], lx[:, lag:]
        ok = np.isfinite(a) & np.isfinite(b)
        n = int(ok.sum())
        if n < 1000:
            continue
        if n < ok.size:
            a, b = a[ok], b[ok]
        ma, mb = a.mean(dtype=np.float64), b.mean(dtype=np.float64)
        cov = float(np.multiply(a, b).mean(dtype=np.float64) - ma * mb)
        va = float(np.square(a).mean(dtype=np.float64) - ma * ma)
        vb = float(np.square(b).mean(dtype=np.float64) - mb * mb)
        if va > 0 and vb > 0:
            rhos.append(cov / math.sqrt(va * vb))
    return float(np.mean(rhos)) if rhos else float("nan")


def k_cfar(
    image: NDArray[np.floating],
    pfa: float = 1e-6,
    guard: int = 4,
    train: int = 12,
    mask: Bool | None = None,
    *,
    looks: int = 1,
    exclude: Bool | None = None,
    min_train: int = 16,
    cell: int = CELL,
    trim: float = 1e-3,
) -> tuple[Bool, F32, KFit]:
    """K-CFAR: ``(detections, threshold, fit)``, the first two the shape of ``image``.

    ``mask`` (land) is neither trained on, fitted nor detected; ``exclude`` (censored pixels) is not
    trained on or fitted but is tested. ``threshold`` is +inf where nothing is tested.
    """
    _check(pfa, guard, train, looks)
    if cell < 8 or not 0 < trim < 0.5:
        raise ValueError(f"need cell >= 8 and 0 < trim < 0.5 (got cell={cell}, trim={trim})")
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    r = guard + train
    valid = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
    use = valid
    if exclude is not None:
        use = ~np.asarray(exclude, dtype=np.bool_)
        if valid is not None:
            use &= valid
    s = _sat(x if use is None else np.where(use, x, np.float32(0)), r, np.float64)
    tsum = _box(s, r, r, h, w)
    tsum -= _box(s, r, guard, h, w)
    del s
    tested: Bool | None = None  # None: every pixel is tested
    if use is None and (r + 1) ** 2 - (guard + 1) ** 2 >= min_train:
        # nothing masked: the count is constant inside, and counted only on the rim within r of the edges
        n_full = (2 * r + 1) ** 2 - (2 * guard + 1) ** 2
        rim = _rim(h, w, r)
        rim_z = [
            tsum[sl]
            / np.subtract(
                np.multiply.outer(_span(h, r)[sl[0]], _span(w, r)[sl[1]]),
                np.multiply.outer(_span(h, guard)[sl[0]], _span(w, guard)[sl[1]]),
            )
            for sl in rim
        ]
        z = tsum.astype(np.float32)
        z *= np.float32(1.0 / n_full)
        for sl, v in zip(rim, rim_z, strict=True):
            z[sl] = v
        del tsum, rim_z
    else:
        if use is None:
            count = np.subtract(
                np.multiply.outer(_span(h, r), _span(w, r)), np.multiply.outer(_span(h, guard), _span(w, guard))
            )
        else:
            c = _sat(use, r, np.int32)
            count = _box(c, r, r, h, w)
            count -= _box(c, r, guard, h, w)
            del c
        tested = count >= min_train
        if valid is not None:
            tested &= valid
        tsum /= np.maximum(count, 1)
        z = tsum.astype(np.float32)  # the ring mean
        del tsum, count
    # ln y on every second pixel and row: speckle is white, the texture varies slowly
    xs, zs = x[::2, ::2], z[::2, ::2]
    with np.errstate(divide="ignore", invalid="ignore"):
        lny = np.log(xs / zs)
    bad = ~np.isfinite(lny)
    if tested is not None:  # censored pixels are fitted too: the trimming keeps ships out, the tail stays in
        bad |= ~tested[::2, ::2]
    lny[bad] = np.nan
    nu, logc = fit(lny, looks, pfa, trim, max(cell // 2, 4))
    del lny, xs, zs, bad
    tab = table(int(looks), float(pfa), float(trim))
    cell_t = np.exp(logc + tab.at(nu, tab.log_t)).astype(np.float32)
    thr = z  # scaled in place, one band of cells at a time: no full-size factor array
    for i in range(cell_t.shape[0]):
        thr[i * cell : (i + 1) * cell] *= np.repeat(cell_t[i], cell)[None, :w]
    if tested is not None:
        thr[~tested] = np.inf
    det: Bool = x > thr
    return det, thr, KFit(nu, logc, h * w if tested is None else int(tested.sum()), cell)
