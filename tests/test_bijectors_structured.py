"""Structured bijectors: StickBreaking, SoftmaxCentered, Ordered, FillTriangular,
LowerCholesky, CorrCholesky.

References: NumPyro's transforms (values and log-dets, computed in float64), autodiff
Jacobians (``jax.jacfwd`` + ``slogdet`` in float64) of the map onto the free output
coordinates, and mpmath (60 digits, numerical partial derivatives of the plain
definitions) at saturated inputs.
"""

import re

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import numpyro.distributions.transforms as T
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as hst

from vikl.bijectors import (
    CorrCholesky,
    FillTriangular,
    LowerCholesky,
    Ordered,
    SoftmaxCentered,
    StickBreaking,
)


def _tols(dtype):
    return (2e-5, 2e-5) if np.dtype(dtype) == np.float32 else (1e-11, 1e-12)


def _close(actual, expected, dtype, scale=1.0):
    rtol, atol = _tols(dtype)
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=rtol * scale, atol=atol * scale
    )


def _x(shape, seed=0, spread=2.0):
    return spread * np.random.default_rng(seed).standard_normal(shape)


def _numpyro64(transform, x):
    """NumPyro's value and log-det at float64 ``x`` (a float64 reference)."""
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        x = jnp.asarray(x, jnp.float64)
        y = transform(x)
        return np.asarray(y), np.asarray(transform.log_abs_det_jacobian(x, y))


# Module-level jitted helpers taking the bijector (a pytree) and the input as arguments:
# one compiled program per bijector, shape and dtype, shared by every test and example
# that uses it, instead of op-by-op dispatch of each call.
_forward_and_log_det = jax.jit(lambda bij, x: bij.forward_and_log_det(x))
_inverse_and_log_det = jax.jit(lambda bij, y: bij.inverse_and_log_det(y))


@jax.jit
def _plain_and_vmapped(bij, x):
    return bij.forward_and_log_det(x), jax.vmap(bij.forward_and_log_det)(x)


@jax.jit
def _round_trip(bij, x):
    y, ld = bij.forward_and_log_det(x)
    back, ild = bij.inverse_and_log_det(y)
    return y, ld, back, ild


def _sum_of_output_and_log_det(bij, v):
    y, ld = bij.forward_and_log_det(v)
    return jnp.sum(y) + jnp.sum(ld)


# Value and gradient in one program, shared by every input of the same shape and dtype.
_value_and_grad = jax.jit(jax.value_and_grad(_sum_of_output_and_log_det, argnums=1))


# (bijector, NumPyro transform, input size); all share NumPyro's conventions.
NUMPYRO_PAIRS = [
    ("StickBreaking", StickBreaking(), T.StickBreakingTransform(), 4),
    ("Ordered", Ordered(), T.OrderedTransform(), 5),
    ("LowerCholesky", LowerCholesky(), T.LowerCholeskyTransform(), 10),
    ("CorrCholesky3", CorrCholesky(), T.CorrCholeskyTransform(), 3),
    ("CorrCholesky5", CorrCholesky(), T.CorrCholeskyTransform(), 10),
]


@pytest.mark.parametrize("name,bij,ref,m", NUMPYRO_PAIRS, ids=[p[0] for p in NUMPYRO_PAIRS])
def test_forward_and_log_det_match_numpyro(name, bij, ref, m, dtype):
    x = _x((2, 3, m), seed=1)
    y_ref, ld_ref = _numpyro64(ref, x)
    y, ld = _forward_and_log_det(bij, jnp.asarray(x, dtype))
    assert y.dtype == dtype and ld.dtype == dtype
    assert y.shape == y_ref.shape and ld.shape == (2, 3)
    _close(y, y_ref, dtype)
    _close(ld, ld_ref, dtype, scale=4.0)
    assert bij.forward_event_shape((m,)) == y_ref.shape[2:]
    assert bij.inverse_event_shape(y_ref.shape[2:]) == (m,)


@pytest.mark.parametrize("name,bij,ref,m", NUMPYRO_PAIRS, ids=[p[0] for p in NUMPYRO_PAIRS])
def test_inverse_matches_numpyro_and_round_trips(name, bij, ref, m, dtype):
    x = _x((4, m), seed=2)
    y_ref, ld_ref = _numpyro64(ref, x)
    x_back, ild = _inverse_and_log_det(bij, jnp.asarray(y_ref, dtype))
    _close(x_back, x, dtype, scale=10.0)
    _close(ild, -ld_ref, dtype, scale=10.0)
    y, _, back, _ = _round_trip(bij, jnp.asarray(x, dtype))
    _close(back, x, dtype, scale=10.0)


