"""Information measures: entropy, cross_entropy, jensen_shannon, mutual_information,
conditional_entropy, and kl_divergence on probability arrays.

References: scipy.stats.entropy, scipy.special.rel_entr, scipy.spatial.distance.jensenshannon,
sklearn.metrics.mutual_info_score, scipy.integrate.quad, mpmath, hand-worked values.
"""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as ss
import scipy.stats as st
from scipy.spatial.distance import jensenshannon as scipy_js
from sklearn.metrics import mutual_info_score

import vikl
from tests.conftest import tol

LOG2 = np.log(2.0)
RNG = np.random.default_rng(0)
P = RNG.dirichlet(np.ones(6), size=4)
Q = RNG.dirichlet(np.ones(6), size=4)


def _a(x, dtype):
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def _close(actual, expected, dtype, scale=1.0):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=scale * tol(dtype), atol=scale * tol(dtype))


def _finite(tree):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), leaf


# ---------------------------------------------------------------- hand-worked values
def test_worked_examples():
    assert float(vikl.entropy([0.5, 0.25, 0.125, 0.125], base=2)) == pytest.approx(1.75, rel=1e-6)
    assert float(vikl.entropy([0.5, 0.5], base=2)) == pytest.approx(1.0, rel=1e-6)  # fair coin
    assert float(vikl.entropy(vikl.Bernoulli(probs=0.5), base=2)) == pytest.approx(1.0, rel=1e-6)
    assert float(vikl.entropy([1.0, 0.0, 0.0])) == 0.0
    assert float(vikl.mutual_information([[0.25, 0.25], [0.25, 0.25]])) == 0.0  # independent
    assert float(vikl.mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2)) == pytest.approx(1.0, rel=1e-6)
    assert float(vikl.conditional_entropy([[0.5, 0.0], [0.0, 0.5]])) == 0.0  # Y determined by X
    assert float(vikl.conditional_entropy([[0.25, 0.25], [0.25, 0.25]], base=2)) == pytest.approx(1.0, rel=1e-6)
    assert float(vikl.jensen_shannon([1.0, 0.0], [0.0, 1.0], base=2)) == pytest.approx(1.0, rel=1e-6)
    assert float(vikl.jensen_shannon([0.3, 0.7], [0.3, 0.7])) == 0.0
    # cross-entropy of a fair coin coded for (1/4, 3/4): -(1/2)(log2 1/4 + log2 3/4) bits
    expected = -0.5 * (np.log2(0.25) + np.log2(0.75))
    assert float(vikl.cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- arrays vs scipy
def test_array_measures_vs_scipy(dtype):
    p, q = _a(P, dtype), _a(Q, dtype)
    _close(vikl.entropy(p), st.entropy(P, axis=-1), dtype)
    _close(vikl.entropy(p, base=2), st.entropy(P, base=2, axis=-1), dtype)
    _close(vikl.kl_divergence(p, q), ss.rel_entr(P, Q).sum(-1), dtype, scale=5)
    _close(vikl.cross_entropy(p, q), st.entropy(P, axis=-1) + st.entropy(P, Q, axis=-1), dtype, scale=5)
    _close(vikl.jensen_shannon(p, q), scipy_js(P, Q, axis=-1) ** 2, dtype, scale=5)
    _close(vikl.jensen_shannon(p, q, base=2), scipy_js(P, Q, axis=-1, base=2) ** 2, dtype, scale=5)
    for out in (vikl.entropy(p), vikl.kl_divergence(p, q), vikl.jensen_shannon(p, q)):
        assert out.dtype == dtype and out.shape == (4,)


def test_zero_probability_conventions_and_gradients():
    p = jnp.array([0.0, 0.5, 0.5])
    q = jnp.array([0.0, 0.25, 0.75])
    r = jnp.array([0.5, 0.5, 0.0])
    np.testing.assert_allclose(float(vikl.entropy(p)), st.entropy([0, 0.5, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(float(vikl.kl_divergence(p, q)), ss.rel_entr([0, 0.5, 0.5], [0, 0.25, 0.75]).sum(), rtol=1e-6)
    assert float(vikl.kl_divergence(r, q)) == np.inf  # p > 0 where q = 0
    assert float(vikl.cross_entropy(r, q)) == np.inf
    np.testing.assert_allclose(
        float(vikl.jensen_shannon(r, q)), scipy_js([0.5, 0.5, 0.0], [0.0, 0.25, 0.75]) ** 2, rtol=1e-6
    )
    # gradients finite where the value is finite, also at p = 0 and q = 0 (same index)
    for fn in (vikl.kl_divergence, vikl.cross_entropy, vikl.jensen_shannon):
        _finite(jax.grad(lambda a, b: fn(a, b), argnums=(0, 1))(p, q))
    _finite(jax.grad(lambda a, b: vikl.jensen_shannon(a, b), argnums=(0, 1))(r, q))
    _finite(jax.grad(vikl.entropy)(p))
    joint = jnp.array([[0.5, 0.0], [0.0, 0.5]])
    _finite(jax.grad(vikl.mutual_information)(joint))
    _finite(jax.grad(vikl.conditional_entropy)(joint))


def test_jensen_shannon_near_equal_is_accurate_in_float32():
    """The per-outcome r·atanh(r) form has no first-order cancellation."""
    rng = np.random.default_rng(1)
    p = np.float32(rng.dirichlet(np.ones(8)))
    q = p * (1 + 1e-3 * rng.standard_normal(8))
    q = np.float32(q / q.sum())
    pp = [mp.mpf(float(v)) for v in p]
    qq = [mp.mpf(float(v)) for v in q]
    ref = 0
    for a, b in zip(pp, qq):  # JS of the float32 values themselves, in high precision
        m = (a + b) / 2
        ref += (a * mp.log(a / m) + b * mp.log(b / m)) / 2
    out = float(vikl.jensen_shannon(jnp.asarray(p), jnp.asarray(q)))
    assert out == pytest.approx(float(ref), rel=1e-4)


def test_mutual_information_and_conditional_entropy_vs_references(dtype):
    counts = np.array([[10, 3, 0, 7], [2, 8, 5, 1], [0, 4, 9, 6]], np.float64)
    joint = counts / counts.sum()
    mi = mutual_info_score(None, None, contingency=counts)  # sklearn, in nats
    _close(vikl.mutual_information(_a(joint, dtype)), mi, dtype, scale=5)
    _close(vikl.mutual_information(_a(joint, dtype), base=2), mi / LOG2, dtype, scale=5)
    h_xy = st.entropy(joint.ravel())
    h_x = st.entropy(joint.sum(1))
    h_y = st.entropy(joint.sum(0))
    _close(vikl.conditional_entropy(_a(joint, dtype)), h_xy - h_x, dtype, scale=5)  # H(Y|X)
    _close(vikl.conditional_entropy(_a(joint.T, dtype)), h_xy - h_y, dtype, scale=5)  # H(X|Y)
    # I(X;Y) = H(Y) - H(Y|X), batched over a leading axis
    batch = _a(np.stack([joint, np.outer(joint.sum(1), joint.sum(0))]), dtype)
    out = vikl.mutual_information(batch)
    assert out.shape == (2,) and out.dtype == dtype
    _close(out, [h_y - (h_xy - h_x), 0.0], dtype, scale=5)


# ---------------------------------------------------------------- distributions
def test_measures_on_distributions():
    p = vikl.Categorical(probs=jnp.asarray(P[0], jnp.float32))
    q = vikl.Categorical(logits=jnp.asarray(np.log(Q[0]) + 3.0, jnp.float32))
    np.testing.assert_allclose(float(vikl.entropy(p)), st.entropy(P[0]), rtol=2e-5)
    np.testing.assert_allclose(float(vikl.cross_entropy(p, q)), st.entropy(P[0]) + st.entropy(P[0], Q[0]), rtol=2e-5)
    np.testing.assert_allclose(float(vikl.jensen_shannon(p, q)), scipy_js(P[0], Q[0]) ** 2, rtol=5e-5)
    b1, b2 = vikl.Bernoulli(probs=0.2), vikl.Bernoulli(logits=0.4)
    pb, qb = np.array([0.8, 0.2]), np.array([1 - ss.expit(0.4), ss.expit(0.4)])
    np.testing.assert_allclose(float(vikl.cross_entropy(b1, b2)), -np.sum(pb * np.log(qb)), rtol=2e-5)
    np.testing.assert_allclose(float(vikl.jensen_shannon(b1, b2, base=2)), scipy_js(pb, qb, base=2) ** 2, rtol=5e-5)
    # continuous: entropy and cross-entropy H(p) + KL(p‖q) against quadrature of -p log q
    n1, n2 = vikl.Normal(0.3, 1.2), vikl.Normal(-0.5, 0.7)
    np.testing.assert_allclose(float(vikl.entropy(n1, base=2)), st.norm(0.3, 1.2).entropy() / LOG2, rtol=2e-5)
    quad = si.quad(lambda x: -st.norm(0.3, 1.2).pdf(x) * st.norm(-0.5, 0.7).logpdf(x), -20, 20)[0]
    np.testing.assert_allclose(float(vikl.cross_entropy(n1, n2)), quad, rtol=2e-5)
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.jensen_shannon(n1, n2)
    with pytest.raises(TypeError, match="same kind"):
        vikl.jensen_shannon(p, b1)
    with pytest.raises(TypeError):
        vikl.cross_entropy(n1, jnp.array([0.5, 0.5]))
    with pytest.raises(TypeError):
        vikl.mutual_information(p)


def test_jit_vmap_and_dtype():
    p = jnp.asarray(P, jnp.float32)
    q = jnp.asarray(Q, jnp.float32)
    for fn in (vikl.kl_divergence, vikl.cross_entropy, vikl.jensen_shannon):
        eager = fn(p, q)
        np.testing.assert_allclose(jax.jit(fn)(p, q), eager, rtol=1e-6)
        np.testing.assert_allclose(jax.vmap(fn)(p, q), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(vikl.entropy)(p), vikl.entropy(p), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(vikl.entropy)(p), vikl.entropy(p), rtol=1e-6)
    joint = jnp.asarray(RNG.dirichlet(np.ones(6), size=3).reshape(3, 2, 3), jnp.float32)
    np.testing.assert_allclose(jax.vmap(vikl.mutual_information)(joint), vikl.mutual_information(joint), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(vikl.conditional_entropy)(joint), vikl.conditional_entropy(joint), rtol=1e-5)
    # integers are probabilities too (one-hot rows)
    assert float(vikl.entropy(jnp.array([0, 1, 0]))) == 0.0
    # broadcasting: (4, 6) against (6,)
    assert vikl.kl_divergence(p, q[0]).shape == (4,)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"p must sum to 1 along the last axis; got sums in \[1\.1"):
        vikl.kl_divergence(jnp.array([0.5, 0.6]), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"q must be non-negative.*-0\.1"):
        vikl.kl_divergence(jnp.array([0.5, 0.5]), jnp.array([1.1, -0.1]))
    with pytest.raises(ValueError, match=r"same number of outcomes.*\(2,\) and \(3,\)"):
        vikl.kl_divergence(jnp.array([0.5, 0.5]), jnp.array([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="NaN"):
        vikl.entropy(jnp.array([jnp.nan, 1.0]))
    with pytest.raises(ValueError, match="joint must sum to 1 over the last two axes"):
        vikl.mutual_information(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="at least 2 axis"):
        vikl.conditional_entropy(jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="base must be > 0"):
        vikl.entropy([0.5, 0.5], base=1)
    # float32 rows normalized in float32 pass (dtype-aware tolerance)
    x = np.float32(RNG.random((3, 1000)))
    vikl.entropy(jnp.asarray(x / x.sum(-1, keepdims=True)))
    # under jit nothing is checked (values are traced)
    out = jax.jit(vikl.entropy)(jnp.array([0.5, 0.6]))
    assert np.isfinite(float(out))
