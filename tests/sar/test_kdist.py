"""The K-distribution model: its tail and log-moments against scipy's Bessel K and polygamma."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special  # type: ignore[import-untyped]

from services.sar import kdist


def _bessel_ccdf(t: float, nu: float) -> float:
    """Single-look unit-mean K intensity: P(I > t) = 2/Gamma(nu) (nu t)^(nu/2) K_nu(2 sqrt(nu t))."""
    return float(2 / math.gamma(nu) * (nu * t) ** (nu / 2) * special.kv(nu, 2 * math.sqrt(nu * t)))


def _mixture_ccdf(t: float, nu: float, looks: int) -> float:
    """L-look: the speckle's gamma tail integrated over the gamma texture, by scipy quadrature."""

    def f(tex: float) -> float:
        return float(
            special.gammaincc(looks, looks * t / tex)
            * np.exp(nu * math.log(nu) + (nu - 1) * math.log(tex) - nu * tex - math.lgamma(nu))
        )

    return float(integrate.quad(f, 0, np.inf, limit=200, epsabs=0, epsrel=1e-10)[0])


@pytest.mark.parametrize("pfa", [1e-4, 1e-6])
@pytest.mark.parametrize("nu", [0.5, 1.0, 1.5, 4.0, 20.0])
def test_single_look_threshold_matches_the_bessel_k_tail(nu: float, pfa: float) -> None:
    """The tabulated threshold is exceeded with probability pfa under the closed-form K tail (within 3 %)."""
    tab = kdist.table(1, pfa)
    t = math.exp(float(tab.at(np.array([nu]), tab.log_t)[0]))
    assert _bessel_ccdf(t, nu) == pytest.approx(pfa, rel=0.03)
    assert kdist.ccdf(t, nu, 1) == pytest.approx(pfa, rel=0.03)


@pytest.mark.parametrize("looks", [2, 4])
@pytest.mark.parametrize("nu", [1.0, 4.0, 20.0])
def test_multi_look_threshold_matches_the_integrated_tail(nu: float, looks: int) -> None:
    """For 2 and 4 looks the threshold's tail probability agrees with scipy's quadrature."""
    tab = kdist.table(looks, 1e-5)
    t = math.exp(float(tab.at(np.array([nu]), tab.log_t)[0]))
    assert _mixture_ccdf(t, nu, looks) == pytest.approx(1e-5, rel=0.03)


@pytest.mark.parametrize("looks", [1, 4])
def test_log_variance_is_the_sum_of_trigammas(looks: int) -> None:
    """The untrimmed log-variance equals psi1(L) + psi1(nu), the log-cumulant that identifies nu (nu >= 0.5)."""
    tab = kdist.table(looks, 1e-5)
    expect = special.polygamma(1, looks) + special.polygamma(1, tab.nu)
    sea = tab.nu >= 0.5  # below, the grid of ln I cuts the texture's long low tail short
    assert np.allclose(tab.v_full[sea], expect[sea], rtol=2e-3)
    assert np.all(np.diff(tab.v_trim) < 0)  # so a variance gives one nu
    assert np.allclose(tab.nu_from_var(tab.v_trim[[10, 80, 150]]), tab.nu[[10, 80, 150]], rtol=1e-6)


def test_bad_model_parameters_are_refused() -> None:
    """A pfa or trim outside (0, 1) is a clear error."""
    with pytest.raises(ValueError, match="pfa"):
        kdist.table(1, 0.0)
    with pytest.raises(ValueError, match="trim"):
        kdist.table(1, 1e-6, trim=0.7)
