"""Synthetic SAR intensity scenes with their ground truth: sea clutter, speckle, ships, a coastline.

The model (see docs/sar.md):

* **Speckle**: every pixel carries fully developed speckle of an ``L``-look intensity image,
  ``S ~ Gamma(L, 1/L)`` (mean 1; exponential for a single look), independent from pixel to pixel.
* **Sea clutter**: intensity ``I = T * S``. With ``clutter="gamma"`` the texture ``T`` is 1 (pure
  speckle: gamma/exponential clutter). With ``clutter="k"`` the texture is ``T ~ Gamma(nu, 1/nu)``
  (mean 1), which makes ``I`` K-distributed; ``nu`` (``shape_param``) is the spikiness (small =
  spiky, large = close to gamma). The texture is spatially correlated over ``texture_corr_px``
  pixels (the long-wave modulation of real sea clutter): a Gaussian field, bilinearly interpolated
  from a coarse grid and renormalised to unit variance everywhere, mapped to the gamma marginal
  with the Wilson-Hilferty transform (accurate for ``nu >= 1``; ``texture_corr_px=0`` draws an
  independent exact gamma texture per pixel instead).
* **Ships**: bright extended targets, rotated rectangles ``length_px x width_px`` at
  ``heading_deg`` (clockwise from north = up), whose mean intensity is ``contrast_db`` above the
  mean sea clutter, with their own speckle. They replace the sea under them.
* **Land** (optional): everything left of a meandering coastline, much brighter than the sea and
  strongly textured, recorded as a boolean mask the detector takes so that land never triggers.

Scenes are deterministic from ``seed`` and built in fixed stripes of rows, so ``write_scene``
streams a large scene to a ``.npy`` memmap (plus ``truth.json`` and ``land.npy``) without holding
it in memory, and produces exactly the pixels ``generate`` returns for the same arguments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

FORMAT = "flightos.sar.scene/1"
STRIPE_ROWS = 128  # rows generated at a time; part of the seed -> pixels mapping, do not change
M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)

Clutter = Literal["k", "gamma"]

# independent random streams, each seeded from (seed, stream[, stripe])
_LAYOUT, _TEXTURE, _LAND, _SPECKLE, _IID_TEXTURE = range(5)


@dataclass(frozen=True)
class Ship:
    """One ship of the ground truth: centre (row, col) in pixels, size, heading, contrast."""

    row: float
    col: float
    length_px: float
    width_px: float
    heading_deg: float
    contrast_db: float


@dataclass
class Truth:
    """What the generator put in a scene: its ships and, if any, the land mask (True = land)."""

    ships: list[Ship]
    land_mask: NDArray[np.bool_] | None = None


@dataclass(frozen=True)
class GeoTransform:
    """Pixel to geographic coordinates of a north-up scene (the centre of pixel (0, 0) is the origin).

    ``lat = origin_lat + row * deg_per_px_lat`` and ``lon = origin_lon + col * deg_per_px_lon``;
    ``deg_per_px_lat`` is negative for the usual north-up image (rows go south).
    """

    origin_lat: float
    origin_lon: float
    deg_per_px_lat: float
    deg_per_px_lon: float

    @classmethod
    def from_pixel_size(cls, origin_lat: float, origin_lon: float, pixel_m: float) -> GeoTransform:
        """A north-up transform with square pixels of ``pixel_m`` metres at ``origin_lat``."""
        dlat = pixel_m / M_PER_DEG
        dlon = pixel_m / (M_PER_DEG * max(math.cos(math.radians(origin_lat)), 1e-6))
        return cls(origin_lat, origin_lon, -dlat, dlon)

    def pixel_to_latlon(self, row: Any, col: Any) -> tuple[Any, Any]:
        """(lat, lon) in degrees of a pixel position; floats or numpy arrays."""
        return self.origin_lat + row * self.deg_per_px_lat, self.origin_lon + col * self.deg_per_px_lon

    @property
    def pixel_m(self) -> float:
        """The mean ground size of a pixel side in metres (geometric mean of the two axes)."""
        dy = abs(self.deg_per_px_lat) * M_PER_DEG
        dx = abs(self.deg_per_px_lon) * M_PER_DEG * math.cos(math.radians(self.origin_lat))
        return math.sqrt(dy * dx)

    def to_dict(self) -> dict[str, float]:
        """The JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeoTransform:
        """From the JSON form."""
        return cls(
            float(d["origin_lat"]), float(d["origin_lon"]), float(d["deg_per_px_lat"]), float(d["deg_per_px_lon"])
        )


