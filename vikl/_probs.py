"""Numerics shared by the discrete families and the information measures.

Imports no family. Holds the safe logs, the Bernoulli-style parameter helpers,
the lattice-entropy window, the probability-array checks, and the
cancellation-free KL kernel used by every discrete closed form:

``KL(p‖q) = sum_i p_i g(q_i / p_i) + sum_{i: p_i = 0} q_i``, ``g(t) = t - 1 - log t >= 0``,

valid because both distributions sum to 1. Every term is non-negative, so the
sum never goes negative, and with ``x_i = q_i / p_i - 1`` computed from exact
differences (``q_i - p_i``, logit differences through ``expm1``) the terms keep
their relative accuracy however close ``p`` and ``q`` are.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vikl._base import Distribution, _default_float, is_concrete
from vikl._math import x_minus_log1p


# ---------------------------------------------------------------- safe logs
def safe_log(x):
    """``log(x)`` for ``x >= 0``: ``-inf`` at 0 with a zero (not infinite) gradient there."""
    pos = x > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, x, 1.0)), -jnp.inf)


def safe_log1m(x):
    """``log(1 - x)`` for ``x <= 1``: ``-inf`` at 1 with a zero gradient there."""
    ok = x < 1
    return jnp.where(ok, jnp.log1p(-jnp.where(ok, x, 0.0)), -jnp.inf)


def weighted_log_ratio(w, log_w, log_v):
    """``w * (log_w - log_v)`` with ``0 * (anything) = 0`` and finite gradients at ``w = 0``.

    ``+inf`` where ``w > 0`` and ``log_v = -inf``. The logs must themselves have
    finite gradients where ``w = 0`` (use :func:`safe_log`, ``log_sigmoid``, ...).
    """
    zero = w == 0
    lw = jnp.where(zero, 0.0, log_w)
    lv = jnp.where(zero, 0.0, log_v)
    return jnp.where(zero, 0.0, w * (lw - lv))


def xlog(x, log_y):
    """``x * log_y`` with ``0 * (-inf) = 0`` and a finite gradient there."""
    zero = x == 0
    return jnp.where(zero, 0.0, x * jnp.where(zero, 0.0, log_y))


def expm1_minus_x(t):
    """``exp(t) - 1 - t`` without cancellation near ``t = 0`` (Taylor series for ``|t| < 1/2``)."""
    small = jnp.abs(t) < 0.5
    ts = jnp.where(small, t, 0.0)
    n = 17 if jnp.finfo(ts.dtype).bits > 32 else 10
    poly = jnp.zeros_like(ts) + 1.0 / math.factorial(n)
    for k in range(n - 1, 1, -1):
        poly = poly * ts + 1.0 / math.factorial(k)
    tb = jnp.where(small, 0.0, t)
    return jnp.where(small, ts * ts * poly, jnp.expm1(tb) - tb)


# ---------------------------------------------------------------- parameter helpers
_PRIVATE = re.compile(r"\b_(probs|logits|mixture_logits|weights)\b")


def setup_one_of(obj, first: str, second: str, values: dict, **others):
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


def public_repr(self):
    """``repr`` naming the public arguments (``probs=``, not the field ``_probs=``)."""
    return _PRIVATE.sub(r"\1", Distribution.__repr__(self))


def as_value(x, dtype):
    """Converts an observed value to ``dtype`` (integers and bools are cast)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(dtype)
    return x


def is_integer(x):
    """True where ``x`` (a floating array) is a finite whole number (``floor(inf) == inf``)."""
    return (jnp.floor(x) == x) & jnp.isfinite(x)


def success_failure(d):
    """``(p, 1 - p, log p, log(1 - p))`` of a family holding ``_probs`` or ``_logits``.

    From logits the four come from ``sigmoid``/``log_sigmoid`` (no ``1 - p``
    cancellation); from probs the logs are ``-inf`` at 0 with zero gradients.
    Shared by Bernoulli, Binomial and Geometric.
    """
    if d._logits is not None:
        z = d._logits
        return jax.nn.sigmoid(z), jax.nn.sigmoid(-z), jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
    p = d._probs
    return p, 1 - p, safe_log(p), safe_log1m(p)


def probs_of(d):
    """Success probability of a family holding ``_probs`` or ``_logits``."""
    return d._probs if d._probs is not None else jax.nn.sigmoid(d._logits)


