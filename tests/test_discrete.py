"""Discrete families: Categorical, Bernoulli, Poisson, Binomial, Geometric and their KL pairs.

References: scipy.stats pmfs/entropies, torch.distributions (KL, entropy),
mpmath sums in high precision, and direct float64 summation of scipy pmfs.
"""

import functools

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.special as ss
import scipy.stats as st
import torch
import torch.distributions as td

import vikl
from tests.conftest import tol

mp.mp.dps = 25
MPMATH_DPS = 25  # every test of this module runs at this precision (conftest)


def _a(x, dtype):
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def _t(x):
    return torch.tensor(np.asarray(x, np.float64))


def _close(actual, expected, dtype, rtol_scale=1.0, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=rtol_scale * tol(dtype), atol=atol
    )


def _finite_grads(tree):
    for leaf in jax.tree_util.tree_leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), leaf


P4 = np.array([0.5, 0.25, 0.125, 0.125])
Q4 = np.array([0.1, 0.2, 0.3, 0.4])


# ============================================================== Categorical
def test_categorical_log_prob_entropy_vs_scipy(dtype):
    d = vikl.Categorical(probs=_a(P4, dtype))
    x = jnp.arange(4)
    _close(d.log_prob(x), np.log(P4), dtype)
    _close(d.entropy(), st.entropy(P4), dtype)
    assert d.entropy().dtype == dtype and d.log_prob(x).dtype == dtype
    # Logits: normalized with log_softmax.
    z = np.array([1.0, -2.0, 0.5, 3.0])
    dl = vikl.Categorical(logits=_a(z, dtype))
    ref = td.Categorical(logits=_t(z))
    _close(dl.log_prob(x), ref.log_prob(torch.arange(4)).numpy(), dtype)
    _close(dl.entropy(), ref.entropy().numpy(), dtype)
    _close(dl.logits, ref.logits.numpy(), dtype)
    _close(dl.probs, ref.probs.numpy(), dtype)


