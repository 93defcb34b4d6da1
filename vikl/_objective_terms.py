"""Monte-Carlo terms of the objectives in :mod:`vikl.objectives`.

Draws and log importance weights, ``ReverseKL``'s gradient estimators and
``ForwardKL``'s methods (each a table of small functions keyed by the name
the objective accepts), and the Rényi-family bounds. Targets are touched
only through :mod:`vikl._targets`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl import _qmc, _targets


# ----------------------------------------------------------------------------- helpers
def q_log_prob(q, x):
    """``log q(x)`` summed over ``q``'s batch axes -> ``(n,)``."""
    return _targets.flat_sum(q.log_prob(x), x.shape[0])


def draw(q, key, n, stop_q=False, draws="mc"):
    """``n`` draws of q and ``log q`` at them (not summed): i.i.d. (``draws="mc"``) or RQMC.

    ``"rqmc"`` makes them from scrambled Sobol normals (:mod:`vikl._qmc`) and
    raises ``ValueError`` for a family that cannot draw from given normals;
    ``"auto"`` is ``"rqmc"`` where the family can, else ``"mc"``.
    """
    if _qmc.resolve(draws, q) == "rqmc":
        return _qmc.draw(q, key, n, stop_log_prob=stop_q)
    return _targets.draw(q, key, n, stop_log_prob=stop_q)


def sample(q, key, n, draws="mc"):
    """``n`` draws of q (``q.sample`` for ``"mc"``, so results stay as they were)."""
    return q.sample(key, (n,)) if _qmc.resolve(draws, q) == "mc" else draw(q, key, n, draws=draws)[0]


def sample_and_log_prob(q, key, n, stop_q=False, draws="mc"):
    """``n`` draws of q and ``log q`` at them, summed over q's batch axes -> ``(n,)``.

    With ``stop_q`` the log density is taken with q's parameters held fixed,
    so its gradient reaches them only through the draws (sticking the landing).
    """
    x, logq = draw(q, key, n, stop_q, draws)
    return x, _targets.flat_sum(logq, n)


def entropy_or_none(q):
    try:
        h = q.entropy()
    except NotImplementedError:
        return None
    return jnp.sum(h)


def is_reparameterized(q) -> bool:
    """``q.reparameterized`` (a class attribute, or a property such as Transformed's)."""
    return bool(getattr(q, "reparameterized", True))


def sg(tree):
    return jax.lax.stop_gradient(tree)


def with_gradient(value, surrogate):
    """A scalar whose value is ``value`` and whose gradient is ``grad(surrogate)``."""
    return sg(value) + (surrogate - sg(surrogate))


def log_mean_exp(a, axis=-1):
    n = a.shape[axis]
    return jax.scipy.special.logsumexp(a, axis=axis) - math.log(n)


def check_point_shape(q, x, what):
    expect = tuple(q.batch_shape) + tuple(q.event_shape)
    if tuple(x.shape[1:]) != expect:
        raise ValueError(
            f"{what} have point shape {tuple(x.shape[1:])} but q's points have shape {expect} "
            "(q.batch_shape + q.event_shape); the target and q must live on the same space"
        )


def log_weights(q, target, key, num_samples, stop_q=False, draws="mc"):
    """Reparameterized draws and ``log w = log p(x) - log q(x)``, shape ``(num_samples,)``."""
    x, logq = sample_and_log_prob(q, key, num_samples, stop_q, draws)
    return _targets.log_prob(target, x) - logq


# ----------------------------------------------------------------------------- reverse KL
# ReverseKL's gradient estimators: (q, target, key, num_samples, entropy or None, draws) -> loss
# whose value estimates E_q[log q - log p] and whose gradient is the estimator's. A new estimator
# is one function here and one entry in REVERSE_KL_GRADIENTS.
def _reparam_kl(q, target, key, n, entropy, draws="mc"):
    """Pathwise gradient; ``-mean log p(x_i) - H(q)`` with an analytic entropy."""
    if entropy is not None:
        x = sample(q, key, n, draws)
        return -jnp.mean(_targets.log_prob(target, x)) - entropy
    return -jnp.mean(log_weights(q, target, key, n, draws=draws))


