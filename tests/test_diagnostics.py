"""PSIS k-hat and importance ESS: agreement with NumPyro's PSIS, degenerate weights, exact ESS.

References: NumPyro's ``numpyro.infer.importance._psis_khat`` (the same Zhang-Stephens
GPD fit with Vehtari et al.'s prior, written independently; it computes the
exceedances as ``exp(lw) - exp(cutoff)`` where vikl uses ``expm1`` of log
differences), and mpmath at 40 digits for the ESS.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl
from vikl._diagnostics import ISDiagnostics, gpd_fit, importance_ess, psis_khat

numpyro_psis = pytest.importorskip("numpyro.infer.importance")


def _numpyro_khat(lw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "not enough tail samples" warning
        return numpyro_psis._psis_khat(np.asarray(lw, np.float64))


def _weights(kind, s, rng):
    if kind == "normal":  # log-normal weights: every moment finite, k-hat small
        return rng.normal(0.0, 1.0, s)
    if kind == "wide":  # log-normal weights with sd 3: k-hat > 0.7 at these sizes
        return rng.normal(0.0, 3.0, s)
    if kind == "pareto":  # w = U^(-0.6): a Pareto tail with shape k = 0.6
        return -0.6 * np.log(rng.uniform(size=s))
    return -1.5 * np.log(rng.uniform(size=s))  # shape 1.5: no mean


@pytest.mark.parametrize("kind", ["normal", "wide", "pareto", "pareto_heavy"])
@pytest.mark.parametrize("s", [100, 1000, 4000])
def test_khat_matches_numpyro_on_ordinary_weights(dtype, kind, s):
    rng = np.random.default_rng(s + len(kind))
    lw = _weights(kind, s, rng).astype(dtype)
    ours, ref = psis_khat(lw), _numpyro_khat(lw)
    assert np.isfinite(ref)
    # Measured differences up to 5e-14 (the exceedances are formed differently).
    assert abs(ours - ref) < 1e-9, (ours, ref)
    # Shifting the log weights (an unnormalized p) changes nothing.
    assert abs(psis_khat(lw.astype(np.float64) + 1234.5) - ours) < 1e-9


def test_khat_recovers_a_known_pareto_shape():
    # Independent of any implementation: weights with an exact Pareto tail of shape k.
    rng = np.random.default_rng(7)
    for k in (0.2, 0.6, 1.0):
        est = [psis_khat(-k * np.log(rng.uniform(size=20_000))) for _ in range(5)]
        assert abs(np.mean(est) - k) < 0.1, (k, est)


def test_gpd_fit_matches_numpyro_and_rejects_degenerate_tails():
    rng = np.random.default_rng(3)
    x = rng.pareto(2.0, 300) + 1e-3
    k, sigma = gpd_fit(x)
    k_ref, sigma_ref = numpyro_psis._fit_generalized_pareto(x)
    np.testing.assert_allclose([k, sigma], [k_ref, sigma_ref], rtol=1e-10)
    k2, sigma2 = gpd_fit(x * 1e-200)  # k is scale-free
    assert abs(k2 - k) < 1e-10 and sigma2 == pytest.approx(sigma * 1e-200, rel=1e-10)
    for bad in (np.zeros(10), np.r_[np.zeros(8), 1.0, 2.0], [1.0], [np.nan, 1.0, 2.0], [-1.0, 1.0, 2.0]):
        with pytest.raises(ValueError, match="gpd_fit"):
            gpd_fit(np.asarray(bad))


def _dominant(gap, s=2000, seed=0):
    """One log weight of 0 and the rest ``gap`` nats or more below it."""
    rng = np.random.default_rng(seed)
    return np.r_[0.0, -gap - np.abs(rng.normal(0.0, 10.0, s - 1))]


@pytest.mark.parametrize("gap", [50.0, 300.0, 800.0, 5000.0])
def test_one_dominant_weight_is_flagged_like_numpyro(dtype, gap):
    lw = _dominant(gap).astype(dtype)
    ours, ref = psis_khat(lw), _numpyro_khat(lw)
    # Both flag the fit (NumPyro restricts the tail to weights within 708 nats of the
    # largest; vikl keeps them all, so its k-hat is larger or +inf when they underflow).
    assert ours >= 0.7 and ref >= 0.7
    assert not ours < 0.7
    ess = importance_ess(lw)
    assert 1.0 <= ess < 1.0 + 1e-6
    assert ISDiagnostics.from_log_weights(lw).ess_fraction == pytest.approx(1 / lw.size)


def test_degenerate_weights_have_definite_answers():
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 1.0, 500)
    # All equal (q ∝ p): -inf, the one case that passes; NumPyro answers +inf here.
    assert psis_khat(np.full(500, -3.25)) == -np.inf
    assert _numpyro_khat(np.full(500, -3.25)) == np.inf
    # Tied tails, too few distinct tail weights, infinite or all-zero weights: flagged.
    tied = np.r_[np.full(100, 9.0), base]  # the 67 largest and the cutoff are equal
    assert psis_khat(tied) == np.inf == _numpyro_khat(tied)
    three = np.r_[5.0, 4.0, 3.0, np.full(497, 2.0)]
    assert psis_khat(three) == np.inf == _numpyro_khat(three)
    assert psis_khat(np.r_[np.inf, base]) == np.inf
    assert psis_khat(np.full(500, -np.inf)) == np.inf
    # Zero weights (p = 0 at a draw) take part as weights of 0.
    with_zeros = np.r_[base, np.full(100, -np.inf)]
    assert psis_khat(with_zeros) == pytest.approx(_numpyro_khat(with_zeros), abs=1e-9)
    # Nothing to judge: nan.
    assert math.isnan(psis_khat(base[:24]))
    assert math.isnan(psis_khat(np.r_[np.nan, base]))


@pytest.mark.parametrize("spread", [1e-6, 1.0, 30.0, 1000.0])
def test_ess_matches_exact_sums(dtype, spread):
    rng = np.random.default_rng(int(spread * 7) % 1000)
    lw = (rng.normal(0.0, 1.0, 300) * spread).astype(dtype)
    mpmath.mp.dps = 40
    w = [mpmath.exp(mpmath.mpf(float(v))) for v in lw]
    exact = float(mpmath.fsum(w) ** 2 / mpmath.fsum(x * x for x in w))
    assert importance_ess(lw) == pytest.approx(exact, rel=1e-12)


def test_ess_of_special_weights():
    assert importance_ess(np.zeros(10)) == pytest.approx(10.0, rel=1e-14)
    assert importance_ess(np.r_[np.inf, np.inf, 0.0, 1.0]) == 2.0  # infinite weights dominate
    assert importance_ess(np.full(5, -np.inf)) == 0.0
    assert math.isnan(importance_ess(np.r_[np.nan, 0.0]))
    assert math.isnan(importance_ess(np.zeros(0)))


def test_wrecked_fit_is_flagged():
    # Issue 19 item 8a: q centred 600 of the target's standard deviations away.
    q0 = vikl.MultivariateNormalDiag(jnp.zeros(5), jnp.ones(5))
    target = vikl.MultivariateNormalDiag(jnp.full(5, 30.0), jnp.full(5, 0.05))
    res = vikl.fit(q0, target, num_steps=1, optimizer=1e-6, key=jax.random.PRNGKey(0), progress=False)
    assert res.khat == np.inf and not res.khat < 0.7
    assert res.ess == pytest.approx(1.0, abs=1e-6)
    assert res.diagnostics.ess_fraction == pytest.approx(1 / res.diagnostics.num_samples)
