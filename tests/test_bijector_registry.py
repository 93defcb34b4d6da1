"""The constraint -> bijector registry, the new constraints, and the parameter maps built on it.

References: NumPyro's ``biject_to`` (float64) for the support maps, the constraints'
own ``check`` on the images, and vikl's historical parameter formulas (written out
here) for bit-identity of the parameter maps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions.constraints as nc
import pytest
from numpyro.distributions.transforms import biject_to

import vikl
from tests.conftest import tol
from vikl import bijectors as B
from vikl import constraints as C
from vikl._params import constrain, unconstrain

LOW = np.array([-1.0, 0.5, 2.0])
HIGH = np.array([1.0, 0.75, 9.0])

# vikl constraint -> (expected bijector type name, unconstrained shape, NumPyro constraint or None)
TABLE = {
    "real": (C.real, "Identity", (4, 3), nc.real),
    "real_vector": (C.real_vector, "Identity", (4, 3), nc.real_vector),
    "logit": (C.logit, "Identity", (4, 3), None),
    "logits_vector": (C.logits_vector, "Identity", (4, 3), None),
    "positive": (C.positive, "Exp", (4, 3), nc.positive),
    "positive_vector": (C.positive_vector, "Exp", (4, 3), None),
    "unit_interval": (C.unit_interval, "Sigmoid", (4, 3), nc.unit_interval),
    "interval": (C.interval(LOW, HIGH), "Interval", (4, 3), nc.interval(LOW, HIGH)),
    "greater_than": (C.greater_than(LOW), "GreaterThan", (4, 3), nc.greater_than(LOW)),
    "less_than": (C.less_than(HIGH), "LessThan", (4, 3), nc.less_than(HIGH)),
    "ordered_vector": (C.ordered_vector, "Ordered", (4, 3), nc.ordered_vector),
    "corr_cholesky": (C.corr_cholesky, "CorrCholesky", (4, 6), nc.corr_cholesky),
    "lower_cholesky": (C.lower_cholesky, "LowerCholesky", (4, 6), nc.lower_cholesky),
    "simplex": (C.simplex, "SoftmaxCentered", (4, 3), None),  # NumPyro: stick-breaking
    "positive_definite": (C.positive_definite, "Chain", (4, 6), nc.positive_definite),
}


def _u(shape, dtype, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_constraint_has_its_bijector_and_lands_in_the_set(name, dtype):
    c, expected, shape, _ = TABLE[name]
    b = B.bijector_for(c)
    assert type(b).__name__ == expected
    u = _u(shape, dtype)
    if isinstance(b, (B.Interval, B.GreaterThan, B.LessThan)):
        b = type(b)(*(jnp.asarray(v, dtype) for v in jax.tree_util.tree_leaves(b)))
    y = b.forward(u)
    assert y.dtype == dtype
    assert bool(jnp.all(c.check(y))), (name, y)
    back = b.inverse(y)
    np.testing.assert_allclose(np.asarray(back), np.asarray(u), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", sorted(k for k, v in TABLE.items() if v[3] is not None))
def test_support_maps_agree_with_numpyro_biject_to(name):
    c, _, shape, numpyro_c = TABLE[name]
    with jax.enable_x64(True):
        b = B.bijector_for(c)
        u = _u(shape, jnp.float64, seed=1)
        y, ldj = b.forward_and_log_det(u)
        # elementwise bijectors give per-coordinate log-dets: sum over the support's event axes
        extra = c.event_dim - (b.event_ndims_out if not b.is_elementwise else 0)
        ldj = jnp.sum(ldj, axis=tuple(range(-extra, 0))) if extra > 0 else ldj
        t = biject_to(numpyro_c)
        with jax.numpy_dtype_promotion("standard"):  # NumPyro mixes ints and floats inside
            y_ref = t(u)
            ldj_ref = t.log_abs_det_jacobian(u, y_ref)
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ldj, ldj_ref, rtol=1e-12, atol=1e-12)


def test_parameter_maps_are_bit_identical_to_vikls_historical_ones(dtype):
    u = _u((2, 3), dtype, seed=2)
    simplex = B.bijector_for(C.simplex, parameter=True)
    zeros = jnp.zeros((2, 1), dtype)
    old = jax.nn.softmax(jnp.concatenate([u, zeros], axis=-1), axis=-1)
    assert np.array_equal(simplex.forward(u), old)
    logx = jnp.log(old)
    assert np.array_equal(simplex.inverse(old), logx[..., :-1] - logx[..., -1:])
    assert np.array_equal(B.bijector_for(C.unit_interval, parameter=True).forward(u),
                          jax.nn.sigmoid(u))
    assert np.array_equal(B.bijector_for(C.positive, parameter=True).forward(u), jnp.exp(u))
    assert np.array_equal(B.bijector_for(C.positive, parameter=True).inverse(jnp.exp(u)),
                          jnp.log(jnp.exp(u)))


def test_lower_cholesky_parameter_map_is_row_scales_times_a_unit_lower_factor(dtype):
    m = _u((2, 3, 3), dtype, seed=3)
    chol = B.bijector_for(C.lower_cholesky, parameter=True)
    y = chol.forward(m)
    assert y.shape == (2, 3, 3) and y.dtype == dtype  # the u-shape of saved fits is kept
    m64 = np.asarray(m, np.float64)
    want = np.stack([np.diag(np.exp(np.diag(u))) @ (np.tril(u, -1) + np.eye(3)) for u in m64])
    np.testing.assert_allclose(y, want, rtol=tol(dtype))
    back = np.asarray(chol.inverse(y), np.float64)
    np.testing.assert_allclose(back, np.tril(m64), rtol=tol(dtype) * 10, atol=tol(dtype) * 10)
    # Scale-free coordinates: scaling row i of the factor by c_i moves only u_ii (by log c_i).
    c = np.array([1e-3, 1.0, 1e3])
    scaled = chol.inverse(jnp.asarray(c[:, None] * np.asarray(y, np.float64), dtype))
    np.testing.assert_allclose(np.tril(np.asarray(scaled, np.float64), -1), np.tril(back, -1),
                               rtol=tol(dtype) * 10, atol=tol(dtype) * 10)


@pytest.mark.parametrize("c", [C.lower_cholesky, C.positive_definite], ids=["tril", "spd"])
def test_matrix_maps_log_det_matches_jacfwd(c):
    # the Jacobian between the n(n+1)/2 lower-triangular coordinates of input and output
    with jax.enable_x64(True):
        n = 3
        chol = B.bijector_for(c, parameter=True)
        rows, cols = np.tril_indices(n)

        def on_free(v):  # the map restricted to the n(n+1)/2 lower-triangular coordinates
            m = jnp.zeros((n, n), jnp.float64).at[rows, cols].set(v)
            return chol.forward(m)[rows, cols]

        v = _u((n * (n + 1) // 2,), jnp.float64, seed=4)
        if c is C.positive_definite:
            on_free = lambda v: chol.forward(v)[rows, cols]  # noqa: E731 (vector input)
            m = v
        else:
            m = jnp.zeros((n, n), jnp.float64).at[rows, cols].set(v)
        slog = jnp.linalg.slogdet(jax.jacfwd(on_free)(v))[1]
        np.testing.assert_allclose(chol.forward_log_det_jacobian(m), slog, rtol=1e-12)
        y = chol.forward(m)
        np.testing.assert_allclose(chol.inverse_log_det_jacobian(y), -slog, rtol=1e-12)


def test_params_go_through_the_registry(monkeypatch):
    # One source of truth: a registration for a constraint changes how fit trains it.
    d = vikl.Normal(jnp.zeros(2), jnp.ones(2) * 2.0)
    assert np.allclose(unconstrain(d)["scale"], np.log(2.0))
    from vikl.bijectors import _registry

    monkeypatch.setitem(_registry._TABLE, type(C.positive), lambda c: B.Softplus())
    params = unconstrain(d)
    np.testing.assert_allclose(params["scale"], np.log(np.expm1(2.0)), rtol=1e-6)
    np.testing.assert_allclose(constrain(d, params).scale, [2.0, 2.0], rtol=1e-6)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "c", [C.nonnegative_integer, C.positive_integer], ids=["nonnegative", "positive"]
)
def test_integers_have_no_bijector(c):
    with pytest.raises(ValueError, match=f"{c.name} is discrete"):
        B.bijector_for(c)
    with pytest.raises(NotImplementedError):
        B.bijector_for(c)


def test_fixed_data_and_unknown_constraints_are_clear_errors():
    with pytest.raises(B.NoBijectorError, match="fixed .not trainable."):
        B.bijector_for(C.fixed)

    class Even(C.Constraint):
        name = "even_vector"

    with pytest.raises(ValueError, match=r"no bijector is registered for constraint "
                       r"constraints.even_vector .*register_bijector"):
        B.bijector_for(Even())
    with pytest.raises(TypeError, match="expects a vikl.constraints.Constraint"):
        B.bijector_for(nc.positive)
    with pytest.raises(ValueError, match=r"_LowerCholeskyMatrix: x must be square"):
        B.bijector_for(C.lower_cholesky, parameter=True).forward(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"at least 2 axis"):
        B.bijector_for(C.lower_cholesky, parameter=True).inverse(jnp.zeros(3))


def test_register_bijector_for_a_class_and_an_instance(monkeypatch):
    from vikl.bijectors import _registry

    monkeypatch.setattr(_registry, "_TABLE", dict(_registry._TABLE))
    monkeypatch.setattr(_registry, "_PARAMETER_TABLE", dict(_registry._PARAMETER_TABLE))

    class Above(C.Constraint):
        name = "above"

        def __init__(self, low):
            self.low = low

    B.register_bijector(Above, lambda c: B.GreaterThan(c.low))
    b = B.bijector_for(Above(3.0))
    assert isinstance(b, B.GreaterThan) and float(b.low) == 3.0
    special = Above(1.0)
    B.register_bijector(special, lambda c: B.Softplus())
    assert isinstance(B.bijector_for(special), B.Softplus)
    assert isinstance(B.bijector_for(Above(1.0)), B.GreaterThan)
    # a new registration for lower_cholesky replaces its parameter map too
    B.register_bijector(C.lower_cholesky, lambda c: B.Identity())
    assert isinstance(B.bijector_for(C.lower_cholesky, parameter=True), B.Identity)
    with pytest.raises(TypeError, match="must be a vikl.constraints.Constraint subclass"):
        B.register_bijector(float, lambda c: B.Exp())
    with pytest.raises(TypeError, match="factory must be a callable"):
        B.register_bijector(Above, B.Exp())
    B.register_bijector(Above, lambda c: "not a bijector")
    with pytest.raises(TypeError, match="returned str, not a vikl.bijectors.Bijector"):
        B.bijector_for(Above(0.0))


# ----------------------------------------------------------------------------- new constraints
def test_new_constraints_check_and_describe(dtype):
    a = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    iv = C.interval(0.0, 2.0)
    assert np.array_equal(iv.check(a([-0.1, 0.0, 1.0, 2.0, 2.1, np.nan])),
                          [False, True, True, True, False, False])
    assert iv.description == "in [0, 2]" and repr(iv) == "constraints.interval(0, 2)"
    gt, lt = C.greater_than(1.0), C.less_than(-1.0)
    assert np.array_equal(gt.check(a([1.0, 1.5, np.inf, np.nan])), [False, True, False, False])
    assert np.array_equal(lt.check(a([-1.0, -1.5, -np.inf])), [False, True, False])
    ov = C.ordered_vector
    assert np.array_equal(ov.check(a([[0.0, 1.0, 3.0], [0.0, 0.0, 1.0], [0.0, np.inf, np.inf]])),
                          [True, False, False])
    s = 1 / np.sqrt(2)
    good = a([[1.0, 0.0], [s, s]])
    bad_norm = a([[1.0, 0.0], [0.5, 0.5]])
    bad_upper = a([[s, s], [0.0, 1.0]])
    bad_diag = a([[1.0, 0.0], [s, -s]])
    assert np.array_equal(C.corr_cholesky.check(jnp.stack([good, bad_norm, bad_upper, bad_diag])),
                          [True, False, False, False])
    pd = C.positive_definite
    mats = a([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.5], [0.0, 1.0]],
              [[np.nan, 0.0], [0.0, 1.0]]])
    assert np.array_equal(pd.check(mats), [True, False, False, False])
    assert "row norms" in C.corr_cholesky.describe_violation(np.asarray(bad_norm))


def test_new_constraint_constructors_reject_bad_bounds():
    with pytest.raises(ValueError, match="constraints.interval: low must be < high"):
        C.interval(1.0, 0.0)
    with pytest.raises(ValueError, match="constraints.interval: low must be < high"):
        C.interval(np.zeros(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="greater_than: low must not be NaN"):
        C.greater_than(np.nan)
    with pytest.raises(TypeError, match="less_than: high must be real numbers"):
        C.less_than("a")
    # traced bounds (a Uniform's support under jit) are accepted unchecked
    out = jax.jit(lambda lo, hi: B.bijector_for(C.interval(lo, hi)).forward(jnp.zeros(2)))(
        jnp.zeros(2), jnp.ones(2) * 4.0
    )
    np.testing.assert_allclose(out, [2.0, 2.0])


def test_new_names_are_exported():
    for name in ["interval", "greater_than", "less_than", "ordered_vector", "corr_cholesky",
                 "positive_definite"]:
        assert name in C.__all__ and hasattr(vikl.constraints, name)
    for name in ["bijector_for", "register_bijector", "NoBijectorError", "Softplus", "Sigmoid",
                 "Interval", "Affine", "AffineTriL", "GreaterThan", "LessThan", "Power", "Tanh"]:
        assert hasattr(vikl.bijectors, name), name