def _stl_kl(q, target, key, n, entropy, draws="mc"):
    """Sticking the landing: ``log q`` with stopped parameters (``entropy`` unused)."""
    return -jnp.mean(log_weights(q, target, key, n, stop_q=True, draws=draws))


def _score_kl(q, target, key, n, entropy, draws="mc"):
    """Score function (REINFORCE) with a leave-one-out baseline; ``-H(q)`` exact if given."""
    x = sg(sample(q, key, n, draws))
    logq = q_log_prob(q, x)
    logp = _targets.log_prob(target, x)
    f = sg(-logp if entropy is not None else logq - logp)
    baseline = (jnp.sum(f) - f) / (n - 1) if n > 1 else jnp.zeros_like(f)
    surrogate = jnp.mean(sg(f - baseline) * logq)
    loss = with_gradient(jnp.mean(f), surrogate)
    return loss - entropy if entropy is not None else loss


REVERSE_KL_GRADIENTS = {"reparam": _reparam_kl, "stl": _stl_kl, "score": _score_kl}


def stratified_kl(q, strata, target, key, n, stl):
    """``sum_k w_k mean_i [log q(x_ki) - log p(x_ki)]``, ``x_ki ~ q_k`` (reparameterized).

    ``strata = (log_weights, components)`` from ``q.strata()``.
    """
    if tuple(q.batch_shape) != ():
        raise ValueError(
            f"ReverseKL with a {type(q).__name__} q uses stratified sampling, which needs "
            f"batch_shape (); got {tuple(q.batch_shape)}. Put independent coordinates in the "
            "components' events."
        )
    log_weights, comps = strata
    if not is_reparameterized(comps):
        raise ValueError(
            f"{type(q).__name__} components {type(comps).__name__} are not reparameterized; "
            "use ReverseKL(gradient='score')."
        )
    x = comps.sample(key, (n,))  # (n, K) + event
    k = x.shape[1]
    x = jnp.moveaxis(x, 1, 0).reshape((k * n,) + x.shape[2:])
    logq = q_log_prob(sg(q) if stl else q, x)
    f = (logq - _targets.log_prob(target, x)).reshape(k, n)
    return jnp.sum(jnp.exp(log_weights) * jnp.mean(f, axis=1))


# ----------------------------------------------------------------------------- forward KL
# ForwardKL's methods: (q, target, key, num_samples, batch_size, draws) -> (loss, aux).
def _forward_kl_data(q, target, key, num_samples, batch_size, draws="mc"):
    """Cross-entropy ``-mean_i log q(x_i)`` over the data (a minibatch with ``batch_size``)."""
    data = _targets.data(target)
    if data is None:
        raise ValueError(
            f"ForwardKL(method='data') needs a data target (vikl.Empirical); got {type(target).__name__}")
    if batch_size is not None:
        idx = jax.random.randint(key, (batch_size,), 0, data.shape[0])
        data = data[idx]
    check_point_shape(q, data, "the Empirical samples")
    return -jnp.mean(q_log_prob(q, data)), {}


def _forward_kl_samples(q, target, key, num_samples, batch_size, draws="mc"):
    """``mean_i [log p(x_i) - log q(x_i)]``, ``x_i ~ p`` (cross-entropy without log p)."""
    if _qmc.resolve(draws, target) == "mc":
        x = sg(_targets.sample(target, key, num_samples))
    else:
        x = sg(draw(target, key, num_samples, draws="rqmc")[0])
    check_point_shape(q, x, "the target's samples")
    logq = q_log_prob(q, x)
    if _targets.has_log_prob(target):
        return jnp.mean(sg(_targets.log_prob(target, x)) - logq), {}
    return -jnp.mean(logq), {}