@dataclass
class Scene:
    """A generated scene: intensity image (float32, mean sea clutter 1), its truth and geotransform."""

    image: NDArray[np.float32]
    truth: Truth
    geo: GeoTransform
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SceneParams:
    """Everything that determines a scene's pixels, validated."""

    shape: tuple[int, int]
    seed: int
    n_ships: int
    clutter: Clutter
    looks: int
    shape_param: float
    texture_corr_px: float
    ship_length_px: tuple[float, float]
    ship_width_frac: tuple[float, float]
    contrast_db: tuple[float, float]
    land: bool
    land_fraction: float
    land_db: float
    min_separation_px: float
    pixel_m: float
    origin: tuple[float, float]

    def __post_init__(self) -> None:
        h, w = self.shape
        if h < 16 or w < 16:
            raise ValueError(f"scene shape {self.shape} is too small (16 x 16 at least)")
        if self.clutter not in ("k", "gamma"):
            raise ValueError(f"clutter must be 'k' or 'gamma', not {self.clutter!r}")
        if not 1 <= self.looks <= 16:
            raise ValueError(f"looks must be an integer from 1 to 16, not {self.looks}")
        if self.shape_param <= 0:
            raise ValueError("shape_param (K texture nu) must be > 0")
        lo, hi = self.ship_length_px
        if not 1 <= lo <= hi:
            raise ValueError(f"ship_length_px must be (min, max) with 1 <= min <= max, not {self.ship_length_px}")
        if not 0 < self.ship_width_frac[0] <= self.ship_width_frac[1] <= 1:
            raise ValueError(f"ship_width_frac must be (min, max) in (0, 1], not {self.ship_width_frac}")
        if self.contrast_db[0] > self.contrast_db[1]:
            raise ValueError(f"contrast_db must be (min, max), not {self.contrast_db}")
        if not 0 < self.land_fraction < 0.9:
            raise ValueError("land_fraction must be in (0, 0.9)")


def _params(shape: tuple[int, int], seed: int, **kw: Any) -> SceneParams:
    """SceneParams with the defaults of ``generate``."""
    d: dict[str, Any] = {
        "n_ships": 10,
        "clutter": "k",
        "looks": 1,
        "shape_param": 6.0,
        "texture_corr_px": 8.0,
        "ship_length_px": (8.0, 60.0),
        "ship_width_frac": (0.1, 0.2),
        "contrast_db": (10.0, 18.0),
        "land": False,
        "land_fraction": 0.3,
        "land_db": 10.0,
        "min_separation_px": 24.0,
        "pixel_m": 10.0,
        "origin": (54.0, 7.0),
    }
    unknown = set(kw) - set(d)
    if unknown:
        raise TypeError(f"unknown scene parameter(s): {', '.join(sorted(unknown))}")
    d.update(kw)
    return SceneParams(
        shape=(int(shape[0]), int(shape[1])),
        seed=int(seed),
        n_ships=int(d["n_ships"]),
        clutter=d["clutter"],
        looks=int(d["looks"]),
        shape_param=float(d["shape_param"]),
        texture_corr_px=float(d["texture_corr_px"]),
        ship_length_px=tuple(map(float, d["ship_length_px"])),  # type: ignore[arg-type]
        ship_width_frac=tuple(map(float, d["ship_width_frac"])),  # type: ignore[arg-type]
        contrast_db=tuple(map(float, d["contrast_db"])),  # type: ignore[arg-type]
        land=bool(d["land"]),
        land_fraction=float(d["land_fraction"]),
        land_db=float(d["land_db"]),
        min_separation_px=float(d["min_separation_px"]),
        pixel_m=float(d["pixel_m"]),
        origin=tuple(map(float, d["origin"])),  # type: ignore[arg-type]
    )


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, *stream]))