# ---------------------------------------------------------------------- autodiff Jacobians
def _free(name):
    """The map from the output onto its free coordinates (a square Jacobian)."""
    if name in ("StickBreaking", "SoftmaxCentered"):
        return lambda y: y[:-1]
    if name == "CorrCholesky":
        return lambda y: y[np.tril_indices(y.shape[-1], -1)]
    if name == "LowerCholesky":

        def free(y):
            n = y.shape[-1]
            return jnp.concatenate([y[np.tril_indices(n, -1)], jnp.diagonal(y)])

        return free
    if name == "FillTriangular":
        return lambda y: y[np.tril_indices(y.shape[-1])]
    return lambda y: y


JAC_CASES = [
    ("StickBreaking", StickBreaking(), 5),
    ("SoftmaxCentered", SoftmaxCentered(), 5),
    ("Ordered", Ordered(), 4),
    ("LowerCholesky", LowerCholesky(), 6),
    ("CorrCholesky", CorrCholesky(), 6),
    ("FillTriangular", FillTriangular(), 6),
]


@pytest.mark.parametrize("name,bij,m", JAC_CASES, ids=[c[0] for c in JAC_CASES])
def test_log_det_is_slogdet_of_autodiff_jacobian_float64(name, bij, m):
    free = _free(name)
    with jax.enable_x64(True):
        jac_fwd = jax.jit(jax.jacfwd(lambda v: free(bij.forward(v))))
        jac_inv = jax.jit(jax.jacfwd(lambda w, y: bij.inverse(_embed(name, w, y))))
        ld_fwd, ld_inv = jax.jit(bij.forward_log_det_jacobian), jax.jit(bij.inverse_log_det_jacobian)
        for seed in range(3):
            x = jnp.asarray(_x((m,), seed=seed + 10, spread=1.5), jnp.float64)
            sign, expected = np.linalg.slogdet(np.asarray(jac_fwd(x)))
            assert sign != 0
            np.testing.assert_allclose(float(ld_fwd(x)), expected, rtol=1e-11, atol=1e-11)
            y = bij.forward(x)
            np.testing.assert_allclose(
                float(ld_inv(y)), np.linalg.slogdet(np.asarray(jac_inv(free(y), y)))[1], rtol=1e-10, atol=1e-10
            )


def _embed(name, w, y):
    """The output whose free coordinates are ``w`` (the dependent ones recomputed)."""
    if name in ("StickBreaking", "SoftmaxCentered"):
        return jnp.concatenate([w, 1 - jnp.sum(w, keepdims=True)])
    n = y.shape[-1]
    if name == "CorrCholesky":
        low = jnp.zeros((n, n), w.dtype).at[np.tril_indices(n, -1)].set(w)
        return low + jnp.diag(jnp.sqrt(1 - jnp.sum(low * low, axis=-1)))
    if name == "LowerCholesky":
        k = n * (n - 1) // 2
        return jnp.zeros((n, n), w.dtype).at[np.tril_indices(n, -1)].set(w[:k]) + jnp.diag(w[k:])
    if name == "FillTriangular":
        return jnp.zeros((n, n), w.dtype).at[np.tril_indices(n)].set(w)
    return w


@pytest.mark.parametrize("bij", [StickBreaking(), SoftmaxCentered()], ids=["stick", "softmax"])
def test_pulled_back_dirichlet_integrates_to_one(bij, dtype):
    # log p(u) = Dirichlet.logpdf(f(u)) + log|det| (SciPy density in the first K - 1
    # coordinates), summed on a 2-D grid: 1 only with the right log-det convention.
    g = np.linspace(-14.0, 14.0, 561)
    uu = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    y, ld = bij.forward_and_log_det(jnp.asarray(uu, dtype))
    y = np.asarray(y, np.float64)
    y = y / y.sum(-1, keepdims=True)
    logp = scipy.stats.dirichlet.logpdf(np.clip(y, 1e-300, None).T, [2.0, 3.0, 1.5])
    total = np.exp(logp + np.asarray(ld, np.float64)).sum() * (g[1] - g[0]) ** 2
    assert abs(total - 1.0) < 2e-3


