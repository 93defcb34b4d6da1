"""Information measures: entropy, cross-entropy, Jensen-Shannon, mutual and conditional information.

Each function takes :class:`vikl.Distribution` objects or arrays of
probabilities along the last axis (a joint table along the last two axes for
``mutual_information`` / ``conditional_entropy``). Results are in nats, or in
units of ``log(base)`` (``base=2``: bits). Discrete conventions: ``0 log 0 = 0``;
``+inf`` (never NaN) where ``p > 0`` meets ``q = 0``; gradients are finite
wherever the value is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vikl._base import Distribution, _default_float, is_concrete
from vikl._distributions.bernoulli import Bernoulli, _success_failure
from vikl._distributions.categorical import (
    Categorical,
    _kl_terms_probs,
    _safe_log,
    _weighted_log_ratio,
)
from vikl._math import log_base

__all__ = [
    "entropy",
    "cross_entropy",
    "jensen_shannon",
    "mutual_information",
    "conditional_entropy",
]


# ---------------------------------------------------------------- array helpers
def _sum_tolerance(dtype, k: int) -> float:
    """How far a row sum of ``k`` probabilities in ``dtype`` may drift from 1."""
    eps = float(jnp.finfo(dtype).eps)
    return max(64 * eps, 1e-9) * max(1.0, float(np.sqrt(k)))


def _as_probs(x, name: str, event_ndims: int = 1) -> jax.Array:
    """Converts ``x`` to a floating array of probabilities over its last ``event_ndims`` axes.

    Integers and bools become the default float dtype. On concrete values,
    checks that entries are non-negative and that each distribution sums to 1
    within a dtype-aware tolerance; raises ``ValueError`` naming ``name``.
    """
    if isinstance(x, Distribution):
        raise TypeError(f"{name}: expected an array of probabilities; got a {type(x).__name__}")
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        if not (jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_):
            raise ValueError(f"{name} must be an array of real probabilities; got dtype {arr.dtype}")
        arr = arr.astype(_default_float())
    if arr.ndim < event_ndims:
        raise ValueError(
            f"{name} must have at least {event_ndims} axis/axes of probabilities; "
            f"got shape {tuple(arr.shape)}"
        )
    if is_concrete(arr):
        a = np.asarray(arr)
        axes = tuple(range(-event_ndims, 0))
        k = int(np.prod(a.shape[a.ndim - event_ndims :]))
        if np.isnan(a).any():
            raise ValueError(f"{name} contains {int(np.isnan(a).sum())} NaN value(s)")
        if (a < 0).any():
            raise ValueError(
                f"{name} must be non-negative probabilities; got min {a.min():.6g} "
                f"(shape {a.shape})"
            )
        sums = a.sum(axis=axes, dtype=np.float64)
        tol = _sum_tolerance(a.dtype, k)
        bad = np.abs(sums - 1) > tol
        if bad.any():
            what = "along the last axis" if event_ndims == 1 else "over the last two axes"
            raise ValueError(
                f"{name} must sum to 1 {what}; got sums in [{sums.min():.8g}, {sums.max():.8g}] "
                f"({int(bad.sum())} of {sums.size} off by more than {tol:.2g}, shape {a.shape}). "
                f"Normalize first, e.g. {name} / {name}.sum(-1, keepdims=True)."
            )
    return arr


def _check_same_events(p, q, what="p and q"):
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"{what} must have the same number of outcomes along the last axis; "
            f"got shapes {tuple(p.shape)} and {tuple(q.shape)}"
        )
    try:
        return jnp.broadcast_shapes(p.shape, q.shape)
    except ValueError as err:
        raise ValueError(
            f"{what} have batch shapes that do not broadcast: {tuple(p.shape)} and {tuple(q.shape)}"
        ) from err


def _same_dtype(p, q):
    if p.dtype != q.dtype:
        dtype = jnp.promote_types(p.dtype, q.dtype)
        p, q = p.astype(dtype), q.astype(dtype)
    return p, q


def _kl_probs(p, q):
    """``KL(p‖q) = sum_k p_k log(p_k / q_k)`` along the last axis, in nats (arrays)."""
    p, q = _same_dtype(p, q)
    shape = _check_same_events(p, q)
    return jnp.sum(_kl_terms_probs(jnp.broadcast_to(p, shape), jnp.broadcast_to(q, shape)), axis=-1)


def _entropy_probs(p):
    return 0.0 - jnp.sum(_weighted_log_ratio(p, _safe_log(p), jnp.zeros((), p.dtype)), axis=-1)


_TWO_LOG2 = 2 * float(np.log(2.0))


def _js_terms(p, q):
    """Per-outcome terms of JS(p, q), ``(p + q)/4 * f(r)`` with ``r = (p - q)/(p + q)``.

    ``f(r) = (1+r) log(1+r) + (1-r) log(1-r) = 2 r atanh(r) + log(1 - r²)``,
    which has no first-order cancellation near ``p = q`` (``f ≈ r²``) and
    equals ``2 log 2`` where one of ``p``, ``q`` is 0.
    """
    s = p + q
    empty = s == 0
    r = (p - q) / jnp.where(empty, 1.0, s)
    edge = jnp.abs(r) >= 1
    r_in = jnp.where(edge, 0.0, r)
    f = 2 * r_in * jnp.arctanh(r_in) + jnp.log1p(-r_in * r_in)
    f = jnp.where(edge, _TWO_LOG2, f)
    return jnp.where(empty, 0.0, 0.25 * s * f)


def _pair_probs(p, q, fn_name):
    """Two Categorical / Bernoulli distributions (or two arrays) as ``(p, log p, q, log q)``.

    Probabilities lie along the last axis; the logs come from ``log_softmax`` /
    ``log_sigmoid`` for logits-parameterized distributions (``-inf`` at 0).
    """
    kinds = (Categorical, Bernoulli)
    if isinstance(p, Distribution) or isinstance(q, Distribution):
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

    def vectors(d, name):
        if isinstance(d, Categorical):
            return d.probs, d.logits
        if isinstance(d, Bernoulli):
            p1, p0, lp1, lp0 = _success_failure(d)
            return jnp.stack([p0, p1], axis=-1), jnp.stack([lp0, lp1], axis=-1)
        a = _as_probs(d, name)
        return a, _safe_log(a)

    (pv, lp), (qv, lq) = vectors(p, "p"), vectors(q, "q")
    if pv.dtype != qv.dtype:
        dtype = jnp.promote_types(pv.dtype, qv.dtype)
        pv, lp, qv, lq = (t.astype(dtype) for t in (pv, lp, qv, lq))
    shape = _check_same_events(pv, qv)
    return tuple(jnp.broadcast_to(t, shape) for t in (pv, lp, qv, lq))


# ---------------------------------------------------------------- public API
def entropy(p, base=None):
    """Shannon (or differential) entropy ``H(p) = -E_p[log p(X)]``.

    In nats, or in units of ``log(base)`` (``base=2``: bits). For arrays:
    ``H = -sum_k p_k log p_k`` along the last axis, with ``0 log 0 = 0``.

    Args:
      p: a :class:`vikl.Distribution` with a closed-form ``entropy()``, or an
        array of probabilities along the last axis (shape ``(..., K)``).
      base: logarithm base of the unit; ``None`` for nats.

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
    scale = log_base(base)
    if isinstance(p, Distribution):
        return p.entropy() / scale
    return _entropy_probs(_as_probs(p, "p")) / scale


