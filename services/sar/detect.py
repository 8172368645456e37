"""Ship detection over a whole scene: tiles with halos, CFAR, clustering, attributes, scoring, alerts.

``detect`` walks the scene (an array or a read-only ``.npy`` memmap) in square tiles. Each tile is
read with a halo wide enough that every pixel of the tile, and of a margin around it, sees exactly
what it would see in the whole image; clusters are kept by the tile holding their first pixel (in
raster order), so the tiled result equals the whole-image result and nothing is reported twice.
The tile size follows ``memory_budget_bytes`` when one is given.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from services.sar.cfar import box_mean, ca_cfar, dilate, os_cfar, os_geometry, trimmed_box_mean
from services.sar.kcfar import WHITE_TEXTURE_RHO, KFit, k_cfar, texture_correlation
from services.sar.scene import GeoTransform, Ship, Truth

Method = Literal["ca", "os", "k"]
Bool = NDArray[np.bool_]
I64 = NDArray[np.int64]

# Peak bytes traced per pixel of a haloed tile, measured with tracemalloc (tests/sar checks the
# budget is kept): x float32 + masks + one CFAR pass (summed-area table, sums, counts, factors).
BYTES_PER_PX = {"ca": 44.0, "os": 40.0, "k": 44.0}
RESERVE_BYTES = 2 << 20
# Per-pixel false-alarm probability by method. K-CFAR holds its rate on spiky sea, so it can afford
# 1e-4: its false alarms are isolated pixels and a ship needs ``min_pixels`` of them (see docs/sar.md).
DEFAULT_PFA = {"ca": 1e-6, "os": 1e-6, "k": 1e-4}  # fixed overhead: tables, the detections so far, Python objects


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipDetection:
    """One detected ship: where, how big, how bright, how sure.

    ``row``/``col`` is the centroid of the detected pixels; ``length_px``/``width_px`` come from
    their second moments (a uniform rectangle of length L has variance (L^2 - 1)/12 along it);
    ``heading_deg`` is the major axis, clockwise from north, in [0, 180); ``peak``/``mean`` are
    intensities (sea clutter mean 1 in generated scenes); ``snr_db`` is the largest ratio of a
    pixel to its local threshold; ``confidence = 1 - threshold/peak`` at that pixel, in [0, 1).
    """

    row: float
    col: float
    pixels: int
    length_px: float
    width_px: float
    heading_deg: float
    length_m: float
    peak: float
    mean: float
    snr_db: float
    confidence: float
    lat: float | None = None
    lon: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class TileResult:
    """One processed tile: its index, the tile count, its core (r0, r1, c0, c1) and what it owns."""

    index: int
    total: int
    core: tuple[int, int, int, int]
    detections: list[ShipDetection]
    truncated: int = 0  # clusters reaching the margin edge (larger than max_extent_px): may differ from whole
    seconds: float = 0.0
    tested_px: int = 0  # pixels of the core tested against a threshold
    crossings: int = 0  # pixels of the core above their threshold
    unclustered: int = 0  # crossings not in a reported ship: the observed false alarms (approximate)
    nu: tuple[float, ...] = ()  # K texture shape fitted in the cells centred in the core (method "k")
    pfa: float = 0.0  # the per-pixel pfa this tile was tested at (0: the scene's; differs with ``adapt``)
    texture_rho: float | None = None  # the texture correlation that chose this tile's detector (``adapt``)


@dataclass(frozen=True)
class Plan:
    """How a scene is cut: core tile side, halo and the tiles' cores."""

    tile: int
    halo: int
    margin: int
    tiles: list[tuple[int, int, int, int]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# connected components (run-length, vectorised union-find)
# ----------------------------------------------------------------------------------------------


def _runs(mask: Bool) -> tuple[I64, I64, I64]:
    """Horizontal runs of True: (row, start, end exclusive), in raster order."""
    h, w = mask.shape
    p = np.zeros((h, w + 2), dtype=np.int8)
    p[:, 1:-1] = mask
    d = np.diff(p, axis=1)  # +1 where a run starts, -1 just after it ends
    del p
    idx = np.flatnonzero(d)  # one pass over the (sparse) edges, in raster order
    starts = d.ravel()[idx] == 1
    row, col = np.divmod(idx.astype(np.int64), w + 1)
    return row[starts], col[starts], col[~starts]


def _expand(starts: I64, lengths: I64) -> tuple[I64, I64]:
    """For runs (start, length): the run index and the position of every element, concatenated."""
    idx = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    first = np.cumsum(lengths) - lengths
    pos = starts[idx] + np.arange(int(lengths.sum()), dtype=np.int64) - first[idx]
    return idx, pos


def _label_runs(row: I64, start: I64, end: I64, width: int) -> tuple[I64, int]:
    """8-connected component label of every run (0..n-1, numbered in raster order of first run)."""
    nr = len(row)
    if nr == 0:
        return np.zeros(0, dtype=np.int64), 0
    k = width + 2
    key_s, key_e = row * k + start, row * k + end
    # runs of the previous row that touch run i (8-connectivity): start' <= end_i and end' >= start_i
    lo = np.searchsorted(key_e, (row - 1) * k + start, side="left")
    hi = np.searchsorted(key_s, (row - 1) * k + end, side="right")
    cnt = np.maximum(hi - lo, 0)
    a, b = _expand(lo, cnt)  # a: a run in row r, b: a run of row r-1 touching it
    labels = np.arange(nr, dtype=np.int64)
    while len(a):
        la, lb = labels[a], labels[b]
        differ = la != lb
        if not differ.any():
            break
        a, b, la, lb = a[differ], b[differ], la[differ], lb[differ]
        np.minimum.at(labels, np.maximum(la, lb), np.minimum(la, lb))  # hook the larger root
        while True:  # compress: every run points at its root
            nxt = labels[labels]
            if np.array_equal(nxt, labels):
                break
            labels = nxt
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # number components by their first run
    return order[inv].astype(np.int64), len(first)


def components(mask: Bool, gap: int = 0) -> tuple[I64, I64, I64, int]:
    """Connected components (8-connected) of ``mask``: rows, cols, label of each True pixel, count.

    Pixels come in raster order; components are numbered by their first pixel. With ``gap`` > 0,
    pixels at most ``2 * gap + 1`` apart (Chebyshev) join the same component: the mask is dilated
    by ``gap`` for the labelling, but only the original pixels are returned.
    """
    m = np.asarray(mask, dtype=np.bool_)
    w = m.shape[1]
    rr, ss, ee = _runs(m)
    run_idx, cols = _expand(ss, ee - ss)
    rows = rr[run_idx]
    if gap > 0:
        dr, ds, de = _runs(dilate(m, gap))
        dlab, n = _label_runs(dr, ds, de, w)
        run = np.searchsorted(dr * (w + 2) + ds, rows * (w + 2) + cols, side="right") - 1
        lab = dlab[run]
        _, first, inv = np.unique(lab, return_index=True, return_inverse=True)
        lab = np.argsort(np.argsort(first))[inv].reshape(-1).astype(np.int64)
        n = len(first)
    else:
        rlab, n = _label_runs(rr, ss, ee, w)
        lab = rlab[run_idx]
    return rows, cols, lab, n


# ----------------------------------------------------------------------------------------------
# planning and the tile loop
# ----------------------------------------------------------------------------------------------


def grow(det: Bool, x: NDArray[np.float32], thr: NDArray[np.float32], frac: float, steps: int) -> Bool:
    """Hysteresis: ``det`` grown (8-connected, at most ``steps`` pixels) into pixels above ``frac * thr``.

    Speckle leaves gaps in a faint extended ship (a 10 dB ship pixel crosses a 1e-6 threshold only
    about a quarter of the time); growing into pixels that are merely bright reconnects its
    fragments and gives its full extent to the length estimate, without adding clusters: the
    growth never seeds a cluster of its own.
    """
    if steps <= 0 or frac <= 0:
        return det
    bright = x > thr * np.float32(frac)
    bright |= det
    out = det
    for _ in range(steps):
        nxt = dilate(out, 1)
        nxt &= bright
        if np.array_equal(nxt, out):
            break
        out = nxt
    return out


@dataclass(frozen=True)
class Settings:
    """Detector settings (``detect`` takes them as keyword arguments).

    ``method="k"`` (the default) sets each pixel's threshold from the K distribution fitted to its
    cell (``kcfar.k_cfar``), after the same censoring pre-screen as "ca".
    ``method="ca"`` with ``censor`` (the default) first pre-screens bright pixels with the blocked
    OS-CFAR at rank 0.5 and ``censor_pfa``; those pixels (and their 8 neighbours) are left out of
    the CA training, so an extended ship does not raise its own threshold (self-masking), while
    the robust median-rank pre-screen is not fooled by the ship. ``method="os"`` runs the blocked
    OS-CFAR at ``rank``. Detections then grow (``grow``) into neighbours brighter than
    ``grow_frac`` times their threshold, for at most ``grow_px`` steps; pixels at most ``2*gap+1``
    apart (Chebyshev) form one cluster; clusters with fewer than ``min_pixels`` detected (not
    grown) pixels are dropped. ``smooth`` > 1 runs the CFAR on the ``smooth`` x ``smooth`` mean
    (``cfar.box_mean``) with ``smooth**2 * looks`` looks: it finds faint extended ships on spiky sea
    whose texture varies from pixel to pixel, not where it is correlated (docs/sar.md); use a
    lower ``pfa`` with it (1e-6), as its crossings come in clumps. ``elongation`` > 0 reports only
    clusters whose length is at least that many times their width (moments of the grown cluster):
    a ship is long and narrow, while the texture patches of a spiky sea correlated over a few pixels
    cross the threshold as round blobs (2.0 lifts precision there, docs/sar.md). ``adapt`` (method "k")
    chooses per tile from the texture's measured correlation (``for_tile``): ``smooth`` 3 at pfa/100
    with ``trim`` where it is white, ``elongation`` (2 unless set) where it is correlated. ``trim``
    (with ``smooth``) leaves each window's brightest pixel out of the mean
    (``cfar.trimmed_box_mean``): on spiky white sea one spike makes the plain mean cross several
    times more often than the K fitted to it says. Clusters up to ``max_extent_px``
    across are reported identically whatever the tiling with "ca" and "os"; "k" fits its cells
    within each haloed tile, so its thresholds near tile edges depend slightly on the tiling.
    """

    pfa: float | None = None  # per pixel; None: DEFAULT_PFA of the method
    guard: int = 4
    train: int = 12
    method: Method = "k"
    looks: int = 1
    min_pixels: int = 4
    censor: bool = True
    censor_pfa: float = 1e-4
    gap: int = 1
    grow_frac: float = 0.4
    grow_px: int = 8
    rank: float = 0.75
    block: int = 4
    max_extent_px: int = 64
    smooth: int = 1
    trim: bool = False  # with smooth: leave each window's brightest pixel out of the mean
    elongation: float = 0.0  # > 0: report only clusters at least this many times longer than wide
    adapt: bool = False  # per tile: the 3x3 mean at pfa/100 on white texture, else K with elongation

    def __post_init__(self) -> None:
        if self.method not in ("ca", "os", "k"):
            raise ValueError(f"method must be 'ca', 'os' or 'k', not {self.method!r}")
        if self.pfa is None:
            object.__setattr__(self, "pfa", DEFAULT_PFA[self.method])
        if not 0 < self.p < 1 or not 0 < self.censor_pfa < 1:
            raise ValueError("pfa and censor_pfa must be in (0, 1)")
        if (
            self.guard < 0
            or self.train < 1
            or self.block < 1
            or self.gap < 0
            or self.max_extent_px < 1
            or self.grow_px < 0
            or not 0 <= self.grow_frac <= 1
        ):
            raise ValueError(
                "need guard >= 0, train >= 1, block >= 1, gap >= 0, max_extent_px >= 1, "
                "grow_px >= 0 and 0 <= grow_frac <= 1"
            )
        if self.min_pixels < 1 or not 1 <= self.looks <= 64:
            raise ValueError("need min_pixels >= 1 and looks in 1..64")
        if self.smooth < 1 or self.smooth % 2 == 0 or self.looks * self.smooth**2 > 64:
            raise ValueError(
                f"smooth must be odd, >= 1, with looks * smooth**2 <= 64 (got smooth={self.smooth}, looks={self.looks})"
            )
        e = self.elongation
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (e == 0 or 1 <= e <= 20):  # NaN fails
            raise ValueError(f"elongation must be 0 (off) or from 1 to 20, not {self.elongation}")
        if not isinstance(self.adapt, bool):
            raise ValueError(f"adapt must be True or False, not {self.adapt!r}")
        if not isinstance(self.trim, bool) or (self.trim and self.smooth == 1):
            raise ValueError(f"trim must be True or False, and True only with smooth >= 3 (got {self.trim!r})")
        if self.adapt and (self.method != "k" or self.smooth != 1):
            raise ValueError("adapt chooses the smoothing itself: it needs method 'k' and smooth 1")

    @property
    def p(self) -> float:
        """The per-pixel false-alarm probability in use."""
        return float(DEFAULT_PFA[self.method] if self.pfa is None else self.pfa)

    def reach(self) -> int:
        """How far (pixels) a detection decision depends on the image."""
        os_reach = os_geometry(self.guard, self.train, self.block)[2]
        s = 1 if self.adapt else self.smooth // 2  # adapt may smooth 3x3
        if self.method == "os":
            return os_reach + s
        r = self.guard + self.train
        return (r + os_reach + 1 if self.censor else r) + s

    def for_tile(self, x: NDArray[np.float32], mask: Bool | None) -> tuple[Settings, float | None]:
        """The settings for one tile, and the texture correlation that chose them (``adapt``; else self, None).

        White texture (``kcfar.texture_correlation`` below ``WHITE_TEXTURE_RHO``): a faint ship's pixels
        are lost among independent spikes, and the 3x3 mean without its brightest pixel (``trim``) finds
        it (at pfa/100: its crossings clump); the trim keeps single spikes from making the mean cross.
        Correlated texture: the spikes come as round patches, which ``elongation`` (2 unless set) rejects.
        """
        if not self.adapt:
            return self, None
        rho = texture_correlation(x, mask)
        if rho < WHITE_TEXTURE_RHO and self.looks * 9 <= 64:  # NaN (too few pixels): correlated
            return replace(self, adapt=False, smooth=3, trim=True, pfa=self.p / 100, elongation=0.0), rho
        return replace(self, adapt=False, elongation=self.elongation or 2.0), rho

    def cfar(self, x: NDArray[np.float32], mask: Bool | None) -> tuple[Bool, NDArray[np.float32], KFit | None]:
        """Detections and thresholds of one (haloed) tile, and the K fit (method "k")."""
        looks = self.looks
        if self.smooth > 1:  # the thresholds then apply to the smoothed image
            if self.trim:
                x, looks = trimmed_box_mean(x, self.smooth, mask), self.looks * (self.smooth**2 - 1)
            else:
                x, looks = box_mean(x, self.smooth, mask), self.looks * self.smooth**2
        if self.method == "os":
            return (
                *os_cfar(x, self.p, self.guard, self.train, mask, looks=looks, rank=self.rank, block=self.block),
                None,
            )
        excl = None
        if self.censor:
            pre, thr = os_cfar(
                x, self.censor_pfa, self.guard, self.train, mask, looks=looks, rank=0.5, block=self.block
            )
            del thr
            excl = dilate(pre, 1)
            del pre
        if self.method == "k":
            return k_cfar(x, self.p, self.guard, self.train, mask, looks=looks, exclude=excl)
        return (*ca_cfar(x, self.p, self.guard, self.train, mask, looks=looks, exclude=excl), None)


def plan(
    shape: tuple[int, int],
    settings: Settings | None = None,
    *,
    tile: int | None = 1024,
    memory_budget_bytes: int | None = None,
) -> Plan:
    """The tiling of a scene: halo from the window, tile side from ``tile`` and the memory budget."""
    st = settings or Settings()
    h, w = int(shape[0]), int(shape[1])
    if tile is not None and tile < 16:
        raise ValueError(f"tile must be at least 16 pixels, not {tile}")
    margin = st.max_extent_px + 2 * st.gap + st.grow_px
    halo = -(-(st.reach() + margin) // st.block) * st.block  # whole blocks keep the OS grid on the image grid
    per_px = BYTES_PER_PX[st.method] + (4.0 if st.smooth > 1 or st.adapt else 0.0)  # the smoothed copy
    side = max(h, w) if tile is None else int(tile)
    if memory_budget_bytes is not None:
        if per_px * h * w + RESERVE_BYTES <= memory_budget_bytes:
            fit = max(h, w)  # the whole image (no halo needed) fits
        else:
            fit = int(math.sqrt(max(memory_budget_bytes - RESERVE_BYTES, 0) / per_px)) - 2 * halo
            if fit < 32:
                need = int(per_px * (32 + 2 * halo) ** 2 + RESERVE_BYTES)
                raise ValueError(
                    f"memory budget {memory_budget_bytes} B is too small for this window "
                    f"(halo {halo} px): give at least {need} B"
                )
        side = min(side, fit)
    if side >= h and side >= w:
        return Plan(max(h, w), 0, margin, [(0, h, 0, w)])
    side = max(st.block, side // st.block * st.block)
    tiles = [(r0, min(h, r0 + side), c0, min(w, c0 + side)) for r0 in range(0, h, side) for c0 in range(0, w, side)]
    return Plan(side, halo, margin, tiles)


def _attributes(
    rows: I64,
    cols: I64,
    lab: I64,
    n: int,
    vals: NDArray[np.float64],
    ratio: NDArray[np.float64],
) -> dict[str, NDArray[Any]]:
    """Per-component sums and shape, vectorised with bincount."""
    cnt = np.bincount(lab, minlength=n).astype(np.float64)
    r, c = rows.astype(np.float64), cols.astype(np.float64)
    mr = np.bincount(lab, r, n) / cnt
    mc = np.bincount(lab, c, n) / cnt
    dr, dc = r - mr[lab], c - mc[lab]
    vrr = np.bincount(lab, dr * dr, n) / cnt
    vcc = np.bincount(lab, dc * dc, n) / cnt
    vrc = np.bincount(lab, dr * dc, n) / cnt
    half_tr, diff = (vrr + vcc) / 2, np.sqrt(((vrr - vcc) / 2) ** 2 + vrc**2)
    l1, l2 = half_tr + diff, np.maximum(half_tr - diff, 0.0)
    theta = 0.5 * np.arctan2(2 * vrc, vrr - vcc)  # major axis angle from the row axis toward the col axis
    heading = np.degrees(np.arctan2(np.sin(theta), -np.cos(theta))) % 180.0
    peak = np.full(n, -np.inf)
    np.maximum.at(peak, lab, vals)
    best = np.full(n, -np.inf)
    np.maximum.at(best, lab, ratio)
    return {
        "count": cnt,
        "row": mr,
        "col": mc,
        "length": np.sqrt(12 * l1 + 1),
        "width": np.sqrt(12 * l2 + 1),
        "heading": heading,
        "peak": peak,
        "mean": np.bincount(lab, vals, n) / cnt,
        "ratio": best,
    }


def _tile_detections(
    det: Bool,
    x: NDArray[np.float32],
    thr: NDArray[np.float32],
    origin: tuple[int, int],
    core: tuple[int, int, int, int],
    shape: tuple[int, int],
    st: Settings,
    *,
    pixel_m: float,
    geo: GeoTransform | None,
) -> tuple[list[ShipDetection], int, int]:
    """Clusters of ``det`` (a region of the scene at ``origin``) whose first pixel lies in ``core``.

    Also returns how many clusters may be truncated and how many detected pixels the kept ones hold.
    """
    rows, cols, lab, n = components(grow(det, x, thr, st.grow_frac, st.grow_px), st.gap)
    if n == 0:
        return [], 0, 0
    seeds = np.bincount(lab, det[rows, cols], n)
    vals = x[rows, cols].astype(np.float64)
    ratio = vals / thr[rows, cols].astype(np.float64)
    h, w = det.shape
    # clusters touching the region's edge where it is not the scene's edge may be cut short
    at_edge = (
        ((rows == 0) & (origin[0] > 0))
        | ((rows == h - 1) & (origin[0] + h < shape[0]))
        | ((cols == 0) & (origin[1] > 0))
        | ((cols == w - 1) & (origin[1] + w < shape[1]))
    )
    rows, cols = rows + origin[0], cols + origin[1]  # scene coordinates: sums independent of the tiling
    _, first = np.unique(lab, return_index=True)
    r0, r1, c0, c1 = core
    own = (rows[first] >= r0) & (rows[first] < r1) & (cols[first] >= c0) & (cols[first] < c1)
    keep = own & (seeds >= st.min_pixels)
    if not keep.any():
        return [], 0, 0
    a = _attributes(rows, cols, lab, n, vals, ratio)
    if st.elongation > 0:  # round blobs are the sea's texture patches, not ships
        keep &= a["length"] >= st.elongation * a["width"]
    edge = np.zeros(n, dtype=np.bool_)
    edge[lab[at_edge]] = True
    out: list[ShipDetection] = []
    for i in np.flatnonzero(keep):  # one Python step per ship, not per pixel
        row, col = float(a["row"][i]), float(a["col"][i])
        lat = lon = None
        if geo is not None:
            la, lo = geo.pixel_to_latlon(row, col)
            lat, lon = float(la), float(lo)
        ratio_i = float(a["ratio"][i])
        out.append(
            ShipDetection(
                row=row,
                col=col,
                pixels=int(a["count"][i]),
                length_px=float(a["length"][i]),
                width_px=float(a["width"][i]),
                heading_deg=float(a["heading"][i]),
                length_m=float(a["length"][i]) * pixel_m,
                peak=float(a["peak"][i]),
                mean=float(a["mean"][i]),
                snr_db=10 * math.log10(ratio_i),
                confidence=1.0 - 1.0 / ratio_i,
                lat=lat,
                lon=lon,
            )
        )
    return out, int((keep & edge).sum()), int(seeds[keep].sum())


def detect_iter(
    image: NDArray[np.floating],
    *,
    tile: int | None = 1024,
    land_mask: Bool | None = None,
    geo: GeoTransform | None = None,
    memory_budget_bytes: int | None = None,
    pixel_m: float | None = None,
    **settings: Any,
) -> Iterator[TileResult]:
    """``detect`` one tile at a time: yields each tile's result as soon as it is done (see ``detect``)."""
    st = Settings(**settings)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D intensity image, got shape {image.shape}")
    h, w = int(image.shape[0]), int(image.shape[1])
    if land_mask is not None and tuple(land_mask.shape) != (h, w):
        raise ValueError(f"land mask shape {land_mask.shape} differs from the image's {(h, w)}")
    px_m = pixel_m if pixel_m is not None else (geo.pixel_m if geo is not None else float("nan"))
    pl = plan((h, w), st, tile=tile, memory_budget_bytes=memory_budget_bytes)
    for index, core in enumerate(pl.tiles):
        t0 = time.perf_counter()
        r0, r1, c0, c1 = core
        hr0, hr1, hc0, hc1 = max(0, r0 - pl.halo), min(h, r1 + pl.halo), max(0, c0 - pl.halo), min(w, c1 + pl.halo)
        x = np.array(image[hr0:hr1, hc0:hc1], dtype=np.float32)
        m = None if land_mask is None else np.array(land_mask[hr0:hr1, hc0:hc1], dtype=np.bool_)
        tst, rho = st.for_tile(x, m)
        det, thr, kfit = tst.cfar(x, m)
        del m
        cr0, cr1, cc0, cc1 = r0 - hr0, r1 - hr0, c0 - hc0, c1 - hc0  # the core in the tile's coordinates
        tested = int(np.isfinite(thr[cr0:cr1, cc0:cc1]).sum())
        crossings = int(det[cr0:cr1, cc0:cc1].sum())
        nu: tuple[float, ...] = ()
        if kfit is not None:
            centre = (np.arange(kfit.nu.shape[0]) + 0.5) * kfit.cell, (np.arange(kfit.nu.shape[1]) + 0.5) * kfit.cell
            ri = (centre[0] >= cr0) & (centre[0] < cr1)
            ci = (centre[1] >= cc0) & (centre[1] < cc1)
            nu = tuple(float(v) for v in kfit.nu[np.ix_(ri, ci)].ravel())
        # the region whose decisions are exact: the core and a margin, within the scene
        er0, er1 = max(0, r0 - pl.margin) - hr0, min(h, r1 + pl.margin) - hr0
        ec0, ec1 = max(0, c0 - pl.margin) - hc0, min(w, c1 + pl.margin) - hc0
        found, truncated, seeds = _tile_detections(
            det[er0:er1, ec0:ec1],
            x[er0:er1, ec0:ec1],
            thr[er0:er1, ec0:ec1],
            (hr0 + er0, hc0 + ec0),
            core,
            (h, w),
            tst,
            pixel_m=px_m,
            geo=geo,
        )
        del det, thr, x
        yield TileResult(
            index,
            len(pl.tiles),
            core,
            found,
            truncated,
            time.perf_counter() - t0,
            tested,
            crossings,
            max(0, crossings - seeds),
            nu,
            tst.p,
            rho,
        )


def detect(
    image: NDArray[np.floating],
    *,
    pfa: float | None = None,
    guard: int = 4,
    train: int = 12,
    method: Method = "k",
    tile: int | None = 1024,
    min_pixels: int = 4,
    land_mask: Bool | None = None,
    geo: GeoTransform | None = None,
    memory_budget_bytes: int | None = None,
    looks: int = 1,
    pixel_m: float | None = None,
    **tuning: Any,
) -> list[ShipDetection]:
    """Ships in a SAR intensity scene (array or memmap), sorted by (row, col).

    ``method`` is "k" (K-distribution CFAR, fitted per cell: its false-alarm rate holds on spiky
    sea), "ca" or "os" (thresholds for ``looks``-look gamma clutter). ``pfa`` is the per-pixel
    false-alarm probability (None: 1e-4 for "k", 1e-6 otherwise); ``guard``/``train`` the window
    (pixels). ``land_mask`` (True = land) is neither trained on nor detected. Lengths in metres
    use ``pixel_m``, else the geotransform's pixel size (NaN without either). The scene is
    processed in tiles of ``tile`` pixels (smaller if ``memory_budget_bytes`` requires; ``None`` =
    the whole image unless the budget requires tiles) with a halo, so the result equals the
    whole-image result ("k": nearly). ``tuning`` holds the other ``Settings`` fields (``censor``,
    ``censor_pfa``, ``gap``, ``rank``, ``block``, ``max_extent_px``, ``smooth``, ``trim``, ``elongation``,
    ``adapt``).
    """
    found: list[ShipDetection] = []
    for t in detect_iter(
        image,
        tile=tile,
        land_mask=land_mask,
        geo=geo,
        memory_budget_bytes=memory_budget_bytes,
        pixel_m=pixel_m,
        pfa=pfa,
        guard=guard,
        train=train,
        method=method,
        min_pixels=min_pixels,
        looks=looks,
        **tuning,
    ):
        found.extend(t.detections)
    found.sort(key=lambda d: (d.row, d.col))
    return found


# ----------------------------------------------------------------------------------------------
# scoring against the generator's truth
# ----------------------------------------------------------------------------------------------


def _hull_distance(rows: NDArray[np.float64], cols: NDArray[np.float64], ships: Sequence[Ship]) -> NDArray[np.float64]:
    """Distance (px) from every point to every ship's rectangle (0 inside): shape (points, ships)."""
    sr = np.array([s.row for s in ships])
    sc = np.array([s.col for s in ships])
    th = np.radians([s.heading_deg for s in ships])
    half_l = np.array([s.length_px for s in ships]) / 2
    half_w = np.maximum(np.array([s.width_px for s in ships]) / 2, 0.5)
    dr, dc = rows[:, None] - sr[None, :], cols[:, None] - sc[None, :]
    along = -dr * np.cos(th) + dc * np.sin(th)
    across = dr * np.sin(th) + dc * np.cos(th)
    out: NDArray[np.float64] = np.hypot(
        np.maximum(np.abs(along) - half_l, 0.0), np.maximum(np.abs(across) - half_w, 0.0)
    )
    return out


def score(
    detections: Sequence[ShipDetection], truth: Truth | Sequence[Ship], tolerance_px: float = 5.0
) -> tuple[float, float, list[tuple[int, int, float]]]:
    """(precision, recall, matches) of detections against the truth's ships.

    A detection matches a ship when its centroid lies within ``tolerance_px`` of the ship's hull;
    matching is one-to-one, nearest pairs first, so a ship split into two detections counts one
    true and one false positive. ``matches`` lists (detection index, ship index, distance px).
    Precision is 1 with no detections, recall 1 with no ships.
    """
    ships = list(truth.ships if isinstance(truth, Truth) else truth)
    if not detections or not ships:
        return (1.0 if not detections else 0.0), (1.0 if not ships else 0.0), []
    d = _hull_distance(np.array([x.row for x in detections]), np.array([x.col for x in detections]), ships)
    cand = np.argwhere(d <= tolerance_px)
    order = np.argsort(d[cand[:, 0], cand[:, 1]], kind="stable")
    used_d: set[int] = set()
    used_s: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for i, j in cand[order]:  # candidate pairs only (few): greedy, nearest first
        if int(i) not in used_d and int(j) not in used_s:
            used_d.add(int(i))
            used_s.add(int(j))
            matches.append((int(i), int(j), float(d[i, j])))
    return len(matches) / len(detections), len(matches) / len(ships), matches


# ----------------------------------------------------------------------------------------------
# the downlinked alert
# ----------------------------------------------------------------------------------------------

ALERT_MAGIC = b"SA"
ALERT_VERSION = 1
_HEAD = struct.Struct("<2sBBB")  # magic, version, flags, length of the scene id
_COUNT = struct.Struct("<H")
_SHIP = struct.Struct("<iiHBBhH")  # lat, lon (1e-7 deg or 0.01 px), length dm, heading deg, conf/255, peak cdB, px
FLAG_GEO = 0x01


def alert(detections: Sequence[ShipDetection], scene_id: str | int, geo: GeoTransform | None = None) -> bytes:
    """The compact alert downlinked instead of the scene: 6 + len(scene id) + 2 + 16 bytes per ship.

    Header: ``"SA"``, version 1, flags (bit 0: positions are lat/lon), scene id (length-prefixed
    UTF-8, up to 255 bytes), ship count (uint16). Each ship, little-endian: latitude and longitude
    as int32 in 1e-7 degrees (or row/col in 0.01 px without a geotransform), length uint16 in
    decimetres (0 = unknown), heading uint8 degrees [0, 180), confidence uint8 (x/255), peak
    int16 in 0.01 dB, pixel count uint16. At most 65535 ships (the strongest are kept).
    """
    sid = str(scene_id).encode()[:255]
    ships = sorted(detections, key=lambda d: -d.confidence)[:0xFFFF]
    ships.sort(key=lambda d: (d.row, d.col))
    flags = FLAG_GEO if geo is not None else 0
    parts = [_HEAD.pack(ALERT_MAGIC, ALERT_VERSION, flags, len(sid)), sid, _COUNT.pack(len(ships))]
    for d in ships:
        if geo is not None:
            lat, lon = geo.pixel_to_latlon(d.row, d.col)
            a, b = round(float(lat) * 1e7), round(float(lon) * 1e7)
        else:
            a, b = round(d.row * 100), round(d.col * 100)
        length = 0 if not math.isfinite(d.length_m) else min(0xFFFF, round(d.length_m * 10))
        peak_cdb = max(-32768, min(32767, round(1000 * math.log10(d.peak)))) if d.peak > 0 else -32768
        parts.append(
            _SHIP.pack(
                a,
                b,
                length,
                int(d.heading_deg) % 180,
                min(255, round(d.confidence * 255)),
                peak_cdb,
                min(0xFFFF, d.pixels),
            )
        )
    return b"".join(parts)


def parse_alert(data: bytes) -> dict[str, Any]:
    """Decode an ``alert``: scene id, whether positions are geographic, and the ships as dicts."""
    magic, version, flags, n_id = _HEAD.unpack_from(data, 0)
    if magic != ALERT_MAGIC or version != ALERT_VERSION:
        raise ValueError("not a flightos SAR alert (bad magic or version)")
    off = _HEAD.size
    sid = data[off : off + n_id].decode()
    off += n_id
    (count,) = _COUNT.unpack_from(data, off)
    off += _COUNT.size
    if len(data) != off + count * _SHIP.size:
        raise ValueError(f"alert length {len(data)} does not match {count} ships")
    geo = bool(flags & FLAG_GEO)
    ships = []
    for a, b, length, heading, conf, peak, px in _SHIP.iter_unpack(data[off:]):
        pos = {"lat": a / 1e7, "lon": b / 1e7} if geo else {"row": a / 100, "col": b / 100}
        ships.append(
            {
                **pos,
                "length_m": length / 10 if length else None,
                "heading_deg": heading,
                "confidence": conf / 255,
                "peak_db": peak / 100,
                "pixels": px,
            }
        )
    return {"scene_id": sid, "geo": geo, "ships": ships}
