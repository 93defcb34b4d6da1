"""Elementwise and affine bijectors: values, log-Jacobians, saturated ends, shapes, learning.

References: NumPyro's transforms (``numpyro.distributions.transforms``) in float64,
``jax.jacfwd`` + ``slogdet`` in float64, and mpmath at 40 digits for the saturated
ends -- never the formula under test.
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import numpyro.distributions.transforms as T
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import vikl
from vikl import bijectors as B
from vikl._params import constrain, unconstrain

mpmath.mp.dps = 40
MPMATH_DPS = 40  # every test of this module runs at this precision (conftest)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LOW = np.array([-1.0, 0.0, 2.0, -5.0, 1e-3])
HIGH = np.array([1.0, 0.5, 7.0, -4.0, 3.0])
SHIFT = np.array([0.5, -1.0, 2.0, 0.0, 3.0])
SCALE = np.array([0.1, 1.0, 2.5, 7.0, 0.01])


def _a(x, dtype):
    return jnp.asarray(np.asarray(x, np.float64), dtype)


# name -> (vikl bijector(dtype), NumPyro transform (float64), domain of x: "real" or "positive")
CASES = {
    "Exp": (lambda d: B.Exp(), lambda: T.ExpTransform(), "real"),
    "Softplus": (lambda d: B.Softplus(), lambda: T.SoftplusTransform(), "real"),
    "Sigmoid": (lambda d: B.Sigmoid(), lambda: T.SigmoidTransform(), "real"),
    "Interval": (
        lambda d: B.Interval(_a(LOW, d), _a(HIGH, d)),
        lambda: T.ComposeTransform(
            [T.SigmoidTransform(), T.AffineTransform(jnp.asarray(LOW), jnp.asarray(HIGH - LOW))]
        ),
        "real",
    ),
    "GreaterThan": (
        lambda d: B.GreaterThan(_a(LOW, d)),
        lambda: T.ComposeTransform([T.ExpTransform(), T.AffineTransform(jnp.asarray(LOW), 1.0)]),
        "real",
    ),
    "LessThan": (
        lambda d: B.LessThan(_a(HIGH, d)),
        lambda: T.ComposeTransform([T.ExpTransform(), T.AffineTransform(jnp.asarray(HIGH), -1.0)]),
        "real",
    ),
    "Affine": (
        lambda d: B.Affine(_a(SHIFT, d), _a(SCALE, d)),
        lambda: T.AffineTransform(jnp.asarray(SHIFT), jnp.asarray(SCALE)),
        "real",
    ),
    "Power": (
        lambda d: B.Power(_a([0.5, 2.0, 3.0, -1.5, 1.0], d)),
        lambda: T.PowerTransform(jnp.asarray([0.5, 2.0, 3.0, -1.5, 1.0])),
        "positive",
    ),
}


def _x(domain, dtype, shape=(4, 5), seed=0):
    z = np.random.default_rng(seed).normal(size=shape) * 2.0
    return _a(np.exp(z / 2) if domain == "positive" else z, dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_det_and_value_match_numpyro(name, dtype):
    make, reference, domain = CASES[name]
    b = make(dtype)
    x = _x(domain, dtype)
    y, ldj = b.forward_and_log_det(x)
    assert y.dtype == dtype and ldj.dtype == dtype and ldj.shape == x.shape
    with jax.enable_x64(True):
        t = reference()
        x64 = jnp.asarray(np.asarray(x, np.float64))
        y_ref = t(x64)
        ldj_ref = t.log_abs_det_jacobian(x64, y_ref)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(y, np.float64), y_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(ldj, np.float64), ldj_ref, rtol=rtol, atol=rtol)


def _elementwise_cases():
    out = {k: v[0] for k, v in CASES.items()}
    out["Tanh"] = lambda d: B.Tanh()
    out["Identity"] = lambda d: B.Identity()
    return out


@pytest.mark.parametrize("name", sorted(_elementwise_cases()))
def test_log_det_matches_jacfwd_and_round_trips(name):
    with jax.enable_x64(True):
        b = _elementwise_cases()[name](np.float64)
        domain = CASES.get(name, (None, None, "real"))[2]
        x = _x(domain, np.float64, shape=(5,), seed=3)
        jac = jax.jacfwd(b.forward)(x)
        assert np.allclose(jac, np.diag(np.diag(jac)), atol=0)  # elementwise: diagonal
        np.testing.assert_allclose(b.forward_log_det_jacobian(x), np.log(np.abs(np.diag(jac))),
                                   rtol=1e-12, atol=1e-12)
        y = b.forward(x)
        x_back, ildj = b.inverse_and_log_det(y)
        np.testing.assert_allclose(x_back, x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ildj, -b.forward_log_det_jacobian(x), rtol=1e-10, atol=1e-12)
        assert b.is_elementwise


@pytest.mark.parametrize("name", sorted(_elementwise_cases()))
def test_round_trip(name, dtype):
    b = _elementwise_cases()[name](dtype)
    domain = CASES.get(name, (None, None, "real"))[2]
    x = _x(domain, dtype, seed=5) / 2  # |x| <~ 4: away from float32 saturation
    y, fldj = b.forward_and_log_det(x)
    x_back, ildj = b.inverse_and_log_det(y)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(ildj), -np.asarray(fldj), rtol=rtol, atol=rtol)
    assert b.inverse(y).dtype == dtype


# ----------------------------------------------------------------------------- saturated ends
def _mp_log_sigmoid(x):
    return -mpmath.log1p(mpmath.exp(-mpmath.mpf(x)))


SATURATED = {
    # name, bijector, x, exact forward log-det (mpmath)
    "Sigmoid+40": (B.Sigmoid(), 40.0, lambda x: _mp_log_sigmoid(x) + _mp_log_sigmoid(-x)),
    "Sigmoid-40": (B.Sigmoid(), -40.0, lambda x: _mp_log_sigmoid(x) + _mp_log_sigmoid(-x)),
    "Sigmoid+100": (B.Sigmoid(), 100.0, lambda x: _mp_log_sigmoid(x) + _mp_log_sigmoid(-x)),
    "Softplus-100": (B.Softplus(), -100.0, _mp_log_sigmoid),
    "Softplus+100": (B.Softplus(), 100.0, _mp_log_sigmoid),
    "Exp+90": (B.Exp(), 90.0, lambda x: mpmath.mpf(x)),
    "Exp-90": (B.Exp(), -90.0, lambda x: mpmath.mpf(x)),
    "Tanh+40": (B.Tanh(), 40.0, lambda x: mpmath.log(1 - mpmath.tanh(mpmath.mpf(x)) ** 2)),
    "Tanh-40": (B.Tanh(), -40.0, lambda x: mpmath.log(1 - mpmath.tanh(mpmath.mpf(x)) ** 2)),
    "Interval+40": (
        B.Interval(np.float32(-1.0), np.float32(3.0)),
        40.0,
        lambda x: mpmath.log(4) + _mp_log_sigmoid(x) + _mp_log_sigmoid(-x),
    ),
}


@pytest.mark.parametrize("case", sorted(SATURATED))
def test_saturated_ends_give_finite_correct_log_dets_and_gradients(case):
    b, x, exact = SATURATED[case]
    x = jnp.float32(x)
    ldj = b.forward_log_det_jacobian(x)
    assert np.isfinite(ldj)
    np.testing.assert_allclose(float(ldj), float(exact(float(x))), rtol=1e-6, atol=1e-30)
    g = jax.grad(lambda t: b.forward_log_det_jacobian(t))(x)
    assert np.isfinite(g)
    y = b.forward(x)
    assert not np.isnan(y)


def test_softplus_inverse_is_accurate_at_both_ends(dtype):
    ys = [1e-30, 1e-6, 0.5, np.log(2.0), 1.0, 20.0, 60.0]
    if dtype == np.float64:
        ys += [1e-300, 700.0]
    y_in = _a(ys, dtype)
    x, ildj = B.Softplus().inverse_and_log_det(y_in)
    ys = np.asarray(y_in, np.float64)  # the references at the rounded inputs
    ref_x = [float(mpmath.log(mpmath.expm1(mpmath.mpf(y)))) for y in ys]
    ref_ildj = [float(-mpmath.log(-mpmath.expm1(-mpmath.mpf(y)))) for y in ys]
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    # x = y + log(1 - exp(-y)) carries an absolute rounding error ~ eps * y (x ~ 0 at y = log 2)
    atol = 4 * np.finfo(dtype).eps * ys
    assert np.all(np.abs(np.asarray(x, np.float64) - ref_x) <= atol + rtol * np.abs(ref_x))
    np.testing.assert_allclose(np.asarray(ildj, np.float64), ref_ildj, rtol=rtol, atol=1e-30)
    g = jax.grad(lambda y: jnp.sum(B.Softplus().inverse_and_log_det(y)[1]))(_a(ys, dtype))
    assert np.all(np.isfinite(g))


def test_interval_keeps_accuracy_near_both_bounds():
    with jax.enable_x64(True):
        b = B.Interval(jnp.float64(2.0), jnp.float64(5.0))
        xs = jnp.asarray([-30.0, -5.0, 0.0, 5.0, 30.0])
        y = b.forward(xs)
        ref = [2 + 3 / (1 + mpmath.exp(-mpmath.mpf(float(x)))) for x in xs]
        gaps = [float(5 - r) for r in ref]
        # the distance to the upper bound keeps its relative accuracy (x = 30: 2.8e-13)
        np.testing.assert_allclose(5.0 - np.asarray(y)[3:], gaps[3:], rtol=1e-3)
        np.testing.assert_allclose(y, [float(r) for r in ref], rtol=1e-15)
        back = b.inverse(y)
        np.testing.assert_allclose(back, xs, rtol=1e-3, atol=1e-9)


# ----------------------------------------------------------------------------- affine lower-triangular
def _tril(n, dtype, batch=()):
    rng = np.random.default_rng(7)
    m = np.tril(rng.normal(size=batch + (n, n)) * 0.5)
    idx = np.arange(n)
    m[..., idx, idx] = np.exp(rng.normal(size=batch + (n,)) * 0.5)
    return _a(m, dtype)


def test_affine_tril_matches_numpyro_and_jacfwd(dtype):
    n = 3
    shift, tril = _a([0.3, -1.0, 2.0], dtype), _tril(n, dtype)
    b = B.AffineTriL(shift, tril)
    x = _x("real", dtype, shape=(4, n))
    y, ldj = b.forward_and_log_det(x)
    assert y.shape == (4, n) and ldj.shape == (4,)
    with jax.enable_x64(True):
        t = T.LowerCholeskyAffine(jnp.asarray(np.asarray(shift, np.float64)),
                                  jnp.asarray(np.asarray(tril, np.float64)))
        x64 = jnp.asarray(np.asarray(x, np.float64))
        y_ref = t(x64)
        ldj_ref = t.log_abs_det_jacobian(x64, y_ref)
        b64 = B.AffineTriL(jnp.asarray(np.asarray(shift, np.float64)),
                           jnp.asarray(np.asarray(tril, np.float64)))
        slog = jnp.linalg.slogdet(jax.jacfwd(b64.forward)(x64[0]))[1]
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(y, np.float64), y_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.asarray(ldj, np.float64), ldj_ref, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(float(ldj[0]), float(slog), rtol=rtol, atol=rtol)
    x_back, ildj = b.inverse_and_log_det(y)
    np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), rtol=10 * rtol, atol=10 * rtol)
    np.testing.assert_allclose(np.asarray(ildj), -np.asarray(ldj), rtol=rtol)
    assert b.is_constant_jacobian and not b.is_elementwise


def test_affine_tril_batch_broadcasting(dtype):
    n = 2
    b = B.AffineTriL(_a(np.zeros((3, n)), dtype), _tril(n, dtype, batch=(3,)))
    assert b.batch_shape == (3,)
    x = _x("real", dtype, shape=(5, 1, n))
    y, ldj = b.forward_and_log_det(x)
    assert y.shape == (5, 3, n) and ldj.shape == (5, 3)
    x_back, ildj = b.inverse_and_log_det(y)
    assert x_back.shape == (5, 3, n) and ildj.shape == (5, 3)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(x_back), np.broadcast_to(np.asarray(x), (5, 3, n)),
                               atol=tol)
    for i in range(3):  # each batch member is its own map
        one = B.AffineTriL(b.shift[i], b.scale_tril[i])
        np.testing.assert_allclose(np.asarray(y[:, i]), np.asarray(one.forward(x[:, 0])),
                                   rtol=1e-6)


def test_elementwise_batch_broadcasting(dtype):
    b = B.Affine(_a(SHIFT, dtype), _a(SCALE, dtype))
    assert b.batch_shape == (5,)
    y, ldj = b.forward_and_log_det(_a(np.ones((2, 1)), dtype))
    assert y.shape == (2, 5) and ldj.shape == (2, 5)
    np.testing.assert_allclose(np.asarray(ldj[1], np.float64), np.log(SCALE), rtol=1e-6)
    y, ldj = B.Interval(_a(LOW, dtype), _a(HIGH, dtype)).forward_and_log_det(_a(0.0, dtype))
    assert y.shape == (5,) and ldj.shape == (5,)
    np.testing.assert_allclose(np.asarray(y, np.float64), (LOW + HIGH) / 2, rtol=1e-6)


# ----------------------------------------------------------------------------- bad input
def test_wrong_event_shape_is_a_clear_error():
    b = B.AffineTriL(jnp.zeros(3), jnp.eye(3))
    with pytest.raises(ValueError, match=r"AffineTriL: the event shape of x must be \(3,\)"):
        b.forward(jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least 1 axis"):
        b.inverse(jnp.float32(1.0))
    with pytest.raises(ValueError, match="event shape of x"):  # static shapes: also under jit
        jax.jit(b.forward)(jnp.zeros(2))
    with pytest.raises(ValueError, match="does not broadcast with the bijector's batch_shape"):
        B.Affine(jnp.zeros(3), jnp.ones(3)).forward(jnp.zeros(2))
    with pytest.raises(ValueError, match="batch shape of x"):
        B.AffineTriL(jnp.zeros((2, 3)), jnp.broadcast_to(jnp.eye(3), (2, 3, 3))).forward(
            jnp.zeros((4, 3))
        )


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="Interval: low must be < high"):
        B.Interval(1.0, 1.0)
    with pytest.raises(ValueError, match="Power: exponent must be nonzero"):
        B.Power(0.0)
    with pytest.raises(ValueError, match="Affine: scale must be > 0"):
        B.Affine(0.0, -1.0)
    with pytest.raises(ValueError, match="shift has size 2 but scale_tril is 3 x 3"):
        B.AffineTriL(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="scale_tril must be square lower-triangular"):
        B.AffineTriL(jnp.zeros(2), jnp.ones((2, 2)))


# ----------------------------------------------------------------------------- learnable
def test_affine_parameters_are_learnable_through_the_registry_maps():
    b = B.Affine(jnp.asarray([0.5, -1.0]), jnp.asarray([2.0, 0.25]))
    params = unconstrain(b)
    np.testing.assert_allclose(params["scale"], np.log([2.0, 0.25]), rtol=1e-6)
    np.testing.assert_allclose(params["shift"], [0.5, -1.0])
    back = constrain(b, params)
    assert type(back) is B.Affine
    np.testing.assert_allclose(back.scale, b.scale, rtol=1e-6)
    assert set(unconstrain(B.Interval(0.0, 1.0))) == set()  # fixed bounds are not trained

    def loss(p):  # y = shift + scale x at x = 1: d/d log(scale) = scale
        return jnp.sum(constrain(b, p).forward(jnp.ones(2)))

    g = jax.grad(loss)(params)
    np.testing.assert_allclose(g["scale"], [2.0, 0.25], rtol=1e-6)
    np.testing.assert_allclose(g["shift"], [1.0, 1.0])


def test_affine_tril_learnable_and_gradients_finite(dtype):
    b = B.AffineTriL(_a([0.0, 1.0], dtype), _tril(2, dtype))
    params = unconstrain(b)
    assert params["scale_tril"].shape == (2, 2) and params["shift"].shape == (2,)

    def loss(p):
        y, ldj = constrain(b, p).forward_and_log_det(_a([[1.0, -2.0]], dtype))
        return jnp.sum(y**2) - jnp.sum(ldj)

    g = jax.grad(loss)(params)
    assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(g))
    assert g["scale_tril"].dtype == dtype


# ----------------------------------------------------------------------------- property
@SETTINGS
@given(
    name=hst.sampled_from(sorted(_elementwise_cases())),
    x=hst.floats(-8.0, 8.0, allow_nan=False),
)
def test_round_trip_property(name, x):
    with jax.enable_x64(True):
        b = _elementwise_cases()[name](np.float64)
        domain = CASES.get(name, (None, None, "real"))[2]
        xs = jnp.full((5,), np.exp(x) if domain == "positive" else x, jnp.float64)
        y, fldj = b.forward_and_log_det(xs)
        back, ildj = b.inverse_and_log_det(y)
        assert np.all(np.isfinite(fldj)) and np.all(np.isfinite(ildj))
        # inverse condition number: the sigmoid family loses log-odds accuracy ~ exp(|x|) eps
        tol = 1e-12 * np.exp(2 * abs(x)) + 1e-9
        np.testing.assert_allclose(back, xs, rtol=tol, atol=tol)


def test_bijectors_are_pytrees_under_jit_and_vmap():
    b = B.Affine(jnp.zeros(3), jnp.ones(3))
    out = jax.jit(lambda bb, x: bb.forward(x))(b, jnp.ones(3))
    np.testing.assert_allclose(out, np.ones(3))
    bs = jax.vmap(lambda s: B.Affine(jnp.zeros(3), s))(jnp.ones((2, 3)) * 2.0)
    assert bs.scale.shape == (2, 3)
    assert vikl.bijectors.Sigmoid().same_as(vikl.bijectors.Sigmoid())
