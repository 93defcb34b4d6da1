"""The Geometric family (failures before the first success) and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._probs import (
    as_value,
    bernoulli_parts,
    is_integer,
    kl_from_parts,
    logits_of,
    probs_of,
    public_repr,
    setup_one_of,
    success_failure,
    weighted_log_ratio,
)

__all__ = ["Geometric"]


class Geometric(Distribution):
    """Geometric distribution: number of failures before the first success.

    ``P(X = k) = (1 - p)^k p`` for ``k = 0, 1, 2, ...`` (torch's convention;
    add 1 for the number of trials).

    Args:
      probs: success probability ``p`` in ``(0, 1]`` (``p = 1`` is the point mass at 0).
      logits: log-odds of success, real, ``< +inf`` allowed (``+inf`` means ``p = 1``).

    Pass exactly one of ``probs`` / ``logits``; ``d.probs`` and ``d.logits`` both
    work afterwards. Samples are counts in the parameter's floating dtype,
    ``floor(log U / log(1 - p))`` with ``U ~ Uniform(0, 1)``, shape
    ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` off the support.

    Example:
      >>> import vikl
      >>> float(vikl.Geometric(probs=0.25).mean)  # (1 - p) / p
      3.0
    """

    _probs: jax.Array = param(constraints.unit_interval)
    _logits: jax.Array = param(constraints.logit)

    reparameterized = False
    __repr__ = public_repr
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None):
        setup_one_of(self, "probs", "logits", {"probs": probs, "logits": logits})

    def _check_args(self):
        p1 = self.probs
        if bool(jnp.any(p1 <= 0)):
            which = "probs" if self._probs is not None else "logits"
            raise ValueError(
                f"Geometric: {which} must give a success probability > 0 (p = 0 is not a "
                f"distribution); got min probability {float(jnp.min(p1)):.6g}."
            )

    @property
    def probs(self) -> jax.Array:
        """Success probability ``p``, shape ``batch_shape``."""
        return probs_of(self)

    @property
    def logits(self) -> jax.Array:
        """Log-odds of success ``log p - log(1 - p)``."""
        return logits_of(self)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        _, _, _, log_p0 = success_failure(self)
        log_p0 = jax.lax.stop_gradient(log_p0)
        dtype = log_p0.dtype
        u = jax.random.uniform(key, shape, dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)
        certain = log_p0 == -jnp.inf
        draws = jnp.floor(jnp.log(u) / jnp.where(certain, -1.0, log_p0))
        return jnp.where(certain, 0.0, draws)

    def log_prob(self, x):
        _, _, log_p1, log_p0 = success_failure(self)
        x = as_value(x, log_p1.dtype)
        valid = (x >= 0) & is_integer(x)
        xs = jnp.where(valid, x, 0.0)
        zero = xs == 0
        out = log_p1 + jnp.where(zero, 0.0, xs * jnp.where(zero, 0.0, log_p0))
        return jnp.where(valid, out, -jnp.inf)

    def entropy(self):
        """``H = [-p log p - (1 - p) log(1 - p)] / p`` in nats."""
        p1, p0, log_p1, log_p0 = success_failure(self)
        zero = jnp.zeros((), p1.dtype)
        h_bern = 0.0 - (weighted_log_ratio(p1, log_p1, zero) + weighted_log_ratio(p0, log_p0, zero))
        return h_bern / p1

    @property
    def mean(self):
        """``(1 - p) / p``."""
        p1, p0, _, _ = success_failure(self)
        return p0 / p1

    @property
    def variance(self):
        """``(1 - p) / p²``."""
        p1, p0, _, _ = success_failure(self)
        return p0 / (p1 * p1)

    @property
    def mode(self):
        return jnp.zeros_like(self.probs)


@register_kl(Geometric, Geometric)
@jax.jit
def _kl_geometric_geometric(p, q):
    """KL(Geo(a)‖Geo(b)) = log(a/b) + ((1-a)/a) log((1-a)/(1-b)) = KL(Ber(a)‖Ber(b)) / a, in nats.

    (A geometric count is a run of Bernoulli trials, ``1/a`` of them on average.)
    The Bernoulli KL is the cancellation-free, non-negative form of
    ``vikl._probs.bernoulli_kl``. ``+inf`` where ``b = 1`` and ``a < 1`` (``q``
    is the point mass at 0).
    """
    w, v, lw, lv, x = bernoulli_parts(p, q)
    a1 = w[..., 1:]
    # The Bregman terms are homogeneous in (w, v): dividing them by a first
    # keeps a representable KL from underflowing on the way (a = 1e-30 in float32).
    return kl_from_parts((w / a1, v / a1, lw, lv, x))
