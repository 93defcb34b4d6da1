"""Closed-form KLs at extreme parameters, against 60-digit mpmath evaluations of the
textbook formulas.

Each case is a value that float32 can hold (up to 3.4e38) whose formula, written the
obvious way, under- or overflows on the way (``s * s`` for a scale of 1e-30, a rate
ratio of 1e40) and used to come out as NaN or +inf. Where the true KL itself exceeds
the float range, +inf is the right answer and is asserted as such.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl


@pytest.fixture(autouse=True)
def _sixty_digits():
    # mpmath's precision is global and other test modules set their own; hold 60
    # digits for the duration of each test here (the Cauchy reference at scales of
    # 1e10 needs more than 22).
    with mpmath.workdps(60):
        yield
SCALES = [1e-30, 1e-10, 1.0, 1e10, 1e30]
PAIRS = list(itertools.product(SCALES, SCALES))


def _ref_ok(value, ref, rtol):
    ref = float(ref)
    limit = float(jnp.finfo(jnp.zeros(()).dtype).max)
    if ref > limit:
        assert value == np.inf, (value, ref)
    else:
        assert np.isfinite(value), (value, ref)
        assert abs(value - ref) <= rtol * max(abs(ref), 1e-30), (value, ref)


def _rtol():
    return 1e-12 if jnp.zeros(()).dtype == jnp.float64 else 2e-6


def _mp_normal_scale(s1, s2):
    r = mpmath.mpf(s1) / mpmath.mpf(s2)
    return (r * r - 1 - 2 * mpmath.log(r)) / 2


@pytest.mark.parametrize("s1,s2", PAIRS)
def test_cauchy_extreme_scales(s1, s2, dtype):
    a, b = mpmath.mpf(s1), mpmath.mpf(s2)
    for dm in (0.0, 0.5):
        ref = mpmath.log(((a + b) ** 2 + mpmath.mpf(dm) ** 2) / (4 * a * b))
        value = float(vikl.kl_divergence(vikl.Cauchy(dm, s1), vikl.Cauchy(0.0, s2)))
        _ref_ok(value, ref, _rtol())


@pytest.mark.parametrize("s1,s2", PAIRS)
def test_gaussian_vector_families_extreme_scales(s1, s2, dtype):
    # Diagonal and full-rank with the same diagonal: KL = sum of 1-d scale terms.
    ref = _mp_normal_scale(s1, s2) + _mp_normal_scale(1.0, 1.0)
    p = vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.array([s1, 1.0]))
    q = vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.array([s2, 1.0]))
    _ref_ok(float(vikl.kl_divergence(p, q)), ref, _rtol())
    pf = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.diag(jnp.array([s1, 1.0])))
    qf = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.diag(jnp.array([s2, 1.0])))
    _ref_ok(float(vikl.kl_divergence(pf, qf)), ref, _rtol())


@pytest.mark.parametrize("a,b", PAIRS)
def test_poisson_extreme_rates(a, b, dtype):
    x, y = mpmath.mpf(a), mpmath.mpf(b)
    ref = x * mpmath.log(x / y) - x + y
    _ref_ok(float(vikl.kl_divergence(vikl.Poisson(a), vikl.Poisson(b))), ref, _rtol())


@pytest.mark.parametrize("s1,s2", PAIRS)
def test_normal_laplace_overflowing_ratio(s1, s2, dtype):
    # Ratios below the smallest normal float included (issue 19, item 6: they gave +inf).
    value = float(vikl.kl_divergence(vikl.Normal(0.0, s1), vikl.Normal(0.0, s2)))
    _ref_ok(value, _mp_normal_scale(s1, s2), _rtol())
    a, b = mpmath.mpf(s1), mpmath.mpf(s2)
    ref = mpmath.log(b / a) + a / b - 1  # Laplace, equal locations
    _ref_ok(float(vikl.kl_divergence(vikl.Laplace(0.0, s1), vikl.Laplace(0.0, s2))), ref, _rtol())


def test_overflowed_ratio_is_inf_not_nan(dtype):
    big, small = (1e30, 1e-10) if jnp.zeros(()).dtype == jnp.float32 else (1e300, 1e-10)
    for p, q in [
        (vikl.Normal(0.0, big), vikl.Normal(0.0, small)),
        (vikl.Laplace(0.0, big), vikl.Laplace(0.0, small)),
        (vikl.Gumbel(0.0, big), vikl.Gumbel(0.0, small)),
    ]:
        assert float(vikl.kl_divergence(p, q)) == np.inf, type(p).__name__


def test_x_minus_log1p_at_inf(dtype):
    from vikl._math import x_minus_log1p

    assert float(x_minus_log1p(jnp.inf)) == np.inf
    assert float(x_minus_log1p(jnp.inf, jnp.inf)) == np.inf


def test_cauchy_gradient_finite_and_correct():
    # d/ds1 log[((s1 + s2)^2 + dm^2) / (4 s1 s2)] by hand at s1 = 1.3, s2 = 0.7, dm = 0.4.
    s1, s2, dm = 1.3, 0.7, 0.4
    want = 2 * (s1 + s2) / ((s1 + s2) ** 2 + dm**2) - 1 / s1
    got = jax.grad(lambda s: vikl.kl_divergence(vikl.Cauchy(dm, s), vikl.Cauchy(0.0, s2)))(s1)
    assert abs(float(got) - want) < 1e-5


@pytest.mark.parametrize(
    "make",
    [
        lambda: vikl.Normal(0.0, jnp.inf),
        lambda: vikl.Exponential(jnp.inf),
        lambda: vikl.Gamma(jnp.inf, 1.0),
        lambda: vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.array([1.0, jnp.inf])),
        lambda: vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.array([[1.0, 0.0], [jnp.inf, 1.0]])),
    ],
    ids=["Normal", "Exponential", "Gamma", "Diag", "MVN"],
)
def test_infinite_scale_is_refused(make):
    with pytest.raises(ValueError, match="finite"):
        make()


BETA_HARD = [
    # (a1, b1, a2, b2): one concentration dwarfs the other, so D(b2, b1) and
    # D(s2, s1) of the Bregman form are large and nearly equal (13.16 vs 13.13 for
    # the first), and the regrouped forms are needed.
    (0.05, 30.0, 0.05, 7.0),
    (30.0, 0.05, 7.0, 0.05),
    (1e-3, 1e6, 1e-3, 30.0),
    (1e-3, 1e6, 2e-3, 1e5),
    (0.5, 1e3, 0.7, 2e3),
    (1e-3, 1e30, 1e-3, 1e10),
    (1e-3, 1e10, 1e-3, 7.0),
    (50.0, 0.3, 10.0, 0.3),
    (1e4, 2.0, 1e3, 2.0),
    # and cases the Bregman form handles: generic, nearly equal
    (2.0, 3.0, 1.5, 1.2),
    (1.0, 1.0, 1.001, 1.0),
]


def _mp_beta_kl(a1, b1, a2, b2):
    a1, b1, a2, b2 = map(mpmath.mpf, (a1, b1, a2, b2))
    lb = lambda a, b: mpmath.loggamma(a) + mpmath.loggamma(b) - mpmath.loggamma(a + b)  # noqa: E731
    s1 = a1 + b1
    return (
        lb(a2, b2) - lb(a1, b1)
        + (a1 - a2) * (mpmath.digamma(a1) - mpmath.digamma(s1))
        + (b1 - b2) * (mpmath.digamma(b1) - mpmath.digamma(s1))
    )


@pytest.mark.parametrize("case", BETA_HARD)
def test_beta_kl_with_one_concentration_dwarfing_the_other(case, dtype):
    # Measured before the regrouped forms (float32): 5.6 relative at the third case,
    # 1.0 (a zero) at the sixth, 8.7e-5 at the first.
    a1, b1, a2, b2 = (jnp.asarray(v, dtype) for v in case)
    ref = _mp_beta_kl(*(float(v) for v in (a1, b1, a2, b2)))
    value = float(vikl.kl_divergence(vikl.Beta(a1, b1), vikl.Beta(a2, b2)))
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    assert abs(value - float(ref)) <= rtol * abs(float(ref)), (value, float(ref))


def test_beta_kl_gradients_finite_in_every_regime():
    grad = jax.grad(lambda c: vikl.kl_divergence(vikl.Beta(c[0], c[1]), vikl.Beta(c[2], c[3])))
    for case in BETA_HARD[:5] + BETA_HARD[7:]:
        g = np.asarray(grad(jnp.asarray(case, jnp.zeros(()).dtype)))
        assert np.isfinite(g).all(), (case, g)


DIRICHLET_HARD = [
    # one component carries almost all the mass
    ((0.05, 30.0, 0.01), (0.05, 7.0, 0.02)),
    ((1e-3, 1e6, 1e-3), (1e-3, 30.0, 2e-3)),
    ((0.5, 1e3, 0.3, 0.2), (0.7, 2e3, 0.3, 0.1)),
    ((1e4, 2.0, 3.0), (1e3, 2.0, 3.0)),
    ((0.05, 30.0), (0.05, 7.0)),
    # generic, nearly equal
    ((2.0, 3.0, 1.0), (1.5, 1.2, 2.0)),
    ((1.0, 1.0, 1.0), (1.001, 1.0, 1.0)),
]


def _mp_dirichlet_kl(a, b):
    a, b = [mpmath.mpf(x) for x in a], [mpmath.mpf(x) for x in b]
    a0, b0 = sum(a), sum(b)
    return (
        mpmath.loggamma(a0) - mpmath.loggamma(b0)
        - sum(mpmath.loggamma(x) - mpmath.loggamma(y) for x, y in zip(a, b))
        + sum((x - y) * (mpmath.digamma(x) - mpmath.digamma(a0)) for x, y in zip(a, b))
    )


@pytest.mark.parametrize("case", DIRICHLET_HARD)
def test_dirichlet_kl_with_a_dominant_component(case, dtype):
    # Measured before the chain-rule split (float32): 7.0e-2 relative at the second
    # case, 2.8e-5 at the third.
    a, b = (jnp.asarray(v, dtype) for v in case)
    ref = float(_mp_dirichlet_kl([float(x) for x in a], [float(x) for x in b]))
    value = float(vikl.kl_divergence(vikl.Dirichlet(a), vikl.Dirichlet(b)))
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    assert abs(value - ref) <= rtol * abs(ref), (value, ref)
