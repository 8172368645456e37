"""CFAR detectors for SAR intensity images: cell-averaging (CA) and order-statistic (OS), numpy only.

Both compare each cell under test (CUT) with ``alpha * Z``, where ``Z`` estimates the local clutter
level from a square training ring around the CUT: the cells within ``guard + train`` pixels
(Chebyshev distance) but farther than ``guard`` pixels, so that an extended target's own pixels
stay out of its estimate. ``alpha`` is derived from the requested probability of false alarm on
L-look gamma clutter (exponential for one look); see docs/sar.md for the formulas.

Masked pixels (``mask`` True, e.g. land) are neither trained on nor detected; pixels marked in
``exclude`` are not trained on but are still tested (censoring of earlier detections). Pixels
whose ring holds too few valid training cells (image corners next to land) are not detected.
Pixels outside the image are simply absent: the ring is truncated and ``alpha`` follows the number
of cells actually used, so a tile with enough halo gives exactly the whole-image result.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Bool = NDArray[np.bool_]


def _check(pfa: float, guard: int, train: int, looks: int) -> None:
    if not 0 < pfa < 1:
        raise ValueError(f"pfa must be in (0, 1), not {pfa}")
    if guard < 0 or train < 1:
        raise ValueError(f"need guard >= 0 and train >= 1 (got guard={guard}, train={train})")
    if not 1 <= looks <= 64 or int(looks) != looks:
        raise ValueError(f"looks must be an integer from 1 to 64, not {looks}")


# ----------------------------------------------------------------------------------------------
# thresholds
# ----------------------------------------------------------------------------------------------


def _ca_pfa(alpha: F64, n: F64, looks: int) -> F64:
    """P(CUT > alpha * mean of n training cells) for independent L-look gamma clutter (exact)."""
    t = alpha / n
    nl = n * looks
    log1pt = np.log1p(t)
    total = np.zeros_like(t)
    lg_nl = np.vectorize(math.lgamma, otypes=[np.float64])(nl)
    for k in range(looks):
        lg = np.vectorize(math.lgamma, otypes=[np.float64])(nl + k) - lg_nl - math.lgamma(k + 1)
        total += np.exp(lg + k * np.log(t) - (nl + k) * log1pt)
    return total


def ca_alpha(pfa: float, n: int | NDArray[np.integer] | F64, looks: int = 1) -> F64:
    """The CA-CFAR threshold factor for ``n`` training cells (vectorised over ``n``).

    One look (exponential clutter): ``alpha = n * (pfa**(-1/n) - 1)``, exactly. L looks:
    ``pfa = sum_{k<L} C(nL+k-1, k) t^k (1+t)^-(nL+k)`` with ``t = alpha/n``, solved by bisection.
    """
    nn = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
    if looks == 1:
        return nn * np.expm1(-math.log(pfa) / nn)
    lo = np.full(nn.shape, math.log(1e-6))
    hi = np.full(nn.shape, math.log(1e6))
    for _ in range(80):  # Pfa decreases with alpha: bisect in log alpha
        mid = (lo + hi) / 2
        above = _ca_pfa(np.exp(mid), nn, looks) > pfa
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out: F64 = np.exp((lo + hi) / 2)
    return out


@lru_cache(maxsize=64)
def _ca_table(pfa: float, looks: int, n_max: int) -> F64:
    """``ca_alpha`` for every count 0..n_max (index 0 is +inf: nothing to train on)."""
    tab = np.empty(n_max + 1)
    tab[0] = np.inf
    tab[1:] = ca_alpha(pfa, np.arange(1, n_max + 1), looks)
    tab.setflags(write=False)
    return tab


@lru_cache(maxsize=64)
def _ca_factor(pfa: float, looks: int, n_max: int, min_train: int) -> F64:
    """``alpha(N) / N`` for every count N in 0..n_max: the threshold is this times the training sum."""
    tab = _ca_table(pfa, looks, n_max) / np.maximum(np.arange(n_max + 1), 1)
    tab[:min_train] = np.inf
    tab.setflags(write=False)
    return tab


@lru_cache(maxsize=512)
def os_alpha(pfa: float, m: int, k: int, cells: int, looks: int = 1) -> float:
    """The OS-CFAR factor: Pfa of ``CUT > alpha * Z`` with ``Z`` the k-th smallest of ``m`` block means.

    Each block mean averages ``cells`` independent L-look pixels, so it is Gamma(cells*L, 1/(cells*L));
    the density of its k-th order statistic is integrated numerically against the CUT's
    exceedance ``Q_L(alpha*L*z)`` and ``alpha`` found by bisection (numpy only, cached).
    """
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= m (k={k}, m={m})")
    s = float(cells * looks)
    # a grid uniform in log z: fine near 0 (where a small-alpha tail lives) and around the mean
    u = np.linspace(math.log(1e-9), math.log(1.0 + 14.0 / math.sqrt(s) + 14.0 / s), 12001)
    z = np.exp(u)
    wz = z * (u[1] - u[0])  # dz of each grid point
    logf = s * math.log(s) - math.lgamma(s) + (s - 1) * u - s * z
    fw = np.exp(logf) * wz  # probability mass of each grid point
    cdf = np.cumsum(fw) - fw / 2
    sf = np.cumsum(fw[::-1])[::-1] - fw / 2
    cdf, sf = np.clip(cdf / fw.sum(), 1e-300, 1.0), np.clip(sf / fw.sum(), 1e-300, 1.0)
    log_coef = math.lgamma(m + 1) - math.lgamma(k) - math.lgamma(m - k + 1)
    pz = np.exp(log_coef + (k - 1) * np.log(cdf) + (m - k) * np.log(sf)) * fw  # mass of Z at each point
    pz /= pz.sum()
    jj = np.arange(looks)
    log_fact = np.array([math.lgamma(j + 1) for j in range(looks)])

    def pfa_of(alpha: float) -> float:
        x = alpha * looks * z
        with np.errstate(divide="ignore"):
            q = np.exp(-x[:, None] + jj[None, :] * np.log(x)[:, None] - log_fact[None, :]).sum(axis=1)
        return float((pz * q).sum())

    lo, hi = math.log(1e-3), math.log(1e6)
    for _ in range(70):
        mid = (lo + hi) / 2
        if pfa_of(math.exp(mid)) > pfa:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


# ----------------------------------------------------------------------------------------------
# CA-CFAR with summed-area tables
# ----------------------------------------------------------------------------------------------


def _sat(a: NDArray[Any], pad: int, dtype: type[np.float64] | type[np.int32]) -> NDArray[Any]:
    """Summed-area table of ``a`` zero-padded by ``pad`` on each side (plus a leading zero row/column)."""
    h, w = a.shape
    s = np.zeros((h + 2 * pad + 1, w + 2 * pad + 1), dtype=dtype)
    s[pad + 1 : pad + 1 + h, pad + 1 : pad + 1 + w] = a
    np.cumsum(s, axis=0, out=s)
    np.cumsum(s, axis=1, out=s)
    return s


def _box(s: NDArray[Any], pad: int, r: int, h: int, w: int) -> NDArray[Any]:
    """Sum over the (2r+1)^2 square around every pixel, from a table made by ``_sat(.., pad)``: O(1) each."""
    lo, hi = pad - r, pad + r + 1
    out: NDArray[Any] = np.subtract(s[hi : hi + h, hi : hi + w], s[lo : lo + h, hi : hi + w])
    out -= s[hi : hi + h, lo : lo + w]
    out += s[lo : lo + h, lo : lo + w]
    return out


def _rim(h: int, w: int, r: int) -> list[tuple[slice, slice]]:
    """The strips within r of the edges of an h x w array, without overlaps."""
    top, bottom = slice(0, min(r, h)), slice(max(min(r, h), h - r), h)
    middle = slice(top.stop, bottom.start)
    left, right = slice(0, min(r, w)), slice(max(min(r, w), w - r), w)
    return [(top, slice(0, w)), (bottom, slice(0, w)), (middle, left), (middle, right)]


def _span(n: int, r: int) -> NDArray[np.int64]:
    """How many of the indices i-r..i+r fall inside 0..n-1, for each i."""
    i = np.arange(n)
    return np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1


def box_mean(image: NDArray[np.floating], side: int, mask: Bool | None = None) -> F32:
    """Mean over the ``side`` x ``side`` square around every pixel (valid pixels only; edges truncated).

    On white L-look speckle the mean of ``side**2`` pixels is gamma with ``side**2 * L`` looks: a ship
    several pixels across keeps its contrast while the sea's spikes average down (``Settings.smooth``).
    """
    if side < 1 or side % 2 == 0:
        raise ValueError(f"smoothing side must be an odd number of pixels >= 1, not {side}")
    x = np.asarray(image, dtype=np.float32)
    if side == 1:
        return x
    h, w = x.shape
    r = side // 2
    valid = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
    total = _sum_near(x if valid is None else np.where(valid, x, np.float32(0)), r)
    if valid is None:
        total /= np.multiply.outer(_span(h, r), _span(w, r)).astype(np.float32)
    else:
        total /= np.maximum(_sum_near(valid.astype(np.float32), r), np.float32(1))
    return total


def trimmed_box_mean(image: NDArray[np.floating], side: int, mask: Bool | None = None) -> F32:
    """Mean over the ``side`` x ``side`` square around every pixel, its brightest valid pixel left out.

    On spiky sea whose texture is white, the plain box mean's tail is one spike's tail (a single
    pixel at 9x the level makes the mean of 9 cross), which a K fitted to the mean's log-moments
    underestimates several-fold; without its brightest pixel the mean is raised only by a ship or a
    patch, which fill the window (``Settings.adapt``, docs/sar.md). A window with a single valid
    pixel keeps it.
    """
    if side < 3 or side % 2 == 0:
        raise ValueError(f"trimmed smoothing side must be an odd number of pixels >= 3, not {side}")
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    r = side // 2
    if mask is None and h > 1 and w > 1:  # every window holds at least 2 pixels: no selection needed
        total = _sum_near(x, r)
        total -= _max_near(x, r)
        total /= np.multiply.outer(_span(h, r), _span(w, r)).astype(np.float32) - np.float32(1)
        return total
    valid = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
    v = x if valid is None else np.where(valid, x, np.float32(0))
    total = _sum_near(v, r)
    top = _max_near(x if valid is None else np.where(valid, x, np.float32(-np.inf)), r)
    if valid is None:
        count = np.multiply.outer(_span(h, r), _span(w, r)).astype(np.float32)
    else:
        count = _sum_near(valid.astype(np.float32), r)
    several = count > 1.5
    out: F32 = np.where(several, (total - np.where(several, top, 0)) / np.maximum(count - 1, 1), total)
    return out.astype(np.float32, copy=False)


def _max_near(a: F32, r: int) -> F32:
    """Maximum over the (2r+1)^2 square around every pixel (truncated at the edges), separable."""
    h, w = a.shape
    rows = a.copy()
    for k in range(1, min(r, h - 1) + 1):
        np.maximum(rows[k:], a[: h - k], out=rows[k:])
        np.maximum(rows[: h - k], a[k:], out=rows[: h - k])
    out: F32 = rows.copy()
    for k in range(1, min(r, w - 1) + 1):
        np.maximum(out[:, k:], rows[:, : w - k], out=out[:, k:])
        np.maximum(out[:, : w - k], rows[:, k:], out=out[:, : w - k])
    return out


def _sum_near(a: F32, r: int) -> F32:
    """Sum over the (2r+1)^2 square around every pixel (truncated at the edges), separable, in float32."""
    h, w = a.shape
    rows = a.copy()
    for k in range(1, min(r, h - 1) + 1):
        rows[k:] += a[: h - k]
        rows[: h - k] += a[k:]
    out: F32 = rows.copy()
    for k in range(1, min(r, w - 1) + 1):
        out[:, k:] += rows[:, : w - k]
        out[:, : w - k] += rows[:, k:]
    return out


def ca_cfar(
    image: NDArray[np.floating],
    pfa: float = 1e-6,
    guard: int = 4,
    train: int = 12,
    mask: Bool | None = None,
    *,
    looks: int = 1,
    exclude: Bool | None = None,
    min_train: int = 16,
) -> tuple[Bool, F32]:
    """Cell-averaging CFAR: ``(detections, threshold)``, both the shape of ``image``.

    ``Z`` is the mean of the valid training cells (window sums from summed-area tables in float64,
    O(1) per pixel whatever the window), ``alpha = ca_alpha(pfa, N, looks)`` for the ``N`` cells
    actually used at that pixel. ``threshold`` is +inf where nothing is tested.
    """
    _check(pfa, guard, train, looks)
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    r = guard + train
    valid = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
    use: Bool | None = valid
    if exclude is not None:
        use = ~np.asarray(exclude, dtype=np.bool_)
        if valid is not None:
            use &= valid
    n_max = (2 * r + 1) ** 2 - (2 * guard + 1) ** 2
    factor = _ca_factor(float(pfa), int(looks), n_max, int(min_train))  # alpha(N) / N, +inf below min_train
    if use is None:
        s = _sat(x, r, np.float64)
        tsum = _box(s, r, r, h, w)
        tsum -= _box(s, r, guard, h, w)
        del s
        # every window is whole except within r of the edges: one factor inside, counted ones on the rim
        rim = _rim(h, w, r)
        rim_thr = []
        for sl in rim:
            count = np.subtract(
                np.multiply.outer(_span(h, r)[sl[0]], _span(w, r)[sl[1]]),
                np.multiply.outer(_span(h, guard)[sl[0]], _span(w, guard)[sl[1]]),
            )
            rim_thr.append(tsum[sl] * factor[count])
        tsum *= factor[n_max]
        for sl, t in zip(rim, rim_thr, strict=True):
            tsum[sl] = t
        del rim_thr
    else:
        s = _sat(np.where(use, x, np.float32(0)), r, np.float64)
        tsum = _box(s, r, r, h, w)
        tsum -= _box(s, r, guard, h, w)
        del s
        c = _sat(use, r, np.int32)
        count = _box(c, r, r, h, w)
        count -= _box(c, r, guard, h, w)
        del c
        with np.errstate(invalid="ignore"):  # inf * 0 where nothing was trained on: replaced just below
            tsum *= factor[count]
        tsum[count < min_train] = np.inf
        del count
    if valid is not None:
        tsum[~valid] = np.inf
    thr = tsum.astype(np.float32)
    det: Bool = x > tsum  # compared in float64: the float32 threshold returned is for reporting
    return det, thr


# ----------------------------------------------------------------------------------------------
# OS-CFAR on blocks
# ----------------------------------------------------------------------------------------------


def os_geometry(guard: int, train: int, block: int) -> tuple[int, int, int]:
    """(guard blocks, outer blocks, reach in pixels) of the blocked OS-CFAR ring."""
    gb = -(-guard // block)
    ob = gb + max(1, -(-train // block))
    return gb, ob, (ob + 1) * block - 1


def os_cfar(
    image: NDArray[np.floating],
    pfa: float = 1e-6,
    guard: int = 4,
    train: int = 12,
    mask: Bool | None = None,
    *,
    looks: int = 1,
    rank: float = 0.75,
    block: int = 4,
    min_blocks: int = 8,
) -> tuple[Bool, F32]:
    """Order-statistic CFAR on block means: ``(detections, threshold)``.

    Approximation (documented in docs/sar.md): the image is cut into ``block x block`` cells
    aligned on the array origin; ``Z`` is the ``ceil(rank * M)``-th smallest of the ``M`` valid
    block means on the ring of blocks around the CUT's block (Chebyshev block distance
    ``gb < d <= ob``, with ``gb = ceil(guard/block)`` so the guard region of every pixel of the
    block is covered, ``ob = gb + ceil(train/block)``), evaluated once per block rather than per
    pixel. A block is valid when at least half its pixels are valid (its mean is over those).
    ``alpha = os_alpha(pfa, M, k, block**2, looks)``. Ranking block means rather than the
    ~1000 single cells keeps it vectorised and cheap; a rank above the median ignores a bright
    region occupying less than ``1 - rank`` of the ring, which is what tames clutter edges.
    """
    _check(pfa, guard, train, looks)
    if not 0 < rank <= 1 or block < 1:
        raise ValueError(f"need 0 < rank <= 1 and block >= 1 (got rank={rank}, block={block})")
    x = np.asarray(image, dtype=np.float32)
    h, w = x.shape
    hb, wb = -(-h // block), -(-w // block)
    valid = None if mask is None else ~np.asarray(mask, dtype=np.bool_)
    xp = np.zeros((hb * block, wb * block), dtype=np.float32)
    xp[:h, :w] = x if valid is None else np.where(valid, x, np.float32(0))
    bsum = xp.reshape(hb * block, wb, block).sum(axis=2, dtype=np.float64).reshape(hb, block, wb).sum(axis=1)
    del xp
    if valid is None and h % block == 0 and w % block == 0:
        bcnt = np.full((hb, wb), block * block, dtype=np.int64)
    else:
        vp = np.zeros((hb * block, wb * block), dtype=np.int8)
        vp[:h, :w] = True if valid is None else valid
        bcnt = vp.reshape(hb * block, wb, block).sum(axis=2, dtype=np.int64).reshape(hb, block, wb).sum(axis=1)
        del vp
    gb, ob, _ = os_geometry(guard, train, block)
    ok = bcnt * 2 >= block * block
    grid = np.full((hb + 2 * ob, wb + 2 * ob), np.inf, dtype=np.float32)
    grid[ob : ob + hb, ob : ob + wb] = np.where(ok, bsum / np.maximum(bcnt, 1), np.inf)
    del bsum, bcnt
    # M, the valid blocks on each ring: a box count on the block grid (outer square minus guard square)
    okp = np.zeros((hb + 2 * ob, wb + 2 * ob), dtype=np.int32)
    okp[ob : ob + hb, ob : ob + wb] = ok
    del ok
    c = _sat(okp, 0, np.int32)
    m = _box(c, ob, ob, hb, wb) - _box(c, ob, gb, hb, wb)
    del c, okp
    offsets = [(di, dj) for di in range(-ob, ob + 1) for dj in range(-ob, ob + 1) if max(abs(di), abs(dj)) > gb]
    m_full = len(offsets)
    ring = np.empty((hb, wb, m_full), dtype=np.float32)
    for i, (di, dj) in enumerate(offsets):
        ring[:, :, i] = grid[ob + di : ob + di + hb, ob + dj : ob + dj + wb]
    del grid
    ks = np.maximum(1, np.ceil(rank * np.arange(m_full + 1) - 1e-9).astype(np.int64))  # k for each m
    # invalid blocks are +inf and sort last, so the k-th smallest of all is the k-th smallest valid one
    # (numpy's vectorised sort of these short rows beats a partition, let alone one per k in use)
    ring.sort(axis=2)
    z = np.take_along_axis(ring, (ks[m] - 1)[:, :, None], axis=2)[:, :, 0]
    del ring
    table = np.full(m_full + 1, np.inf)
    for mm in np.unique(m):
        if mm >= min_blocks:
            table[mm] = os_alpha(float(pfa), int(mm), int(ks[mm]), block * block, int(looks))
    thr_b = (table[m] * z).astype(np.float32)
    thr = np.repeat(np.repeat(thr_b, block, axis=0), block, axis=1)[:h, :w]
    if valid is not None:
        thr[~valid] = np.inf
    det: Bool = x > thr
    return det, np.ascontiguousarray(thr)


def dilate(mask: Bool, r: int) -> Bool:
    """Binary dilation by a (2r+1)^2 square: shifted ORs, separable."""
    out = np.array(mask, dtype=np.bool_, copy=True)
    if r <= 0:
        return out
    tmp = out.copy()
    for k in range(1, r + 1):
        out[k:] |= tmp[:-k]
        out[:-k] |= tmp[k:]
    tmp[...] = out
    for k in range(1, r + 1):
        out[:, k:] |= tmp[:, :-k]
        out[:, :-k] |= tmp[:, k:]
    return out