def _forward_kl_snis(q, target, key, num_samples, batch_size, draws="mc", dreg=False):
    """Self-normalized importance sampling from q (biased); records the ESS.

    The score form differentiates ``-sum_i w_i log q(x_i)`` at fixed draws; the DReG
    form (``dreg``, reparameterized q) differentiates
    ``-sum_i sg(w_i - w_i^2) log w_i(x_i)`` with ``log q`` at stopped parameters and
    the draws reparameterized (Tucker et al. 2019, the RWS wake update): the same
    expectation, by ``E[f(x) d log q(x)] = E[df/dx dx]`` applied to ``f = w_i``.
    """
    if dreg:
        x, logq = sample_and_log_prob(q, key, num_samples, stop_q=True, draws=draws)
        logw_path = _targets.log_prob(target, x) - logq
        logw = sg(logw_path)
    else:
        x = sg(sample(q, key, num_samples, draws))
        logq = q_log_prob(q, x)
        logw = sg(_targets.log_prob(target, x) - logq)
    w = jax.nn.softmax(logw)
    value = jnp.sum(w * logw) - log_mean_exp(logw)
    surrogate = -jnp.sum(sg(w - w * w) * logw_path) if dreg else -jnp.sum(w * logq)
    ess = 1.0 / jnp.sum(w * w)
    return with_gradient(value, surrogate), {"ess": ess}


FORWARD_KL_METHODS = {"data": _forward_kl_data, "samples": _forward_kl_samples, "snis": _forward_kl_snis}


# ----------------------------------------------------------------------------- Rényi family
def lower_bound_loss(logw, alpha):
    """``-L_a``, ``L_a = (1/(1-a)) log mean w^(1-a)`` (``mean log w`` at ``a = 1``)."""
    if alpha == 1:
        return -jnp.mean(logw)
    beta = 1.0 - alpha
    return -log_mean_exp(beta * logw) / beta


def lower_bound_dreg(logw, alpha):
    """``-L_a`` in value with the doubly reparameterized gradient, ``a >= 0``.

    ``logw`` holds ``log p(x_k) - log q(x_k)`` with q's parameters stopped in
    ``log q`` (draws reparameterized), so ``grad logw_k`` is the path term
    ``d log w_k / dx_k . dx_k``. With ``v = softmax((1 - a) log w)`` the reparameterized
    gradient is ``sum_k v_k grad_total log w_k``; replacing its score part
    ``E[sum_k v_k d log q(x_k)]`` by ``E[sum_k dv_k/dx_k dx_k]`` (the identity
    ``E_q[f d log q] = E[df/dx dx]``, ``dv_k/d log w_k = (1 - a) v_k (1 - v_k)``) leaves
    ``grad L_a = E[sum_k (a v_k + (1 - a) v_k^2) grad logw_k]``: IWAE's DReG at
    ``a = 0``, sticking the landing at ``a = 1`` (Tucker et al. 2019).
    """
    beta = 1.0 - alpha
    v = sg(jax.nn.softmax(beta * sg(logw)))
    surrogate = jnp.sum((alpha * v + beta * v * v) * logw)
    return with_gradient(lower_bound_loss(sg(logw), alpha), -surrogate)


def upper_bound_loss(logw, beta, log_normalizer):
    """``(1/beta) log mean w^beta`` (``beta > 1``) with CHIVI's unbiased exp-form gradient.

    The value is the log-mean-exp estimate; the gradient is that of
    ``mean exp(beta (log w - c)) / beta`` with a constant ``c = log_normalizer``:
    an unbiased estimate of ``grad E_q[w^beta]`` up to the positive constant
    ``exp(-beta c) / beta``. (The gradient of the log-mean-exp itself is
    self-normalized and biased; minimizing it collapses ``q`` onto a narrow
    region far from ``p``, where no draw sees the heavy tail of ``p/q``.)
    """
    value = log_mean_exp(beta * logw) / beta
    surrogate = jnp.mean(jnp.exp(beta * (logw - log_normalizer))) / beta
    return with_gradient(value, surrogate)