class _Layout:
    """The scene-wide random parts: coastline, coarse texture grids and ships (small arrays)."""

    def __init__(self, p: SceneParams) -> None:
        self.p = p
        h, w = p.shape
        rng = _rng(p.seed, _LAYOUT)
        # coastline: land is col < coast(row), a sum of a few sinusoids around land_fraction * W
        self.coast_terms = [
            (w * a, rng.uniform(0.5, 1.0) * f / h, rng.uniform(0, 2 * math.pi))
            for a, f in ((0.06, 1.0), (0.03, 3.0), (0.012, 9.0), (0.005, 27.0))
        ]
        c = p.texture_corr_px
        if p.clutter == "k" and c > 0:
            self.tex_grid: NDArray[np.float64] | None = _rng(p.seed, _TEXTURE).standard_normal(
                (int(h / c) + 3, int(w / c) + 3)
            )
        else:
            self.tex_grid = None
        self.land_corr = 6.0
        self.land_grid = (
            _rng(p.seed, _LAND).standard_normal((int(h / self.land_corr) + 3, int(w / self.land_corr) + 3))
            if p.land
            else None
        )
        self.ships = self._place_ships(rng)

    def coast(self, rows: NDArray[np.float64]) -> NDArray[np.float64]:
        """The coastline column for each row (land is to its left)."""
        x = np.full(rows.shape, self.p.land_fraction * self.p.shape[1], dtype=np.float64)
        for amp, freq, phase in self.coast_terms:
            x += amp * np.sin(2 * math.pi * freq * rows + phase)
        return x

    def _place_ships(self, rng: np.random.Generator) -> list[Ship]:
        p = self.p
        h, w = p.shape
        ships: list[Ship] = []
        tries = 0
        while len(ships) < p.n_ships:
            tries += 1
            if tries > 2000 * max(p.n_ships, 1):
                raise ValueError(
                    f"could not place {p.n_ships} ships in a {h}x{w} scene "
                    f"(placed {len(ships)}); use fewer or smaller ships"
                )
            length = float(rng.uniform(*p.ship_length_px))
            width = max(1.0, length * float(rng.uniform(*p.ship_width_frac)))
            heading = float(rng.uniform(0.0, 180.0))
            contrast = float(rng.uniform(*p.contrast_db))
            half = length / 2 + 2
            row, col = float(rng.uniform(half, h - 1 - half)), float(rng.uniform(half, w - 1 - half))
            if p.land:
                span = np.arange(math.floor(row - half), math.ceil(row + half) + 1, dtype=np.float64)
                if col - half < float(self.coast(span).max()) + p.min_separation_px:
                    continue
            if any(
                math.hypot(row - s.row, col - s.col) < (length + s.length_px) / 2 + p.min_separation_px for s in ships
            ):
                continue
            ships.append(
                Ship(
                    round(row, 3),
                    round(col, 3),
                    round(length, 3),
                    round(width, 3),
                    round(heading, 3),
                    round(contrast, 3),
                )
            )
        return ships


def _interp_field(grid: NDArray[np.float64], r0: int, r1: int, w: int, c: float) -> NDArray[np.float32]:
    """Unit-variance Gaussian field on rows [r0, r1): bilinear interpolation of ``grid`` (spacing c px)."""
    y = np.arange(r0, r1, dtype=np.float64) / c
    x = np.arange(w, dtype=np.float64) / c
    i0, j0 = y.astype(np.intp), x.astype(np.intp)
    a, b = y - i0, x - j0
    rows = ((1 - a)[:, None] * grid[i0] + a[:, None] * grid[i0 + 1]).astype(np.float32)  # (rows, coarse cols)
    out = rows[:, j0]
    out *= (1 - b).astype(np.float32)
    tmp = rows[:, j0 + 1]
    tmp *= b.astype(np.float32)
    out += tmp
    del tmp
    # the interpolation weights' squared sum is the variance left; restore it to 1 everywhere
    out /= np.sqrt((1 - a) ** 2 + a**2).astype(np.float32)[:, None]
    out /= np.sqrt((1 - b) ** 2 + b**2).astype(np.float32)[None, :]
    return out


def _wilson_hilferty(z: NDArray[np.float32], nu: float) -> NDArray[np.float32]:
    """Map standard normal values to Gamma(nu, 1/nu) (mean 1) quantiles, Wilson-Hilferty approximation (in place)."""
    z *= np.float32(1.0 / (3.0 * math.sqrt(nu)))
    z += np.float32(1.0 - 1.0 / (9.0 * nu))
    np.maximum(z, np.float32(0.05), out=z)
    z **= 3
    return z