def logits_of(d):
    """Log-odds of a family holding ``_probs`` or ``_logits`` (``+-inf`` at 1 / 0)."""
    if d._logits is not None:
        return d._logits
    return safe_log(d._probs) - safe_log1m(d._probs)


# ---------------------------------------------------------------- lattice entropy
def lattice_window(dtype):
    """Static window length and the largest variance it resolves, per dtype.

    The window holds ``M`` consecutive support points centred on the mode;
    with half-width ``M/2`` at least 7 (float32) / 10 (float64) standard
    deviations the mass left out is below the dtype's round-off.
    """
    if jnp.finfo(dtype).bits > 32:
        return 2048, 10_000.0
    return 256, 300.0


def lattice_entropy(mode, log_ratio, lower, upper, size):
    """Entropy ``-sum_k p_k log p_k`` of a unimodal lattice pmf, summed over a window.

    ``log_ratio(k) = log p(k+1) - log p(k)`` (called where ``k`` and ``k+1``
    are in ``[lower, upper]``). The unnormalized log-pmf is accumulated
    outward from the mode by two cumulative sums of these O(1) ratios, so no
    large ``lgamma`` terms cancel (accurate in float32 even for huge counts),
    then normalized inside the window.
    """
    half = size // 2
    dtype = mode.dtype
    j = jnp.arange(-half, half, dtype=dtype)
    k = mode[..., None] + j
    in_support = (k >= lower[..., None]) & (k <= upper[..., None])
    step_ok = (k >= lower[..., None]) & (k + 1 <= upper[..., None])
    k_safe = jnp.where(step_ok, k, mode[..., None])
    ratio = jnp.where(step_ok, log_ratio(k_safe), 0.0)
    zero = jnp.zeros(ratio.shape[:-1] + (1,), dtype)
    fwd = jnp.concatenate([zero, jnp.cumsum(ratio[..., half:-1], axis=-1)], axis=-1)
    bwd = -jnp.cumsum(ratio[..., half - 1 :: -1], axis=-1)[..., ::-1]
    s = jnp.where(in_support, jnp.concatenate([bwd, fwd], axis=-1), -jnp.inf)
    log_z = logsumexp(s, axis=-1, keepdims=True)
    w = jnp.exp(s - log_z)
    s_safe = jnp.where(in_support, s, 0.0)
    return log_z[..., 0] - jnp.sum(jnp.where(in_support, w * s_safe, 0.0), axis=-1)


# ---------------------------------------------------------------- the KL kernel
def bregman_term(w, v, log_w, log_v, x):
    """One outcome's share of ``KL(p‖q)``: ``w g(v / w)``, ``g(t) = t - 1 - log t``; ``v`` at ``w = 0``.

    Args:
      w, v: the outcome's probabilities under ``p`` and ``q``.
      log_w, log_v: their logs (``-inf`` at 0, with finite gradients there).
      x: ``v / w - 1``, computed by the caller without cancellation; only read
        where ``-1/2 < x < 1``, where ``w x_minus_log1p(x)`` is used. Elsewhere
        the direct ``(v - w) - w (log v - log w)`` loses at most a few bits and
        cannot overflow.

    Returns ``+inf`` where ``w > 0 = v``; always ``>= 0``.
    """
    pos = w > 0
    near = pos & (x > -0.5) & (x < 1.0)
    g = x_minus_log1p(jnp.where(near, x, 0.0))
    lw = jnp.where(pos, log_w, 0.0)
    lv = jnp.where(pos, log_v, 0.0)
    far = jnp.maximum((v - w) - w * (lv - lw), 0.0)
    return jnp.where(pos, jnp.where(near, w * g, far), v)


def bregman_ratio_term(w, v, x):
    """:func:`bregman_term` for probability arrays, with one log (``log(v / w)``) instead of two.

    ``w x_minus_log1p(x, log(v / w))``: the series near ``x = 0``, the direct
    ``x - log(v / w)`` elsewhere (``log(v / w)`` rather than ``log1p(x)``, which
    would lose ``v / w`` where it is far below 1). ``v`` where ``w = 0``.
    """
    pos = w > 0
    ok = pos & (v > 0)
    log_ratio = jnp.log(jnp.where(ok, v, 1.0) / jnp.where(ok, w, 1.0))
    g = x_minus_log1p(jnp.where(ok, x, 0.0), log_ratio)
    return jnp.where(ok, w * g, jnp.where(pos, jnp.inf, v))