def test_categorical_properties_and_zero_probabilities():
    d = vikl.Categorical(probs=jnp.array([0.0, 0.25, 0.75]))
    assert d.num_categories == 3 and d.batch_shape == () and d.event_shape == ()
    assert np.isneginf(float(d.logits[0]))
    np.testing.assert_allclose(d.logits[1:], np.log([0.25, 0.75]), rtol=1e-6)
    assert float(d.log_prob(0)) == -np.inf
    np.testing.assert_allclose(float(d.entropy()), st.entropy([0.25, 0.75]), rtol=1e-6)
    # Huge logits are normalized without overflow.
    big = vikl.Categorical(logits=jnp.array([1000.0, 1000.0, -jnp.inf]))
    np.testing.assert_allclose(big.probs, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(float(big.entropy()), np.log(2), rtol=1e-6)
    assert "probs=" in repr(d) and "_probs" not in repr(d)


def test_categorical_log_prob_off_support_is_minus_inf():
    d = vikl.Categorical(probs=jnp.asarray(P4, jnp.float32))
    out = d.log_prob(jnp.array([-1.0, 4.0, 1.5, 2.0]))
    assert np.isneginf(np.asarray(out[:3])).all() and np.isfinite(float(out[3]))
    assert np.isneginf(float(d.log_prob(jnp.array(7, jnp.int32))))


def test_categorical_batch_broadcasting_in_log_prob():
    probs = jnp.asarray(np.stack([P4, Q4]), jnp.float32)
    d = vikl.Categorical(probs=probs)
    assert d.batch_shape == (2,)
    x = jnp.array([[0, 3], [2, 1], [1, 1]])  # (3, 2)
    expected = np.log(np.stack([P4, Q4]))[np.arange(2)[None, :], np.asarray(x)]
    np.testing.assert_allclose(d.log_prob(x), expected, rtol=1e-6)


def test_categorical_sampling_frequencies():
    d = vikl.Categorical(probs=jnp.asarray(P4, jnp.float32))
    n = 40_000
    x = d.sample(jax.random.PRNGKey(1), (n,))
    assert x.shape == (n,) and x.dtype == jnp.int32
    freq = np.bincount(np.asarray(x), minlength=4) / n
    se = np.sqrt(P4 * (1 - P4) / n)
    assert np.all(np.abs(freq - P4) <= 5 * se)
    assert vikl.Categorical(probs=jnp.ones((2, 3)) / 3).sample(jax.random.PRNGKey(0), (5,)).shape == (5, 2)
    assert not vikl.Categorical.reparameterized


def test_categorical_kl_vs_torch(dtype):
    cases = [
        (dict(probs=P4), dict(probs=Q4)),
        (dict(logits=np.log(P4) + 1.0), dict(probs=Q4)),
        (dict(probs=P4), dict(logits=np.array([0.3, -1.0, 2.0, 0.0]))),
        (dict(logits=np.array([2.0, 0.0, -1.0, 0.5])), dict(logits=np.array([0.3, -1.0, 2.0, 0.0]))),
    ]
    for kp, kq in cases:
        p = vikl.Categorical(**{k: _a(v, dtype) for k, v in kp.items()})
        q = vikl.Categorical(**{k: _a(v, dtype) for k, v in kq.items()})
        ref = td.kl_divergence(
            td.Categorical(**{k: _t(v) for k, v in kp.items()}),
            td.Categorical(**{k: _t(v) for k, v in kq.items()}),
        ).numpy()
        out = vikl.kl_divergence(p, q)
        assert out.dtype == dtype
        _close(out, ref, dtype, rtol_scale=5)


def test_categorical_kl_conventions_and_gradients():
    p = jnp.array([0.0, 0.5, 0.5])
    q = jnp.array([0.0, 0.25, 0.75])
    # zeros in p contribute nothing, also where q is zero at the same place
    kl = vikl.kl_divergence(vikl.Categorical(probs=p), vikl.Categorical(probs=q))
    ref = float(np.sum(ss.rel_entr([0.0, 0.5, 0.5], [0.0, 0.25, 0.75])))
    np.testing.assert_allclose(float(kl), ref, rtol=1e-6)
    # p > 0 where q = 0: +inf, never NaN
    inf = vikl.kl_divergence(vikl.Categorical(probs=jnp.array([0.2, 0.3, 0.5])), vikl.Categorical(probs=q))
    assert float(inf) == np.inf
    inf_logits = vikl.kl_divergence(
        vikl.Categorical(logits=jnp.array([0.0, 0.0])), vikl.Categorical(logits=jnp.array([0.0, -jnp.inf]))
    )
    assert float(inf_logits) == np.inf

    def f(a, b):
        return vikl.kl_divergence(vikl.Categorical(probs=a), vikl.Categorical(probs=b))

    ga, gb = jax.grad(f, argnums=(0, 1))(p, q)
    _finite_grads((ga, gb))
    # derivatives of sum p log(p/q): log(p/q) + 1 and -p/q where p > 0; 0 where p = 0
    np.testing.assert_allclose(ga, [0.0, np.log(2) + 1, np.log(0.5 / 0.75) + 1], rtol=1e-6)
    np.testing.assert_allclose(gb, [0.0, -2.0, -0.5 / 0.75], rtol=1e-6)
    # logits parameterization with -inf logits
    g = jax.grad(
        lambda z: vikl.kl_divergence(vikl.Categorical(logits=z), vikl.Categorical(probs=q))
    )(jnp.array([-jnp.inf, 0.0, 0.0]))
    assert np.all(np.isfinite(np.asarray(g[1:])))
    _finite_grads(jax.grad(lambda a: vikl.Categorical(probs=a).entropy())(p))


def test_categorical_kl_near_equal_float32():
    """Nearly equal rows: the one-log-of-ratio form tracks the float64 value."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(50))
    q = p * (1 + 1e-2 * rng.standard_normal(50))
    q /= q.sum()
    p32, q32 = np.float32(p), np.float32(q)
    # reference: the exact KL of the float32-rounded inputs, renormalized, in mpmath
    pp = [mp.mpf(float(v)) for v in p32]
    qq = [mp.mpf(float(v)) for v in q32]
    sp, sq = sum(pp), sum(qq)
    ref = float(sum((a / sp) * mp.log((a / sp) / (b / sq)) for a, b in zip(pp, qq)))
    out = float(vikl.kl_divergence(vikl.Categorical(probs=jnp.asarray(p32)), vikl.Categorical(probs=jnp.asarray(q32))))
    assert abs(out - ref) <= 2e-3 * ref + 2e-8


def test_categorical_kl_is_jittable_and_vmappable():
    rng = np.random.default_rng(3)
    p = jnp.asarray(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    q = jnp.asarray(rng.dirichlet(np.ones(6), size=5), jnp.float32)
    f = jax.jit(lambda a, b: vikl.kl_divergence(vikl.Categorical(probs=a), vikl.Categorical(probs=b)))
    g = jax.vmap(lambda a, b: vikl.kl_divergence(vikl.Categorical(probs=a), vikl.Categorical(probs=b)))
    ref = np.sum(ss.rel_entr(np.float64(p), np.float64(q)), -1)
    np.testing.assert_allclose(f(p, q), ref, rtol=1e-5)
    np.testing.assert_allclose(g(p, q), ref, rtol=1e-5)
    # broadcasting batch shapes: (5, 6) against (6,)
    out = vikl.kl_divergence(vikl.Categorical(probs=p), vikl.Categorical(probs=q[0]))
    assert out.shape == (5,)


def test_categorical_errors():
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        vikl.Categorical()
    with pytest.raises(ValueError, match="exactly one"):
        vikl.Categorical(probs=[0.5, 0.5], logits=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"Categorical: probs must be probabilities.*1\.1"):
        vikl.Categorical(probs=[0.5, 0.6])
    with pytest.raises(ValueError, match="probs must have at least 1"):
        vikl.Categorical(probs=0.5)
    with pytest.raises(ValueError, match="number of categories differs"):
        vikl.kl_divergence(vikl.Categorical(probs=[0.5, 0.5]), vikl.Categorical(probs=[0.2, 0.3, 0.5]))
    d = vikl.Categorical(probs=[0.5, 0.5])
    with pytest.raises(NotImplementedError, match="unordered labels"):
        d.mean
    with pytest.raises(NotImplementedError, match="unordered labels"):
        d.variance


# ============================================================== Bernoulli
@pytest.mark.parametrize("param", ["probs", "logits"])
def test_bernoulli_vs_references(dtype, param):
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0]) if param == "probs" else np.array([-30.0, -2.0, 0.0, 3.0, 40.0])
    d = vikl.Bernoulli(**{param: _a(p, dtype)})
    ref = td.Bernoulli(**{param: _t(p)})
    probs = ref.probs.numpy()
    _close(d.probs, probs, dtype)
    _close(d.mean, probs, dtype)
    if param == "probs":
        var = p * (1 - p)
    else:  # sigmoid(z) sigmoid(-z) in high precision (torch rounds p to 1 first)
        var = np.array([float(1 / ((1 + mp.exp(-mp.mpf(z))) * (1 + mp.exp(mp.mpf(z))))) for z in p])
    _close(d.variance, var, dtype, atol=1e-30)
    ent = ref.entropy().numpy()
    _close(d.entropy(), np.nan_to_num(ent), dtype, atol=1e-12)
    for x in (0.0, 1.0):
        lp = np.asarray(d.log_prob(jnp.asarray(x, dtype)), np.float64)
        if param == "probs":
            expected = st.bernoulli(probs).logpmf(x)
        else:  # log sigmoid(±z) in high precision
            expected = np.array([float(-mp.log1p(mp.exp(-(2 * x - 1) * mp.mpf(z)))) for z in p])
        np.testing.assert_allclose(lp, expected, rtol=2 * tol(dtype))
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(0.5, dtype)))).all()
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(2, jnp.int32)))).all()


def test_bernoulli_entropy_tiny_probability_float32():
    """Entropy from logits keeps relative accuracy where 1 - p rounds to 1."""
    z = -40.0
    p = 1 / (1 + mp.exp(-z))
    ref = float(-p * mp.log(p) - (1 - p) * mp.log(1 - p))
    out = float(vikl.Bernoulli(logits=jnp.float32(z)).entropy())
    assert out == pytest.approx(ref, rel=1e-5)


def test_bernoulli_kl_vs_torch(dtype):
    a = np.array([0.1, 0.5, 0.9, 0.0, 1.0, 0.3, 0.3])
    b = np.array([0.3, 0.5, 0.2, 0.4, 0.6, 0.0, 1.0])
    out = vikl.kl_divergence(vikl.Bernoulli(probs=_a(a, dtype)), vikl.Bernoulli(probs=_a(b, dtype)))
    ref = td.kl_divergence(td.Bernoulli(probs=_t(a)), td.Bernoulli(probs=_t(b))).numpy()
    assert np.isinf(np.asarray(out)[5:]).all() and not np.isnan(np.asarray(out)).any()
    _close(out[:5], ref[:5], dtype, rtol_scale=5)
    za, zb = np.array([-3.0, 0.5, 4.0]), np.array([1.0, -2.0, 4.5])
    out = vikl.kl_divergence(vikl.Bernoulli(logits=_a(za, dtype)), vikl.Bernoulli(logits=_a(zb, dtype)))
    ref = td.kl_divergence(td.Bernoulli(logits=_t(za)), td.Bernoulli(logits=_t(zb))).numpy()
    _close(out, ref, dtype, rtol_scale=5)


def test_bernoulli_gradients_finite_at_boundaries():
    def kl(a, b):
        return vikl.kl_divergence(vikl.Bernoulli(probs=a), vikl.Bernoulli(probs=b))

    for a, b in [(0.0, 0.5), (1.0, 0.5), (0.0, 0.0), (1.0, 1.0)]:
        _finite_grads(jax.grad(kl, argnums=(0, 1))(jnp.float32(a), jnp.float32(b)))
    for a in (0.0, 1.0):
        _finite_grads(jax.grad(lambda t: vikl.Bernoulli(probs=t).entropy())(jnp.float32(a)))
        _finite_grads(jax.grad(lambda t: vikl.Bernoulli(probs=t).log_prob(1.0 - a))(jnp.float32(a)))


def test_bernoulli_sampling():
    d = vikl.Bernoulli(probs=jnp.array([0.2, 0.7]))
    n = 20_000
    x = d.sample(jax.random.PRNGKey(2), (n,))
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    se = np.sqrt(np.array([0.2 * 0.8, 0.7 * 0.3]) / n)
    assert np.all(np.abs(np.asarray(x).mean(0) - [0.2, 0.7]) <= 5 * se)
    with pytest.raises(ValueError, match="Bernoulli: probs must be in \\[0, 1\\]"):
        vikl.Bernoulli(probs=1.5)


# ============================================================== Poisson
@functools.lru_cache(maxsize=None)
def _poisson_entropy_ref(lam):
    """-sum p log p in mpmath over mean ± 12 sd (the rest is far below float64 round-off)."""
    lam = mp.mpf(lam)
    sd = mp.sqrt(lam)
    s = mp.mpf(0)
    for k in range(max(0, int(lam - 12 * sd) - 5), int(lam + 12 * sd) + 40):
        lp = k * mp.log(lam) - lam - mp.loggamma(k + 1)
        s -= mp.exp(lp) * lp
    return float(s)


def test_poisson_log_prob_moments_vs_scipy(dtype):
    rate = np.array([0.3, 4.0, 250.0])
    d = vikl.Poisson(_a(rate, dtype))
    for x in (0.0, 3.0, 240.0):
        _close(d.log_prob(jnp.asarray(x, dtype)), st.poisson(rate).logpmf(x), dtype, rtol_scale=5)
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(-1.0, dtype)))).all()
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(1.5, dtype)))).all()
    _close(d.mean, rate, dtype)
    _close(d.variance, rate, dtype)


def test_poisson_entropy_vs_mpmath(dtype):
    """Both branches: window sums below 300 / 10_000 (float32 / float64), the series above."""
    rates = [1e-3, 0.7, 12.0, 299.0, 301.0, 2500.0, 9_999.0, 10_001.0, 1e6]
    ref = [_poisson_entropy_ref(r) for r in rates[:-1]]
    big = mp.mpf(rates[-1])  # far in the asymptotic regime: the series is exact to round-off
    ref.append(float(mp.log(2 * mp.pi * mp.e * big) / 2 - 1 / (12 * big) - 1 / (24 * big**2)))
    out = vikl.Poisson(_a(rates, dtype)).entropy()
    assert out.dtype == dtype
    _close(out, ref, dtype, rtol_scale=5)


def test_poisson_entropy_grad_and_vmap():
    g = jax.jit(jax.grad(lambda r: vikl.Poisson(r).entropy()))(jnp.float32(3.0))
    # dH/dλ by central differences of the mpmath reference
    h = 1e-4
    ref = (_poisson_entropy_ref(3.0 + h) - _poisson_entropy_ref(3.0 - h)) / (2 * h)
    assert float(g) == pytest.approx(ref, rel=1e-4)
    out = jax.jit(jax.vmap(lambda r: vikl.Poisson(r).entropy()))(jnp.array([0.5, 500.0]))
    np.testing.assert_allclose(out, [_poisson_entropy_ref(0.5), _poisson_entropy_ref(500.0)], rtol=1e-5)


def test_poisson_kl_vs_torch_and_near_equal(dtype):
    a, b = np.array([0.5, 3.0, 40.0]), np.array([2.0, 2.9, 10.0])
    out = vikl.kl_divergence(vikl.Poisson(_a(a, dtype)), vikl.Poisson(_a(b, dtype)))
    ref = td.kl_divergence(td.Poisson(_t(a)), td.Poisson(_t(b))).numpy()
    _close(out, ref, dtype, rtol_scale=5)
    # nearly equal rates: no cancellation (reference on the rounded inputs, mpmath)
    ra, rb = np.array([1.0, 1.0 + 1e-3], dtype)
    exact = float(mp.mpf(float(ra)) * mp.log(mp.mpf(float(ra)) / mp.mpf(float(rb))) - ra + mp.mpf(float(rb)))
    out = float(vikl.kl_divergence(vikl.Poisson(jnp.asarray(ra)), vikl.Poisson(jnp.asarray(rb))))
    assert out == pytest.approx(exact, rel=20 * tol(dtype))


def test_poisson_sampling():
    d = vikl.Poisson(jnp.array([0.5, 20.0]))
    n = 20_000
    x = np.asarray(d.sample(jax.random.PRNGKey(3), (n,)))
    assert x.shape == (n, 2) and x.dtype == np.float32 and np.all(x == np.floor(x))
    assert np.all(np.abs(x.mean(0) - [0.5, 20.0]) <= 5 * np.sqrt(np.array([0.5, 20.0]) / n))


# ============================================================== Binomial
@functools.lru_cache(maxsize=None)
def _binomial_entropy_ref(n, p):
    p = mp.mpf(p)
    q = 1 - p
    m, sd = n * p, mp.sqrt(n * p * q)
    log_n = mp.loggamma(n + 1)
    s = mp.mpf(0)
    for k in range(max(0, int(m - 12 * sd) - 5), min(n, int(m + 12 * sd) + 40) + 1):
        lp = log_n - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) + k * mp.log(p) + (n - k) * mp.log(q)
        s -= mp.exp(lp) * lp
    return float(s)


def test_binomial_log_prob_moments_vs_scipy(dtype):
    n, p = np.array([10.0, 10.0, 40.0, 0.0]), np.array([0.3, 0.0, 0.95, 0.5])
    d = vikl.Binomial(_a(n, dtype), probs=_a(p, dtype))
    for x in (0.0, 3.0, 10.0):
        expected = st.binom(n, p).logpmf(x)
        out = np.asarray(d.log_prob(jnp.asarray(x, dtype)), np.float64)
        assert np.array_equal(np.isneginf(out), np.isneginf(expected))
        fin = np.isfinite(expected)
        np.testing.assert_allclose(out[fin], expected[fin], rtol=10 * tol(dtype), atol=10 * tol(dtype))
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(2.5, dtype)))).all()
    _close(d.mean, n * p, dtype)
    _close(d.variance, n * p * (1 - p), dtype)
    # logits give the same distribution
    dl = vikl.Binomial(_a(12.0, dtype), logits=_a(0.4, dtype))
    ref = td.Binomial(12, logits=torch.tensor(0.4, dtype=torch.float64))
    _close(dl.log_prob(jnp.asarray(5.0, dtype)), ref.log_prob(torch.tensor(5.0, dtype=torch.float64)).numpy(), dtype, 5)


def test_binomial_entropy_vs_mpmath(dtype):
    """Window sums (variance <= 300 / 10_000) and the Edgeworth series above."""
    cases = [(10, 0.3), (1000, 0.5), (100_000, 1e-4), (1200, 0.5), (40_001, 0.5), (200_000, 0.9)]
    n, p = zip(*cases)
    out = vikl.Binomial(_a(n, dtype), probs=_a(p, dtype)).entropy()
    _close(out, [_binomial_entropy_ref(*c) for c in cases], dtype, rtol_scale=10)


def test_binomial_entropy_degenerate_and_grad():
    d = vikl.Binomial(jnp.array([0.0, 5.0, 5.0, 5.0]), probs=jnp.array([0.3, 0.0, 1.0, 0.3]))
    out = np.asarray(jax.jit(lambda d: d.entropy())(d))
    np.testing.assert_array_equal(out[:3], [0.0, 0.0, 0.0])
    grad = jax.jit(jax.grad(lambda t, n: vikl.Binomial(n, probs=t).entropy()))
    _finite_grads(grad(jnp.float32(0.0), jnp.float32(5.0)))
    g = grad(jnp.float32(0.3), jnp.float32(8.0))
    h = 1e-5
    ref = (_binomial_entropy_ref(8, 0.3 + h) - _binomial_entropy_ref(8, 0.3 - h)) / (2 * h)
    assert float(g) == pytest.approx(ref, rel=1e-4)


def test_binomial_kl(dtype):
    n, a, b = 12.0, np.array([0.2, 0.5, 0.0, 1.0]), np.array([0.4, 0.5, 0.3, 0.7])
    out = vikl.kl_divergence(
        vikl.Binomial(_a(n, dtype), probs=_a(a, dtype)), vikl.Binomial(_a(n, dtype), probs=_a(b, dtype))
    )
    ref = td.kl_divergence(td.Binomial(12, probs=_t(a[:3])), td.Binomial(12, probs=_t(b[:3]))).numpy()
    _close(out[:3], ref, dtype, rtol_scale=5, atol=5 * tol(dtype))
    _close(out[3], -12 * np.log(0.7), dtype)  # torch returns -inf here; KL(δ12‖Bin(12, b)) = -12 log b
    # p.total_count > q.total_count: +inf (p reaches counts q cannot)
    big = vikl.kl_divergence(vikl.Binomial(_a(12.0, dtype), probs=_a(0.3, dtype)), vikl.Binomial(_a(5.0, dtype), probs=_a(0.3, dtype)))
    assert float(big) == np.inf
    # point masses, any counts: sum p log(p/q) with scipy pmfs
    for n_p, a1, n_q, b1 in [(3.0, 0.0, 7.0, 0.4), (3.0, 1.0, 7.0, 0.4), (9.0, 0.0, 2.0, 0.4), (9.0, 1.0, 2.0, 0.4)]:
        out = float(vikl.kl_divergence(vikl.Binomial(_a(n_p, dtype), probs=_a(a1, dtype)), vikl.Binomial(_a(n_q, dtype), probs=_a(b1, dtype))))
        k = np.arange(int(n_p) + 1)
        pk, qk = st.binom(n_p, a1).pmf(k), st.binom(n_q, b1).pmf(k)
        with np.errstate(divide="ignore"):
            ref = np.sum(ss.rel_entr(pk, qk))
        assert out == pytest.approx(ref, rel=10 * tol(dtype))
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.kl_divergence(vikl.Binomial(5.0, probs=0.3), vikl.Binomial(8.0, probs=0.3))
    nan = jax.jit(lambda a, b: vikl.kl_divergence(vikl.Binomial(5.0, probs=a), vikl.Binomial(8.0, probs=b)))(
        jnp.float32(0.3), jnp.float32(0.3)
    )
    assert np.isnan(float(nan))  # documented: no closed form, NaN under jit


def test_binomial_sampling():
    d = vikl.Binomial(jnp.array([10.0, 0.0, 6.0]), probs=jnp.array([0.3, 0.5, 1.0]))
    x = np.asarray(d.sample(jax.random.PRNGKey(4), (20_000,)))
    assert x.shape == (20_000, 3) and np.all(x == np.floor(x))
    assert abs(x[:, 0].mean() - 3.0) <= 5 * np.sqrt(2.1 / 20_000)
    assert np.all(x[:, 1] == 0) and np.all(x[:, 2] == 6)
    with pytest.raises(ValueError, match="total_count must be integers >= 0"):
        vikl.Binomial(2.5, probs=0.3)


# ============================================================== Geometric
def test_geometric_vs_references(dtype):
    p = np.array([0.1, 0.5, 0.9, 1.0])
    d = vikl.Geometric(probs=_a(p, dtype))
    ref = td.Geometric(probs=_t(p))
    for k in (0.0, 1.0, 7.0):
        expected = st.geom(p).logpmf(k + 1)  # scipy counts trials, torch/vikl count failures
        out = np.asarray(d.log_prob(jnp.asarray(k, dtype)), np.float64)
        assert np.array_equal(np.isneginf(out), np.isneginf(expected))
        fin = np.isfinite(expected)
        np.testing.assert_allclose(out[fin], expected[fin], rtol=5 * tol(dtype), atol=5 * tol(dtype))
    _close(d.mean, ref.mean.numpy(), dtype)
    _close(d.variance, ref.variance.numpy(), dtype)
    _close(d.entropy(), np.nan_to_num(ref.entropy().numpy()), dtype, atol=1e-12)
    assert np.isneginf(np.asarray(d.log_prob(jnp.asarray(-1.0, dtype)))).all()
    # logits
    z = np.array([-2.0, 0.0, 3.0])
    dl, rl = vikl.Geometric(logits=_a(z, dtype)), td.Geometric(logits=_t(z))
    _close(dl.entropy(), rl.entropy().numpy(), dtype, rtol_scale=5)
    _close(dl.mean, rl.mean.numpy(), dtype, rtol_scale=5)


def test_geometric_kl_vs_torch(dtype):
    a, b = np.array([0.1, 0.5, 0.9, 1.0, 0.3]), np.array([0.3, 0.5, 0.2, 0.6, 1.0])
    out = vikl.kl_divergence(vikl.Geometric(probs=_a(a, dtype)), vikl.Geometric(probs=_a(b, dtype)))
    # torch gives NaN at a = 1 and +inf at b = 1; check those by hand: KL(δ0‖Geo(b)) = -log b
    ref = td.kl_divergence(td.Geometric(probs=_t(a[:3])), td.Geometric(probs=_t(b[:3]))).numpy()
    _close(out[:3], ref, dtype, rtol_scale=5)
    _close(out[3], -np.log(0.6), dtype)
    assert float(out[4]) == np.inf


def test_geometric_sampling_and_errors():
    d = vikl.Geometric(probs=jnp.array([0.25, 1.0]))
    n = 40_000
    x = np.asarray(d.sample(jax.random.PRNGKey(5), (n,)))
    assert np.all(x >= 0) and np.all(x == np.floor(x)) and np.all(x[:, 1] == 0)
    assert abs(x[:, 0].mean() - 3.0) <= 5 * np.sqrt(12.0 / n)
    with pytest.raises(ValueError, match="Geometric: probs must give a success probability > 0"):
        vikl.Geometric(probs=0.0)


# ============================================================== cross-family pairs
def _kl_by_sum(pmf_p, pmf_q, kmax):
    k = np.arange(kmax + 1)
    pk, qk = pmf_p(k), pmf_q(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(ss.rel_entr(pk, qk)))


def test_cross_family_kl_vs_direct_sums(dtype):
    f = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    cases = [
        (vikl.Bernoulli(probs=f(0.3)), vikl.Poisson(f(1.7)), st.bernoulli(0.3).pmf, st.poisson(1.7).pmf),
        (vikl.Bernoulli(probs=f(0.3)), vikl.Binomial(f(4.0), probs=f(0.2)), st.bernoulli(0.3).pmf, st.binom(4, 0.2).pmf),
        (vikl.Bernoulli(probs=f(0.3)), vikl.Binomial(f(1.0), probs=f(1.0)), st.bernoulli(0.3).pmf, st.binom(1, 1.0).pmf),
        (vikl.Bernoulli(probs=f(0.0)), vikl.Binomial(f(0.0), probs=f(0.5)), st.bernoulli(0.0).pmf, st.binom(0, 0.5).pmf),
        (vikl.Bernoulli(probs=f(0.6)), vikl.Geometric(probs=f(0.35)), st.bernoulli(0.6).pmf, lambda k: st.geom(0.35).pmf(k + 1)),
        (vikl.Binomial(f(1.0), probs=f(0.4)), vikl.Bernoulli(probs=f(0.7)), st.binom(1, 0.4).pmf, st.bernoulli(0.7).pmf),
        (vikl.Binomial(f(6.0), probs=f(0.0)), vikl.Bernoulli(probs=f(0.7)), st.binom(6, 0.0).pmf, st.bernoulli(0.7).pmf),
        (vikl.Binomial(f(6.0), probs=f(0.4)), vikl.Geometric(probs=f(0.3)), st.binom(6, 0.4).pmf, lambda k: st.geom(0.3).pmf(k + 1)),
        (vikl.Poisson(f(2.5)), vikl.Geometric(probs=f(0.3)), st.poisson(2.5).pmf, lambda k: st.geom(0.3).pmf(k + 1)),
        (vikl.Geometric(probs=f(1.0)), vikl.Bernoulli(probs=f(0.25)), lambda k: st.geom(1.0).pmf(k + 1), st.bernoulli(0.25).pmf),
        (vikl.Geometric(probs=f(1.0)), vikl.Binomial(f(3.0), probs=f(0.25)), lambda k: st.geom(1.0).pmf(k + 1), st.binom(3, 0.25).pmf),
    ]
    for p, q, pmf_p, pmf_q in cases:
        out = vikl.kl_divergence(p, q)
        ref = _kl_by_sum(pmf_p, pmf_q, 200)
        assert out.dtype == dtype
        if np.isinf(ref):
            assert float(out) == np.inf, (p, q)
        else:
            assert float(out) == pytest.approx(ref, rel=20 * tol(dtype), abs=20 * tol(dtype)), (p, q)


def test_cross_family_infinite_pairs():
    cases = [
        (vikl.Poisson(2.0), vikl.Bernoulli(probs=0.5)),
        (vikl.Poisson(2.0), vikl.Binomial(10.0, probs=0.5)),
        (vikl.Bernoulli(probs=0.3), vikl.Binomial(0.0, probs=0.5)),
        (vikl.Binomial(3.0, probs=0.5), vikl.Bernoulli(probs=0.5)),
        (vikl.Geometric(probs=0.5), vikl.Bernoulli(probs=0.5)),
        (vikl.Geometric(probs=0.5), vikl.Binomial(4.0, probs=0.5)),
    ]
    for p, q in cases:
        assert float(vikl.kl_divergence(p, q)) == np.inf, (p, q)
    # torch agrees on its pairs
    assert td.kl_divergence(td.Poisson(torch.tensor(2.0)), td.Bernoulli(torch.tensor(0.5))) == np.inf
    ref = td.kl_divergence(td.Bernoulli(torch.tensor(0.3, dtype=torch.float64)), td.Poisson(torch.tensor(1.7, dtype=torch.float64)))
    assert float(vikl.kl_divergence(vikl.Bernoulli(probs=0.3), vikl.Poisson(1.7))) == pytest.approx(float(ref), rel=1e-5)


def test_every_discrete_pair_is_nan_free_with_finite_gradients():
    """Walk the registered pairs among the discrete families; values and gradients never NaN."""
    fams = {
        vikl.Categorical: lambda t: vikl.Categorical(logits=jnp.stack([t, -t, 0.5 * t])),
        vikl.Bernoulli: lambda t: vikl.Bernoulli(probs=t),
        vikl.Poisson: lambda t: vikl.Poisson(1.0 + t),
        vikl.Binomial: lambda t: vikl.Binomial(4.0, probs=t),
        vikl.Geometric: lambda t: vikl.Geometric(probs=0.5 + 0.5 * t),
    }
    pairs = [(a, b) for (a, b) in vikl.registered_kl_pairs() if a in fams and b in fams]
    assert len(pairs) >= 15
    s = jnp.array([0.3, 0.0, 0.5, 1.0], jnp.float32)
    t = jnp.array([0.6, 0.5, 0.0, 0.2], jnp.float32)
    for a, b in pairs:
        def f(s, t, a=a, b=b):
            return vikl.kl_divergence(fams[a](s), fams[b](t))

        # jit + vmap over the four points + grad, in one compiled program
        values, grads = jax.jit(jax.vmap(jax.value_and_grad(f, argnums=(0, 1))))(s, t)
        values = np.asarray(values)
        assert not np.isnan(values).any(), (a, b, values)
        for i in np.flatnonzero(np.isfinite(values)):
            assert np.isfinite(float(grads[0][i])) and np.isfinite(float(grads[1][i])), (a, b, i)


def test_discrete_families_are_pytrees_under_jit_and_vmap():
    ds = [
        vikl.Categorical(probs=jnp.array([[0.2, 0.8], [0.5, 0.5]])),
        vikl.Bernoulli(logits=jnp.array([0.1, -0.3])),
        vikl.Poisson(jnp.array([1.0, 2.0])),
        vikl.Binomial(jnp.array([3.0, 4.0]), probs=jnp.array([0.2, 0.6])),
        vikl.Geometric(probs=jnp.array([0.2, 0.6])),
    ]
    xs = [jnp.array([1, 0]), jnp.array([1.0, 0.0]), jnp.array([0.0, 3.0]), jnp.array([2.0, 4.0]), jnp.array([5.0, 0.0])]
    for d, x in zip(ds, xs):
        np.testing.assert_allclose(jax.jit(lambda d, x: d.log_prob(x))(d, x), d.log_prob(x), rtol=1e-6)
        v = jax.vmap(lambda d, x: d.log_prob(x))(d, x)
        np.testing.assert_allclose(v, d.log_prob(x), rtol=1e-6)
        assert not type(d).reparameterized
