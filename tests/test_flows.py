"""RealNVP: normalization by quadrature, change of variables by autodiff Jacobians, shapes, init."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import vikl
from vikl import families


def _perturbed(flow, seed, size=0.5):
    """The flow with every weight moved by size * N(0, 1): far from the identity."""
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree_util.tree_flatten(flow)
    leaves = [x + jnp.asarray(size * rng.standard_normal(x.shape), x.dtype) for x in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


@pytest.fixture(scope="module")
def flow2d():
    f = vikl.RealNVP.initialize(2, jax.random.PRNGKey(0), num_layers=3, hidden_size=8)
    return _perturbed(f, 1)


def test_log_prob_integrates_to_one_in_2d(flow2d):
    # Riemann sum on a fine grid wide enough to hold the mass (float64 reference sum).
    g = np.linspace(-14.0, 14.0, 1001)
    xx, yy = np.meshgrid(g, g)
    pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
    dens = np.exp(np.asarray(jax.jit(flow2d.log_prob)(pts), np.float64))
    total = dens.sum() * (g[1] - g[0]) ** 2
    assert abs(total - 1.0) < 2e-3


def test_log_prob_matches_change_of_variables(flow2d):
    # log q(x) = log N(z) - log|det dx/dz|, with the Jacobian from jax.jacfwd of the sample map
    # (independent of the coupling layers' own log-det bookkeeping).
    z = jax.random.normal(jax.random.PRNGKey(2), (6, 2))

    def forward(zi):
        y, _ = flow2d._forward(zi)
        return flow2d.loc + flow2d.scale * y

    @jax.jit
    def run(z):
        x = jax.vmap(forward)(z)
        xs, lp = flow2d.sample_and_log_prob(jax.random.PRNGKey(3), (5,))
        return x, jax.vmap(jax.jacfwd(forward))(z), flow2d.log_prob(x), xs, lp, flow2d.log_prob(xs)

    x, jac, lp_x, xs, lp, lp_xs = run(z)
    logdet = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    ref = scipy.stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(np.asarray(z, np.float64)) - logdet
    np.testing.assert_allclose(lp_x, ref, rtol=1e-4, atol=1e-4)
    # sample_and_log_prob (forward pass) agrees with log_prob (inverse pass)
    np.testing.assert_allclose(lp_xs, lp, rtol=1e-5, atol=1e-5)


def test_identity_initialization_is_the_base_gaussian():
    f = families.real_nvp(3, jax.random.PRNGKey(0), num_layers=2, hidden_size=5, scale=2.0)
    x = jnp.array([[0.1, -2.0, 3.0], [1.0, 1.0, 1.0]])
    ref = scipy.stats.norm(0, 2).logpdf(np.asarray(x, np.float64)).sum(-1)
    np.testing.assert_allclose(jax.jit(f.log_prob)(x), ref, rtol=1e-6)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_shapes_and_inverse(dim):
    f = _perturbed(vikl.RealNVP.initialize(dim, jax.random.PRNGKey(dim), num_layers=3, hidden_size=4),
                   9, 0.3)
    assert f.event_shape == (dim,) and f.batch_shape == ()

    @jax.jit
    def run(f):
        x = f.sample(jax.random.PRNGKey(0), (4, 3))
        z, _ = f._inverse((x - f.loc) / f.scale)
        y, _ = f._forward(z)
        return x, f.log_prob(x), f.loc + f.scale * y

    x, lp, x2 = run(f)
    assert x.shape == (4, 3, dim) and lp.shape == (4, 3)
    np.testing.assert_allclose(x2, x, rtol=1e-5, atol=1e-5)


def test_float64(dtype):
    f = vikl.RealNVP.initialize(2, jax.random.PRNGKey(0), num_layers=2, hidden_size=4, dtype=dtype)
    x, lp = jax.jit(lambda f: f.sample_and_log_prob(jax.random.PRNGKey(1), (3,)))(f)
    assert x.dtype == dtype and lp.dtype == dtype


def test_jit_vmap_grad(flow2d):
    x = jnp.array([0.3, -0.2])
    xs = jnp.stack([x, -x])

    @jax.jit
    def run(f):
        return f.log_prob(xs), jax.vmap(f.log_prob)(xs), jax.grad(lambda f: f.log_prob(x))(f)

    lp, lp_vmap, g = run(flow2d)
    np.testing.assert_allclose(lp_vmap, lp, rtol=1e-6)
    assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(g))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_layers"):
        vikl.RealNVP.initialize(2, jax.random.PRNGKey(0), num_layers=0)
    f = vikl.RealNVP.initialize(2, jax.random.PRNGKey(0), num_layers=1, hidden_size=3)
    layer = dict(f.weights[0], w3=jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"weights\[0\]\['w3'\]"):
        vikl.RealNVP(f.loc, f.scale, (layer,))
    with pytest.raises(ValueError, match="scale"):
        vikl.RealNVP(f.loc, -f.scale, f.weights)
    assert "num_layers=1" in repr(f) and math.isfinite(float(jax.jit(f.log_prob)(jnp.zeros(2))))
