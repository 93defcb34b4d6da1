"""Issue 19 residue, Gamma KL at extreme parameters (float32 overflow of intermediate ratios).

Before the fix (float32): ``KL(Gamma(1e-30, 1e-30) ‖ Gamma(1e-30, 1e10))`` was +inf (exact
1e10: the rate ratio ``b2 / b1 - 1 = 1e40`` overflowed although ``a1 (b2/b1 - 1)`` does
not), and ``KL(Gamma(1e10, 1e-10) ‖ Gamma(1e-30, 1e-30))`` was 0 (exact 79.17: the ratio
of the means, 1e20, was formed as ``(a1 / a2) (b2 / b1)`` with ``a1 / a2 = 1e40``);
47 of the 625 grid points below failed.

Reference: ``(a1 - a2) digamma(a1) - lgamma(a1) + lgamma(a2) + a2 log(b1/b2) + a1 (b2 - b1)/b1``
in mpmath at 150 digits (the terms reach ``1e30 log 1e30`` and cancel), at the rounded inputs.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import vikl

GRID = [1e-30, 1e-10, 1.0, 1e10, 1e30]
# The sweep's tolerances: |got - ref| <= rtol |ref| + atol.
TOL = {np.dtype("float32"): (1e-4, 1e-6), np.dtype("float64"): (1e-9, 1e-12)}


def _mp_gamma_kl(a1, b1, a2, b2):
    with mp.workdps(150):
        a1, b1, a2, b2 = (mp.mpf(float(v)) for v in (a1, b1, a2, b2))
        return (a1 - a2) * mp.digamma(a1) - mp.loggamma(a1) + mp.loggamma(a2) + a2 * mp.log(b1 / b2) + a1 * (b2 - b1) / b1


def _assert_close(got, rows, dtype):
    rtol, atol = TOL[dtype]
    bad = []
    for row, value in zip(rows, np.asarray(got, np.float64)):
        ref = _mp_gamma_kl(*row)
        ok = (value == np.inf) if ref > np.finfo(dtype).max else abs(value - float(ref)) <= rtol * abs(float(ref)) + atol
        if not ok or np.isnan(value) or value < 0:
            bad.append((tuple(row), value, mp.nstr(ref, 8)))
    assert not bad, bad[:10]


def test_gamma_kl_extreme_grid_matches_mpmath(dtype):
    """Every combination of concentrations and rates in {1e-30, 1e-10, 1, 1e10, 1e30}."""
    rows = np.array(list(itertools.product(GRID, repeat=4)), dtype)
    p = vikl.Gamma(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1]))
    q = vikl.Gamma(jnp.asarray(rows[:, 2]), jnp.asarray(rows[:, 3]))
    _assert_close(vikl.kl_divergence(p, q), rows, dtype)


@pytest.mark.parametrize(
    "a1, b1, a2, b2",
    [
        (1e-30, 1e-30, 1e-30, 1e10),  # rate ratio 1e40 overflows; KL 1e10
        (1e-20, 1e-30, 1e-20, 1e20),  # KL 1e30
        (1e10, 1e-10, 1e-30, 1e-30),  # a1 / a2 = 1e40 overflows, t = 1e20; KL 79.17
        (1e-30, 1e-30, 1e10, 1e-10),  # the mirror image
        (1e-30, 1e-35, 1e-30, 1e10),  # KL 1e15 from a ratio of 1e45 (float32: inf ratio)
    ],
)
def test_gamma_kl_overflowing_ratios(a1, b1, a2, b2, dtype):
    rows = np.array([[a1, b1, a2, b2]], dtype)
    p = vikl.Gamma(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1]))
    q = vikl.Gamma(jnp.asarray(rows[:, 2]), jnp.asarray(rows[:, 3]))
    _assert_close(vikl.kl_divergence(p, q), rows, dtype)


def test_exponential_gamma_pairs_at_overflowing_ratios(dtype):
    """The Exponential pairs share the kernel: Exponential(1e-30) ‖ Gamma(1e-30, 1e10) etc."""
    rate = jnp.asarray([1e-30, 1e10, 1e-10], dtype)
    conc = jnp.asarray([1e-30, 1e-30, 1e10], dtype)
    q_rate = jnp.asarray([1e10, 1e-30, 1e-30], dtype)
    got = vikl.kl_divergence(vikl.Exponential(rate), vikl.Gamma(conc, q_rate))
    rows = np.stack([np.ones(3, dtype), np.asarray(rate), np.asarray(conc), np.asarray(q_rate)], axis=1)
    _assert_close(got, rows, dtype)
    got = vikl.kl_divergence(vikl.Gamma(conc, q_rate), vikl.Exponential(rate))
    rows = np.stack([np.asarray(conc), np.asarray(q_rate), np.ones(3, dtype), np.asarray(rate)], axis=1)
    _assert_close(got, rows, dtype)