def test_pulled_back_two_by_two_lkj_integrates_to_one(dtype):
    # n = 2: the correlation r = L[1, 0] of LKJ(eta) has (r + 1) / 2 ~ Beta(eta, eta).
    g = np.linspace(-12.0, 12.0, 4001)
    y, ld = CorrCholesky().forward_and_log_det(jnp.asarray(g[:, None], dtype))
    r = np.asarray(y, np.float64)[:, 1, 0]
    logp = scipy.stats.beta.logpdf((r + 1) / 2, 2.5, 2.5) - np.log(2.0)
    total = np.exp(logp + np.asarray(ld, np.float64)).sum() * (g[1] - g[0])
    assert abs(total - 1.0) < 1e-4


def test_softmax_centered_is_softmax_of_padded_input(dtype):
    x = _x((3, 4), seed=3)
    padded = np.concatenate([x, np.zeros((3, 1))], -1)
    expected = np.exp(padded) / np.exp(padded).sum(-1, keepdims=True)
    y = SoftmaxCentered().forward(jnp.asarray(x, dtype))
    _close(y, expected, dtype)
    _close(SoftmaxCentered().inverse(jnp.asarray(expected, dtype)), x, dtype, scale=10.0)


def test_fill_triangular_matches_numpyro_vec_to_tril(dtype):
    from numpyro.distributions.util import vec_to_tril_matrix

    x = _x((2, 10), seed=4)
    with jax.enable_x64(True):
        expected = np.asarray(vec_to_tril_matrix(jnp.asarray(x)))
    y, ld = FillTriangular().forward_and_log_det(jnp.asarray(x, dtype))
    _close(y, expected, dtype)
    assert ld.shape == (2,) and not np.any(np.asarray(ld))
    _close(FillTriangular().inverse(y), x, dtype)


# ---------------------------------------------------------------------- CorrCholesky outputs
def test_corr_cholesky_gives_correlation_matrices(dtype):
    x = jnp.asarray(_x((50, 10), seed=5, spread=3.0), dtype)
    low = np.asarray(CorrCholesky().forward(x), np.float64)
    assert low.shape == (50, 5, 5)
    np.testing.assert_array_equal(np.triu(low, 1), 0)
    assert np.all(np.diagonal(low, axis1=-2, axis2=-1) > 0)
    _close(np.linalg.norm(low, axis=-1), np.ones((50, 5)), dtype, scale=5.0)
    corr = low @ np.swapaxes(low, -1, -2)
    _close(np.diagonal(corr, axis1=-2, axis2=-1), np.ones((50, 5)), dtype, scale=5.0)
    assert np.all(np.abs(corr) <= 1 + 1e-6)
    assert np.all(np.linalg.eigvalsh(corr) > -1e-6)


def test_inverse_of_random_correlations_and_simplices_round_trips(dtype):
    # Cholesky factors of random correlation matrices and Dirichlet draws (NumPy), mapped
    # back and forth.
    rng = np.random.default_rng(8)
    a = rng.standard_normal((20, 4, 6))
    cov = a @ np.swapaxes(a, -1, -2)
    d = 1 / np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    low = np.linalg.cholesky(cov * d[:, :, None] * d[:, None, :])
    simplex = rng.dirichlet(np.full(5, 0.8), size=20)
    for bij, y in ((CorrCholesky(), low), (StickBreaking(), simplex), (SoftmaxCentered(), simplex)):
        y = jnp.asarray(y, dtype)
        x, ild = jax.jit(bij.inverse_and_log_det)(y)
        y_back, ld = jax.jit(bij.forward_and_log_det)(x)
        _close(y_back, y, dtype, scale=10.0)
        _close(ild, -ld, dtype, scale=20.0)


# ---------------------------------------------------------------------- saturation (mpmath)
mpmath.mp.dps = 60
MPMATH_DPS = 60  # every test of this module runs at this precision (conftest)


def _mp_stick_breaking(xs):
    k = len(xs) + 1
    out, rest = [], mpmath.mpf(1)
    for i, x in enumerate(xs):
        z = 1 / (1 + mpmath.exp(-(x - mpmath.log(k - 1 - i))))
        out.append(z * rest)
        rest = rest * (1 - z)
    return out  # the free coordinates y[:-1]


