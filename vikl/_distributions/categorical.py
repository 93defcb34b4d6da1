"""The Categorical family, its closed-form KL, and helpers shared by the discrete families."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl

__all__ = ["Categorical"]


# ---------------------------------------------------------------- shared helpers
def _safe_log(x):
    """``log(x)`` for ``x >= 0``: ``-inf`` at 0 with a zero (not infinite) gradient there."""
    pos = x > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, x, 1.0)), -jnp.inf)


def _safe_log1m(x):
    """``log(1 - x)`` for ``x <= 1``: ``-inf`` at 1 with a zero gradient there."""
    ok = x < 1
    return jnp.where(ok, jnp.log1p(-jnp.where(ok, x, 0.0)), -jnp.inf)


def _weighted_log_ratio(w, log_w, log_v):
    """``w * (log_w - log_v)`` with ``0 * (anything) = 0`` and finite gradients at ``w = 0``.

    ``+inf`` where ``w > 0`` and ``log_v = -inf``. The logs must themselves have
    finite gradients where ``w = 0`` (use :func:`_safe_log`, ``log_sigmoid``, ...).
    """
    zero = w == 0
    lw = jnp.where(zero, 0.0, log_w)
    lv = jnp.where(zero, 0.0, log_v)
    return jnp.where(zero, 0.0, w * (lw - lv))


_PRIVATE = re.compile(r"\b_(probs|logits|mixture_logits|weights)\b")


def _setup_one_of(obj, first: str, second: str, values: dict, **others):
    """Runs ``obj._setup`` for a family parameterized by exactly one of two fields.

    ``values`` maps the public names (e.g. ``probs``, ``logits``) to the user's
    arguments; the fields are the same names with a leading underscore. Error
    messages name the public argument.
    """
    cls = type(obj).__name__
    given = [k for k in (first, second) if values[k] is not None]
    if len(given) != 1:
        got = "both" if given else "neither"
        raise ValueError(f"{cls}: pass exactly one of {first}= or {second}=; got {got}.")
    fields = {"_" + k: v for k, v in values.items()}
    try:
        obj._setup(**fields, **others)
    except ValueError as err:
        raise ValueError(_PRIVATE.sub(r"\1", str(err))) from None


def _public_repr(self):
    """``repr`` naming the public arguments (``probs=``, not the field ``_probs=``)."""
    return _PRIVATE.sub(r"\1", Distribution.__repr__(self))


def _as_value(x, dtype):
    """Converts an observed value to ``dtype`` (integers and bools are cast)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(dtype)
    return x


def _is_integer(x):
    """True where ``x`` (a floating array) is a whole number."""
    return jnp.floor(x) == x


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
    _logits: jax.Array = param(constraints.real_vector)

    reparameterized = False
    support = constraints.nonnegative_integer
    __repr__ = _public_repr

    def __init__(self, probs=None, logits=None):
        _setup_one_of(self, "probs", "logits", {"probs": probs, "logits": logits})

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
        return _safe_log(self._probs)

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
            valid = (x >= 0) & (x <= k - 1) & _is_integer(x)
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
        return 0.0 - jnp.sum(_weighted_log_ratio(p, self.logits, jnp.zeros((), p.dtype)), axis=-1)

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


@jax.custom_jvp
def _kl_terms_probs(p, q):
    """Elementwise ``p log(p / q)`` for probability arrays (same shape), ``0 log 0 = 0``.

    ``+inf`` where ``p > 0 = q``. Written with ``maximum`` guards instead of
    ``where`` so that XLA:CPU fuses the whole row reduction into one pass (a
    select splits the fusion and costs ~3x, measured): ``max(p, tiny)`` keeps
    the log finite where ``p = 0``, and ``max(q, tiny - p)`` is ``>= tiny``
    where ``p = 0`` but equals ``q`` wherever ``p >= tiny`` (smaller, subnormal
    ``p`` count as 0, as XLA flushes them). One log of the ratio is also more
    accurate than ``log p - log q``. The JVP gives the usual derivatives
    ``log(p/q) + 1`` and ``-p/q`` where ``p > 0``, and 0 where ``p = 0``.
    """
    tiny = jnp.finfo(p.dtype).tiny
    return p * jnp.log(jnp.maximum(p, tiny) / jnp.maximum(q, tiny - p))


@_kl_terms_probs.defjvp
def _kl_terms_probs_jvp(primals, tangents):
    p, q = primals
    dp, dq = tangents
    pos = p > 0
    p_safe = jnp.where(pos, p, 1.0)
    q_safe = jnp.where(pos, q, 1.0)
    d_p = jnp.where(pos, jnp.log(p_safe) - jnp.log(q_safe) + 1, 0.0)
    d_q = jnp.where(pos, -p_safe / q_safe, 0.0)
    return _kl_terms_probs(p, q), d_p * dp + d_q * dq


def _categorical_kl_terms(p, q):
    """Per-category terms ``p_k (log p_k - log q_k)`` of ``KL(p‖q)``."""
    if p._probs is not None and q._probs is not None:
        shape = jnp.broadcast_shapes(p._probs.shape, q._probs.shape)
        return _kl_terms_probs(jnp.broadcast_to(p._probs, shape), jnp.broadcast_to(q._probs, shape))
    log_q = q.logits if q._logits is not None else _safe_log(q._probs)
    return _weighted_log_ratio(p.probs, p.logits, log_q)


@register_kl(Categorical, Categorical)
@jax.jit
def _kl_categorical_categorical(p, q):
    """KL(p‖q) = sum_k p_k (log p_k - log q_k), in nats.

    Terms with ``p_k = 0`` are 0; ``+inf`` where ``p_k > 0 = q_k``. Logits go
    through ``log_softmax``. Both must have the same number of categories.
    """
    if p.num_categories != q.num_categories:
        raise ValueError(
            "kl_divergence(Categorical, Categorical): the number of categories differs; "
            f"p has {p.num_categories}, q has {q.num_categories}."
        )
    return jnp.sum(_categorical_kl_terms(p, q), axis=-1)
