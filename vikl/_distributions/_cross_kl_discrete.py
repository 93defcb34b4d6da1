"""Closed-form KL between different discrete families (registered on import).

All values in nats. Pairs where ``p`` can take a value that ``q`` cannot are
``+inf`` (never NaN); terms of zero ``p``-mass vanish (``0 log 0 = 0``).

Registered: Bernoulli→Poisson, Poisson→Bernoulli (+inf), Poisson→Binomial
(+inf) — the pairs torch registers among these families — and
Bernoulli→Binomial, Bernoulli→Geometric, Binomial→Bernoulli,
Geometric→Bernoulli, Geometric→Binomial, Poisson→Geometric and
Binomial→Geometric. (Geometric→Poisson and Binomial→Poisson need
``E[log X!]``, which has no closed form.)

Every value is summed as non-negative terms where the two distributions can be
close (Bregman terms ``w g(v/w)``, ``g(t) = t - 1 - log t``, and tail masses
computed without cancellation), so a KL near 0 keeps relative accuracy and is
never negative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl._distributions.bernoulli import Bernoulli
from vikl._distributions.binomial import Binomial
from vikl._distributions.geometric import Geometric
from vikl._distributions.poisson import Poisson
from vikl._kl import register_kl
from vikl._math import x_minus_log1p
from vikl._probs import (
    bernoulli_kl,
    bregman_term,
    expm1_minus_x,
    safe_log,
    success_failure,
    xlog,
)


def _batch(p, q):
    return jnp.broadcast_shapes(p.batch_shape, q.batch_shape)


def _infinite(p, q):
    return jnp.full(_batch(p, q), jnp.inf, p.dtype)


def _two_point_kl(p, q0, q1, log_q0, log_q1, rest):
    """KL of a Bernoulli ``p`` against ``q`` on the integers, in Bregman form.

    ``sum_{k=0,1} w_k g(q_k / w_k) + q(X >= 2)``, ``g(t) = t - 1 - log t``: every
    term is non-negative. ``rest = q(X >= 2)`` must be computed by the caller
    without cancellation; it bounds the KL from below, so ratios
    ``q_k / w_k - 1`` with an absolute error of a few ulps keep the result's
    relative accuracy.
    """
    a1, a0, la1, la0 = success_failure(p)
    x0 = (q0 - a0) / jnp.where(a0 > 0, a0, 1.0)
    x1 = (q1 - a1) / jnp.where(a1 > 0, a1, 1.0)
    out = bregman_term(a0, q0, la0, log_q0, x0) + bregman_term(a1, q1, la1, log_q1, x1)
    return out + jnp.maximum(rest, 0.0)


@register_kl(Bernoulli, Poisson)
@jax.jit
def _kl_bernoulli_poisson(p, q):
    """KL(Ber(a)‖Poi(λ)) = (1-a) [log(1-a) + λ] + a [log a - log λ + λ].

    Summed as non-negative Bregman terms plus ``P(X >= 2) = e^{-λ} (e^λ - 1 - λ)``
    (a series for small ``λ``), so a small ``λ ≈ a`` keeps relative accuracy.
    """
    rate = q.rate
    small = rate < 0.5
    rest = jnp.where(
        small,
        jnp.exp(-rate) * expm1_minus_x(jnp.where(small, rate, 0.0)),
        -jnp.expm1(-rate) - rate * jnp.exp(-rate),
    )
    q0 = jnp.exp(-rate)
    return _two_point_kl(p, q0, rate * q0, -rate, jnp.log(rate) - rate, rest)


@register_kl(Poisson, Bernoulli)
@register_kl(Poisson, Binomial)
@jax.jit
def _kl_poisson_finite(p, q):
    """``+inf``: a Poisson (rate > 0) puts mass on every count, ``q`` on finitely many."""
    return _infinite(p, q)


@register_kl(Bernoulli, Binomial)
@jax.jit
def _kl_bernoulli_binomial(p, q):
    """KL(Ber(a)‖Bin(n, b)) with ``q(0) = (1-b)^n`` and ``q(1) = n b (1-b)^(n-1)``.

    ``n = 1``: the Bernoulli KL. Otherwise Bregman terms plus ``q(X >= 2)``, which
    for ``|n log(1-b)| < 1/2`` is ``n (-b - log1p(-b)) - (e^u - 1 - u) - n b expm1((n-1) log1p(-b))``
    (``u = n log1p(-b)``; no cancellation for small ``b``), else ``1 - q(0) - q(1)``.
    ``+inf`` where ``a > 0`` and ``n = 0``.
    """
    b1, _, lb1, lb0 = success_failure(q)
    n = q.total_count
    log_q0 = xlog(n, lb0)
    has_one = n >= 1
    n_safe = jnp.where(has_one, n, 1.0)
    log_q1 = jnp.where(has_one, safe_log(n_safe) + lb1 + xlog(n_safe - 1, lb0), -jnp.inf)
    # q(1) directly (exp of log q(1) would carry |log q(1)| ulps of error).
    q0, q1 = jnp.exp(log_q0), jnp.where(has_one, n * b1 * jnp.exp(xlog(n_safe - 1, lb0)), 0.0)
    small = jnp.abs(log_q0) < 0.5
    u = jnp.where(small, log_q0, 0.0)
    series = (
        n * x_minus_log1p(-jnp.where(small, b1, 0.0))
        - expm1_minus_x(u)
        - n * b1 * jnp.expm1(xlog(n_safe - 1, lb0))
    )
    rest = jnp.where(n >= 2, jnp.where(small, series, -jnp.expm1(log_q0) - q1), 0.0)
    two_point = _two_point_kl(p, q0, q1, log_q0, log_q1, rest)
    return jnp.where(n == 1, bernoulli_kl(p, q), two_point)


@register_kl(Bernoulli, Geometric)
@jax.jit
def _kl_bernoulli_geometric(p, q):
    """KL(Ber(a)‖Geo(b)) with ``q(0) = b``, ``q(1) = (1-b) b`` and ``q(X >= 2) = (1-b)^2``."""
    b1, b0, lb1, lb0 = success_failure(q)
    return _two_point_kl(p, b1, b0 * b1, lb1, lb1 + lb0, b0 * b0)


@register_kl(Binomial, Bernoulli)
@jax.jit
def _kl_binomial_bernoulli(p, q):
    """KL(Bin(n, a)‖Ber(b)): the Bernoulli KL for ``n = 1``, ``-log(1-b)`` when
    ``p`` is the point mass at 0 (``n = 0`` or ``a = 0``), ``+inf`` otherwise."""
    a1, _, _, _ = success_failure(p)
    _, _, _, lb0 = success_failure(q)
    n = p.total_count
    at_zero = (n == 0) | (a1 == 0)
    out = jnp.where(n == 1, bernoulli_kl(p, q), jnp.inf)
    return jnp.broadcast_to(jnp.where(at_zero, -lb0, out), _batch(p, q))


@register_kl(Geometric, Bernoulli)
@jax.jit
def _kl_geometric_bernoulli(p, q):
    """``-log(1-b)`` where ``p`` is the point mass at 0 (``a = 1``), else ``+inf``."""
    _, a0, _, _ = success_failure(p)
    _, _, _, lb0 = success_failure(q)
    return jnp.broadcast_to(jnp.where(a0 == 0, -lb0, jnp.inf), _batch(p, q))


@register_kl(Geometric, Binomial)
@jax.jit
def _kl_geometric_binomial(p, q):
    """``-n log(1-b)`` where ``p`` is the point mass at 0 (``a = 1``), else ``+inf``."""
    _, a0, _, _ = success_failure(p)
    _, _, _, lb0 = success_failure(q)
    point = -xlog(q.total_count, lb0)
    return jnp.broadcast_to(jnp.where(a0 == 0, point, jnp.inf), _batch(p, q))


_TERMS = 40  # series terms for small means: the left-out mass is below 1 / 40! (1e-48)


def _geometric_head(mean, log_mean, b1, b0, lb1, lb0):
    """``mean log(mean / (1-b)) - mean - log b``: the part of KL(·‖Geo(b)) set by the mean.

    Written as ``(1-b) φ(mean / (1-b)) + ((-(1-b)) - log1p(-(1-b)))`` with the
    non-negative ``φ(r) = r log r - r + 1`` (a Bregman term) and ``x - log1p(x)``,
    so no digits cancel when the mean and ``1 - b`` are small.
    """
    x = (b0 - mean) / jnp.where(mean > 0, mean, 1.0)
    return bregman_term(mean, b0, log_mean, lb0, x) + x_minus_log1p(-b0, lb1)


@register_kl(Poisson, Geometric)
@jax.jit
def _kl_poisson_geometric(p, q):
    """KL(Poi(λ)‖Geo(b)) = λ log(λ/(1-b)) - λ - log b - E[log X!].

    For ``λ <= 1`` as the non-negative head of :func:`_geometric_head` minus
    ``E[log X!]`` summed directly (40 terms), which keeps relative accuracy when
    both are near the point mass at 0; beyond, ``-H(Poi(λ)) - λ log(1-b) - log b``
    (``H`` as in ``Poisson.entropy``), where the KL is far from 0.
    """
    b1, b0, lb1, lb0 = success_failure(q)
    rate = p.rate
    small = rate <= 1.0
    lam = jnp.where(small, rate, 0.5)[..., None]
    k = jnp.arange(_TERMS, dtype=lam.dtype)
    # log k! as a running sum of log k: exactly 0 at k = 0, 1 (float32 gammaln is not).
    log_fact = jnp.concatenate([jnp.zeros((1,), k.dtype), jnp.cumsum(jnp.log1p(k[:-1]))])
    mean_log_fact = jnp.sum(jnp.exp(k * jnp.log(lam) - lam - log_fact) * log_fact, axis=-1)
    head = _geometric_head(rate, jnp.log(rate), b1, b0, lb1, lb0)
    near = jnp.maximum(head - mean_log_fact, 0.0)
    far = jnp.maximum(-p.entropy() - rate * lb0 - lb1, 0.0)
    return jnp.where(small, near, far)


@register_kl(Binomial, Geometric)
@jax.jit
def _kl_binomial_geometric(p, q):
    """KL(Bin(n, a)‖Geo(b)) = -H(Bin(n, a)) - n a log(1-b) - log b.

    For ``n a <= 1``: the non-negative head of :func:`_geometric_head` at mean
    ``μ = n a``, plus ``n [a + (1-a) log(1-a)] >= 0``, plus
    ``E[log C(n, X) - X log n] <= 0`` summed directly (40 terms, its log-ratios
    accumulated as ``log1p(-k/n) - log(k+1)``). Beyond, the entropy form.
    """
    b1, b0, lb1, lb0 = success_failure(q)
    a1, a0, _, la0 = success_failure(p)
    n = p.total_count
    shape = jnp.broadcast_shapes(n.shape, a1.shape)
    n, a1, a0, la0 = (jnp.broadcast_to(t, shape) for t in (n, a1, a0, la0))
    mean = n * a1
    small = mean <= 1.0
    ns = jnp.where(small & (n > 0), n, 1.0)[..., None]
    k = jnp.arange(_TERMS, dtype=ns.dtype)
    step = jnp.log1p(-jnp.minimum(k, ns - 1) / ns) - jnp.log1p(k)
    c = jnp.concatenate([jnp.zeros_like(step[..., :1]), jnp.cumsum(step[..., :-1], axis=-1)], -1)
    mu = jnp.where(small, mean, 0.5)[..., None]
    log_pk = c + xlog(k, jnp.log(jnp.where(mu > 0, mu, 1.0))) + (ns - k) * jnp.where(small, la0, 0.0)[..., None]
    in_range = (k <= ns) & (mu > 0)
    tail = jnp.sum(jnp.where(in_range, jnp.exp(jnp.where(in_range, log_pk, 0.0)) * c, 0.0), axis=-1)
    y = a1 / jnp.where(a0 > 0, a0, 1.0)
    spread = jnp.where(a1 < 0.5, n * a0 * x_minus_log1p(jnp.where(a1 < 0.5, y, 0.0)), n * (a1 + xlog(a0, la0)))
    head = _geometric_head(mean, safe_log(mean), b1, b0, lb1, lb0)
    near = jnp.maximum(head + spread + tail, 0.0)
    far = jnp.maximum(-p.entropy() - xlog(mean, lb0) - lb1, 0.0)
    return jnp.where(small, near, far)
