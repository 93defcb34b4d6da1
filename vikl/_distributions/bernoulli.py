"""The Bernoulli family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._distributions.categorical import (
    _as_value,
    _public_repr,
    _safe_log,
    _safe_log1m,
    _setup_one_of,
    _weighted_log_ratio,
)
from vikl._kl import register_kl

__all__ = ["Bernoulli"]


def _success_failure(d):
    """``(p, 1 - p, log p, log(1 - p))`` of a family holding ``_probs`` or ``_logits``.

    From logits the four come from ``sigmoid``/``log_sigmoid`` (no ``1 - p``
    cancellation); from probs the logs are ``-inf`` at 0 with zero gradients.
    Shared by Bernoulli, Binomial and Geometric.
    """
    if d._logits is not None:
        z = d._logits
        return jax.nn.sigmoid(z), jax.nn.sigmoid(-z), jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    p = d._probs
    return p, 1 - p, _safe_log(p), _safe_log1m(p)


def _probs_of(d):
    return d._probs if d._probs is not None else jax.nn.sigmoid(d._logits)


def _logits_of(d):
    if d._logits is not None:
        return d._logits
    return _safe_log(d._probs) - _safe_log1m(d._probs)


class Bernoulli(Distribution):
    """Bernoulli distribution on ``{0, 1}``: ``P(X = 1) = probs = sigmoid(logits)``.

    Args:
      probs: success probability in ``[0, 1]``.
      logits: log-odds ``log(p / (1 - p))``, any real (``+-inf`` allowed).

    Pass exactly one of ``probs`` / ``logits``; ``d.probs`` and ``d.logits``
    both work afterwards. Quantities of a logits-parameterized Bernoulli are
    computed with ``softplus``/``log_sigmoid`` forms, never as ``log(1 - p)``.

    Samples are 0.0 / 1.0 in the parameter's floating dtype, shape
    ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` off ``{0, 1}``.

    Example:
      >>> import vikl
      >>> round(float(vikl.entropy(vikl.Bernoulli(probs=0.5), base=2)), 6)  # a fair coin: 1 bit
      1.0
    """

    _probs: jax.Array = param(constraints.unit_interval)
    _logits: jax.Array = param(constraints.real)

    reparameterized = False
    __repr__ = _public_repr
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None):
        _setup_one_of(self, "probs", "logits", {"probs": probs, "logits": logits})

    @property
    def probs(self) -> jax.Array:
        """``P(X = 1)``, shape ``batch_shape``."""
        return _probs_of(self)

    @property
    def logits(self) -> jax.Array:
        """Log-odds ``log p - log(1 - p)`` (``+-inf`` at ``p = 1`` / ``p = 0``)."""
        return _logits_of(self)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        p = jax.lax.stop_gradient(self.probs)
        return jax.random.bernoulli(key, p, shape).astype(p.dtype)

    def log_prob(self, x):
        _, _, log_p1, log_p0 = _success_failure(self)
        x = _as_value(x, log_p1.dtype)
        out = jnp.where(x == 1, log_p1, log_p0)
        return jnp.where((x == 0) | (x == 1), out, -jnp.inf)

    def entropy(self):
        """``H = -p log p - (1 - p) log(1 - p)`` in nats (0 at ``p`` in {0, 1})."""
        p1, p0, log_p1, log_p0 = _success_failure(self)
        zero = jnp.zeros((), p1.dtype)
        return 0.0 - (_weighted_log_ratio(p1, log_p1, zero) + _weighted_log_ratio(p0, log_p0, zero))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p1, p0, _, _ = _success_failure(self)
        return p1 * p0

    @property
    def mode(self):
        """``1.0`` where ``p > 1/2``, else ``0.0``."""
        p = self.probs
        return (p > 0.5).astype(p.dtype)


@register_kl(Bernoulli, Bernoulli)
@jax.jit
def _kl_bernoulli_bernoulli(p, q):
    """KL(p‖q) = p log(p/q) + (1-p) log((1-p)/(1-q)), in nats.

    Terms with zero weight vanish (``0 log 0 = 0``); ``+inf`` where ``q`` puts
    no mass on an outcome ``p`` can take.
    """
    p1, p0, lp1, lp0 = _success_failure(p)
    _, _, lq1, lq0 = _success_failure(q)
    return _weighted_log_ratio(p1, lp1, lq1) + _weighted_log_ratio(p0, lp0, lq0)