def _render(lay: _Layout, stripe: int) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None]:
    """The pixels (and land mask) of one stripe of STRIPE_ROWS rows."""
    p = lay.p
    h, w = p.shape
    r0, r1 = stripe * STRIPE_ROWS, min(h, (stripe + 1) * STRIPE_ROWS)
    n = (r1 - r0, w)
    rng = _rng(p.seed, _SPECKLE, stripe)
    if p.looks == 1:
        img = rng.standard_exponential(n, dtype=np.float32)
    else:
        img = rng.standard_gamma(p.looks, n, dtype=np.float32)
        img *= np.float32(1.0 / p.looks)
    speckle = img.copy() if p.land or lay.ships else img
    if p.clutter == "k":
        if lay.tex_grid is not None:
            tex = _wilson_hilferty(_interp_field(lay.tex_grid, r0, r1, w, p.texture_corr_px), p.shape_param)
        else:
            nu = p.shape_param
            tex = _rng(p.seed, _IID_TEXTURE, stripe).standard_gamma(nu, n, dtype=np.float32)
            tex *= np.float32(1 / nu)
        img *= tex
        del tex
    land: NDArray[np.bool_] | None = None
    if p.land and lay.land_grid is not None:
        rows = np.arange(r0, r1, dtype=np.float64)
        land = np.arange(w)[None, :] < lay.coast(rows)[:, None]
        g = _interp_field(lay.land_grid, r0, r1, w, lay.land_corr)  # log-normal texture, sigma 1, mean 1
        g -= np.float32(0.5)
        np.exp(g, out=g)
        g *= np.float32(10 ** (p.land_db / 10))
        g *= speckle
        img[land] = g[land]
        del g
    for s in lay.ships:
        half = s.length_px / 2 + 1
        a0, a1 = max(r0, math.floor(s.row - half)), min(r1, math.ceil(s.row + half) + 1)
        b0, b1 = max(0, math.floor(s.col - half)), min(w, math.ceil(s.col + half) + 1)
        if a0 >= a1 or b0 >= b1:
            continue
        rr = np.arange(a0, a1, dtype=np.float64)[:, None] - s.row
        cc = np.arange(b0, b1, dtype=np.float64)[None, :] - s.col
        th = math.radians(s.heading_deg)
        along = -rr * math.cos(th) + cc * math.sin(th)
        across = rr * math.sin(th) + cc * math.cos(th)
        inside = (np.abs(along) <= s.length_px / 2) & (np.abs(across) <= max(s.width_px / 2, 0.5))
        box = img[a0 - r0 : a1 - r0, b0:b1]
        sp = speckle[a0 - r0 : a1 - r0, b0:b1]
        box[inside] = np.float32(10 ** (s.contrast_db / 10)) * sp[inside]
    return img, land


