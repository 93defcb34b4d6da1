"""Gamma, Beta and Dirichlet KLs and entropies at large concentrations (issue 19, item 3),
and mixed-precision pairs of these families (item 14).

References: the textbook lgamma/digamma formulas evaluated by mpmath at 90 digits (the
terms reach ``1e30 * log(1e30)``, so 50 digits would leave too few after cancellation).
Before the large-argument forms, float32 gave 7.0 for KL(Gamma(1e6, 1e3) ‖ Gamma(1, 1e-3))
(exact 6.48882) and -4.656 for the entropy of Dirichlet([3e4, 1e4]) (exact -4.71639).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl

# Largest relative error measured over these grids: float32 7.6e-7 (KL) and 1.5e-6
# (entropies); float64 1.2e-15.
RTOL = {np.dtype("float32"): 5e-6, np.dtype("float64"): 2e-14}
BIG = [1e-3, 0.5, 1.0, 10.0, 1e4, 3e4, 1e6, 1e10, 1e20, 1e30]


@pytest.fixture(autouse=True)
def _ninety_digits():
    with mpmath.workdps(90):
        yield


def _mp(v):
    return mpmath.mpf(float(v))


def _mp_gamma_kl(a1, b1, a2, b2):
    a1, b1, a2, b2 = map(_mp, (a1, b1, a2, b2))
    return (
        (a1 - a2) * mpmath.digamma(a1) - mpmath.loggamma(a1) + mpmath.loggamma(a2)
        + a2 * mpmath.log(b1 / b2) + a1 * (b2 - b1) / b1
    )


def _mp_dirichlet_kl(a, b):
    a, b = [_mp(x) for x in a], [_mp(x) for x in b]
    a0, b0 = sum(a), sum(b)
    return (
        mpmath.loggamma(a0) - mpmath.loggamma(b0)
        - sum(mpmath.loggamma(x) - mpmath.loggamma(y) for x, y in zip(a, b))
        + sum((x - y) * (mpmath.digamma(x) - mpmath.digamma(a0)) for x, y in zip(a, b))
    )


def _mp_dirichlet_entropy(a):
    a = [_mp(x) for x in a]
    a0, k = sum(a), len(a)
    return (
        sum(mpmath.loggamma(x) for x in a) - mpmath.loggamma(a0)
        + (a0 - k) * mpmath.digamma(a0) - sum((x - 1) * mpmath.digamma(x) for x in a)
    )


def _check(values, refs, dtype, cases):
    values = np.asarray(values, np.float64)
    refs = np.asarray([float(r) for r in refs])
    assert values.shape == refs.shape
    err = np.abs(values - refs) / np.where(refs == 0, 1.0, np.abs(refs))  # 0 must come out as 0
    worst = int(np.argmax(err))
    assert err[worst] <= RTOL[np.dtype(dtype)], (cases[worst], values[worst], refs[worst], err[worst])


def test_issue_reproducers(dtype):
    kl = vikl.kl_divergence(vikl.Gamma(jnp.asarray(1e6, dtype), jnp.asarray(1e3, dtype)),
                            vikl.Gamma(jnp.asarray(1.0, dtype), jnp.asarray(1e-3, dtype)))
    _check([kl], [_mp_gamma_kl(1e6, 1e3, 1.0, 1e-3)], dtype, ["gamma"])
    ref = -4.716390  # -H(Beta(3e4, 1e4)), mpmath: -4.71639...
    h_dir = vikl.Dirichlet(jnp.asarray([3e4, 1e4], dtype)).entropy()
    h_beta = vikl.Beta(jnp.asarray(3e4, dtype), jnp.asarray(1e4, dtype)).entropy()
    exact = _mp_dirichlet_entropy([3e4, 1e4])
    assert abs(float(exact) - ref) < 1e-6
    _check([h_dir, h_beta], [exact, exact], dtype, ["dirichlet", "beta"])


def _gamma_cases(dtype):
    cases = []
    for a1, a2 in itertools.product(BIG, BIG):
        for a2x in (a2, a2 * (1 + 1e-3)):
            # rates: unrelated, equal means, means 1e-4 apart
            for b2 in (1e-3, a2x / a1, 1.0001 * a2x / a1):
                cases.append(tuple(float(np.asarray(v, dtype)) for v in (a1, 1.0, a2x, b2)))
    return cases


def test_gamma_kl_all_concentrations(dtype):
    cases = _gamma_cases(dtype)
    cols = [jnp.asarray([c[i] for c in cases], dtype) for i in range(4)]
    kl = jax.jit(vikl.kl_divergence)(vikl.Gamma(cols[0], cols[1]), vikl.Gamma(cols[2], cols[3]))
    refs = [_mp_gamma_kl(*c) for c in cases]
    finite = [abs(float(r)) < float(jnp.finfo(dtype).max) for r in refs]
    assert sum(finite) > 500
    keep = np.asarray(finite)
    _check(np.asarray(kl)[keep], [r for r, f in zip(refs, finite) if f], dtype,
           [c for c, f in zip(cases, finite) if f])


def test_gamma_entropy_all_concentrations(dtype):
    a = jnp.asarray(BIG, dtype)
    h = vikl.Gamma(a, jnp.asarray(2.0, dtype)).entropy()
    refs = [_mp(x) - mpmath.log(2) + mpmath.loggamma(_mp(x)) + (1 - _mp(x)) * mpmath.digamma(_mp(x))
            for x in np.asarray(a)]
    _check(h, refs, dtype, list(np.asarray(a)))


def test_gamma_exponential_pairs_at_large_concentration(dtype):
    a = jnp.asarray([1.0, 10.0, 1e4, 1e6, 1e10, 1e20], dtype)
    rate = a / 3  # mean 3, like the Exponential(1/3)
    q = vikl.Exponential(jnp.asarray(1 / 3, dtype))
    third = float(jnp.asarray(1 / 3, dtype))
    forward = vikl.kl_divergence(vikl.Gamma(a, rate), q)
    refs = [_mp_gamma_kl(x, r, 1.0, third) for x, r in zip(np.asarray(a), np.asarray(rate))]
    keep = np.asarray(a) != 1.0  # KL(Gamma(1, 1/3) ‖ Exp(1/3)) = 0 exactly
    assert float(forward[0]) == 0.0
    _check(np.asarray(forward)[keep], [r for r, k in zip(refs, keep) if k], dtype, list(np.asarray(a)[keep]))
    backward = vikl.kl_divergence(q, vikl.Gamma(a, rate))
    refs = [_mp_gamma_kl(1.0, third, x, r) for x, r in zip(np.asarray(a), np.asarray(rate))]
    assert float(backward[0]) == 0.0
    _check(np.asarray(backward)[keep], [r for r, k in zip(refs, keep) if k], dtype, list(np.asarray(a)[keep]))


BETA_GRID = [0.5, 1.0, 10.0, 1e4, 3e4, 1e6, 1e10, 1e20]


def _pair_cases(grid):
    cases = []
    for a, b in itertools.product(grid, grid):
        for c, d in [(a, b * (1 + 1e-3)), (2 * a, 2 * b), (a * (1 + 1e-4), b * (1 + 1e-4)), (b, a), (a, 1.0)]:
            if (a, b) != (c, d):
                cases.append(((a, b), (c, d)))
    return cases


def test_beta_and_dirichlet_kl_large_concentrations(dtype):
    cases = _pair_cases(BETA_GRID)
    a = jnp.asarray([c[0] for c in cases], dtype)
    b = jnp.asarray([c[1] for c in cases], dtype)
    refs = [_mp_dirichlet_kl(x, y) for x, y in zip(np.asarray(a), np.asarray(b))]
    beta = jax.jit(vikl.kl_divergence)(vikl.Beta(a[:, 0], a[:, 1]), vikl.Beta(b[:, 0], b[:, 1]))
    _check(beta, refs, dtype, cases)
    dirichlet = jax.jit(vikl.kl_divergence)(vikl.Dirichlet(a), vikl.Dirichlet(b))
    _check(dirichlet, refs, dtype, cases)


def test_dirichlet_kl_three_components(dtype):
    grid = [1.0, 10.0, 1e4, 1e6, 1e20]
    cases = [(a, m) for a in itertools.product(grid, repeat=3)
             for m in ((1, 1, 1.001), (2, 2, 2), (1, 3, 0.5), (1.0001,) * 3)]
    a = jnp.asarray([c[0] for c in cases], dtype)
    b = jnp.asarray([np.multiply(c[0], c[1]) for c in cases], dtype)
    kl = jax.jit(vikl.kl_divergence)(vikl.Dirichlet(a), vikl.Dirichlet(b))
    refs = [_mp_dirichlet_kl(x, y) for x, y in zip(np.asarray(a), np.asarray(b))]
    _check(kl, refs, dtype, cases)


def test_beta_and_dirichlet_entropy_all_concentrations(dtype):
    pairs = list(itertools.product(BIG, BIG))
    a = jnp.asarray(pairs, dtype)
    refs = [_mp_dirichlet_entropy(x) for x in np.asarray(a)]
    _check(vikl.Beta(a[:, 0], a[:, 1]).entropy(), refs, dtype, pairs)
    _check(vikl.Dirichlet(a).entropy(), refs, dtype, pairs)
    triples = list(itertools.product([1e-3, 1.0, 10.0, 1e4, 1e6, 1e30], repeat=3))
    a3 = jnp.asarray(triples, dtype)
    _check(vikl.Dirichlet(a3).entropy(), [_mp_dirichlet_entropy(x) for x in np.asarray(a3)], dtype, triples)
    # Beta vs Uniform(0, 1) is the negative entropy.
    kl = vikl.kl_divergence(vikl.Beta(a[:, 0], a[:, 1]), vikl.Uniform(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)))
    _check(kl, [-r for r in refs], dtype, pairs)


def test_gradients_finite_at_large_concentrations(dtype):
    points = [(1e6, 1e3, 1.0, 1e-3), (3e4, 1e4, 3.003e4, 1e4), (1e10, 1e10, 2e10, 2e10), (1e20, 2.0, 1e20, 3.0)]
    for a1, b1, a2, b2 in points:
        x = jnp.asarray([a1, b1, a2, b2], dtype)
        fns = [
            lambda v: vikl.kl_divergence(vikl.Gamma(v[0], v[1]), vikl.Gamma(v[2], v[3])),
            lambda v: vikl.kl_divergence(vikl.Beta(v[0], v[1]), vikl.Beta(v[2], v[3])),
            lambda v: vikl.kl_divergence(vikl.Dirichlet(v[:2]), vikl.Dirichlet(v[2:])),
            lambda v: vikl.Beta(v[0], v[1]).entropy() + vikl.Gamma(v[2], v[3]).entropy(),
            lambda v: vikl.Dirichlet(v).entropy(),
        ]
        for i, f in enumerate(fns):
            g = np.asarray(jax.grad(f)(x))
            assert np.isfinite(g).all(), (i, (a1, b1, a2, b2), g)


def test_gamma_kl_gradient_matches_digamma_formula():
    # d/da2 KL(Gamma(a1, b1) ‖ Gamma(a2, b2)) = digamma(a2) - digamma(a1) + log(b1 / b2), at 1e6.
    with jax.enable_x64(True):
        a1, b1, a2, b2 = 1e6, 1e3, 2e6, 1.5e3
        g = jax.grad(lambda v: vikl.kl_divergence(vikl.Gamma(a1, b1), vikl.Gamma(v, b2)))(jnp.float64(a2))
        ref = mpmath.digamma(a2) - mpmath.digamma(a1) + mpmath.log(mpmath.mpf(b1) / b2)
        assert abs(float(g) - float(ref)) <= 1e-9 * abs(float(ref))


# ------------------------------------------------------------ item 14: mixed precisions
MAKERS = {
    "Dirichlet": lambda d: vikl.Dirichlet(jnp.asarray([3e4, 1e4, 0.5], d)),
    "Beta": lambda d: vikl.Beta(jnp.asarray(3e4, d), jnp.asarray(1e4, d)),
    "Gamma": lambda d: vikl.Gamma(jnp.asarray(1e6, d), jnp.asarray(1e3, d)),
}
OTHERS = {
    "Dirichlet": lambda d: vikl.Dirichlet(jnp.asarray([2e4, 1.5e4, 2.0], d)),
    "Beta": lambda d: vikl.Beta(jnp.asarray(2e4, d), jnp.asarray(1.5e4, d)),
    "Gamma": lambda d: vikl.Gamma(jnp.asarray(1.0, d), jnp.asarray(1e-3, d)),
}


@pytest.mark.parametrize("family", sorted(MAKERS))
@pytest.mark.parametrize("order", ["32-64", "64-32"])
def test_mixed_precision_pairs_promote(family, order):
    # Under x64 a float32 p and float64 q (either order) used to crash inside a lax.scan
    # (Dirichlet). They promote like everywhere else: the result is float64 and equals the
    # all-float64 computation on the same (float32-representable) values. The suite's strict
    # promotion is lifted here, as mixing precisions is what is tested.
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        dp, dq = (jnp.float32, jnp.float64) if order == "32-64" else (jnp.float64, jnp.float32)
        p, q = MAKERS[family](dp), OTHERS[family](dq)
        p64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), p)
        q64 = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), q)
        kl = vikl.kl_divergence(p, q)
        assert kl.dtype == jnp.float64
        np.testing.assert_allclose(float(kl), float(vikl.kl_divergence(p64, q64)), rtol=1e-14)
        ce = vikl.cross_entropy(p, q)
        assert ce.dtype == jnp.float64
        # p's entropy is computed in p's own precision.
        rtol = 1e-6 if dp == jnp.float32 else 1e-14
        np.testing.assert_allclose(float(ce), float(vikl.cross_entropy(p64, q64)), rtol=rtol)
