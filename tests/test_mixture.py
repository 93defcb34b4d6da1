"""Mixture: log_prob vs scipy (weighted sums of pdfs), moments vs quadrature and sampling,
vector components, broadcasting, pytree behaviour and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st

import vikl
from tests.conftest import mc_tolerance, tol

W = np.array([0.2, 0.5, 0.3])
LOC = np.array([-2.0, 0.5, 3.0])
SCALE = np.array([0.7, 1.0, 1.5])


def _a(x, dtype):
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def _scipy_pdf(x):
    return sum(w * st.norm(m, s).pdf(x) for w, m, s in zip(W, LOC, SCALE))


def _mixture(dtype, logits=False):
    comps = vikl.Normal(_a(LOC, dtype), _a(SCALE, dtype))
    if logits:
        return vikl.Mixture(_a(np.log(W) + 1.7, dtype), comps)
    return vikl.Mixture(weights=_a(W, dtype), components=comps)


def test_log_prob_vs_scipy(dtype):
    x = np.array([-4.0, -1.0, 0.0, 2.2, 7.0])
    for logits in (False, True):
        m = _mixture(dtype, logits)
        out = m.log_prob(_a(x, dtype))
        assert out.dtype == dtype and out.shape == (5,)
        np.testing.assert_allclose(np.asarray(out, np.float64), np.log(_scipy_pdf(x)), rtol=5 * tol(dtype))
        np.testing.assert_allclose(m.weights, W, rtol=5 * tol(dtype))
        np.testing.assert_allclose(m.mixture_logits, np.log(W), rtol=5 * tol(dtype))
    # far in the tail: logsumexp, no underflow to -inf
    far = float(_mixture(dtype).log_prob(_a(60.0, dtype)))
    assert np.isfinite(far) and far == pytest.approx(st.norm(3.0, 1.5).logpdf(60.0) + np.log(0.3), rel=1e-5)


def test_component_log_probs_and_responsibilities():
    m = _mixture(jnp.float32)
    x = jnp.array([-1.0, 2.0])
    c = m.component_log_probs(x)
    assert c.shape == (2, 3)
    ref = np.log(W) + np.stack([st.norm(LOC, SCALE).logpdf(v) for v in [-1.0, 2.0]])
    np.testing.assert_allclose(c, ref, rtol=1e-5)
    np.testing.assert_allclose(jax.scipy.special.logsumexp(c, -1), m.log_prob(x), rtol=1e-6)


def test_mean_variance_vs_quadrature(dtype):
    m = _mixture(dtype)
    mean = si.quad(lambda x: x * _scipy_pdf(x), -30, 30)[0]
    var = si.quad(lambda x: (x - mean) ** 2 * _scipy_pdf(x), -30, 30)[0]
    np.testing.assert_allclose(float(m.mean), mean, rtol=5 * tol(dtype))
    np.testing.assert_allclose(float(m.variance), var, rtol=5 * tol(dtype))
    assert m.mean.dtype == dtype


def test_sampling_moments_and_histogram():
    m = _mixture(jnp.float32)
    n = 100_000
    x = np.asarray(m.sample(jax.random.PRNGKey(0), (n,)), np.float64)
    assert x.shape == (n,)
    mean = float(m.mean)
    var = float(m.variance)
    assert abs(x.mean() - mean) <= mc_tolerance(np.sqrt(var / n))
    # variance: se of the sample variance from the sample fourth central moment
    m4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var() - var) <= mc_tolerance(np.sqrt((m4 - var**2) / n))
    # P(X < 0) against the mixture cdf
    p0 = sum(w * st.norm(mu, s).cdf(0.0) for w, mu, s in zip(W, LOC, SCALE))
    assert abs(np.mean(x < 0) - p0) <= mc_tolerance(np.sqrt(p0 * (1 - p0) / n))
    assert not vikl.Mixture.reparameterized


def test_batched_mixture_and_broadcasting():
    # weights batch (4,) broadcasting against components with batch (1, 3)
    logits = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32)
    comps = vikl.Normal(jnp.asarray(LOC[None], jnp.float32), jnp.asarray(SCALE[None], jnp.float32))
    m = vikl.Mixture(logits, comps)
    assert m.batch_shape == (4,) and m.event_shape == ()
    x = jnp.array([0.3, -1.0, 2.0, 5.0])
    w = np.asarray(jax.nn.softmax(logits, -1), np.float64)
    ref = [np.log(np.sum(w[i] * st.norm(LOC, SCALE).pdf(float(x[i])))) for i in range(4)]
    np.testing.assert_allclose(m.log_prob(x), ref, rtol=1e-5)
    s = m.sample(jax.random.PRNGKey(1), (7,))
    assert s.shape == (7, 4)
    # the broadcast batch members are independent draws, not copies
    assert len(np.unique(np.asarray(s))) == s.size
    # components with their own batch (2, 3) and a shared weight vector
    comps2 = vikl.Normal(jnp.zeros((2, 3)) + jnp.asarray(LOC, jnp.float32), 1.0)
    m2 = vikl.Mixture(weights=jnp.asarray(W, jnp.float32), components=comps2)
    assert m2.batch_shape == (2,) and m2.sample(jax.random.PRNGKey(2), (5,)).shape == (5, 2)
    np.testing.assert_allclose(m2.mean, [float(np.dot(W, LOC))] * 2, rtol=1e-6)


def test_vector_components():
    d = 2
    locs = np.array([[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]])
    scales = np.array([[1.0, 0.5], [0.7, 1.2], [0.4, 0.9]])
    comps = vikl.MultivariateNormalDiag(jnp.asarray(locs, jnp.float32), jnp.asarray(scales, jnp.float32))
    m = vikl.Mixture(weights=jnp.asarray(W, jnp.float32), components=comps)
    assert m.batch_shape == () and m.event_shape == (d,)
    x = np.array([[0.1, 0.2], [2.5, -0.5], [-1.0, 3.0]])
    ref = np.log(sum(w * st.multivariate_normal(mu, np.diag(s**2)).pdf(x) for w, mu, s in zip(W, locs, scales)))
    np.testing.assert_allclose(m.log_prob(jnp.asarray(x, jnp.float32)), ref, rtol=1e-5)
    # moments per coordinate (law of total variance)
    mean = W @ locs
    var = W @ (scales**2 + locs**2) - mean**2
    np.testing.assert_allclose(m.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(m.variance, var, rtol=1e-5)
    n = 50_000
    s = np.asarray(m.sample(jax.random.PRNGKey(3), (n,)), np.float64)
    assert s.shape == (n, d)
    assert np.all(np.abs(s.mean(0) - mean) <= 5 * np.sqrt(var / n))  # 5 standard errors
    # full-covariance components
    tril = np.stack([np.array([[1.0, 0.0], [0.3, 0.8]]), np.eye(2) * 0.6, np.array([[0.5, 0.0], [-0.2, 1.1]])])
    comps = vikl.MultivariateNormal(jnp.asarray(locs, jnp.float32), scale_tril=jnp.asarray(tril, jnp.float32))
    m = vikl.Mixture(jnp.asarray(np.log(W), jnp.float32), comps)
    ref = np.log(sum(w * st.multivariate_normal(mu, L @ L.T).pdf(x) for w, mu, L in zip(W, locs, tril)))
    np.testing.assert_allclose(m.log_prob(jnp.asarray(x, jnp.float32)), ref, rtol=1e-5)


def test_pytree_jit_vmap_grad():
    m = _mixture(jnp.float32, logits=True)
    x = jnp.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(jax.jit(lambda m, x: m.log_prob(x))(m, x), m.log_prob(x), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(m.log_prob)(x), m.log_prob(x), rtol=1e-6)
    leaves = jax.tree_util.tree_leaves(m)
    assert len(leaves) == 3  # mixture logits + the components' loc and scale

    def loss(m):
        return jnp.sum(m.log_prob(x))

    g = jax.grad(loss)(m)
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # d/dloc_k of sum log p(x) = sum_x r_k(x) (x - loc_k) / scale_k^2, r = responsibilities
    r = np.asarray(jax.nn.softmax(m.component_log_probs(x), -1), np.float64)
    ref = np.sum(r * (np.asarray(x)[:, None] - LOC) / SCALE**2, axis=0)
    np.testing.assert_allclose(g.components.loc, ref, rtol=1e-5)
    # a zero weight keeps values and gradients finite
    mz = vikl.Mixture(weights=jnp.array([0.0, 0.6, 0.4]), components=vikl.Normal(jnp.asarray(LOC, jnp.float32), 1.0))
    assert np.all(np.isfinite(np.asarray(mz.log_prob(x))))
    gw = jax.grad(lambda w: jnp.sum(vikl.Mixture(weights=w, components=mz.components).log_prob(x)))(mz.weights)
    assert np.all(np.isfinite(np.asarray(gw)))
    s = jax.jit(lambda m, k: m.sample(k, (4,)))(m, jax.random.PRNGKey(0))
    assert s.shape == (4,)


def test_bad_input_and_missing_closed_forms():
    comps = vikl.Normal(jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match="exactly one of mixture_logits= or weights="):
        vikl.Mixture(components=comps)
    with pytest.raises(ValueError, match="exactly one"):
        vikl.Mixture(jnp.zeros(3), comps, weights=jnp.ones(3) / 3)
    with pytest.raises(ValueError, match=r"weights has 2 entries.*components' last batch axis has 3"):
        vikl.Mixture(weights=jnp.array([0.5, 0.5]), components=comps)
    with pytest.raises(ValueError, match="Mixture: weights must be probabilities"):
        vikl.Mixture(weights=jnp.array([0.5, 0.6, 0.1]), components=comps)
    with pytest.raises(ValueError, match="at least one batch axis"):
        vikl.Mixture(weights=jnp.array([1.0]), components=vikl.Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="components must be one batched vikl Distribution"):
        vikl.Mixture(jnp.zeros(3), [vikl.Normal(0.0, 1.0)] * 3)
    m = vikl.Mixture(jnp.zeros(3), comps)
    assert "mixture_logits=" in repr(m) and "_mixture_logits" not in repr(m)
    with pytest.raises(NotImplementedError, match="no closed-form entropy"):
        m.entropy()
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.kl_divergence(m, m)