def bernoulli_parts(p, q):
    """``(w, v, log w, log v, x)`` for the outcomes (0, 1) of two Bernoulli-style families.

    Stacked along a new last axis. ``x = v / w - 1`` from ``(q - p) / p`` and
    ``(p - q) / (1 - p)`` (probs), or ``sigmoid(-z_q) expm1(z_q - z_p)`` and
    ``sigmoid(z_q) expm1(z_p - z_q)`` (logits), so nearly equal parameters
    keep their digits.
    """
    a1, a0, la1, la0 = success_failure(p)
    b1, b0, lb1, lb0 = success_failure(q)
    a1, a0, la1, la0, b1, b0, lb1, lb0 = jnp.broadcast_arrays(a1, a0, la1, la0, b1, b0, lb1, lb0)
    a1s = jnp.where(a1 > 0, a1, 1.0)
    a0s = jnp.where(a0 > 0, a0, 1.0)
    if p._probs is not None and q._probs is not None:
        x1, x0 = (b1 - a1) / a1s, (a1 - b1) / a0s
    else:
        x1, x0 = (b1 - a1) / a1s, (b0 - a0) / a0s
    if p._logits is not None and q._logits is not None:
        dz = q._logits - p._logits
        ok = jnp.abs(dz) <= 1.0  # False for NaN (inf - inf)
        dz = jnp.where(ok, dz, 0.0)
        x1 = jnp.where(ok, b0 * jnp.expm1(dz), x1)
        x0 = jnp.where(ok, b1 * jnp.expm1(-dz), x0)
    return tuple(
        jnp.stack(t, axis=-1) for t in ((a0, a1), (b0, b1), (la0, la1), (lb0, lb1), (x0, x1))
    )


def bernoulli_kl(p, q):
    """``KL(Ber(a)‖Ber(b)) = (1-a) g((1-b)/(1-a)) + a g(b/a)`` in nats (non-negative, no cancellation)."""
    return kl_from_parts(bernoulli_parts(p, q))


def kl_from_parts(parts):
    """``sum_i bregman_term(...)`` along the last axis."""
    return jnp.sum(bregman_term(*parts), axis=-1)


def normalized_parts(p, q, d=None):
    """``(w, v, log w, log v, x)`` for probability arrays, each renormalized to sum to 1.

    ``w = p / P`` and ``v = q / Q`` (``P``, ``Q`` the row sums), and
    ``x = v / w - 1 = (d / p - D / P) / (1 + D / P)`` from the exact
    differences ``d = q - p`` and their sum ``D = Q - P``, so the value is
    the KL of the distributions the arrays stand for even where their float
    sums are off by round-off, with no cancellation when ``p ≈ q``. A caller
    that knows ``q - p`` more accurately than its float ``q`` passes it as ``d``.
    """
    tiny = jnp.finfo(p.dtype).tiny
    p = jnp.where(p >= tiny, p, 0.0)  # subnormal p counts as 0 (XLA:CPU flushes them)
    d = q - p if d is None else d
    total_p = jnp.sum(p, axis=-1, keepdims=True)
    total_d = jnp.sum(d, axis=-1, keepdims=True)
    pos = p > 0
    e = d / jnp.where(pos, p, 1.0)
    c = total_d / total_p
    x = (e - c) / (1 + c)
    w = p / total_p
    v = q / (total_p + total_d)
    return w, v, safe_log(w), safe_log(v), x


def logits_parts(zp, zq):
    """``(w, v, log w, log v, x)`` for two unnormalized logit vectors (last axis).

    ``x_i = q_i / p_i - 1 = expm1(Δ_i - log1p(sum_j p_j expm1(Δ_j)))`` with
    ``Δ = z_q - z_p`` taken relative to its value at p's most probable
    category. Rows with a logit difference beyond 30 or infinite logits fall
    back to ``(q - p) / p`` (they are far apart, so no precision is at stake).
    """
    lp = jax.nn.log_softmax(zp, axis=-1)
    lq = jax.nn.log_softmax(zq, axis=-1)
    w, v = jnp.exp(lp), jnp.exp(lq)
    both_gone = (zp == -jnp.inf) & (zq == -jnp.inf)
    dz = jnp.where(both_gone, 0.0, zq - zp)
    top = jnp.argmax(zp, axis=-1)[..., None]
    dz = dz - jnp.take_along_axis(dz, top, axis=-1)
    ok = jnp.all(jnp.abs(dz) <= 30.0, axis=-1, keepdims=True)  # False for NaN
    dz = jnp.where(ok, dz, 0.0)
    m = jnp.sum(w * jnp.expm1(dz), axis=-1, keepdims=True)
    x_near = jnp.expm1(dz - jnp.log1p(m))
    x_far = (v - w) / jnp.where(w > 0, w, 1.0)
    return w, v, lp, lq, jnp.where(ok, x_near, x_far)


