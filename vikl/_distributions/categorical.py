"""The Categorical family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._probs import (
    categorical_parts,
    is_integer,
    kl_from_parts,
    kl_logits_rows,
    kl_probs,
    public_repr,
    safe_log,
    same_dtype,
    setup_one_of,
    weighted_log_ratio,
)

__all__ = ["Categorical"]


# ---------------------------------------------------------------- the family
class Categorical(Distribution):
    """Categorical distribution over the labels ``{0, ..., K-1}`` (last axis of the parameter).

    ``P(X = k) = probs[..., k] = softmax(logits)[..., k]``.

    Args:
      probs: probabilities along the last axis (non-negative, summing to 1),
        shape ``batch_shape + (K,)``.
      logits: unnormalized log-probabilities, shape ``batch_shape + (K,)``;
        normalized with ``log_softmax`` (never by exponentiating). ``-inf``
        entries give categories of zero probability.

    Pass exactly one of ``probs`` / ``logits``. Both ``d.probs`` and ``d.logits``
    are available whichever was given: ``d.logits`` is the *normalized*
    log-probability vector (``-inf`` where ``probs = 0``).

    Samples are integer (``int32``) category indices of shape
    ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``): use a score-function gradient or a
    relaxation to differentiate through it. ``log_prob`` is ``-inf`` for
    indices outside ``{0, ..., K-1}`` and for non-integer values. Categories are
    unordered labels, so ``mean`` and ``variance`` are not defined.

    Example:
      >>> import vikl
      >>> round(float(vikl.Categorical(probs=[0.5, 0.25, 0.125, 0.125]).entropy()), 6)
      1.213008
    """

    _probs: jax.Array = param(constraints.simplex)
    _logits: jax.Array = param(constraints.logits_vector)

    reparameterized = False
    support = constraints.nonnegative_integer
    __repr__ = public_repr

    def __init__(self, probs=None, logits=None):
        setup_one_of(self, "probs", "logits", {"probs": probs, "logits": logits})

    def _check_shapes(self):
        v = self._probs if self._probs is not None else self._logits
        if jnp.shape(v)[-1] < 1:
            raise ValueError(f"Categorical: need at least one category; got shape {jnp.shape(v)}")

    # ------------------------------------------------------------ parameters
    @property
    def probs(self) -> jax.Array:
        """Probabilities, shape ``batch_shape + (K,)`` (``softmax(logits)`` if given logits)."""
        if self._probs is not None:
            return self._probs
        return jax.nn.softmax(self._logits, axis=-1)

    @property
    def logits(self) -> jax.Array:
        """Normalized log-probabilities, shape ``batch_shape + (K,)``; ``-inf`` where ``probs = 0``."""
        if self._logits is not None:
            return jax.nn.log_softmax(self._logits, axis=-1)
        return safe_log(self._probs)

    @property
    def num_categories(self) -> int:
        """Number of categories ``K``."""
        v = self._probs if self._probs is not None else self._logits
        return int(jnp.shape(v)[-1])

    # ------------------------------------------------------------ interface
    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        logits = jax.lax.stop_gradient(self.logits)
        return jax.random.categorical(key, logits, axis=-1, shape=shape).astype(jnp.int32)

    def log_prob(self, x):
        x = jnp.asarray(x)
        k = self.num_categories
        if jnp.issubdtype(x.dtype, jnp.floating):
            valid = (x >= 0) & (x <= k - 1) & is_integer(x)
        else:
            valid = (x >= 0) & (x <= k - 1)
        idx = jnp.clip(jnp.where(valid, x, 0), 0, k - 1).astype(jnp.int32)
        logp = self.logits
        shape = jnp.broadcast_shapes(idx.shape, self.batch_shape)
        logp = jnp.broadcast_to(logp, shape + (k,))
        idx = jnp.broadcast_to(idx, shape)
        picked = jnp.take_along_axis(logp, idx[..., None], axis=-1)[..., 0]
        return jnp.where(jnp.broadcast_to(valid, shape), picked, -jnp.inf)

    def entropy(self):
        """Shannon entropy ``H = -sum_k p_k log p_k`` in nats (``0 log 0 = 0``)."""
        p = self.probs
        return 0.0 - jnp.sum(weighted_log_ratio(p, self.logits, jnp.zeros((), p.dtype)), axis=-1)

    @property
    def mean(self):
        raise NotImplementedError(
            "Categorical has no mean: its values are unordered labels. Use d.probs."
        )

    @property
    def variance(self):
        raise NotImplementedError(
            "Categorical has no variance: its values are unordered labels. Use d.probs."
        )

    @property
    def mode(self):
        """Most probable category (the first one on ties), ``int32``."""
        v = self._probs if self._probs is not None else self._logits
        return jnp.argmax(v, axis=-1).astype(jnp.int32)


@register_kl(Categorical, Categorical)
@jax.jit
def _kl_categorical_categorical(p, q):
    """KL(p‖q) = sum_k p_k (log p_k - log q_k) = sum_k p_k g(q_k / p_k), g(t) = t - 1 - log t.

    In nats; each term is non-negative and is computed without cancellation
    (``vikl._probs``), so nearly equal distributions keep float relative
    accuracy and the KL is never negative. Probability vectors are renormalized
    (their float sums may be off by round-off); logits use logit differences.
    Categories with ``p_k = 0`` contribute ``q_k`` to the Bregman sum (``0 log 0 = 0``
    in the textbook form); ``+inf`` where ``p_k > 0 = q_k``. Both must have the
    same number of categories.
    """
    if p.num_categories != q.num_categories:
        raise ValueError(
            "kl_divergence(Categorical, Categorical): the number of categories differs; "
            f"p has {p.num_categories}, q has {q.num_categories}."
        )
    if p._probs is not None and q._probs is not None:
        return kl_probs(p._probs, q._probs)
    if p._logits is not None and q._logits is not None:
        return kl_logits_rows(*same_dtype(p._logits, q._logits))
    return kl_from_parts(categorical_parts(p._probs, p._logits, q._probs, q._logits))
