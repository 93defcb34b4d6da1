"""Objectives: Monte-Carlo values and gradients against quadrature and hand-worked formulas.

Each check averages the estimator over R independent keys (one jitted vmap) and
compares with an independent reference within 5 standard errors (plus, for the
biased log-mean-exp bounds, a second-order bound on their bias).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import vikl
from tests.conftest import mc_tolerance
from vikl import objectives as O
from vikl._params import constrain, unconstrain

MQ, SQ = 0.5, 0.8  # q = N(MQ, SQ^2)
MP, SP = -0.3, 1.5  # p = N(MP, SP^2)
Q = vikl.Normal(jnp.float32(MQ), jnp.float32(SQ))
P = vikl.Normal(jnp.float32(MP), jnp.float32(SP))


def _keys(n, seed=0):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _values_and_grads(objective, q, target, keys):
    """Loss and gradient (wrt the unconstrained params) for each key: one jit + vmap."""
    params = unconstrain(q)

    def f(p, k):
        return objective(constrain(q, p), target, k)

    return jax.jit(jax.vmap(jax.value_and_grad(f), in_axes=(None, 0)))(params, keys)


def _assert_mc(samples, ref, extra=0.0):
    samples = np.asarray(samples, np.float64)
    se = samples.std(ddof=1) / math.sqrt(samples.shape[0])
    assert abs(samples.mean() - ref) <= mc_tolerance(se) + extra, (samples.mean(), ref, se)


def _quad(f, lo=-40.0, hi=40.0):
    return scipy.integrate.quad(f, lo, hi, limit=400, epsabs=1e-12, epsrel=1e-11)[0]


def _kl_quad(p_logpdf, q_logpdf):
    """KL(p‖q) = ∫ p (log p - log q) by quadrature."""
    return _quad(lambda x: math.exp(p_logpdf(x)) * (p_logpdf(x) - q_logpdf(x)))


LOGQ = scipy.stats.norm(MQ, SQ).logpdf
LOGP = scipy.stats.norm(MP, SP).logpdf


# ----------------------------------------------------------------------------- reverse KL
@pytest.mark.parametrize(
    "gradient,analytic",
    [("reparam", True), ("reparam", False), ("stl", True), ("score", True), ("score", False)],
)
def test_reverse_kl_value_and_gradient(gradient, analytic):
    obj = O.ReverseKL(num_samples=16, gradient=gradient, analytic_entropy=analytic)
    loss, g = _values_and_grads(obj, Q, P, _keys(512))
    _assert_mc(loss, _kl_quad(LOGQ, LOGP))
    # d KL(q‖p) / d loc = (MQ - MP) / SP^2 ; d / d log(scale) = SQ^2 / SP^2 - 1 (hand-worked)
    _assert_mc(g["loc"], (MQ - MP) / SP**2)
    _assert_mc(g["scale"], SQ**2 / SP**2 - 1.0)


def test_reverse_kl_unnormalized_callable_shifts_by_log_z():
    obj = O.ReverseKL(num_samples=8)
    keys = _keys(4)
    a, _ = _values_and_grads(obj, Q, lambda x: P.log_prob(x), keys)
    b, _ = _values_and_grads(obj, Q, lambda x: P.log_prob(x) + 3.0, keys)
    np.testing.assert_allclose(np.asarray(a) - np.asarray(b), 3.0, rtol=1e-6)


def test_stl_gradient_vanishes_when_q_equals_p():
    _, g = _values_and_grads(O.ReverseKL(num_samples=4, gradient="stl"), Q, Q, _keys(8))
    assert np.max(np.abs(np.asarray(g["loc"]))) < 1e-5
    assert np.max(np.abs(np.asarray(g["scale"]))) < 1e-5
    _, g = _values_and_grads(O.ReverseKL(num_samples=4, analytic_entropy=False), Q, Q, _keys(8))
    assert np.max(np.abs(np.asarray(g["loc"]))) > 1e-2  # the plain estimator is noisy there


def test_score_function_categorical():
    logits = np.array([0.4, -0.3, 1.0, 0.0], np.float32)
    probs_p = np.array([0.1, 0.2, 0.3, 0.4])
    q = vikl.Categorical(logits=jnp.asarray(logits))
    p = vikl.Categorical(probs=jnp.asarray(probs_p, jnp.float32))
    qq = np.exp(logits - np.logaddexp.reduce(logits))
    kl = float(np.sum(qq * np.log(qq / probs_p)))
    loss, g = _values_and_grads(O.ReverseKL(num_samples=8), q, p, _keys(1024))
    _assert_mc(loss, kl)
    # d KL / d logit_j = q_j (log(q_j / p_j) - KL)  (softmax Jacobian, hand-worked)
    ref = qq * (np.log(qq / probs_p) - kl)
    for j in range(4):
        _assert_mc(np.asarray(g["_logits"])[:, j], ref[j])


def test_score_function_poisson():
    lam, mu = 2.5, 4.0
    loss, g = _values_and_grads(O.ReverseKL(num_samples=8), vikl.Poisson(jnp.float32(lam)),
                                vikl.Poisson(jnp.float32(mu)), _keys(1024))
    # KL(Poi(lam)‖Poi(mu)) = lam log(lam/mu) - lam + mu; d/d log(lam) = lam log(lam/mu)
    _assert_mc(loss, lam * math.log(lam / mu) - lam + mu)
    _assert_mc(g["rate"], lam * math.log(lam / mu))


def test_mixture_q_gradient_reaches_the_weights():
    logits = np.array([0.3, -0.2])
    locs, scales = np.array([-1.0, 1.5]), np.array([0.7, 1.2])
    q = vikl.Mixture(jnp.asarray(logits, jnp.float32),
                     vikl.Normal(jnp.asarray(locs, jnp.float32), jnp.asarray(scales, jnp.float32)))

    def kl(lg, lc):
        w = np.exp(lg - np.logaddexp.reduce(lg))

        def logq(x):
            return np.logaddexp.reduce(np.log(w) + scipy.stats.norm(lc, scales).logpdf(x))

        return _kl_quad(logq, LOGP)

    loss, g = _values_and_grads(O.ReverseKL(num_samples=8), q, P, _keys(512))
    _assert_mc(loss, kl(logits, locs))
    h = 1e-4
    for j in range(2):  # central differences of the quadrature KL
        e = np.eye(2)[j] * h
        _assert_mc(np.asarray(g["_mixture_logits"])[:, j], (kl(logits + e, locs) - kl(logits - e, locs)) / (2 * h))
        _assert_mc(np.asarray(g["components"]["loc"])[:, j], (kl(logits, locs + e) - kl(logits, locs - e)) / (2 * h))


# ----------------------------------------------------------------------------- forward KL
def test_forward_kl_from_target_samples():
    loss, g = _values_and_grads(O.ForwardKL(num_samples=16), Q, P, _keys(512))
    _assert_mc(loss, _kl_quad(LOGP, LOGQ))
    # -E_p grad log q: d/d loc = -(MP - MQ)/SQ^2 ; d/d log scale = 1 - (SP^2 + (MP - MQ)^2)/SQ^2
    _assert_mc(g["loc"], -(MP - MQ) / SQ**2)
    _assert_mc(g["scale"], 1.0 - (SP**2 + (MP - MQ) ** 2) / SQ**2)


def test_forward_kl_snis_from_log_density_only():
    q = vikl.Normal(jnp.float32(0.0), jnp.float32(2.0))  # wider than p: well-behaved weights
    p = scipy.stats.norm(0.5, 1.0)
    obj = O.ForwardKL(num_samples=2048)
    unnormalized = lambda x: -0.5 * (x - 0.5) ** 2 + 7.0  # noqa: E731  (log Z is irrelevant)
    keys = _keys(64)
    loss, g = _values_and_grads(obj, q, unnormalized, keys)
    ref = _kl_quad(p.logpdf, scipy.stats.norm(0.0, 2.0).logpdf)
    _assert_mc(loss, ref, extra=5e-3)  # SNIS is biased, O(1/num_samples)
    _assert_mc(g["loc"], -(0.5 - 0.0) / 4.0, extra=5e-3)
    _, aux = jax.jit(lambda k: obj.loss_and_aux(q, unnormalized, k))(keys[0])
    assert 1.0 <= float(aux["ess"]) <= 2048.0 and float(aux["ess"]) > 500


def test_forward_kl_on_empirical_data():
    data = np.random.default_rng(0).normal(1.0, 2.0, size=500).astype(np.float32)
    target = vikl.Empirical(jnp.asarray(data))
    ref = -np.mean(scipy.stats.norm(MQ, SQ).logpdf(data.astype(np.float64)))
    loss, _ = _values_and_grads(O.ForwardKL(), Q, target, _keys(2))
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    loss, _ = _values_and_grads(O.ForwardKL(batch_size=32), Q, target, _keys(512))
    _assert_mc(loss, ref)  # minibatches are unbiased


# ----------------------------------------------------------------------------- Rényi family
SW = 1.8  # a q wider than p, so that E_q[w^(2 beta)] is finite for the orders below
QW = vikl.Normal(jnp.float32(MQ), jnp.float32(SW))
LOGQW = scipy.stats.norm(MQ, SW).logpdf


def _renyi_exact(alpha):
    """L_a = (1/(1-a)) log ∫ q^a p^(1-a), by quadrature."""
    integral = _quad(lambda x: math.exp(alpha * LOGQW(x) + (1 - alpha) * LOGP(x)))
    return math.log(integral) / (1 - alpha)


def _log_mean_exp_bias(beta, n):
    """Second-order bias of (1/beta) log mean_n w^beta: -Var(w^beta) / (2 n beta E[w^beta]^2)."""
    m1 = _quad(lambda x: math.exp(LOGQW(x) + beta * (LOGP(x) - LOGQW(x))))
    m2 = _quad(lambda x: math.exp(LOGQW(x) + 2 * beta * (LOGP(x) - LOGQW(x))))
    return abs((m2 - m1**2) / (2 * n * beta * m1**2))


@pytest.mark.parametrize("alpha", [0.5, 0.0, -0.5])
def test_renyi_value(alpha):
    n = 256
    loss, _ = _values_and_grads(O.Renyi(alpha, num_samples=n), QW, P, _keys(256))
    sign = -1.0 if alpha >= 0 else 1.0  # lower bounds are maximized, upper bounds minimized
    bias = _log_mean_exp_bias(1 - alpha, n)
    _assert_mc(sign * np.asarray(loss), _renyi_exact(alpha), extra=3 * bias)


def test_renyi_special_cases_are_the_other_objectives():
    keys = _keys(3)
    a, _ = _values_and_grads(O.Renyi(1.0, num_samples=8), Q, P, keys)
    b, _ = _values_and_grads(O.ReverseKL(num_samples=8, analytic_entropy=False), Q, P, keys)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    a, _ = _values_and_grads(O.Renyi(0.0, num_samples=8), Q, P, keys)
    b, _ = _values_and_grads(O.IWAE(num_particles=8), Q, P, keys)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    a, ga = _values_and_grads(O.Renyi(-1.0, num_samples=8), Q, P, keys)
    b, gb = _values_and_grads(O.ChiSquare(2.0, num_samples=8), Q, P, keys)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ga["loc"], gb["loc"], rtol=1e-6)


def test_chi_square_gradient_is_chivi_unbiased_gradient():
    # grad of the surrogate = grad E_q[w^2] / 2 (c = 0); reference: central differences of ∫ p^2/q.
    def m2(mq, log_sq):
        lq = scipy.stats.norm(mq, math.exp(log_sq)).logpdf
        return _quad(lambda x: math.exp(2 * LOGP(x) - lq(x)))

    q = vikl.Normal(jnp.float32(MQ), jnp.float32(1.3))  # heavy enough tails: ∫ p^2/q finite
    loss, g = _values_and_grads(O.ChiSquare(num_samples=64), q, P, _keys(512))
    h = 1e-4
    ls = math.log(1.3)
    _assert_mc(g["loc"], (m2(MQ + h, ls) - m2(MQ - h, ls)) / (2 * h) / 2)
    _assert_mc(g["scale"], (m2(MQ, ls + h) - m2(MQ, ls - h)) / (2 * h) / 2)


def test_iwae_dreg_and_reparam_gradients_agree():
    keys = _keys(512)
    _, g1 = _values_and_grads(O.IWAE(num_particles=8, num_samples=16), Q, P, keys)
    _, g2 = _values_and_grads(O.IWAE(num_particles=8, num_samples=16, gradient="dreg"), Q, P, _keys(512, 1))
    for k in ("loc", "scale"):
        a, b = np.asarray(g1[k], np.float64), np.asarray(g2[k], np.float64)
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(a.mean() - b.mean()) < mc_tolerance(se)
    # at q = p the DReG gradient is exactly zero (no score term), the plain one is not
    _, g = _values_and_grads(O.IWAE(num_particles=4, gradient="dreg"), Q, Q, _keys(8))
    assert np.max(np.abs(np.asarray(g["loc"]))) < 1e-5


def test_iwae_one_particle_is_the_elbo():
    keys = _keys(3)
    a, _ = _values_and_grads(O.IWAE(num_particles=1, num_samples=8), Q, P, keys)
    b, _ = _values_and_grads(O.ReverseKL(num_samples=8, analytic_entropy=False), Q, P, keys)
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ----------------------------------------------------------------------------- misc
def test_loss_keeps_the_dtype(dtype):
    q = vikl.Normal(jnp.asarray(0.1, dtype), jnp.asarray(1.2, dtype))
    p = vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype))
    for obj in (O.ReverseKL(num_samples=4), O.ForwardKL(num_samples=4), O.Renyi(0.5, num_samples=4)):
        assert jax.jit(obj)(q, p, jax.random.PRNGKey(0)).dtype == dtype


def test_get_and_user_functions():
    assert O.get("reverse_kl") == O.ReverseKL()
    assert O.get("elbo", num_samples=4) == O.ReverseKL(num_samples=4)
    assert O.get(O.Renyi(0.3), num_samples=8) == O.Renyi(0.3, num_samples=8)
    assert isinstance(O.get("chivi"), O.ChiSquare)
    assert hash(O.ReverseKL(num_samples=3)) == hash(O.ReverseKL(num_samples=3))

    def my_objective(q, target, key):
        return -jnp.mean(target(q.sample(key, (4,))))

    assert O.get(my_objective) is my_objective
    with pytest.raises(ValueError, match="plain function"):
        O.get(my_objective, num_samples=4)
    with pytest.raises(ValueError, match="unknown objective"):
        O.get("reverse-kl")


def test_bad_arguments_and_targets():
    with pytest.raises(ValueError, match="num_samples"):
        O.ReverseKL(num_samples=0)
    with pytest.raises(ValueError, match="gradient"):
        O.ReverseKL(gradient="pathwise")
    with pytest.raises(ValueError, match="multiple"):
        O.IWAE(num_particles=4, num_samples=6)
    with pytest.raises(ValueError, match="n must be"):
        O.ChiSquare(n=1.0)
    cat = vikl.Categorical(logits=jnp.zeros(3))
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="gradient='score'"):
        O.ReverseKL(gradient="reparam")(cat, cat, key)
    with pytest.raises(ValueError, match="reparameterized"):
        O.Renyi(0.5)(cat, cat, key)
    with pytest.raises(ValueError, match="forward_kl"):
        O.ReverseKL()(Q, vikl.Empirical(jnp.zeros(5)), key)
    with pytest.raises(ValueError, match="point shape"):
        O.ForwardKL()(Q, vikl.Empirical(jnp.zeros((5, 2))), key)
    with pytest.raises(ValueError, match="scalar"):
        O.ReverseKL()(Q, lambda x: jnp.stack([x, x]), key)