def kl_logits_rows(zp, zq):
    """``KL`` of two Categoricals given by logits (same dtype, broadcasting), on CPU a block of rows at a time."""
    return map_row_blocks(lambda a, b: kl_from_parts(logits_parts(a, b)), zp, zq)


def generic_parts(w, log_w, v, log_v):
    """``(w, v, log w, log v, x)`` with ``x = (v - w) / w``: for mixed parameterizations."""
    x = (v - w) / jnp.where(w > 0, w, 1.0)
    return w, v, log_w, log_v, x


def js_from_parts(parts):
    """Jensen-Shannon ``sum_i (w_i + v_i)/4 f(r_i)``, ``r = (w - v)/(w + v) = -x/(2 + x)``.

    ``f(r) = (1+r) log(1+r) + (1-r) log(1-r) = 2 r atanh(r) + log(1 - r²)`` has no
    first-order cancellation near ``r = 0`` (``f ≈ r²``) and equals ``2 log 2``
    where one of ``w``, ``v`` is 0.
    """
    w, v, _, _, x = parts
    s = w + v
    pos = (w > 0) & jnp.isfinite(x) & (x > -1)
    xs = jnp.where(pos, x, 0.0)
    r = jnp.where(pos, -xs / (2 + xs), jnp.where(w > 0, 1.0, -1.0))
    edge = jnp.abs(r) >= 1
    r_in = jnp.where(edge, 0.0, r)
    f = 2 * r_in * jnp.arctanh(r_in) + jnp.log1p(-r_in * r_in)
    f = jnp.where(edge, 2 * math.log(2.0), f)
    return jnp.sum(jnp.where(s == 0, 0.0, 0.25 * s * f), axis=-1)


# ---------------------------------------------------------------- probability arrays
def sum_tolerance(dtype, k: int) -> float:
    """How far a row sum of ``k`` probabilities in ``dtype`` may drift from 1.

    ``64 eps sqrt(k)`` for float32 / float64 (at least ``1e-9``) and
    ``4 eps sqrt(k)`` for float16 / bfloat16 (bfloat16, ``k = 2``: 0.044; rounding
    each entry of a normalized row moves its sum by at most ``eps / 2``), never
    above 0.1.
    """
    info = jnp.finfo(dtype)
    factor = 64 if info.bits >= 32 else 4
    return min(max(factor * float(info.eps), 1e-9) * max(1.0, float(np.sqrt(k))), 0.1)


