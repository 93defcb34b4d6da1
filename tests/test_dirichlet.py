"""Dirichlet: density, entropy, moments, sampling and KL against scipy, torch and mpmath."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.stats
import torch

import vikl
from tests.conftest import mc_tolerance, tol

torch.set_num_threads(1)

ALPHA = np.array([[0.7, 2.0, 3.5], [1.0, 1.0, 1.0], [12.0, 0.3, 5.0]])

_JKL = jax.jit(vikl.kl_divergence)
_jsample = jax.jit(lambda d, key, n: d.sample(key, (n,)), static_argnums=2)


@jax.jit
def _summary(d, x):
    return d.log_prob(x), d.entropy(), d.mean, d.variance, d.covariance_matrix


def _mp_kl(a, b):
    """KL(Dir(a) ‖ Dir(b)) from the textbook gammaln/digamma formula at 50 digits."""
    with mpmath.workdps(50):
        a = [mpmath.mpf(float(x)) for x in a]
        b = [mpmath.mpf(float(x)) for x in b]
        a0, b0 = sum(a), sum(b)
        value = mpmath.loggamma(a0) - mpmath.loggamma(b0)
        value += sum(mpmath.loggamma(y) - mpmath.loggamma(x) for x, y in zip(a, b))
        value += sum((x - y) * (mpmath.digamma(x) - mpmath.digamma(a0)) for x, y in zip(a, b))
        return float(value)


def test_log_prob_entropy_moments_vs_scipy(dtype):
    alpha = ALPHA.astype(dtype)
    d = vikl.Dirichlet(alpha)
    assert d.batch_shape == (3,) and d.event_shape == (3,)
    x = np.random.default_rng(0).dirichlet([1.5, 2.0, 2.5], size=(4, 3)).astype(dtype)
    lp, ent, mean, var, cov = (np.asarray(v) for v in _summary(d, x))
    assert lp.shape == (4, 3) and lp.dtype == dtype
    for b in range(3):
        a64 = alpha[b].astype(np.float64)
        ref = scipy.stats.dirichlet(a64)
        xb = x[:, b].astype(np.float64)
        xb = xb / xb.sum(-1, keepdims=True)  # scipy insists on an exact simplex
        np.testing.assert_allclose(lp[:, b], [ref.logpdf(xi) for xi in xb], rtol=50 * tol(dtype), atol=50 * tol(dtype))
        np.testing.assert_allclose(ent[b], ref.entropy(), rtol=10 * tol(dtype), atol=10 * tol(dtype))
        np.testing.assert_allclose(mean[b], ref.mean(), rtol=10 * tol(dtype))
        np.testing.assert_allclose(var[b], ref.var(), rtol=10 * tol(dtype))
        np.testing.assert_allclose(np.diagonal(cov[b]), ref.var(), rtol=10 * tol(dtype))
        m = ref.mean()
        np.testing.assert_allclose(cov[b, 0, 1], -m[0] * m[1] / (a64.sum() + 1), rtol=10 * tol(dtype))


def test_log_prob_off_simplex_is_minus_inf():
    d = vikl.Dirichlet(np.array([2.0, 3.0, 0.5], np.float32))
    x = np.array(
        [[0.2, 0.3, 0.5], [-0.1, 0.6, 0.5], [0.2, 0.3, 0.6], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]], np.float32
    )
    lp = np.asarray(d.log_prob(x))
    assert np.isfinite(lp[0])
    assert lp[1] == -np.inf and lp[2] == -np.inf  # negative entry; sum 1.1
    assert lp[3] == -np.inf  # x_0 = 0 with alpha_0 > 1: density 0
    assert lp[4] == np.inf  # x_2 = 0 with alpha_2 < 1: density diverges
    assert not np.any(np.isnan(lp))
    # off the simplex the value is a constant -inf: its gradient is 0, not NaN
    rows = jax.jit(jax.jacrev(lambda c, x: vikl.Dirichlet(c).log_prob(x), argnums=(0, 1)))
    g_c, g_x = (np.asarray(g) for g in rows(d.concentration, x[:3]))
    assert np.all(np.isfinite(g_c[0])) and np.all(np.isfinite(g_x[0]))
    assert np.all(g_c[1:] == 0) and np.all(g_x[1:] == 0)


def test_sample_shape_moments_and_simplex():
    alpha = ALPHA.astype(np.float32)
    d = vikl.Dirichlet(alpha)
    n = 20000
    x = np.asarray(_jsample(d, jax.random.PRNGKey(1), n), np.float64)
    assert x.shape == (n, 3, 3)
    assert np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=1e-5)
    ref_mean = alpha / alpha.sum(-1, keepdims=True)
    a0 = alpha.sum(-1, keepdims=True)
    ref_var = ref_mean * (1 - ref_mean) / (a0 + 1)
    assert np.all(np.abs(x.mean(0) - ref_mean) <= mc_tolerance(1.0) * np.sqrt(ref_var / n))
    shape = jax.eval_shape(lambda d, k: d.sample(k, (2, 5)), d, jax.random.PRNGKey(2)).shape
    assert shape == (2, 5, 3, 3)


def test_tiny_concentration_samples_are_on_the_simplex():
    d = vikl.Dirichlet(np.full((3, 3), 0.01, np.float32))
    x = np.asarray(_jsample(d, jax.random.PRNGKey(3), 20000))
    assert np.all(np.isfinite(x)) and np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=1e-5)


def test_reparameterized_gradient_matches_analytic():
    """Pathwise gradient of E[X_0] w.r.t. alpha (implicit reparameterization) vs the
    derivative of alpha_0 / sum(alpha), within 5 standard errors."""
    alpha = jnp.asarray([1.5, 2.0, 0.8], jnp.float32)
    n = 4000
    # per-sample derivatives d X_0 / d alpha by forward mode (three JVPs through the sampler)
    per_sample = jax.jit(jax.jacfwd(lambda a: vikl.Dirichlet(a).sample(jax.random.PRNGKey(4), (n,))[:, 0]))(alpha)
    per_sample = np.asarray(per_sample, np.float64)
    a = np.asarray(alpha, np.float64)
    s = a.sum()
    exact = np.array([(s - a[0]) / s**2, -a[0] / s**2, -a[0] / s**2])
    se = per_sample.std(0) / np.sqrt(n)
    assert np.all(np.abs(per_sample.mean(0) - exact) <= mc_tolerance(1.0) * se)


def test_kl_vs_torch_and_broadcasting(dtype):
    p = vikl.Dirichlet(ALPHA.astype(dtype)[:, None, :])  # batch (3, 1)
    q = vikl.Dirichlet(ALPHA[::-1].astype(dtype) * np.array([1.0, 0.5, 2.0], dtype))  # batch (3,)
    kl = np.asarray(_JKL(p, q))
    assert kl.shape == (3, 3) and kl.dtype == dtype
    tp = torch.distributions.Dirichlet(torch.tensor(np.asarray(p.concentration, np.float64)))
    tq = torch.distributions.Dirichlet(torch.tensor(np.asarray(q.concentration, np.float64)))
    ref = torch.distributions.kl_divergence(tp, tq).numpy()
    np.testing.assert_allclose(kl, ref, rtol=50 * tol(dtype), atol=50 * tol(dtype))


CASES = [
    ([2.0, 3.0, 4.0], 1e-2),
    ([2.0, 3.0, 4.0], 1e-4),
    ([0.3, 0.5, 0.2], 1e-3),
    ([0.01, 0.02, 5.0], 0.3),
    ([20.0, 50.0, 30.0], 1e-3),
    ([1e3, 2e4, 5.0], 1e-4),
    ([7.9, 8.1, 16.5], -0.5),
    ([0.05, 3.0, 400.0], 1.5),
]


@pytest.mark.parametrize("base, delta", CASES)
def test_kl_vs_mpmath_including_near_equal(base, delta, dtype):
    """Relative error < 1e-4 (float32) / 1e-12 (float64), including nearly equal pairs where
    the textbook gammaln formula loses every digit in float32."""
    a = np.array(base, dtype)
    b = (a * (1 + delta * np.array([1.0, -0.5, 0.3]))).astype(dtype)
    kl = float(_JKL(vikl.Dirichlet(a), vikl.Dirichlet(b)))
    ref = _mp_kl(a, b)
    assert abs(kl - ref) <= (1e-4 if dtype == np.float32 else 1e-12) * ref, (kl, ref)


def test_kl_jit_vmap_grad_and_self():
    a = jnp.asarray(ALPHA, jnp.float32)
    b = jnp.asarray(ALPHA[::-1], jnp.float32)
    kl = lambda a, b: vikl.kl_divergence(vikl.Dirichlet(a), vikl.Dirichlet(b))  # noqa: E731
    value_and_grad = jax.jit(jax.value_and_grad(lambda a, b: jnp.sum(kl(a, b)), (0, 1)))
    value, grads = value_and_grad(a, b)
    np.testing.assert_allclose(float(value), float(np.sum(np.asarray(_JKL(vikl.Dirichlet(a), vikl.Dirichlet(b))))), rtol=1e-5)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    self_value, self_grads = value_and_grad(b, b)  # KL(p‖p) = 0 is a minimum: zero gradient
    assert abs(float(self_value)) < 1e-6
    for g in self_grads:
        np.testing.assert_allclose(np.asarray(g), 0.0, atol=1e-5)
    rows = jax.jit(jax.vmap(kl))(a, b)
    np.testing.assert_allclose(float(np.sum(np.asarray(rows))), float(value), rtol=1e-5)


def test_log_prob_entropy_grad_under_jit():
    x = jnp.full(3, 1 / 3, jnp.float32)
    f = jax.jit(jax.grad(lambda a: jnp.sum(vikl.Dirichlet(a).log_prob(x)) + jnp.sum(vikl.Dirichlet(a).entropy())))
    assert np.all(np.isfinite(np.asarray(f(jnp.asarray(ALPHA, jnp.float32)))))


def test_bad_input():
    with pytest.raises(ValueError, match="concentration must be > 0"):
        vikl.Dirichlet(np.array([1.0, -0.5, 2.0], np.float32))
    with pytest.raises(ValueError, match="concentration"):
        vikl.Dirichlet(np.float32(1.0))
    with pytest.raises(ValueError, match="different numbers of categories"):
        vikl.kl_divergence(vikl.Dirichlet(np.ones(3, np.float32)), vikl.Dirichlet(np.ones(4, np.float32)))
