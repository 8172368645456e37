"""The K-distribution clutter model: tables of its threshold and log-moments over the texture shape nu.

L-look K intensity with unit mean is ``I = T * S``, speckle ``S ~ Gamma(L, 1/L)`` and texture
``T ~ Gamma(nu, 1/nu)``. ``ln I = ln T + ln S``, so the density of ``ln I`` is the convolution of two
closed-form log-gamma densities: it is computed once per (looks, pfa, trim) on a fine grid of
``u = ln I`` (FFT convolution, numpy only) for a log-spaced grid of nu. From it come, for each nu,
the threshold exceeded with probability ``pfa``, the quantile where estimation trims, and the
mean and variance of ``ln I`` below that quantile (the trimmed log-cumulants that estimate nu
robustly to ships). This is the same tail as the closed form with the Bessel K function (checked
against scipy in tests/sar/test_kdist.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

NU_MIN, NU_MAX = 0.2, 1000.0  # nu at NU_MAX is indistinguishable from gamma clutter here
_NU = np.geomspace(NU_MIN, NU_MAX, 160)
_U0, _DU, _NU_PTS = -40.0, 0.004, 12000  # grid of ln x for each factor: [-40, 8)


def _log_gamma_density(shape: float) -> F64:
    """Density of ``ln X`` for ``X ~ Gamma(shape, 1/shape)`` (mean 1) on the grid, normalised to sum 1."""
    u = _U0 + _DU * np.arange(_NU_PTS)
    logf = shape * math.log(shape) + shape * u - shape * np.exp(u) - math.lgamma(shape)
    f = np.exp(logf - logf.max())
    out: F64 = f / f.sum()
    return out


@dataclass(frozen=True)
class KTable:
    """Per nu (``nu``, increasing): log threshold at ``pfa``, log trim cut, trimmed mean/variance of ln I.

    ``m_full``/``v_full`` are the untrimmed mean and variance of ln I (the log-cumulants).
    """

    looks: int
    pfa: float
    trim: float
    nu: F64
    log_t: F64
    log_cut: F64
    m_trim: F64
    v_trim: F64
    m_full: F64
    v_full: F64

    def nu_from_var(self, v: F64, trimmed: bool = True) -> F64:
        """nu whose (trimmed) log-variance is ``v`` (clipped to the table: the variance falls as nu grows)."""
        tab = self.v_trim if trimmed else self.v_full
        out: F64 = np.exp(np.interp(-v, -tab, np.log(self.nu)))
        return out

    def at(self, nu: F64, which: F64) -> F64:
        """A column (``log_t``, ``m_trim``, ...) interpolated at ``nu`` (log nu)."""
        out: F64 = np.interp(np.log(np.clip(nu, NU_MIN, NU_MAX)), np.log(self.nu), which)
        return out


@lru_cache(maxsize=16)
def table(looks: int, pfa: float, trim: float = 1e-3) -> KTable:
    """The K model's table for ``looks``-look intensity, threshold at ``pfa``, estimation trimmed at ``trim``."""
    if not 0 < pfa < 1 or not 0 < trim < 0.5:
        raise ValueError(f"need 0 < pfa < 1 and 0 < trim < 0.5 (got {pfa}, {trim})")
    n_fft = 1 << math.ceil(math.log2(2 * _NU_PTS))
    fs = np.fft.rfft(_log_gamma_density(float(looks)), n_fft)
    grid: F64 = 2 * _U0 + _DU * np.arange(2 * _NU_PTS - 1, dtype=np.float64)  # ln I on the convolution's grid
    keep = grid >= _U0
    u: F64 = grid[keep]
    cols: dict[str, list[float]] = {k: [] for k in ("log_t", "log_cut", "m_trim", "v_trim", "m_full", "v_full")}
    for nu in _NU:
        p: F64 = np.fft.irfft(np.fft.rfft(_log_gamma_density(float(nu)), n_fft) * fs, n_fft)[: 2 * _NU_PTS - 1][keep]
        np.maximum(p, 0.0, out=p)
        p /= p.sum()
        sf: F64 = np.cumsum(p[::-1])[::-1]  # P(ln I >= u_k)
        cols["log_t"].append(_crossing(u, sf, pfa))
        cut = _crossing(u, sf, trim)
        cols["log_cut"].append(cut)
        below = u < cut
        pb = p[below] / p[below].sum()
        m = float((pb * u[below]).sum())
        cols["m_trim"].append(m)
        cols["v_trim"].append(float((pb * (u[below] - m) ** 2).sum()))
        mf = float((p * u).sum())
        cols["m_full"].append(mf)
        cols["v_full"].append(float((p * (u - mf) ** 2).sum()))
    arr = {k: np.array(v) for k, v in cols.items()}
    for a in arr.values():
        a.setflags(write=False)
    return KTable(looks, float(pfa), float(trim), _NU, **arr)


def _crossing(u: F64, sf: F64, p: float) -> float:
    """The ``u`` where the survival function falls to ``p`` (log-linear interpolation)."""
    i = int(np.searchsorted(-sf, -p))  # first index with sf < p
    i = min(max(i, 1), len(u) - 1)
    a, b = math.log(max(sf[i - 1], 1e-300)), math.log(max(sf[i], 1e-300))
    f = 0.0 if a == b else (math.log(p) - a) / (b - a)
    return float(u[i - 1] + f * (u[i] - u[i - 1]) - _DU / 2)


def ccdf(t: float, nu: float, looks: int = 1) -> float:
    """P(I > t) for unit-mean L-look K intensity, by integrating the speckle tail over the texture.

    ``E_T[Q_L(L t / T)]`` with ``Q_L(x) = e^-x sum_{j<L} x^j/j!``, on a log grid of T: the
    reference the tables are checked against (equal to the Bessel-K closed form).
    """
    w = np.linspace(-30.0, 8.0, 40001)
    tt = np.exp(w)
    log_f = nu * math.log(nu) + nu * w - nu * tt - math.lgamma(nu)  # density of ln T
    x = looks * t / tt
    q = np.zeros_like(x)
    for j in range(looks):
        q += np.exp(-x + j * np.log(x) - math.lgamma(j + 1))
    return float((np.exp(log_f) * q).sum() * (w[1] - w[0]))
