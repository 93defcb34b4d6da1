"""The Beta KL's derivatives (a closed-form JVP since this stop) against mpmath.

The reference differentiates mpmath's own KL at 50 digits (``mpmath.diff``), so it is
independent of vikl's formulas. Cases: ordinary, nearly equal (where a plain
``digamma(a2) - digamma(a1)`` loses every float32 digit at 1e6), one concentration
dwarfing the other, and large concentrations.
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl

CASES = [
    (2.0, 3.0, 0.5, 4.0),
    (0.3, 0.7, 0.31, 0.69),
    (1e6, 2e6, 1e6 + 1, 2e6 - 3),
    (0.05, 30.0, 0.05, 7.0),
    (1e4, 3.0, 2e4, 5.0),
    (4.0, 4.0, 4.0, 4.0),
]


def _mp_kl(a1, b1, a2, b2):
    s1, s2 = a1 + b1, a2 + b2
    log_b = lambda a, b: mpmath.loggamma(a) + mpmath.loggamma(b) - mpmath.loggamma(a + b)  # noqa: E731
    return (log_b(a2, b2) - log_b(a1, b1) + (a1 - a2) * mpmath.digamma(a1)
            + (b1 - b2) * mpmath.digamma(b1) + (s2 - s1) * mpmath.digamma(s1))


def _mp_grad(params):
    """The four derivatives by ``mpmath.diff`` and the size of the terms each is a sum of."""
    with mpmath.workdps(50):
        x = [mpmath.mpf(v) for v in params]
        out = []
        for i in range(4):
            def f(t, i=i):
                y = list(x)
                y[i] = t
                return _mp_kl(*y)
            out.append(float(mpmath.diff(f, x[i])))
        a1, b1, a2, b2 = x
        s1, s2 = a1 + b1, a2 + b2
        dpsi = lambda y, z: abs(mpmath.digamma(y) - mpmath.digamma(z))  # noqa: E731
        sizes = [abs(a2 - a1) * mpmath.psi(1, a1) + abs(s2 - s1) * mpmath.psi(1, s1),
                 abs(b2 - b1) * mpmath.psi(1, b1) + abs(s2 - s1) * mpmath.psi(1, s1),
                 dpsi(a2, a1) + dpsi(s2, s1), dpsi(b2, b1) + dpsi(s2, s1)]
    return np.array(out), np.array([float(v) for v in sizes])


def _vikl_grad(params, dtype):
    def kl(a1, b1, a2, b2):
        return vikl.kl_divergence(vikl.Beta(a1, b1), vikl.Beta(a2, b2))

    args = [jnp.asarray(v, dtype) for v in params]
    return np.array(jax.jit(jax.grad(kl, argnums=(0, 1, 2, 3)))(*args), np.float64)


@pytest.mark.parametrize("params", CASES, ids=[str(i) for i in range(len(CASES))])
def test_beta_kl_gradient_matches_mpmath(params, dtype):
    # The inputs are rounded to dtype first, so the reference is taken at the rounded point.
    rounded = tuple(float(np.asarray(v, dtype)) for v in params)
    ref, sizes = _mp_grad(rounded)
    got = _vikl_grad(rounded, dtype)
    # Each derivative is a difference of two terms (a digamma difference or a trigamma
    # product); its rounding error is a few ulps of their sizes. At (1e4, 3) ‖ (2e4, 5)
    # the a2-derivative is 5.0e-5 = 0.69317 - 0.69312: float32 keeps 3 of its digits.
    eps = np.finfo(dtype).eps
    err = np.abs(got - ref)
    # (mpmath.diff leaves ~1e-60 of noise where the derivative is exactly 0.)
    assert np.all(err <= 16 * eps * (sizes + np.abs(ref)) + 1e-50), (got, ref, err / (eps * (sizes + np.abs(ref))))


def test_beta_kl_gradient_at_equal_betas_is_exactly_zero_also_near_the_float_minimum():
    # psi'(a) overflows for a ~ 1e-30 in float32; 0 * psi'(a) must still be 0, not NaN.
    a = jnp.float32(1e-30)
    g = jax.grad(lambda x: vikl.kl_divergence(vikl.Beta(x, 2.0), vikl.Beta(a, 2.0)))(a)
    assert float(g) == 0.0