def as_probs(x, name: str, event_ndims: int = 1) -> jax.Array:
    """Converts ``x`` to a floating array of probabilities over its last ``event_ndims`` axes.

    Integers and bools become the default float dtype. On concrete values,
    checks that entries are finite and non-negative and that each
    distribution sums to 1 within a dtype-aware tolerance (also for float16
    and bfloat16, checked in float64); raises ``ValueError`` naming ``name``.
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
        wide = arr.astype(jnp.float32) if arr.dtype.itemsize < 4 else arr
        _check_probs(np.asarray(wide), arr.dtype, name, event_ndims)
    return arr


def _check_probs(a, dtype, name, event_ndims):
    a = a.astype(np.float64)
    axes = tuple(range(-event_ndims, 0))
    k = int(np.prod(a.shape[a.ndim - event_ndims :]))
    if np.isnan(a).any():
        raise ValueError(f"{name} contains {int(np.isnan(a).sum())} NaN value(s) (shape {a.shape})")
    if np.isinf(a).any():
        raise ValueError(
            f"{name} must be finite probabilities; got {int(np.isinf(a).sum())} infinite "
            f"value(s) (shape {a.shape})"
        )
    if (a < 0).any():
        raise ValueError(
            f"{name} must be non-negative probabilities; got min {a.min():.6g} (shape {a.shape})"
        )
    sums = a.sum(axis=axes)
    tol = sum_tolerance(dtype, k)
    bad = np.abs(sums - 1) > tol
    if bad.any():
        what = "along the last axis" if event_ndims == 1 else "over the last two axes"
        raise ValueError(
            f"{name} must sum to 1 {what}; got sums in [{sums.min():.8g}, {sums.max():.8g}] "
            f"({int(bad.sum())} of {sums.size} off by more than {tol:.2g} for {np.dtype(dtype).name}, "
            f"shape {a.shape}). Normalize first, e.g. {name} / {name}.sum(-1, keepdims=True)."
        )


def check_same_events(p, q, what="p and q"):
    """The broadcast shape of two probability arrays with the same last axis."""
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


def same_dtype(*xs):
    """The arrays promoted to one floating dtype (vikl promotes mixed inputs explicitly)."""
    dtype = functools.reduce(jnp.promote_types, (x.dtype for x in xs))
    return tuple(x.astype(dtype) if x.dtype != dtype else x for x in xs)


# Elements per block in :func:`map_row_blocks`: the few intermediates of one block
# (each this many floats, 512 KiB in float32) stay in the CPU caches. 2**14 ... 2**18
# all ran the 1e5 x 1000 float32 benchmark at 0.5-0.9x the hand-written time; 2**17 best.
_BLOCK_ELEMENTS = 1 << 17


def map_row_blocks(fn, *arrays):
    """``fn(*arrays)`` for an ``fn`` that reduces the last axis row by row; on CPU a block of rows at a time.

    XLA:CPU writes every elementwise intermediate to memory before a reduction
    reads it back, so a kernel with several passes over a large batch is bound
    by memory traffic. On CPU the rows are therefore taken in blocks of about
    ``_BLOCK_ELEMENTS`` elements by a ``fori_loop`` (the last block is shifted
    back to end at the last row, so it may repeat a few rows): the
    intermediates of a block stay in cache and each input is read from memory
    once. Each row goes through the same operations either way. Other
    backends (which fuse elementwise work into reductions) get one piece.

    Args:
      fn: maps arrays of shape ``(rows, K)`` to one value per row, ``(rows,)``.
      arrays: each of the broadcast shape ``batch + (K,)`` or a single row of
        ``K`` entries (broadcast inside each block). Other broadcasts, and
        batches of at most two blocks, are evaluated in one piece.

    Returns an array of shape ``batch``.
    """
    shape = jnp.broadcast_shapes(*(a.shape for a in arrays))
    k = shape[-1]
    batch = math.prod(shape[:-1])
    rows = max(1, _BLOCK_ELEMENTS // max(k, 1))
    whole = [a.shape == shape for a in arrays]
    one_row = [a.size == k and not w for a, w in zip(arrays, whole)]

    def in_one_piece(*xs):
        return fn(*(jnp.broadcast_to(x, shape) for x in xs))

    if batch <= 2 * rows or not all(w or o for w, o in zip(whole, one_row)):
        return in_one_piece(*arrays)

    def in_blocks(*xs):
        flat = [x.reshape(batch, k) if w else x.reshape(k) for x, w in zip(xs, whole)]

        def body(i, out):
            start = jnp.minimum(i * rows, batch - rows)
            block = [
                jax.lax.dynamic_slice_in_dim(x, start, rows, 0) if w else jnp.broadcast_to(x, (rows, k))
                for x, w in zip(flat, whole)
            ]
            return jax.lax.dynamic_update_slice_in_dim(out, fn(*block), start, 0)

        spec = [jax.ShapeDtypeStruct((rows, k), x.dtype) for x in xs]
        out = jnp.zeros((batch,), jax.eval_shape(fn, *spec).dtype)
        return jax.lax.fori_loop(0, -(-batch // rows), body, out).reshape(shape[:-1])

    return jax.lax.platform_dependent(*arrays, cpu=in_blocks, default=in_one_piece)


def _kl_rows_probs(p, q):
    """``sum_k bregman_ratio_term`` of :func:`normalized_parts` along the last axis (same shapes)."""
    w, v, _, _, x = normalized_parts(p, q)
    return jnp.sum(bregman_ratio_term(w, v, x), axis=-1)


@jax.custom_jvp
def _kl_probs_rows(p, q):
    """``KL(p‖q)`` of probability arrays along the last axis (see :func:`normalized_parts`).

    ``p`` and ``q`` share a dtype and broadcast. Each term is ``>= 0``, so the
    value is too. The derivatives are those of ``sum_k p_k log(p_k / q_k)``:
    ``log(p/q) + 1`` and ``-p/q`` where ``p > 0``, 0 where ``p = 0`` (a custom
    JVP; along the simplex they equal the derivatives of the renormalized value).
    """
    return map_row_blocks(_kl_rows_probs, p, q)


@_kl_probs_rows.defjvp
def _kl_probs_rows_jvp(primals, tangents):
    p, q = primals
    dp, dq = tangents
    pos = p > 0
    p_safe = jnp.where(pos, p, 1.0)
    q_safe = jnp.where(pos, q, 1.0)
    d_p = jnp.where(pos, jnp.log(p_safe) - jnp.log(q_safe) + 1, 0.0)
    d_q = jnp.where(pos, -p_safe / q_safe, 0.0)
    return _kl_probs_rows(p, q), jnp.sum(d_p * dp + d_q * dq, axis=-1)


# Compiled once per shape, also for eager calls (whose row-block loop would otherwise be
# traced and compiled again on every call).
_kl_probs_jit = jax.jit(_kl_probs_rows)


def kl_probs(p, q):
    """``KL(p‖q) = sum_k p_k log(p_k / q_k)`` along the last axis, in nats (validated arrays).

    Each row is renormalized (:func:`normalized_parts`) and its terms are
    non-negative and free of cancellation; large batches are computed a block
    of rows at a time (:func:`map_row_blocks`).
    """
    p, q = same_dtype(p, q)
    check_same_events(p, q)
    return _kl_probs_jit(p, q)


def categorical_parts(p_probs, p_logits, q_probs, q_logits):
    """``(w, v, log w, log v, x)`` of two Categoricals from their fields (one of each pair is None).

    probs/probs: :func:`normalized_parts`; logits/logits: :func:`logits_parts`;
    mixed: :func:`generic_parts` (a probability converted from logits carries its
    own rounding, so nearly equal mixed pairs are accurate to ``eps / |q/p - 1|``).
    """
    if p_probs is not None and q_probs is not None:
        a, b = same_dtype(p_probs, q_probs)
        shape = jnp.broadcast_shapes(a.shape, b.shape)
        return normalized_parts(jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape))
    if p_logits is not None and q_logits is not None:
        a, b = same_dtype(p_logits, q_logits)
        shape = jnp.broadcast_shapes(a.shape, b.shape)
        return logits_parts(jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape))

    def probs_and_logs(probs, logits):
        if probs is not None:
            return probs, safe_log(probs)
        return jax.nn.softmax(logits, axis=-1), jax.nn.log_softmax(logits, axis=-1)

    (w, lw), (v, lv) = probs_and_logs(p_probs, p_logits), probs_and_logs(q_probs, q_logits)
    w, lw, v, lv = same_dtype(w, lw, v, lv)
    shape = jnp.broadcast_shapes(w.shape, v.shape)
    return generic_parts(*(jnp.broadcast_to(t, shape) for t in (w, lw, v, lv)))


# ---------------------------------------------------------------- double-float helpers
def _two_sum(a, b):
    """``a + b = s + err`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    """Veltkamp split ``a = hi + lo`` with ``hi`` holding half the mantissa."""
    factor = 4097.0 if jnp.finfo(a.dtype).bits <= 32 else 134217729.0
    c = factor * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a, b):
    """``a * b = p + err`` exactly (Dekker), for finite ``a``, ``b`` well inside the float range."""
    prod = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return prod, ((ah * bh - prod) + ah * bl + al * bh) + al * bl


def compensated_sum(x, axis):
    """``sum(x, axis)`` as an unevaluated pair ``hi + lo`` accurate to about ``eps**2`` (scan of two-sums)."""
    xs = jnp.moveaxis(x, axis, 0)

    def step(carry, v):
        hi, lo = carry
        hi, err = _two_sum(hi, v)
        return (hi, lo + err), None

    zero = jnp.zeros_like(xs[0])
    (hi, lo), _ = jax.lax.scan(step, (zero, zero), xs)
    return _two_sum(hi, lo)


def product_minus(a_hi, a_lo, b_hi, b_lo, c):
    """``(a_hi + a_lo) (b_hi + b_lo) - c`` with the product kept to about ``eps**2``.

    Returns ``(hi, d)``: the rounded product and the difference, accurate even
    when the product is close to ``c``.
    """
    prod, err = _two_prod(a_hi, b_hi)
    tail = err + (a_hi * b_lo + a_lo * b_hi)
    return prod, (prod - c) + tail