def _mp_corr_cholesky(xs):
    n = int(round((1 + np.sqrt(1 + 8 * len(xs))) / 2))
    out, it = [], iter(xs)
    for i in range(n):
        rest = mpmath.mpf(1)
        for _ in range(i):
            t = mpmath.tanh(next(it))
            out.append(t * rest)
            rest = rest * mpmath.sqrt(1 - t * t)
    return out  # the strictly lower triangle, row-major


_MP_LOG_DETS = {}


def _mp_log_det_cached(f, xs):
    """``_mp_log_det`` memoized: the float32 and float64 cases share one 60-digit reference."""
    key = (f.__name__, tuple(float(v) for v in xs))
    if key not in _MP_LOG_DETS:
        _MP_LOG_DETS[key] = _mp_log_det(f, xs)
    return _MP_LOG_DETS[key]


def _mp_log_det(f, xs):
    xs = [mpmath.mpf(float(v)) for v in xs]
    m = len(xs)
    jac = mpmath.matrix(m, m)
    for j in range(m):
        for i in range(m):
            order = tuple(1 if k == j else 0 for k in range(m))
            jac[i, j] = mpmath.diff(lambda *a, i=i: f(list(a))[i], xs, order)
    return float(mpmath.log(abs(mpmath.det(jac))))


SATURATED = [[40.0, -40.0, 40.0], [-40.0, -40.0, -40.0], [40.0, 40.0, 40.0], [0.0, 40.0, -3.0]]


