"""Empirical: shapes, sample moments vs numpy, resampling with replacement, no density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.conftest import mc_tolerance

DATA = np.random.default_rng(0).standard_normal((50, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -2.0]


def test_shapes_and_moments(dtype):
    d = vikl.Empirical(jnp.asarray(DATA, dtype))
    assert d.num_samples == 50 and d.batch_shape == () and d.event_shape == (3,)
    assert d.event_ndims == 1
    np.testing.assert_allclose(np.asarray(d.mean, np.float64), DATA.mean(0), rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(np.asarray(d.variance, np.float64), DATA.var(0), rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert d.mean.dtype == dtype
    # scalar events
    e = vikl.Empirical(jnp.asarray(DATA[:, 0], dtype))
    assert e.event_shape == () and e.batch_shape == ()
    # the middle axes as a batch of empirical distributions
    b = vikl.Empirical(jnp.asarray(DATA, dtype), event_ndims=0)
    assert b.batch_shape == (3,) and b.event_shape == ()


def test_resampling_with_replacement():
    data = jnp.arange(5.0)
    d = vikl.Empirical(data)
    n = 50_000
    x = np.asarray(d.sample(jax.random.PRNGKey(0), (n,)))
    assert x.shape == (n,) and set(np.unique(x)) <= set(range(5))
    freq = np.bincount(x.astype(int), minlength=5) / n
    assert np.all(np.abs(freq - 0.2) <= mc_tolerance(np.sqrt(0.2 * 0.8 / n)))
    # vector events: whole rows are drawn
    v = vikl.Empirical(jnp.asarray(DATA, jnp.float32))
    rows = np.asarray(v.sample(jax.random.PRNGKey(1), (4, 2)))
    assert rows.shape == (4, 2, 3)
    data32 = np.float32(DATA)
    for r in rows.reshape(-1, 3):
        assert np.any(np.all(data32 == r, axis=1))
    # batched: column j is drawn from column j only
    b = vikl.Empirical(jnp.asarray(DATA, jnp.float32), event_ndims=0)
    draws = np.asarray(b.sample(jax.random.PRNGKey(2), (100,)))
    assert draws.shape == (100, 3)
    for j in range(3):
        assert set(draws[:, j]) <= set(data32[:, j])
    assert not vikl.Empirical.reparameterized


def test_no_density():
    d = vikl.Empirical(jnp.asarray(DATA, jnp.float32))
    with pytest.raises(NotImplementedError, match="no density.*forward"):
        d.log_prob(jnp.zeros(3))
    with pytest.raises(NotImplementedError, match="no density"):
        d.entropy()
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.kl_divergence(d, vikl.Normal(0.0, 1.0))


def test_pytree_jit_vmap():
    d = vikl.Empirical(jnp.asarray(DATA, jnp.float32))
    out = jax.jit(lambda d, k: d.sample(k, (8,)))(d, jax.random.PRNGKey(3))
    assert out.shape == (8, 3)
    np.testing.assert_allclose(jax.jit(lambda d: d.mean)(d), d.mean, rtol=1e-6)
    # the samples are data: one leaf, not trained (a non-trainable constraint)
    assert len(jax.tree_util.tree_leaves(d)) == 1
    assert not type(d)._param_constraints["samples"].trainable
    # a batch of Empirical targets through vmap (the static event_ndims survives)
    stacked = jax.vmap(lambda s: vikl.Empirical(s, event_ndims=1))(jnp.stack([jnp.asarray(DATA, jnp.float32)] * 2))
    means = jax.vmap(lambda e: e.mean)(stacked)
    np.testing.assert_allclose(means, np.stack([DATA.mean(0)] * 2), rtol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="leading sample axis"):
        vikl.Empirical(jnp.float32(1.0))
    with pytest.raises(ValueError, match=r"event_ndims must be in \[0, samples.ndim - 1\] = \[0, 1\]; got 2"):
        vikl.Empirical(jnp.zeros((4, 2)), event_ndims=2)
    with pytest.raises(ValueError, match="event_ndims must be an int"):
        vikl.Empirical(jnp.zeros((4, 2)), event_ndims=1.0)
    with pytest.raises(ValueError, match="at least one sample"):
        vikl.Empirical(jnp.zeros((0, 2)))
    with pytest.raises(ValueError, match="Empirical: samples must be finite real numbers \\(not NaN or \\+-inf\\)"):
        vikl.Empirical(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="samples must have a floating dtype"):
        vikl.Empirical(jnp.arange(4))
