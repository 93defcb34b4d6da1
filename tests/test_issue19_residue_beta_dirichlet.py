"""Issue 19 residue, Beta and Dirichlet KLs at concentrations near 1e-30 / 1e30 together.

Before the fix (float32 unless said), the adversarial sweep found:

* ``KL(Beta(1e-30, 1e-30) ‖ Beta(1e-30, 1e10))``: NaN (exact 5e39, past the float32
  maximum; every form subtracts two overflowed terms of size ``b2 / b1``); float64 the same
  at 1e-300, and ``Dirichlet`` with two components likewise;
* ``KL(Beta(1e-10, 1e30) ‖ Beta(1e10, 1e-30))``: 0 (exact 1e20; ``a2 digamma(b2)`` overflowed
  in two terms whose overflowing parts cancel exactly);
* ``KL(Beta(1e30, 1e30) ‖ Beta(1e-30, 1e10))``: -3.8e22 (exact 6.93e9) and
  ``KL(Beta(1e10, 1e30) ‖ Beta(1e-30, 1e10))``: 4.6e-29 (exact 79.17): the
  large-concentration (Stirling) form had ``b_i (p_i/q_i - 1 - log(p_i/q_i))`` with a mean
  ratio of 5e39 (inf) times ``b_i = 1e-30``;
* ``KL(Dir([1e-10, 1e30, 1.5]) ‖ Dir([1e10, 1e-30, 1.5]))``: 0 (exact 1e20), nine such.

Reference: the textbook lgamma/digamma formulas in mpmath at 150 digits (terms reach
``1e30 log 1e30`` and cancel), at the rounded inputs; the sweep's tolerances.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import vikl

TOL = {np.dtype("float32"): (1e-4, 1e-6), np.dtype("float64"): (1e-9, 1e-12)}
GRID = [1e-30, 1e-10, 1.0, 1e10, 1e30]


def _mp_dirichlet_kl(a, b, dps=150):
    with mp.workdps(dps):
        a = [mp.mpf(float(v)) for v in a]
        b = [mp.mpf(float(v)) for v in b]
        a0, b0 = mp.fsum(a), mp.fsum(b)
        value = mp.loggamma(a0) - mp.loggamma(b0)
        for ai, bi in zip(a, b):
            value += mp.loggamma(bi) - mp.loggamma(ai) + (ai - bi) * (mp.digamma(ai) - mp.digamma(a0))
        return value


def _bad(rows_p, rows_q, got, dtype, dps=150):
    rtol, atol = TOL[dtype]
    bad = []
    for a, b, value in zip(rows_p, rows_q, np.asarray(got, np.float64)):
        ref = _mp_dirichlet_kl(a, b, dps)
        if ref > np.finfo(dtype).max:
            ok = value == np.inf
        else:
            ok = abs(value - float(ref)) <= rtol * abs(float(ref)) + atol
        if not ok or np.isnan(value):
            bad.append((tuple(a), tuple(b), value, mp.nstr(ref, 8)))
    return bad


def test_beta_extreme_grid_matches_mpmath(dtype):
    """{1e-30, 1e-10, 1, 1e10, 1e30}^4 (10 float32 failures before, 47 sweep rows)."""
    rows = np.array(list(itertools.product(GRID, repeat=4)), dtype)
    p = vikl.Beta(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1]))
    q = vikl.Beta(jnp.asarray(rows[:, 2]), jnp.asarray(rows[:, 3]))
    # Beta(a, b) is Dirichlet([a, b]).
    assert _bad(rows[:, :2], rows[:, 2:], vikl.kl_divergence(p, q), dtype) == []


@pytest.mark.parametrize("family", ["beta", "dirichlet"])
def test_tiny_concentrations_overflow_to_inf_not_nan(family, dtype):
    tiny = 1e-30 if dtype == np.float32 else 1e-300
    rows = np.array([[tiny, tiny, tiny, 1e10], [tiny, tiny, 1e10, tiny], [tiny, tiny, 1e30, 1e30]], dtype)
    if family == "beta":
        p = vikl.Beta(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1]))
        q = vikl.Beta(jnp.asarray(rows[:, 2]), jnp.asarray(rows[:, 3]))
    else:
        p, q = vikl.Dirichlet(jnp.asarray(rows[:, :2])), vikl.Dirichlet(jnp.asarray(rows[:, 2:]))
    got = np.asarray(vikl.kl_divergence(p, q))
    for a, b in zip(rows[:, :2], rows[:, 2:]):
        assert _mp_dirichlet_kl(a, b) > np.finfo(dtype).max  # 5e39 ... (float32), 5e309 ... (float64)
    assert (got == np.inf).all(), got


SWEEP_DIRICHLET = [  # the nine float32 rows the sweep found wrong (0 or 44.5 for 79 ... 1e20)
    ([1e-10, 1e30], [1e10, 1e-30]), ([1.0, 1e30], [1e10, 1e-30]), ([1e10, 1e30], [1e-30, 1e10]),
    ([1e10, 1e30], [1e10, 1e-30]), ([1e30, 1e-10], [1e-30, 1e10]), ([1e30, 1.0], [1e-30, 1e10]),
    ([1e30, 1e10], [1e-30, 1e10]), ([1e30, 1e10], [1e10, 1e-30]), ([1e30, 1e30], [1e-30, 1e10]),
]


def test_dirichlet_sweep_reproducers(dtype):
    a = np.array([x + [1.5] for x, _ in SWEEP_DIRICHLET], dtype)
    b = np.array([y + [1.5] for _, y in SWEEP_DIRICHLET], dtype)
    got = vikl.kl_divergence(vikl.Dirichlet(jnp.asarray(a)), vikl.Dirichlet(jnp.asarray(b)))
    assert _bad(a, b, got, dtype) == []


@pytest.mark.slow
def test_dirichlet_three_components_extremes(dtype):
    """The sweep's Dirichlet grid: [x, y, 1.5] against [u, v, 1.5], x ... v in GRID (slow:
    625 mpmath references per precision and a compile of the Dirichlet kernel)."""
    pairs = list(itertools.product(GRID, repeat=4))
    a = np.array([[x, y, 1.5] for x, y, _, _ in pairs], dtype)
    b = np.array([[u, v, 1.5] for _, _, u, v in pairs], dtype)
    got = vikl.kl_divergence(vikl.Dirichlet(jnp.asarray(a)), vikl.Dirichlet(jnp.asarray(b)))
    assert _bad(a, b, got, dtype) == []


@pytest.mark.parametrize("b1, b2", [(1e10, 1e30), (1e-30, 1e-10), (1e10, 1e300)])
def test_tiny_first_concentration_keeps_the_underflowing_term(b1, b2, dtype):
    """``KL(Beta(t, b1) ‖ Beta(t, b2))`` for a tiny ``t``: ``(b2 - b1)(digamma(b1 + t) - digamma(b1))``
    underflowed (1e-40 in float32 before the product), giving -4.6e-29 for 1e-10 (float32,
    t = 1e-30) and -4.6e-299 for about 1e-280 (float64, t = 1e-300)."""
    tiny = 1e-30 if dtype == np.float32 else 1e-300
    if np.finfo(dtype).max < b2:
        pytest.skip("beyond float32")
    rows = np.array([[tiny, b1, tiny, b2], [b1, tiny, b2, tiny]], dtype)
    p = vikl.Beta(jnp.asarray(rows[:, 0]), jnp.asarray(rows[:, 1]))
    q = vikl.Beta(jnp.asarray(rows[:, 2]), jnp.asarray(rows[:, 3]))
    got = np.asarray(vikl.kl_divergence(p, q), np.float64)
    assert (got >= 0).all(), got
    # The terms reach 1e300 log 1e300 and cancel to 1e-10: 400 digits.
    assert _bad(rows[:, :2], rows[:, 2:], got, dtype, dps=400) == []