def _stripes(p: SceneParams) -> Iterator[tuple[int, int, NDArray[np.float32], NDArray[np.bool_] | None]]:
    lay = _Layout(p)
    h = p.shape[0]
    for k in range(-(-h // STRIPE_ROWS)):
        img, land = _render(lay, k)
        yield k * STRIPE_ROWS, k * STRIPE_ROWS + img.shape[0], img, land


def _geo(p: SceneParams) -> GeoTransform:
    return GeoTransform.from_pixel_size(p.origin[0], p.origin[1], p.pixel_m)


def _public(p: SceneParams) -> dict[str, Any]:
    d = asdict(p)
    d["shape"] = list(p.shape)
    return d


def generate(
    shape: tuple[int, int] = (1024, 1024),
    seed: int = 0,
    *,
    n_ships: int = 10,
    clutter: Clutter = "k",
    looks: int = 1,
    shape_param: float = 6.0,
    texture_corr_px: float = 8.0,
    ship_length_px: tuple[float, float] = (8.0, 60.0),
    ship_width_frac: tuple[float, float] = (0.1, 0.2),
    contrast_db: tuple[float, float] = (10.0, 18.0),
    land: bool = False,
    land_fraction: float = 0.3,
    land_db: float = 10.0,
    min_separation_px: float = 24.0,
    pixel_m: float = 10.0,
    origin: tuple[float, float] = (54.0, 7.0),
    dtype: Any = np.float32,
) -> Scene:
    """A synthetic SAR intensity scene with ground truth, deterministic from ``seed``.

    ``looks`` is the number of looks L of the speckle, ``shape_param`` the K texture's nu,
    ``ship_length_px``/``ship_width_frac``/``contrast_db`` the (min, max) ranges ships are drawn
    from uniformly (width as a fraction of length, at least 1 px; contrast in dB above the mean sea
    clutter), ``land`` adds a coastline with land ``land_db`` above the sea on the left
    ``land_fraction`` of the scene. Ships keep ``min_separation_px`` between hulls and from the coast.
    """
    p = _params(
        shape,
        seed,
        n_ships=n_ships,
        clutter=clutter,
        looks=looks,
        shape_param=shape_param,
        texture_corr_px=texture_corr_px,
        ship_length_px=ship_length_px,
        ship_width_frac=ship_width_frac,
        contrast_db=contrast_db,
        land=land,
        land_fraction=land_fraction,
        land_db=land_db,
        min_separation_px=min_separation_px,
        pixel_m=pixel_m,
        origin=origin,
    )
    image = np.empty(p.shape, dtype=dtype)
    mask = np.zeros(p.shape, dtype=np.bool_) if p.land else None
    lay = _Layout(p)
    for k in range(-(-p.shape[0] // STRIPE_ROWS)):
        img, lnd = _render(lay, k)
        image[k * STRIPE_ROWS : k * STRIPE_ROWS + img.shape[0]] = img
        if mask is not None and lnd is not None:
            mask[k * STRIPE_ROWS : k * STRIPE_ROWS + img.shape[0]] = lnd
    return Scene(image, Truth(lay.ships, mask), _geo(p), _public(p))


def write_scene(path: str | Path, shape: tuple[int, int] = (4096, 4096), seed: int = 0, **kw: Any) -> Scene:
    """Stream a scene to ``path/scene.npy`` (float32, a memmap), ``path/truth.json`` and ``path/land.npy``.

    Takes the keyword arguments of ``generate`` (but always float32). Only one stripe of
    ``STRIPE_ROWS`` rows is in memory at a time. Returns the scene with the image memmapped read-only.
    """
    p = _params(shape, seed, **kw)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    image = np.lib.format.open_memmap(out / "scene.npy", mode="w+", dtype=np.float32, shape=p.shape)
    mask = np.lib.format.open_memmap(out / "land.npy", mode="w+", dtype=np.bool_, shape=p.shape) if p.land else None
    lay = _Layout(p)
    for k in range(-(-p.shape[0] // STRIPE_ROWS)):
        img, lnd = _render(lay, k)
        image[k * STRIPE_ROWS : k * STRIPE_ROWS + img.shape[0]] = img
        if mask is not None and lnd is not None:
            mask[k * STRIPE_ROWS : k * STRIPE_ROWS + img.shape[0]] = lnd
    image.flush()
    del image
    if mask is not None:
        mask.flush()
        del mask
    truth = {
        "format": FORMAT,
        "shape": list(p.shape),
        "dtype": "float32",
        "params": _public(p),
        "geo": _geo(p).to_dict(),
        "ships": [asdict(s) for s in lay.ships],
        "land_mask": "land.npy" if p.land else None,
    }
    tmp = out / "truth.json.tmp"
    tmp.write_text(json.dumps(truth, indent=1))
    tmp.replace(out / "truth.json")
    return read_scene(out)


def load_truth(path: str | Path, *, land: bool = True) -> tuple[Truth, GeoTransform, dict[str, Any]]:
    """Truth, geotransform and parameters from a ``truth.json``.

    With ``land`` the land mask named in it (beside it) is memmapped read-only, if there is one.
    """
    p = Path(path)
    d = json.loads(p.read_text())
    if d.get("format") != FORMAT:
        raise ValueError(f"{p}: not a {FORMAT} truth file")
    mask = np.load(p.parent / d["land_mask"], mmap_mode="r") if land and d.get("land_mask") else None
    ships = [Ship(**s) for s in d["ships"]]
    return Truth(ships, mask), GeoTransform.from_dict(d["geo"]), d.get("params", {})


def read_scene(path: str | Path) -> Scene:
    """A scene written by ``write_scene``, its image memmapped read-only."""
    out = Path(path)
    truth, geo, params = load_truth(out / "truth.json")
    image = np.load(out / "scene.npy", mmap_mode="r")
    return Scene(image, truth, geo, params)


def generate_tiles(
    shape: tuple[int, int] = (4096, 4096), seed: int = 0, **kw: Any
) -> Iterator[tuple[int, NDArray[np.float32], NDArray[np.bool_] | None]]:
    """The scene of ``generate(shape, seed, **kw)`` as stripes: (first row, pixels, land mask or None)."""
    for r0, _r1, img, land in _stripes(_params(shape, seed, **kw)):
        yield r0, img, land
