"""The Dirichlet KL's derivatives (closed-form JVP, shared with Beta) against mpmath.

The reference differentiates mpmath's own Dirichlet KL at 50 digits (``mpmath.diff`` of
loggamma/digamma), so it is independent of vikl's formulas. Cases: ordinary, nearly
equal, large and nearly equal (where a plain ``digamma(b) - digamma(a)`` keeps no float32
digit: ``test_plain_digamma_fails_the_large_case`` shows the old form failing it), one
component dwarfing the rest, a concentration near the float32 minimum, and equal
Dirichlets (gradient exactly 0; Hessian finite and right).
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax.scipy.special import digamma, polygamma

import vikl
from vikl._kernels import bregman_lgamma_grads

MPMATH_DPS = 50

# (a, b) for KL(Dir(a) ‖ Dir(b)); four components, so one compile per dtype.
CASES = {
    "ordinary": ([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.5, 0.5]),
    "ordinary_small": ([0.3, 0.7, 1.5, 0.05], [0.5, 0.2, 2.0, 0.1]),
    "nearly_equal": ([0.3, 0.7, 1.2, 2.0], [0.31, 0.69, 1.2, 2.01]),
    "large_nearly_equal": ([1e4, 3e4, 2e5, 1e6], [1e4 + 1, 3e4 - 2, 2e5 + 0.5, 1e6 + 1]),
    "dwarfing": ([1e6, 0.5, 2.0, 3.0], [2e6, 0.7, 3.0, 1.0]),
    "dwarfing_small_rest": ([1e4, 3.0, 0.5, 0.2], [2e4, 5.0, 0.5, 0.3]),
    "tiny_equal_component": ([1e-30, 2.0, 3.0, 0.5], [1e-30, 2.5, 1.5, 0.5]),
}


def _mp_kl(a, b):
    a0, b0 = sum(a), sum(b)
    value = mpmath.loggamma(a0) - mpmath.loggamma(b0)
    for ai, bi in zip(a, b):
        value += mpmath.loggamma(bi) - mpmath.loggamma(ai) + (ai - bi) * (mpmath.digamma(ai) - mpmath.digamma(a0))
    return value


def _mp_grad(a, b):
    """dKL/d(a, b) by ``mpmath.diff``, and the size of the terms each derivative sums.

    ``dKL/da_i = -h_i psi'(a_i) + h_0 psi'(a_0)``, ``dKL/db_i = Δψ(b_i, a_i) - Δψ(b_0, a_0)``
    (``h = b - a``); ``h_0`` is a sum of the ``h_j``, so its rounding is ulps of
    ``sum_j |h_j|``, which measures the total's term.
    """
    with mpmath.workdps(MPMATH_DPS):
        x = [mpmath.mpf(v) for v in list(a) + list(b)]
        k = len(a)
        out = []
        for i in range(2 * k):

            def f(t, i=i):
                y = list(x)
                y[i] = t
                return _mp_kl(y[:k], y[k:])

            out.append(float(mpmath.diff(f, x[i])))
        a, b = x[:k], x[k:]
        a0, b0 = sum(a), sum(b)
        habs = sum(abs(bi - ai) for ai, bi in zip(a, b))
        total_tri = habs * mpmath.psi(1, a0)
        total_psi = abs(mpmath.digamma(b0) - mpmath.digamma(a0)) + total_tri
        sizes = [abs(bi - ai) * mpmath.psi(1, ai) + total_tri for ai, bi in zip(a, b)]
        sizes += [abs(mpmath.digamma(bi) - mpmath.digamma(ai)) + total_psi for ai, bi in zip(a, b)]
    return np.array(out), np.array([float(v) for v in sizes])


def _kl(a, b):
    return vikl.kl_divergence(vikl.Dirichlet(a), vikl.Dirichlet(b))


_grad = jax.jit(jax.grad(_kl, argnums=(0, 1)))


def _vikl_grad(a, b, dtype):
    ga, gb = _grad(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    return np.concatenate([np.asarray(ga, np.float64), np.asarray(gb, np.float64)])


@jax.jit
def _plain_digamma_grad(a, b):
    """The JVP before this change (plain digamma/polygamma): the negative control."""
    a0, b0 = jnp.sum(a, axis=-1), jnp.sum(b, axis=-1)
    grad_a = polygamma(1, a) * (a - b) - (polygamma(1, a0) * (a0 - b0))[..., None]
    grad_b = digamma(b) - digamma(a) - (digamma(b0) - digamma(a0))[..., None]
    return jnp.concatenate([grad_a, grad_b])


def _rounded(case, dtype):
    # The inputs are rounded to dtype first, so the reference is taken at the rounded point.
    return tuple([float(v) for v in np.asarray(side, dtype)] for side in case)


def _ulps(got, ref, sizes, dtype):
    """The error in ulps of the size of the terms (mpmath.diff leaves ~1e-60 where exactly 0)."""
    return np.abs(got - ref) / (np.finfo(dtype).eps * (sizes + np.abs(ref)) + 1e-50)


@pytest.mark.parametrize("name", list(CASES))
def test_dirichlet_kl_gradient_matches_mpmath(name, dtype):
    a, b = _rounded(CASES[name], dtype)
    ref, sizes = _mp_grad(a, b)
    got = _vikl_grad(a, b, dtype)
    # Each derivative is a difference of two terms (digamma differences or trigamma
    # products); its rounding error is a few ulps of their sizes.
    ulps = _ulps(got, ref, sizes, dtype)
    assert np.all(ulps <= 16), (got, ref, ulps)


def test_plain_digamma_fails_the_large_case():
    # float32 at 1e4..1e6: digamma(1e6 + 1) - digamma(1e6) = 1e-6 is one ulp of digamma(1e6).
    dtype = np.dtype("float32")
    a, b = _rounded(CASES["large_nearly_equal"], dtype)
    ref, sizes = _mp_grad(a, b)
    old = np.asarray(_plain_digamma_grad(jnp.asarray(a, dtype), jnp.asarray(b, dtype)), np.float64)
    assert np.max(_ulps(old, ref, sizes, dtype)) > 16 * 100
    assert np.max(_ulps(_vikl_grad(a, b, dtype), ref, sizes, dtype)) <= 16


EQUAL = [
    ("float32", [2.0, 3.0, 4.0, 0.5]),
    ("float32", [1e-30, 2.0, 3.0, 0.5]),
    ("float32", [1e-30, 1e-30, 1e-30, 1e-30]),
    ("float32", [1e6, 1e-30, 3.0, 1e4]),
    ("float64", [2.0, 3.0, 4.0, 0.5]),
    ("float64", [1e-300, 2.0, 3.0, 0.5]),
    ("float64", [1e-300, 1e-300, 1e-300, 1e-300]),
]


@pytest.mark.parametrize("dtype_name, a", EQUAL, ids=[f"{d}-{i}" for i, (d, _) in enumerate(EQUAL)])
def test_gradient_at_equal_dirichlets_is_exactly_zero(dtype_name, a):
    # psi'(1e-30) overflows in float32 and 1e-30 * 1e-30 underflows in the digamma
    # difference (0/0); the derivative of a KL at its minimum must still be exactly 0.
    with jax.enable_x64(dtype_name == "float64"):
        got = _vikl_grad(a, a, np.dtype(dtype_name))
    assert np.all(got == 0.0), got


def _hessian(a, b, dtype):
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    k = a.shape[-1]
    h = jax.jit(jax.hessian(lambda ab: _kl(ab[:k], ab[k:])))(jnp.concatenate([a, b]))
    return np.asarray(h, np.float64)


def _mp_hessian(a, b, entries):
    """The second derivatives ``(i, j)`` in ``entries`` of mpmath's KL by ``mpmath.diff``."""
    k = len(a)
    out = {}
    with mpmath.workdps(MPMATH_DPS):
        x = [mpmath.mpf(v) for v in list(a) + list(b)]
        for i, j in entries:
            orders = tuple((m == i) + (m == j) for m in range(2 * k))
            out[i, j] = float(mpmath.diff(lambda *y: _mp_kl(y[:k], y[k:]), x, orders))
    return out


