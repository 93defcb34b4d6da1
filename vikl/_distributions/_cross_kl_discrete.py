"""Closed-form KL between different discrete families (registered on import).

All values in nats. Pairs where ``p`` can take a value that ``q`` cannot are
``+inf`` (never NaN); terms of zero ``p``-mass vanish (``0 log 0 = 0``).

Registered: Bernoulli→Poisson, Poisson→Bernoulli (+inf), Poisson→Binomial
(+inf) — the pairs torch registers among these families — and
Bernoulli→Binomial, Bernoulli→Geometric, Binomial→Bernoulli,
Geometric→Bernoulli, Geometric→Binomial, Poisson→Geometric and
Binomial→Geometric. (Geometric→Poisson and Binomial→Poisson need
``E[log X!]``, which has no closed form.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl._distributions.bernoulli import Bernoulli, _kl_bernoulli_bernoulli, _success_failure
from vikl._distributions.binomial import Binomial, _xlog
from vikl._distributions.categorical import _safe_log, _weighted_log_ratio
from vikl._distributions.geometric import Geometric
from vikl._distributions.poisson import Poisson
from vikl._kl import register_kl


def _batch(p, q):
    return jnp.broadcast_shapes(p.batch_shape, q.batch_shape)


def _infinite(p, q):
    return jnp.full(_batch(p, q), jnp.inf, p.dtype)


def _two_point_kl(p, log_q0, log_q1):
    """KL of a Bernoulli ``p`` against any ``q`` given ``log q(0)`` and ``log q(1)``."""
    a1, a0, la1, la0 = _success_failure(p)
    return _weighted_log_ratio(a0, la0, log_q0) + _weighted_log_ratio(a1, la1, log_q1)


@register_kl(Bernoulli, Poisson)
@jax.jit
def _kl_bernoulli_poisson(p, q):
    """KL(Ber(a)‖Poi(λ)) = (1-a) [log(1-a) + λ] + a [log a - log λ + λ]."""
    rate = q.rate
    return _two_point_kl(p, -rate, jnp.log(rate) - rate)


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

    ``+inf`` where ``a > 0`` and ``n = 0``.
    """
    _, _, lb1, lb0 = _success_failure(q)
    n = q.total_count
    log_q0 = _xlog(n, lb0)
    has_one = n >= 1
    n_safe = jnp.where(has_one, n, 1.0)
    log_q1 = jnp.where(has_one, _safe_log(n_safe) + lb1 + _xlog(n_safe - 1, lb0), -jnp.inf)
    return _two_point_kl(p, log_q0, log_q1)


@register_kl(Bernoulli, Geometric)
@jax.jit
def _kl_bernoulli_geometric(p, q):
    """KL(Ber(a)‖Geo(b)) with ``q(0) = b`` and ``q(1) = (1-b) b``."""
    _, _, lb1, lb0 = _success_failure(q)
    return _two_point_kl(p, lb1, lb1 + lb0)


@register_kl(Binomial, Bernoulli)
@jax.jit
def _kl_binomial_bernoulli(p, q):
    """KL(Bin(n, a)‖Ber(b)): the Bernoulli KL for ``n = 1``, ``-log(1-b)`` when
    ``p`` is the point mass at 0 (``n = 0`` or ``a = 0``), ``+inf`` otherwise."""
    a1, _, _, _ = _success_failure(p)
    _, _, _, lb0 = _success_failure(q)
    n = p.total_count
    at_zero = (n == 0) | (a1 == 0)
    out = jnp.where(n == 1, _kl_bernoulli_bernoulli(p, q), jnp.inf)
    return jnp.broadcast_to(jnp.where(at_zero, -lb0, out), _batch(p, q))


@register_kl(Geometric, Bernoulli)
@jax.jit
def _kl_geometric_bernoulli(p, q):
    """``-log(1-b)`` where ``p`` is the point mass at 0 (``a = 1``), else ``+inf``."""
    _, a0, _, _ = _success_failure(p)
    _, _, _, lb0 = _success_failure(q)
    return jnp.broadcast_to(jnp.where(a0 == 0, -lb0, jnp.inf), _batch(p, q))


@register_kl(Geometric, Binomial)
@jax.jit
def _kl_geometric_binomial(p, q):
    """``-n log(1-b)`` where ``p`` is the point mass at 0 (``a = 1``), else ``+inf``."""
    _, a0, _, _ = _success_failure(p)
    _, _, _, lb0 = _success_failure(q)
    point = -_xlog(q.total_count, lb0)
    return jnp.broadcast_to(jnp.where(a0 == 0, point, jnp.inf), _batch(p, q))


@register_kl(Poisson, Geometric)
@jax.jit
def _kl_poisson_geometric(p, q):
    """KL(Poi(λ)‖Geo(b)) = -H(Poi(λ)) - λ log(1-b) - log b (``H`` as in ``Poisson.entropy``)."""
    _, _, lb1, lb0 = _success_failure(q)
    return -p.entropy() - p.rate * lb0 - lb1


@register_kl(Binomial, Geometric)
@jax.jit
def _kl_binomial_geometric(p, q):
    """KL(Bin(n, a)‖Geo(b)) = -H(Bin(n, a)) - n a log(1-b) - log b."""
    _, _, lb1, lb0 = _success_failure(q)
    return -p.entropy() - _xlog(p.mean, lb0) - lb1