def cross_entropy(p, q, base=None):
    """Cross-entropy ``H(p, q) = -E_p[log q(X)] = H(p) + KL(p‖q)``.

    In nats (``base=2``: bits). Not symmetric. For arrays (and Categorical /
    Bernoulli pairs) computed directly as ``-sum_k p_k log q_k``: terms with
    ``p_k = 0`` are 0, and the result is ``+inf`` where ``p_k > 0 = q_k``. For
    other distribution pairs, ``p.entropy() + vikl.kl_divergence(p, q)``.

    Args:
      p, q: two Distributions, or two arrays of probabilities along the last axis.
      base: logarithm base of the unit; ``None`` for nats.

    Raises:
      ValueError: bad probability arrays, or different numbers of outcomes.
      NotImplementedError: no closed-form entropy or KL for the pair.

    Example:
      >>> import vikl
      >>> round(float(vikl.cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)), 6)  # 1 + KL, bits
      1.207519
    """
    scale = log_base(base)
    p_dist, q_dist = isinstance(p, Distribution), isinstance(q, Distribution)
    direct = (not p_dist and not q_dist) or (
        isinstance(p, (Categorical, Bernoulli)) and type(p) is type(q)
    )
    if direct:
        pv, _, _, log_q = _pair_probs(p, q, "cross_entropy")
        zero = jnp.zeros((), pv.dtype)
        return jnp.sum(_weighted_log_ratio(pv, zero, log_q), axis=-1) / scale
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
      base: logarithm base of the unit; ``None`` for nats.

    Raises:
      NotImplementedError: other distributions (no closed form; estimate the two
        KL terms by Monte Carlo with :func:`vikl.estimate_kl` and a
        :class:`vikl.Mixture` for ``m``).

    Example:
      >>> import vikl
      >>> float(vikl.jensen_shannon([1.0, 0.0], [0.0, 1.0], base=2))  # disjoint: 1 bit
      1.0
    """
    pv, _, qv, _ = _pair_probs(p, q, "jensen_shannon")
    return jnp.sum(_js_terms(pv, qv), axis=-1) / log_base(base)


def _joint(joint):
    pxy = _as_probs(joint, "joint", event_ndims=2)
    px = jnp.sum(pxy, axis=-1, keepdims=True)
    py = jnp.sum(pxy, axis=-2, keepdims=True)
    return pxy, px, py


def mutual_information(joint, base=None):
    """Mutual information ``I(X; Y) = KL(p(x, y) ‖ p(x) p(y))`` of a joint table.

    ``I = sum_{x,y} p(x,y) log[p(x,y) / (p(x) p(y))]``, in nats (``base=2``:
    bits); symmetric in X and Y, 0 exactly for independent variables. Tiny
    negative round-off is clipped to 0.

    Args:
      joint: array of shape ``(..., nx, ny)``: rows index X, columns index Y,
        each table non-negative and summing to 1.
      base: logarithm base of the unit; ``None`` for nats.

    Example:
      >>> import vikl
      >>> float(vikl.mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2))  # X = Y: 1 bit
      1.0
      >>> float(vikl.mutual_information([[0.25, 0.25], [0.25, 0.25]]))  # independent
      0.0
    """
    pxy, px, py = _joint(joint)
    pxpy = px * py
    terms = _weighted_log_ratio(pxy, _safe_log(pxy), _safe_log(pxpy))
    mi = jnp.sum(terms, axis=(-2, -1))
    return jnp.where(mi < 0, 0.0, mi) / log_base(base)


def conditional_entropy(joint, base=None):
    """Conditional entropy ``H(Y | X) = -sum_{x,y} p(x,y) log p(y | x) = H(X, Y) - H(X)``.

    Y is the column variable and X the row variable of ``joint``; for
    ``H(X | Y)`` pass ``joint.swapaxes(-1, -2)``. In nats (``base=2``: bits);
    between 0 and ``log(ny)``. Tiny negative round-off is clipped to 0.

    Args:
      joint: array of shape ``(..., nx, ny)`` (rows X, columns Y), each table
        non-negative and summing to 1.
      base: logarithm base of the unit; ``None`` for nats.

    Example:
      >>> import vikl
      >>> float(vikl.conditional_entropy([[0.25, 0.25], [0.5, 0.0]], base=2))  # H(Y|X)
      0.5
    """
    pxy, px, _ = _joint(joint)
    terms = _weighted_log_ratio(pxy, _safe_log(pxy), _safe_log(px))
    h = -jnp.sum(terms, axis=(-2, -1))
    return jnp.where(h < 0, 0.0, h) / log_base(base)
