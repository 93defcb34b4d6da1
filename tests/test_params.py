"""Unconstrained parameters: vikl._params.unconstrain / constrain and the constraints' bijections."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from vikl import _constraints as C
from vikl._params import constrain, num_params, register_params, unconstrain
from vikl.bijectors import bijector_for


def _families():
    """(name, distribution, {field: expected unconstrained value computed with NumPy})."""
    out = []
    loc = np.array([0.5, -1.0, 2.0], np.float32)
    scale = np.array([0.3, 1.0, 4.0], np.float32)
    out.append(("Normal", vikl.Normal(loc, scale), {"loc": loc, "scale": np.log(scale)}))
    out.append((
        "MultivariateNormalDiag",
        vikl.MultivariateNormalDiag(loc, scale),
        {"loc": loc, "scale_diag": np.log(scale)},
    ))
    tril = np.array([[1.5, 0, 0], [0.3, 0.7, 0], [-0.2, 0.4, 2.0]], np.float32)
    raw = tril / np.diag(tril)[:, None]  # diag(scales) x unit-lower: the ratios below the diagonal
    raw[np.diag_indices(3)] = np.log(np.diag(tril))
    out.append(("MultivariateNormal", vikl.MultivariateNormal(loc, scale_tril=tril), {"loc": loc, "scale_tril": raw}))
    w = np.array([[0.1, 0.2], [0.3, -0.4], [0.5, 0.6]], np.float32)
    out.append((
        "LowRankMultivariateNormal",
        vikl.LowRankMultivariateNormal(loc, w, scale),
        {"loc": loc, "cov_factor": w, "cov_diag": np.log(scale)},
    ))
    probs = np.array([0.2, 0.5, 0.3], np.float32)
    out.append(("Categorical(probs)", vikl.Categorical(probs=probs),
                {"_probs": np.log(probs[:2]) - np.log(probs[2])}))
    out.append(("Categorical(logits)", vikl.Categorical(logits=loc), {"_logits": loc}))
    out.append(("Bernoulli", vikl.Bernoulli(probs=np.float32(0.25)), {"_probs": np.log(0.25 / 0.75)}))
    out.append(("Poisson", vikl.Poisson(scale), {"rate": np.log(scale)}))
    return out


FAMILIES = _families()
_V = np.array([[0.1, -0.3, 1.2], [2.0, 0.0, -1.0]], np.float32)
POINTS = {
    "Normal": _V, "MultivariateNormalDiag": _V, "MultivariateNormal": _V,
    "LowRankMultivariateNormal": _V, "Categorical(probs)": np.array([0, 2, 1]),
    "Categorical(logits)": np.array([1, 0]), "Bernoulli": np.array([0.0, 1.0], np.float32),
    "Poisson": np.array([[0.0, 3.0, 1.0]], np.float32),
}


@pytest.mark.parametrize("name,dist,expected", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_unconstrain_matches_numpy_and_round_trips(name, dist, expected):
    params = unconstrain(dist)
    assert set(params) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(np.asarray(params[k]), v, rtol=2e-6, atol=2e-7)
    back = constrain(dist, params)
    assert type(back) is type(dist)
    for k in type(dist)._child_fields:
        a, b = getattr(dist, k), getattr(back, k)
        if a is None:
            assert b is None
        else:
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-6, atol=1e-7)
    # the rebuilt distribution computes the same log density
    x = POINTS[name]
    np.testing.assert_allclose(back.log_prob(x), dist.log_prob(x), rtol=1e-5, atol=1e-6)


def test_non_trainable_parameters_stay_fixed():
    d = vikl.Binomial(total_count=np.float32(10.0), probs=np.float32(0.3)) if hasattr(vikl, "Binomial") else None
    if d is None:
        pytest.skip("Binomial not available")
    params = unconstrain(d)
    assert all("count" not in k for k in params)
    back = constrain(d, jax.tree_util.tree_map(lambda u: u + 1.0, params))
    assert float(back.total_count) == 10.0


def test_empirical_samples_are_not_trainable():
    if not hasattr(vikl, "Empirical"):
        pytest.skip("Empirical not available")
    d = vikl.Empirical(jnp.arange(6.0).reshape(3, 2))
    assert jax.tree_util.tree_leaves(unconstrain(d)) == []


def test_child_distribution_and_weights_recurse():
    flow = vikl.RealNVP.initialize(2, jax.random.PRNGKey(0), num_layers=2, hidden_size=4)
    params = unconstrain(flow)
    assert set(params) == {"loc", "scale", "weights"}
    assert len(params["weights"]) == 2
    np.testing.assert_allclose(params["scale"], np.zeros(2))
    assert num_params(params) == 2 + 2 + 2 * (1 * 4 + 4 + 16 + 4 + 4 * 2 + 2)
    if hasattr(vikl, "Mixture"):
        comps = vikl.MultivariateNormalDiag(jnp.zeros((3, 2)), jnp.full((3, 2), 2.0))
        mix = vikl.Mixture(jnp.zeros(3), comps)
        p = unconstrain(mix)
        assert "components" in p
        np.testing.assert_allclose(p["components"]["scale_diag"], np.log(2.0) * np.ones((3, 2)), rtol=1e-6)
        back = constrain(mix, p)
        np.testing.assert_allclose(back.components.scale_diag, comps.scale_diag, rtol=1e-6)


def test_constrain_is_jittable_and_differentiable():
    d = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.array([[1.0, 0.0], [0.5, 2.0]]))
    x = jnp.array([0.3, -0.7])

    def f(params):
        return constrain(d, params).log_prob(x)

    params = unconstrain(d)
    g = jax.jit(jax.grad(f))(params)
    assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves(g))
    # gradient wrt the raw (log) diagonal, checked against central differences
    eps = 1e-3
    up = dict(params, scale_tril=params["scale_tril"].at[1, 1].add(eps))
    dn = dict(params, scale_tril=params["scale_tril"].at[1, 1].add(-eps))
    fd = (f(up) - f(dn)) / (2 * eps)
    np.testing.assert_allclose(g["scale_tril"][1, 1], fd, rtol=1e-2)
    # the strictly-upper part does not matter
    assert float(g["scale_tril"][0, 1]) == 0.0


def test_constrain_under_vmap():
    d = vikl.Normal(jnp.zeros(3), jnp.ones(3))
    params = unconstrain(d)
    batch = jax.tree_util.tree_map(lambda u: jnp.stack([u, u + 1.0]), params)
    out = jax.vmap(lambda p: constrain(d, p).scale)(batch)
    np.testing.assert_allclose(out[1], np.e * np.ones(3), rtol=1e-6)


@pytest.mark.parametrize(
    "c,shape",
    [(C.real, (4,)), (C.positive, (4,)), (C.unit_interval, (4,)), (C.simplex, (2, 3)), (C.lower_cholesky, (3, 3))],
    ids=["real", "positive", "unit_interval", "simplex", "lower_cholesky"],
)
def test_bijections_invert(c, shape):
    u = jax.random.normal(jax.random.PRNGKey(1), shape)
    if c is C.lower_cholesky:
        u = jnp.tril(u)
    b = bijector_for(c, parameter=True)  # the map fit trains parameters through
    x = b.forward(u)
    assert bool(jnp.all(c.check(x)))
    np.testing.assert_allclose(b.inverse(x), u, rtol=1e-5, atol=1e-5)


def test_register_params_overrides_the_generic_rule():
    class Scaled(vikl.Distribution):
        """A test family parameterized by its log-scale only (custom params mapping)."""

        scale: jax.Array = vikl.param(C.positive)

        def log_prob(self, x):
            return -0.5 * (x / self.scale) ** 2 - jnp.log(self.scale)

    register_params(
        Scaled,
        lambda d: {"log_scale": jnp.log(d.scale)},
        lambda t, p: Scaled(jnp.exp(p["log_scale"])),
    )
    d = Scaled(jnp.float32(2.0))
    assert set(unconstrain(d)) == {"log_scale"}
    assert float(constrain(d, {"log_scale": jnp.float32(0.0)}).scale) == 1.0


def test_errors():
    with pytest.raises(TypeError, match="vikl.Distribution"):
        unconstrain({"loc": 1.0})
    with pytest.raises(TypeError, match="Distribution subclass"):
        register_params(int, None, None)


def test_family_initializers(dtype):
    from vikl import families

    key = jax.random.PRNGKey(0)
    cases = [
        (families.mean_field(3, key), vikl.MultivariateNormalDiag, (3,)),
        (families.mean_field(3), vikl.MultivariateNormalDiag, (3,)),
        (families.full_rank(3, key, scale=2.0), vikl.MultivariateNormal, (3,)),
        (families.low_rank(4, 2, key), vikl.LowRankMultivariateNormal, (4,)),
        (families.gaussian_mixture(2, 3, key), vikl.Mixture, (2,)),
        (families.real_nvp(2, key, num_layers=2, hidden_size=4), vikl.RealNVP, (2,)),
        (families.categorical(5, key), vikl.Categorical, ()),
        (families.bernoulli((2,), key), vikl.Bernoulli, ()),
    ]
    for d, cls, event in cases:
        assert type(d) is cls and tuple(d.event_shape) == event
        leaves = jax.tree_util.tree_leaves(unconstrain(d))
        assert leaves and all(x.dtype == dtype for x in leaves)
    assert np.all(np.asarray(families.mean_field(3).loc) == 0)
    np.testing.assert_allclose(families.full_rank(3, scale=2.0).scale_tril, 2.0 * np.eye(3))
    mix = families.gaussian_mixture(2, 3, key)
    assert mix.components.batch_shape == (3,) and len(np.unique(np.asarray(mix.components.loc))) == 6
    with pytest.raises(ValueError, match="dim"):
        families.mean_field(0)
    with pytest.raises(ValueError, match="num_components"):
        families.gaussian_mixture(2, 0, key)