def _helper_hessian(a, b, dtype):
    """``jax.jacfwd`` of the closed-form gradient: what ``jax.hessian`` of the KL
    (forward over reverse) differentiates, without compiling the KL's value forms again."""
    a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
    k = a.shape[-1]
    h = jax.jit(jax.jacfwd(lambda ab: jnp.concatenate(bregman_lgamma_grads(ab[:k], ab[k:]))))(jnp.concatenate([a, b]))
    return np.asarray(h, np.float64)


def _check_hessians_at_equal(hessian):
    # The old Beta guard where(d == 0, 0, d * psi'(x)) made d/dd of d psi'(x) zero at
    # d = 0, so the Hessian at equal Betas lost its psi'(a) terms; and the branch it did
    # not select fed 0 * inf = NaN into second derivatives at 1e-30 (float32).
    dtype = np.dtype("float32")
    for a in ([0.5, 2.0, 3.0], [0.7, 4.0]):
        n = 2 * len(a)
        got = hessian(a, a, dtype)
        ref = _mp_hessian(a, a, [(i, j) for i in range(n) for j in range(i, n)])
        ref = np.array([[ref[min(i, j), max(i, j)] for j in range(n)] for i in range(n)])
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # At 1e-30 the true psi'(1e-30) = 1e60 overflows float32: the four entries of the
    # tiny component against itself saturate at the largest float; the others are finite
    # and those of the other components match mpmath (which perturbs only those).
    tiny = [1e-30, 2.0, 3.0]
    got = hessian(tiny, tiny, dtype)
    assert np.all(np.isfinite(got)), got
    big = np.finfo(dtype).max
    assert (got[0, 0], got[0, 3], got[3, 0], got[3, 3]) == (big, -big, -big, big), got
    rest = [i for i in range(6) if i not in (0, 3)]
    ref = _mp_hessian(tiny, tiny, [(i, j) for i in rest for j in rest if i <= j])
    for (i, j), r in ref.items():
        for g in (got[i, j], got[j, i]):
            assert abs(g - r) <= 1e-5 * abs(r) + 1e-6, (i, j, g, r)


def test_gradient_jacobian_at_equal_dirichlets_matches_mpmath_and_is_finite_near_the_float_minimum():
    _check_hessians_at_equal(_helper_hessian)


@pytest.mark.slow
def test_hessian_of_the_kl_at_equal_dirichlets_matches_mpmath_and_is_finite_near_the_float_minimum():
    # The same through jax.hessian of the KL itself (compiles the KL's forms: ~15 s per shape).
    _check_hessians_at_equal(_hessian)
