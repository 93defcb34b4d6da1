"""Information measures: entropy, cross-entropy, Jensen-Shannon, mutual and conditional information.

Each function takes :class:`vikl.Distribution` objects or arrays of
probabilities along the last axis (a joint table along the last two axes for
``mutual_information`` / ``conditional_entropy``). Results are in nats, or in
units of ``log(base)`` (``base=2``: bits). Discrete conventions: ``0 log 0 = 0``;
``+inf`` (never NaN) where ``p > 0`` meets ``q = 0``; gradients are finite
wherever the value is. Divergences are summed as non-negative Bregman terms
(``vikl._probs``): never negative, and accurate to the dtype's relative
precision however close the two distributions are. ``base`` is static: a
Python number (or NumPy scalar) that is finite, > 0 and != 1; a traced
``base`` under ``jit`` raises a ``TypeError`` saying so.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl._base import Distribution
from vikl._distributions.bernoulli import Bernoulli
from vikl._distributions.categorical import Categorical
from vikl._probs import (
    as_probs,
    bernoulli_parts,
    categorical_parts,
    check_same_events,
    compensated_sum,
    js_from_parts,
    kl_from_parts,
    kl_probs,
    normalized_parts,
    product_minus,
    safe_log,
    same_dtype,
    weighted_log_ratio,
    xlog,
)

__all__ = [
    "conditional_entropy",
    "cross_entropy",
    "entropy",
    "jensen_shannon",
    "mutual_information",
]


# ---------------------------------------------------------------- helpers
def _log_base(base) -> float:
    """``log(base)`` for the unit (1 for nats); ``base`` must be a static real > 0, != 1, finite."""
    if base is None:
        return 1.0
    if isinstance(base, jax.core.Tracer):
        raise TypeError(
            "base must be a static Python number (e.g. 2 for bits), not a traced value: it "
            "selects the unit, so under jax.jit mark it static "
            "(jax.jit(f, static_argnames='base')), or compute in nats and divide by jnp.log(base)."
        )
    if isinstance(base, (str, bytes)):
        raise TypeError(
            f"base must be a real number > 0 and != 1 (e.g. 2 for bits, None for nats); "
            f"got {type(base).__name__} {base!r}"
        )
    try:
        b = float(base)
    except (TypeError, ValueError):
        raise TypeError(
            f"base must be a real number > 0 and != 1 (e.g. 2 for bits, None for nats); "
            f"got {type(base).__name__} {base!r}"
        ) from None
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise ValueError(
            f"base must be > 0, != 1 and finite (e.g. 2 for bits, math.e or None for nats); "
            f"got {base!r}"
        )
    return math.log(b)


def _entropy_probs(p):
    return 0.0 - jnp.sum(weighted_log_ratio(p, safe_log(p), jnp.zeros((), p.dtype)), axis=-1)


def _check_kinds(p, q, fn_name):
    kinds = (Categorical, Bernoulli)
    for d in (p, q):
        if isinstance(d, Distribution) and not isinstance(d, kinds):
            raise NotImplementedError(
                f"{fn_name} has a closed form only for Categorical and Bernoulli "
                f"distributions (or probability arrays); got {type(d).__name__}. For "
                "continuous distributions estimate it by Monte Carlo with vikl.estimate_kl "
                "(for Jensen-Shannon, against the mixture m = ½p + ½q built with vikl.Mixture)."
            )
    if type(p) is not type(q):
        raise TypeError(
            f"{fn_name}: p and q must be of the same kind (both Categorical, both Bernoulli "
            f"or both probability arrays); got {type(p).__name__} and {type(q).__name__}"
        )


def _pair_parts(p, q, fn_name):
    """Two Categorical / Bernoulli distributions (or two arrays) as KL parts ``(w, v, log w, log v, x)``.

    Probabilities lie along the last axis; ``x = v / w - 1`` is computed
    without cancellation (see ``vikl._probs``). Arrays are validated and
    renormalized; a distribution pair uses its own parameterization.
    """
    if isinstance(p, Distribution) or isinstance(q, Distribution):
        _check_kinds(p, q, fn_name)
        if isinstance(p, Bernoulli):
            return bernoulli_parts(p, q)
        if p.num_categories != q.num_categories:
            raise ValueError(
                f"{fn_name}(Categorical, Categorical): the number of categories differs; "
                f"p has {p.num_categories}, q has {q.num_categories}."
            )
        return categorical_parts(p._probs, p._logits, q._probs, q._logits)
    pv, qv = same_dtype(as_probs(p, "p"), as_probs(q, "q"))
    shape = check_same_events(pv, qv)
    return normalized_parts(jnp.broadcast_to(pv, shape), jnp.broadcast_to(qv, shape))


# ---------------------------------------------------------------- public API
def entropy(p, base=None):
    """Shannon (or differential) entropy ``H(p) = -E_p[log p(X)]``.

    In nats, or in units of ``log(base)`` (``base=2``: bits). For arrays:
    ``H = -sum_k p_k log p_k`` along the last axis, with ``0 log 0 = 0``.

    Args:
      p: a :class:`vikl.Distribution` with a closed-form ``entropy()``, or an
        array of probabilities along the last axis (shape ``(..., K)``).
      base: logarithm base of the unit (a static Python number > 0, != 1, finite;
        under ``jax.jit`` mark it static); ``None`` for nats.

    Returns:
      Shape ``p.batch_shape`` (distributions) or ``p.shape[:-1]`` (arrays).

    Raises:
      ValueError: a probability array with negative entries or rows not summing to 1.
      NotImplementedError: the distribution has no closed-form entropy.

    Example:
      >>> import vikl
      >>> float(vikl.entropy([0.5, 0.25, 0.125, 0.125], base=2))
      1.75
      >>> float(vikl.entropy([0.5, 0.5], base=2))  # a fair coin: one bit
      1.0
    """
    scale = _log_base(base)
    if isinstance(p, Distribution):
        return p.entropy() / scale
    return _entropy_probs(as_probs(p, "p")) / scale


def cross_entropy(p, q, base=None):
    """Cross-entropy ``H(p, q) = -E_p[log q(X)] = H(p) + KL(p‖q)``.

    In nats (``base=2``: bits). Not symmetric. For arrays (and Categorical /
    Bernoulli pairs) computed directly as ``-sum_k p_k log q_k``: terms with
    ``p_k = 0`` are 0, and the result is ``+inf`` where ``p_k > 0 = q_k``. For
    other distribution pairs, ``p.entropy() + vikl.kl_divergence(p, q)``.

    Args:
      p, q: two Distributions, or two arrays of probabilities along the last axis.
      base: logarithm base of the unit (a static Python number > 0, != 1, finite;
        under ``jax.jit`` mark it static); ``None`` for nats.

    Raises:
      ValueError: bad probability arrays, or different numbers of outcomes.
      NotImplementedError: no closed-form entropy or KL for the pair.

    Example:
      >>> import vikl
      >>> round(float(vikl.cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)), 6)  # 1 + KL, bits
      1.207519
    """
    scale = _log_base(base)
    p_dist, q_dist = isinstance(p, Distribution), isinstance(q, Distribution)
    direct = (not p_dist and not q_dist) or (
        isinstance(p, (Categorical, Bernoulli)) and type(p) is type(q)
    )
    if direct and not p_dist:
        pv, qv = same_dtype(as_probs(p, "p"), as_probs(q, "q"))
        return (_entropy_probs(pv) + kl_probs(pv, qv)) / scale
    if direct:
        return (p.entropy() + kl_from_parts(_pair_parts(p, q, "cross_entropy"))) / scale
    if not (p_dist and q_dist):
        raise TypeError(
            "cross_entropy: p and q must both be Distributions or both be probability arrays; "
            f"got {type(p).__name__} and {type(q).__name__}"
        )
    from vikl._kl import kl_divergence

    return (p.entropy() + kl_divergence(p, q)) / scale


def jensen_shannon(p, q, base=None):
    """Jensen-Shannon divergence ``JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m)``, ``m = (p + q)/2``.

    Symmetric, between 0 and ``log 2`` nats (1 bit with ``base=2``); finite
    even where the supports differ. Evaluated per outcome as
    ``(p+q)/4 * [(1+r) log(1+r) + (1-r) log(1-r)]`` with ``r = (p-q)/(p+q)``,
    which stays accurate when ``p ≈ q``.

    Args:
      p, q: two arrays of probabilities along the last axis, two Categorical or
        two Bernoulli distributions.
      base: logarithm base of the unit (a static Python number > 0, != 1, finite;
        under ``jax.jit`` mark it static); ``None`` for nats.

    Raises:
      NotImplementedError: other distributions (no closed form; estimate the two
        KL terms by Monte Carlo with :func:`vikl.estimate_kl` and a
        :class:`vikl.Mixture` for ``m``).

    Example:
      >>> import vikl
      >>> float(vikl.jensen_shannon([1.0, 0.0], [0.0, 1.0], base=2))  # disjoint: 1 bit
      1.0
    """
    scale = _log_base(base)
    return js_from_parts(_pair_parts(p, q, "jensen_shannon")) / scale


def _joint(joint):
    pxy = as_probs(joint, "joint", event_ndims=2)
    px = jnp.sum(pxy, axis=-1, keepdims=True)
    py = jnp.sum(pxy, axis=-2, keepdims=True)
    return pxy, px, py


def mutual_information(joint, base=None):
    """Mutual information ``I(X; Y) = KL(p(x, y) ‖ p(x) p(y))`` of a joint table.

    ``I = sum_{x,y} p(x,y) log[p(x,y) / (p(x) p(y))]``, in nats (``base=2``:
    bits); symmetric in X and Y, 0 for independent variables. Summed as the
    non-negative terms ``p(x,y) g(p(x)p(y) / p(x,y))``, ``g(t) = t - 1 - log t``
    (never negative; no cancellation for nearly independent tables).

    Args:
      joint: array of shape ``(..., nx, ny)``: rows index X, columns index Y,
        each table non-negative and summing to 1.
      base: logarithm base of the unit (a static Python number > 0, != 1, finite;
        under ``jax.jit`` mark it static); ``None`` for nats.

    Example:
      >>> import vikl
      >>> float(vikl.mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2))  # X = Y: 1 bit
      1.0
      >>> float(vikl.mutual_information([[0.25, 0.25], [0.25, 0.25]]))  # independent
      0.0
    """
    scale = _log_base(base)
    pxy = as_probs(joint, "joint", event_ndims=2)
    # Marginals as double-float sums and p(x)p(y) - p(x,y) with an exact product, so
    # that a nearly independent table keeps float relative accuracy.
    px_hi, px_lo = (t[..., :, None] for t in compensated_sum(pxy, axis=-1))
    py_hi, py_lo = (t[..., None, :] for t in compensated_sum(pxy, axis=-2))
    prod, d = product_minus(px_hi, px_lo, py_hi, py_lo, pxy)
    flat = pxy.shape[:-2] + (-1,)
    parts = normalized_parts(pxy.reshape(flat), prod.reshape(flat), d.reshape(flat))
    return kl_from_parts(parts) / scale


def conditional_entropy(joint, base=None):
    """Conditional entropy ``H(Y | X) = -sum_{x,y} p(x,y) log p(y | x) = H(X, Y) - H(X)``.

    Y is the column variable and X the row variable of ``joint``; for
    ``H(X | Y)`` pass ``joint.swapaxes(-1, -2)``. In nats (``base=2``: bits);
    between 0 and ``log(ny)``; each term ``-p(x,y) log p(y|x)`` is non-negative,
    with ``log p(y|x) = log1p(-(sum of the row's other entries) / p(x))`` where
    that is more accurate.

    Args:
      joint: array of shape ``(..., nx, ny)`` (rows X, columns Y), each table
        non-negative and summing to 1.
      base: logarithm base of the unit (a static Python number > 0, != 1, finite;
        under ``jax.jit`` mark it static); ``None`` for nats.

    Example:
      >>> import vikl
      >>> float(vikl.conditional_entropy([[0.25, 0.25], [0.5, 0.0]], base=2))  # H(Y|X)
      0.5
    """
    scale = _log_base(base)
    pxy, px, _ = _joint(joint)
    # log p(y|x) = log1p(-rest / p(x)), rest = the row's other entries summed (no
    # cancellation when Y is nearly determined by X); log p(x,y) - log p(x) elsewhere.
    zero = jnp.zeros_like(pxy[..., :1])
    before = jnp.cumsum(jnp.concatenate([zero, pxy[..., :-1]], axis=-1), axis=-1)
    after = jnp.flip(jnp.cumsum(jnp.concatenate([zero, jnp.flip(pxy, -1)[..., :-1]], -1), -1), -1)
    rest = before + after
    px_safe = jnp.where(px > 0, px, 1.0)
    close = rest < 0.5 * px
    log_cond = jnp.where(
        close,
        jnp.log1p(-jnp.where(close, rest, 0.0) / px_safe),
        safe_log(pxy) - safe_log(px_safe),
    )
    h = -jnp.sum(xlog(pxy, log_cond), axis=(-2, -1))
    return jnp.maximum(h, 0.0) / scale
