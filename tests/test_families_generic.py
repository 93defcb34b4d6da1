"""Generic checks for every family in tests/families.py.

Shapes, jit/vmap/grad, and Monte-Carlo cross-checks of entropy, mean and
variance against the family's own sampler (itself checked against SciPy in the
family's test file): each within 5 standard errors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.families import EXAMPLES

NAMES = [n for n in EXAMPLES if hasattr(vikl, n)]
N = 100_000


def _make(name):
    return EXAMPLES[name][0]()


def _batched(name):
    """The p example stacked twice along a new batch axis (via vmap-free tree_map)."""
    d = _make(name)
    return jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), d)


# Module-level jitted helpers taking the distribution and key as arguments: each family
# compiles one program per test instead of dispatching (and compiling) every primitive of
# its sampler, log-density and their derivatives one by one (the eager sampler and
# log-density stay exercised by the Monte-Carlo and sample_and_log_prob tests below).
@jax.jit
def _shapes_run(d, b, key):
    x = d.sample(key, (4, 3))
    return x, d.log_prob(x), b.sample(key, (5,))


@jax.jit
def _log_prob_jit_vmap_grad(d, b, x):
    per = jax.vmap(lambda dd: dd.log_prob(x))(b)
    grads = jax.grad(lambda dd: jnp.sum(dd.log_prob(x)))(d)
    return d.log_prob(x), per, grads


@jax.jit
def _entropy_grad(d):
    return jax.grad(lambda dd: jnp.sum(dd.entropy()))(d)


def _stl_shortcut(dd, key):
    return jnp.sum(dd._sample_and_stopped_log_prob(key, (6,))[1])


def _stl_direct(dd, key):
    return jnp.sum(jax.lax.stop_gradient(dd).log_prob(dd.sample(key, (6,))))


@jax.jit
def _stl_run(d, key):
    pair = jax.tree_util.tree_map(lambda v: jnp.stack([v, v]), d)
    return (
        _stl_shortcut(d, key),
        _stl_direct(d, key),
        jax.grad(_stl_shortcut)(d, key),
        jax.grad(_stl_direct)(d, key),
        jax.jacfwd(_stl_shortcut)(d, key),
        jax.vmap(jax.grad(_stl_shortcut), in_axes=(0, None))(pair, key),
    )


@pytest.mark.parametrize("name", NAMES)
def test_sample_shapes_and_log_prob_shapes(name, key):
    d = _make(name)
    b = _batched(name)
    x, lp, xb = _shapes_run(d, b, key)
    assert x.shape == (4, 3) + tuple(d.batch_shape) + tuple(d.event_shape)
    assert lp.shape == (4, 3) + tuple(d.batch_shape)
    assert np.isfinite(np.asarray(lp)).all()
    assert b.batch_shape == (2,) + tuple(d.batch_shape)
    assert xb.shape == (5, 2) + tuple(d.batch_shape) + tuple(d.event_shape)


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_grad_of_log_prob(name, key):
    d = _make(name)
    x = d.sample(key, (8,))
    eager = d.log_prob(x)
    b = _batched(name)
    jitted, per, grads = _log_prob_jit_vmap_grad(d, b, x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per[0], eager, rtol=1e-5, atol=1e-6)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.isfinite(np.asarray(leaf)).all(), f"{name}: non-finite gradient of log_prob"


@pytest.mark.parametrize("name", NAMES)
def test_entropy_matches_monte_carlo(name, key):
    d = _make(name)
    try:
        h = float(d.entropy())
    except NotImplementedError:
        pytest.skip(f"{name}: no closed-form entropy")
    t = -np.asarray(d.log_prob(d.sample(key, (N,))), np.float64)
    se = t.std(ddof=1) / np.sqrt(N)
    assert abs(t.mean() - h) <= 5 * se + 1e-6, f"{name}: entropy {h} vs MC {t.mean()} ± {se}"


@pytest.mark.parametrize("name", NAMES)
def test_mean_and_variance_match_samples(name, key):
    d = _make(name)
    try:
        mean, var = np.asarray(d.mean, np.float64), np.asarray(d.variance, np.float64)
    except NotImplementedError:
        pytest.skip(f"{name}: no closed-form moments")
    if not (np.isfinite(mean).all() and np.isfinite(var).all()):
        pytest.skip(f"{name}: moments undefined (e.g. Cauchy)")
    x = np.asarray(d.sample(key, (N,)), np.float64)
    se_mean = np.sqrt(var / N)
    assert np.all(np.abs(x.mean(0) - mean) <= 5 * se_mean + 1e-6), name
    # variance of the sample variance needs the 4th moment: estimate it from the draws
    m4 = ((x - x.mean(0)) ** 4).mean(0)
    se_var = np.sqrt(np.maximum(m4 - var**2, 0) / N)
    assert np.all(np.abs(x.var(0) - var) <= 5 * se_var + 1e-6), name


@pytest.mark.parametrize("name", NAMES)
def test_entropy_grad_is_finite(name):
    d = _make(name)
    try:
        d.entropy()
    except NotImplementedError:
        pytest.skip("no entropy")
    g = _entropy_grad(d)
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.isfinite(np.asarray(leaf)).all()


@pytest.mark.parametrize("name", NAMES)
def test_sample_and_log_prob_agrees_with_sample_then_log_prob(name, key):
    d = _make(name)
    x, lp = d.sample_and_log_prob(key, (6,))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(d.sample(key, (6,))))
    np.testing.assert_allclose(np.asarray(lp), np.asarray(d.log_prob(x)), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", NAMES)
def test_stopped_log_prob_has_the_sticking_the_landing_gradient(name, key):
    """The family's shortcut for ``log q(x)`` with q's parameters held fixed (used by
    ReverseKL(gradient="stl")) has the value and the gradient of the direct route,
    ``stop_gradient(q).log_prob(q.sample(key))``."""
    d = _make(name)
    if not getattr(type(d), "reparameterized", True):
        pytest.skip(f"{name}: not reparameterized")

    value, direct_value, g_shortcut, g_direct, jac_shortcut, batched = _stl_run(d, key)
    np.testing.assert_allclose(float(value), float(direct_value), rtol=2e-5, atol=2e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g_shortcut), jax.tree_util.tree_leaves(g_direct)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    # forward mode (the shortcut is a custom JVP) and vmap over parameter batches agree too
    for a, b in zip(jax.tree_util.tree_leaves(jac_shortcut), jax.tree_util.tree_leaves(g_direct)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree_util.tree_leaves(batched), jax.tree_util.tree_leaves(g_direct)):
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b), rtol=1e-4, atol=1e-4)