@pytest.mark.parametrize("xs", SATURATED)
@pytest.mark.parametrize("which", ["StickBreaking", "CorrCholesky"])
def test_saturated_inputs_give_exact_finite_log_dets(which, xs, dtype):
    bij, ref = (
        (StickBreaking(), _mp_stick_breaking) if which == "StickBreaking" else (CorrCholesky(), _mp_corr_cholesky)
    )
    expected = _mp_log_det_cached(ref, xs)
    x = jnp.asarray(xs, dtype)
    y, ld = _forward_and_log_det(bij, x)
    assert np.all(np.isfinite(np.asarray(y)))
    np.testing.assert_allclose(float(ld), expected, rtol=_tols(dtype)[0], atol=1e-4)
    _, grad = _value_and_grad(bij, x)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize(
    "bij,m", [(StickBreaking(), 6), (SoftmaxCentered(), 6), (CorrCholesky(), 6), (Ordered(), 6), (LowerCholesky(), 6)]
)
def test_gradients_finite_at_extremes_and_zero(bij, m, dtype):
    for x in (np.zeros(m), np.full(m, 40.0), np.full(m, -40.0), np.tile([40.0, -40.0], m // 2)):
        if isinstance(bij, (Ordered, LowerCholesky)):
            x = np.clip(x, -40, 20)  # exp(40) overflows float32 in the output itself
        x = jnp.asarray(x, dtype)
        val, grad = _value_and_grad(bij, x)
        assert np.isfinite(float(val)) and np.all(np.isfinite(np.asarray(grad)))


def test_inverse_gradients_finite(dtype):
    # Through y = 0 entries of a correlation factor and near-degenerate simplices.
    y = jnp.asarray(np.eye(3), dtype)
    g = jax.grad(lambda v: jnp.sum(CorrCholesky().inverse_and_log_det(v)[0]))(y)
    assert np.all(np.isfinite(np.asarray(g)))
    s = jnp.asarray([1e-6, 0.5 - 1e-6, 0.5], dtype)
    for bij in (StickBreaking(), SoftmaxCentered()):
        g = jax.grad(lambda v, bij=bij: jnp.sum(bij.inverse_and_log_det(v)[1]))(s)
        assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("spread", [6.0, 15.0])
def test_round_trips_far_out(spread, dtype):
    # Accurate inverses where tanh / sigmoid are within float32 eps of 1: the inverses read
    # the small remainders (diagonal, tail sums), not 1 - t.
    x = jnp.asarray(_x((20, 6), seed=6, spread=spread / 2.5), dtype)
    x = jnp.clip(x, -spread, spread)
    for bij in (CorrCholesky(), StickBreaking()):
        back = bij.inverse(bij.forward(x))
        _close(back, x, dtype, scale=50.0)


# ---------------------------------------------------------------------- shapes and errors
def test_batch_axes_broadcast_under_jit_and_vmap(dtype):
    x = jnp.asarray(_x((4, 3, 6), seed=7), dtype)
    for bij in (StickBreaking(), SoftmaxCentered(), Ordered(), LowerCholesky(), CorrCholesky()):
        (y, ld), (yv, ldv) = _plain_and_vmapped(bij, x)
        assert ld.shape == (4, 3)
        _close(yv, y, dtype)
        _close(ldv, ld, dtype)


@pytest.mark.parametrize(
    "bij,bad,message",
    [
        (CorrCholesky(), np.zeros(4), "n(n-1)/2 entries for some n; got 4"),
        (LowerCholesky(), np.zeros(4), "n(n+1)/2 entries for some n; got 4"),
        (FillTriangular(), np.zeros((2, 5)), "n(n+1)/2 entries for some n; got 5"),
        (StickBreaking(), np.float32(1.0), "at least 1 axis"),
        (Ordered(), np.float32(1.0), "at least 1 axis"),
    ],
)
def test_wrong_input_event_shape_raises(bij, bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bij.forward(bad)
    with pytest.raises(ValueError, match=type(bij).__name__):
        jax.jit(bij.forward)(bad)


@pytest.mark.parametrize(
    "bij,bad,message",
    [
        (CorrCholesky(), np.eye(3)[:, :2], "square"),
        (LowerCholesky(), np.zeros(3), "at least 2 axis"),
        (StickBreaking(), np.zeros((2, 0)), "at least 1 entry"),
        (SoftmaxCentered(), np.zeros((2, 0)), "at least 1 entry"),
    ],
)
def test_wrong_output_event_shape_raises(bij, bad, message):
    with pytest.raises(ValueError, match=message):
        bij.inverse(bad)


def test_event_shape_methods():
    assert StickBreaking().forward_event_shape((2, 3)) == (2, 4)
    assert SoftmaxCentered().inverse_event_shape((4,)) == (3,)
    assert CorrCholesky().forward_event_shape((6,)) == (4, 4)
    assert CorrCholesky().inverse_event_shape((4, 4)) == (6,)
    assert LowerCholesky().forward_event_shape((6,)) == (3, 3)
    assert LowerCholesky().inverse_event_shape((3, 3)) == (6,)
    with pytest.raises(ValueError, match="got 4"):
        CorrCholesky().forward_event_shape((4,))
    with pytest.raises(ValueError, match="square"):
        LowerCholesky().inverse_event_shape((3, 2))
    for b in (StickBreaking(), CorrCholesky(), LowerCholesky()):
        assert (b.event_ndims_in, b.event_ndims_out) == ((1, 1) if isinstance(b, StickBreaking) else (1, 2))


def test_smallest_sizes():
    # K = 1 simplex (one point) and a 1 x 1 correlation factor.
    y, ld = StickBreaking().forward_and_log_det(jnp.zeros((2, 0)))
    np.testing.assert_array_equal(np.asarray(y), np.ones((2, 1)))
    np.testing.assert_array_equal(np.asarray(ld), np.zeros(2))
    y, ld = CorrCholesky().forward_and_log_det(jnp.zeros((0,)))
    np.testing.assert_array_equal(np.asarray(y), np.ones((1, 1)))
    assert float(ld) == 0.0


@settings(max_examples=30, deadline=None)
@given(hst.lists(hst.floats(-12.0, 12.0), min_size=6, max_size=6))
def test_round_trip_property_float64(xs):
    with jax.enable_x64(True):
        x = jnp.asarray(xs, jnp.float64)
        for bij in (CorrCholesky(), StickBreaking(), SoftmaxCentered(), Ordered(), LowerCholesky()):
            y, ld, back, ild = _round_trip(bij, x)
            atol = 1e-8
            if isinstance(bij, Ordered):  # the gaps are read off a cumulative sum
                atol += 8 * np.finfo(np.float64).eps * float(jnp.max(jnp.abs(y))) / float(jnp.min(jnp.diff(y)))
            np.testing.assert_allclose(np.asarray(back), xs, rtol=1e-8, atol=atol)
            np.testing.assert_allclose(float(ild), -float(ld), rtol=1e-9, atol=atol * len(xs))
