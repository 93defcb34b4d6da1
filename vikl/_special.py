"""Special-function numerics shared by the Gamma, Beta, Dirichlet, Student-t and Gumbel families.

Everything here is a function of plain arrays; no family module is imported. The names
without a leading underscore are what other modules import; underscored ones stay here.

* ``lgamma_bregman(y, x)`` = ``lgamma(y) - lgamma(x) - digamma(x) (y - x)``, the part of
  every Gamma/Beta/Dirichlet/Gumbel/Student-t KL that cancels when two distributions are
  close, without cancellation (``lgamma_bregmans``: several in one kernel).
* ``digamma_difference``, ``trigamma``: digamma differences and its derivative.
* Large-argument forms, for concentrations up to 1e30 where the textbook formulas subtract
  numbers of size ``a log a``: ``stirling_remainder`` (``mu(a) = lgamma(a) - (a - ½) log a
  + a - ½ log 2pi``, Gudermann's convergent series), ``digamma_minus_log``
  (``digamma(a) - log a``), ``lgamma_remainder_bregman`` (the Bregman divergence of
  ``lgamma(a) - (a log a - a)``), and from them ``dirichlet_kl_stirling`` and
  ``dirichlet_neg_entropy`` (Beta is the two-component case).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vikl._math import x_minus_log1p

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

# Stirling series of lgamma: sum_k B_2k / (2k (2k - 1) z^(2k - 1)), as (power, coefficient).
_STIRLING = (
    (1, 1 / 12),
    (3, -1 / 360),
    (5, 1 / 1260),
    (7, -1 / 1680),
    (9, 1 / 1188),
    (11, -691 / 360360),
    (13, 1 / 156),
    (15, -3617 / 122400),
)


def is64(dtype) -> bool:
    return jnp.finfo(dtype).bits > 32


def _shift_plan(dtype):
    return (10, 8) if is64(dtype) else (7, 3)


def _stacked_shifts(x, n):
    return x + jnp.arange(n, dtype=x.dtype).reshape((n,) + (1,) * jnp.ndim(x))


# Bernoulli numbers B_2, B_4, ..., B_16.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def log_ratio(num, den, diff=None):
    """``log(num / den)`` for positive arrays, accurate to a few ulps also when ``num ≈ den``.

    ``log(num) - log(den)`` has an absolute error of ~1 ulp of ``log(num)``, which is
    a large relative error when the ratio is near 1; there ``log1p((num - den)/den)``
    is used instead (``diff``: ``num - den`` if known more accurately than the rounded difference).
    """
    d = ((num - den) if diff is None else diff) / den
    near = jnp.abs(d) < 0.5
    return jnp.where(near, jnp.log1p(jnp.where(near, d, 0.0)), jnp.log(num) - jnp.log(den))


# ------------------------------------------------------------ digamma differences and trigamma
def trigamma(x):
    """``digamma'(x)`` for ``x > 0``: ``sum_{j<N} 1/(x+j)^2`` plus the asymptotic series at ``x + N``.

    ``digamma'(z) ~ 1/z + 1/(2z^2) + sum_k B_2k / z^(2k+1)``; cheaper to compile than
    ``polygamma(1, x)`` (a Hurwitz zeta) and as accurate.
    """
    n, k = _shift_plan(x.dtype)
    xj = _stacked_shifts(x, n)
    head = jnp.sum(1 / (xj * xj), axis=0)
    t = 1 / (x + n)
    t2 = t * t
    poly = jnp.zeros_like(t)
    for b in reversed(_BERNOULLI[:k]):
        poly = poly * t2 + b
    return head + t + 0.5 * t2 + t * t2 * poly


def digamma_difference(y, x, delta):
    """``digamma(y) - digamma(x)`` for ``x, y > 0`` without cancellation when ``y ≈ x``.

    ``sum_{j<N} delta / ((x+j)(y+j))`` plus the difference of the asymptotic series
    ``log z - 1/(2z) - sum_k B_2k / (2k z^2k)`` at ``z = x + N``, ``w = y + N``.
    """
    n, k = _shift_plan(x.dtype)
    head = jnp.sum(delta / (_stacked_shifts(x, n) * _stacked_shifts(y, n)), axis=0)
    z, w = x + n, y + n
    tw, tz = 1 / w, 1 / z
    # w^-2i - z^-2i = -delta sum_{l<2i} tw^(2i-l) tz^(l+1): no cancellation.
    series = jnp.zeros_like(tw)
    for i, b in enumerate(_BERNOULLI[:k], start=1):
        power_sum = sum(tw ** (2 * i - j) * tz ** (j + 1) for j in range(2 * i))
        series = series + (b / (2 * i)) * power_sum
    return head + log_ratio(w, z, delta) + delta * (tw * tz / 2 + series)


# ------------------------------------------------------------ the log-gamma Bregman divergence
def _inverse_power_bregmans(ms, y, z, delta):
    """``y^-m - z^-m + m z^-(m+1) (y - z)`` (>= 0) for each ``m`` in ``ms``, ``y, z >= 1``.

    Stacked along a new leading axis (one row per ``m``). With ``q = y / z`` the
    value is ``(q - 1)^2 / y^m * sum_{n<m} (n + 1) q^n``, a sum of positive terms;
    for ``y >= z`` the same sum is rewritten in ``rho = z / y <= 1`` as
    ``z^-m [m (q - 1)(1 - rho) + (1 - rho)^2 sum_{i<=m-2} (m - 1 - i) rho^i]``,
    so no power overflows.
    """
    top = max(ms)
    col = (len(ms),) + (1,) * jnp.ndim(delta)
    m = jnp.asarray(ms, delta.dtype).reshape(col)
    grow = delta >= 0
    rho = jnp.where(grow, z / y, 0.0)  # <= 1 on the branch that uses it
    q = jnp.where(grow, 0.0, y / z)  # < 1 on the branch that uses it
    poly_a = jnp.zeros(col, delta.dtype)
    for i in range(top - 2, -1, -1):  # sum_i (m - 1 - i) rho^i, zero coefficients past m - 2
        coef = jnp.asarray([max(k - 1 - i, 0) for k in ms], delta.dtype).reshape(col)
        poly_a = poly_a * rho + coef
    poly_b = jnp.zeros(col, delta.dtype)
    for n in range(top - 1, -1, -1):  # sum_n (n + 1) q^n, zero coefficients past m - 1
        coef = jnp.asarray([n + 1 if n < k else 0 for k in ms], delta.dtype).reshape(col)
        poly_b = poly_b * q + coef
    dz, dy = delta / z, delta / y
    branch_a = (m * dz * dy + dy * dy * poly_a) * jnp.power(z, -m)
    branch_b = dz * dz * poly_b * jnp.power(y, -m)
    return jnp.where(grow, branch_a, branch_b)


@jax.custom_jvp
def _lgamma_bregman_core(y, x, delta):
    """The kernel of ``lgamma_bregman`` (arrays of one dtype; ``delta = y - x``)."""
    dtype = delta.dtype
    shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y), jnp.shape(delta))
    x, y, delta = (jnp.broadcast_to(v, shape) for v in (x, y, delta))
    n_shift, n_terms = _shift_plan(dtype)
    # All the x_minus_log1p terms in one stacked call: N shifts, then the two Stirling ones.
    j = jnp.arange(n_shift, dtype=dtype).reshape((n_shift,) + (1,) * len(shape))
    xj, yj = x + j, y + j
    z, w = x + n_shift, y + n_shift
    log_w_z = jnp.log(w) - jnp.log(z)
    args = jnp.concatenate([delta / xj, (-delta / w)[None], (delta / z)[None]])
    logs = jnp.concatenate([jnp.log(yj) - jnp.log(xj), -log_w_z[None], log_w_z[None]])
    weights = jnp.concatenate([jnp.ones_like(xj), w[None], jnp.full_like(z, 0.5)[None]])
    total = jnp.sum(weights * x_minus_log1p(args, logs), axis=0)
    ms, cs = zip(*_STIRLING[:n_terms])
    c = jnp.asarray(cs, dtype).reshape((n_terms,) + (1,) * len(shape))
    return total + jnp.sum(c * _inverse_power_bregmans(ms, w, z, delta), axis=0)


def _lgamma_bregman_jvp(primals, tangents):
    # dD/dy = digamma(y) - digamma(x), dD/dx = -trigamma(x) (y - x). ``delta`` only
    # carries the precise value of y - x; derivatives flow through y and x.
    y, x, delta = primals
    dy, dx, _ = tangents
    out = _lgamma_bregman_core(y, x, delta)
    tangent = digamma_difference(y, x, delta) * dy - trigamma(x) * delta * dx
    return out, jnp.broadcast_to(tangent, out.shape)


_lgamma_bregman_core.defjvp(_lgamma_bregman_jvp)
# One compiled kernel (~150 operations, slow to dispatch one by one in eager mode);
# the analytic derivative keeps the gradient program small too.
_lgamma_bregman_impl = jax.jit(_lgamma_bregman_core)


def lgamma_bregman(y, x, delta=None):
    """``lgamma(y) - lgamma(x) - digamma(x) (y - x)`` for ``x, y > 0``, free of cancellation.

    This Bregman divergence of the (convex) log-gamma function is about
    ``digamma'(x) (y - x)^2 / 2`` when ``y ≈ x``; the textbook difference of three
    large terms loses every digit there in float32. Instead:

    * ``lgamma(t) = lgamma(t + N) - sum_{j<N} log(t + j)`` splits it into ``N``
      Bregman divergences of ``-log``, each ``u - log1p(u)`` with
      ``u = (y - x) / (x + j)`` (the ``x_minus_log1p`` kernel), plus
    * the divergence at ``x + N >= N`` of Stirling's series
      ``(t - 1/2) log t - t + sum_k B_2k / (2k (2k-1) t^(2k-1))``: with
      ``z = x + N``, ``w = y + N`` its main part is
      ``w [v - log1p(v)] + ½ [u - log1p(u)]`` (``v = (z - w)/w``, ``u = (w - z)/z``)
      and each ``t^-m`` term gives a sum of positive terms.

    ``N = 7`` with three Stirling terms in float32, ``N = 10`` with eight in
    float64 (truncation below 1e-8 and 1e-16 of the result). Every piece but the
    small Stirling corrections is >= 0, so the result is accurate to a few ulps
    for all ``x, y > 0``, near or far apart, and its gradients are finite.

    Args:
      y, x: positive arrays (broadcast).
      delta: ``y - x`` if the caller knows it more accurately than the rounded
        difference (e.g. ``(b1 - b2) / b2`` for ``y = b1 / b2``, ``x = 1``).
    """
    dtype = jnp.result_type(y, x) if delta is None else jnp.result_type(y, x, delta)
    y = jnp.asarray(y, dtype)
    x = jnp.asarray(x, dtype)
    delta = y - x if delta is None else jnp.asarray(delta, dtype)
    return _lgamma_bregman_impl(y, x, delta)


def lgamma_bregmans(*triples):
    """Several ``lgamma_bregman(y, x, delta)`` in one stacked call (one kernel instead of many).

    Each triple is ``(y, x, delta)``; they broadcast against each other. Returns a tuple.
    """
    dtype = jnp.result_type(*[v for t in triples for v in t])
    shape = jnp.broadcast_shapes(*[jnp.shape(v) for t in triples for v in t])
    cols = [jnp.stack([jnp.broadcast_to(jnp.asarray(t[i], dtype), shape) for t in triples]) for i in range(3)]
    out = _lgamma_bregman_impl(*cols)
    return tuple(out[i] for i in range(len(triples)))




# ------------------------------------------------------------ large-argument forms
def _gudermann_term(x):
    """``c(x) = (x + ½) log(1 + 1/x) - 1 >= 0``, one term of Gudermann's series for ``mu``.

    With ``y = 1 / (2x + 1)``, ``c = atanh(y) / y - 1 = sum_{k>=1} y^(2k) / (2k + 1)``, a
    sum of positive terms used for ``x >= 1`` (``y <= 1/3``); below, ``c >= 0.039`` and
    the direct form keeps its digits.
    """
    n = 17 if is64(x.dtype) else 8  # (1/9)^n / (2n + 1) below the precision of c >= y^2 / 3
    small = x >= 1
    y = 1 / (2 * jnp.where(small, x, 1.0) + 1)
    t = y * y
    poly = jnp.zeros_like(t) + 1.0 / (2 * n + 1)
    for k in range(n - 1, 0, -1):
        poly = poly * t + 1.0 / (2 * k + 1)
    x_low = jnp.where(small, 1.0, x)
    direct = (x_low + 0.5) * jnp.log1p(1 / x_low) - 1
    return jnp.where(small, t * poly, direct)


def stirling_remainder(a):
    """``mu(a) = lgamma(a) - (a - ½) log a + a - ½ log 2pi`` for ``a > 0``, to a few ulps.

    Gudermann's convergent series ``mu(a) = sum_{j>=0} c(a + j)`` (``_gudermann_term``,
    every term positive): its first ``N`` terms are summed, the rest is Stirling's
    series ``sum_k B_2k / (2k (2k - 1) z^(2k - 1))`` at ``z = a + N``. ``mu(a) ~ 1/(12 a)``
    for large ``a``; no difference of large numbers is taken.
    """
    n, k = _shift_plan(a.dtype)
    head = jnp.sum(_gudermann_term(_stacked_shifts(a, n)), axis=0)
    t = 1 / (a + n)
    t2 = t * t
    tail = jnp.zeros_like(t)
    for _, c in reversed(_STIRLING[:k]):
        tail = tail * t2 + c
    return head + t * tail


def digamma_minus_log(a):
    """``digamma(a) - log a`` (< 0, about ``-1/(2a)`` for large ``a``) for ``a > 0``.

    ``digamma(a) = digamma(a + N) - sum_{j<N} 1/(a + j)`` turns it into
    ``-sum_{j<N} [u_j - log1p(u_j)]`` (``u_j = 1/(a + j)``, ``x_minus_log1p``) plus the
    asymptotic series ``-1/(2z) - sum_k B_2k / (2k z^2k)`` at ``z = a + N``: all terms negative.
    """
    n, k = _shift_plan(a.dtype)
    head = jnp.sum(x_minus_log1p(1 / _stacked_shifts(a, n)), axis=0)
    t = 1 / (a + n)
    t2 = t * t
    poly = jnp.zeros_like(t)
    for i in range(k, 0, -1):
        poly = poly * t2 + _BERNOULLI[i - 1] / (2 * i)
    return -head - t / 2 - t2 * poly


def lgamma_remainder_bregman(y, x, delta):
    """``(R, size)``: ``R = D(y, x) - y [x/y - 1 - log(x/y)]`` for ``x, y > 0``, and the sum of
    the magnitudes of the terms it was computed from (its rounding error is a few ulps of it).

    ``D`` is the log-gamma Bregman divergence; ``y [x/y - 1 - log(x/y)]`` is the Bregman
    divergence of ``a log a - a``, the part of ``lgamma`` that grows with ``a``. ``R`` is the
    Bregman divergence of ``h(a) = lgamma(a) - a log a + a = -½ log a + ½ log 2pi + mu(a)``
    (``mu``: ``stirling_remainder``; ``h' = digamma(a) - log a``), of size ``log(y/x)``
    where ``D`` is of size ``a log a``. Three evaluations:

    * both arguments >= ``N`` (7 in float32, 10 in float64): ``½ [u - log1p(u)]``
      (``u = (y - x)/x``) plus the Bregman divergences of the Stirling terms
      ``B_2k / (2k (2k-1) a^(2k-1))``, each a sum of non-negative terms;
    * otherwise, whichever of ``D - y [...]`` (right for ``y`` near ``x``) and
      ``h(y) - h(x) - h'(x)(y - x)`` (right for ``y`` far from ``x``) sums smaller terms.

    ``delta``: ``y - x``, if known more accurately than the rounded difference.
    """
    n, k = _shift_plan(delta.dtype)
    d = delta / x
    near = jnp.abs(d) < 0.5
    log_yx = jnp.where(near, jnp.log1p(jnp.where(near, d, 0.0)), _safe_log_ratio(y, x))
    big = jnp.minimum(x, y) >= n
    xb, yb, db = jnp.where(big, x, 1.0 * n), jnp.where(big, y, 1.0 * n), jnp.where(big, delta, 0.0)
    ms, cs = zip(*_STIRLING[:k])
    c = jnp.asarray(cs, delta.dtype).reshape((k,) + (1,) * jnp.ndim(delta))
    corrections = c * _inverse_power_bregmans(ms, yb, xb, db)
    half = 0.5 * x_minus_log1p(db / xb, jnp.where(big, log_yx, 0.0))
    series = half + jnp.sum(corrections, axis=0)
    series_size = half + jnp.sum(jnp.abs(corrections), axis=0)
    bregman = lgamma_bregman(y, x, delta)
    lead = y * x_minus_log1p(-delta / y, -log_yx)
    mu_y, mu_x = stirling_remainder(y), stirling_remainder(x)
    slope = digamma_minus_log(x) * delta
    far = (mu_y - mu_x - slope) - 0.5 * log_yx
    far_size = jnp.abs(mu_y) + jnp.abs(mu_x) + jnp.abs(slope) + 0.5 * jnp.abs(log_yx)
    near_size = bregman + lead
    use_far = far_size < near_size
    small_value = jnp.where(use_far, far, bregman - lead)
    small_size = jnp.where(use_far, far_size, near_size)
    return jnp.where(big, series, small_value), jnp.where(big, series_size, small_size)


def _safe_log_ratio(num, den):
    """``log(num / den)`` for positive arrays, also where the quotient under- or overflows."""
    ratio = num / den
    ok = (ratio > jnp.finfo(ratio.dtype).tiny) & (ratio < jnp.finfo(ratio.dtype).max)
    return jnp.where(ok, jnp.log(jnp.where(ok, ratio, 1.0)), jnp.log(num) - jnp.log(den))


def _two_product(x, y):
    """``(p, e)`` with ``p = fl(x y)`` and ``p + e = x y`` exactly (Dekker; ``|x|, |y| <= 1``).

    The halves are cut off the bit pattern (not by Veltkamp's ``c - (c - v)``, which a
    compiler may contract into a fused multiply-add), so every partial product is exact.
    """
    bits, mask = (jnp.int64, -(1 << 26)) if is64(x.dtype) else (jnp.int32, -(1 << 12))

    def halves(v):
        hi = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(v, bits) & mask, v.dtype)
        return hi, v - hi

    p = x * y
    (xh, xl), (yh, yl) = halves(x), halves(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _double_sum(x):
    """``(hi, lo)``: the sum over the last axis as an unevaluated pair, ``hi + lo`` accurate to
    about ``eps^2`` of the sum of magnitudes (pairwise sums with Knuth's two-sum errors kept)."""
    hi, lo = x, jnp.zeros_like(x)
    while hi.shape[-1] > 1:
        if hi.shape[-1] % 2:
            pad = [(0, 0)] * (hi.ndim - 1) + [(0, 1)]
            hi, lo = jnp.pad(hi, pad), jnp.pad(lo, pad)
        s, t = hi[..., 0::2], hi[..., 1::2]
        total = s + t
        back = total - s
        err = (s - (total - back)) + (t - back)
        hi, lo = total, lo[..., 0::2] + lo[..., 1::2] + err
    return hi[..., 0], lo[..., 0]


@jax.custom_jvp
def _mean_ratio_minus_one(a, b):
    """``(a_i / a_0) / (b_i / b_0) - 1`` along the last axis, to a few ulps also when the two
    mean vectors agree to many digits (Beta(1e10, 1e10) ‖ Beta(1.0001e10, 1.0001e10)).

    The numerator ``a_i b_0 - a_0 b_i`` is formed from exact products and double-word sums
    of ``a`` and ``b``, each first scaled by a power of two (exact) to at most 1.
    """
    def scale(v):
        return jnp.ldexp(v, -jnp.frexp(jnp.max(v, axis=-1, keepdims=True))[1])

    a, b = scale(a), scale(b)
    a_hi, a_lo = (v[..., None] for v in _double_sum(a))
    b_hi, b_lo = (v[..., None] for v in _double_sum(b))
    p1, e1 = _two_product(a, b_hi)
    p2, e2 = _two_product(a_hi, b)
    numerator = (p1 - p2) + ((e1 - e2) + (a * b_lo - a_lo * b))
    return numerator / (a_hi * b)


@_mean_ratio_minus_one.defjvp
def _mean_ratio_minus_one_jvp(primals, tangents):
    # u = (a_i / a_0) (b_0 / b_i): du = u (da_i / a_i - da_0 / a_0 + db_0 / b_0 - db_i / b_i).
    a, b = primals
    da, db = tangents
    out = _mean_ratio_minus_one(a, b)
    a0, b0 = jnp.sum(a, axis=-1, keepdims=True), jnp.sum(b, axis=-1, keepdims=True)
    rel = da / a - jnp.sum(da, axis=-1, keepdims=True) / a0 + jnp.sum(db, axis=-1, keepdims=True) / b0 - db / b
    return out, (out + 1) * rel


@jax.custom_jvp
def cross_ratio_minus_one(w, x, y, z):
    """``(w z) / (x y) - 1`` for positive arrays, from exact products (two-product).

    ``w, x`` and ``y, z`` are each scaled by a power of two (exact) to at most 1 first. Used
    for the ratio of two Gamma means, ``(a1 / b1) / (a2 / b2)``, which must keep its digits
    when the means agree closely however large the concentrations.
    """
    ew = jnp.frexp(jnp.maximum(w, x))[1]
    ey = jnp.frexp(jnp.maximum(y, z))[1]
    w, x, y, z = jnp.ldexp(w, -ew), jnp.ldexp(x, -ew), jnp.ldexp(y, -ey), jnp.ldexp(z, -ey)
    p1, e1 = _two_product(w, z)
    p2, e2 = _two_product(x, y)
    return ((p1 - p2) + (e1 - e2)) / p2


@cross_ratio_minus_one.defjvp
def _cross_ratio_minus_one_jvp(primals, tangents):
    w, x, y, z = primals
    dw, dx, dy, dz = tangents
    out = cross_ratio_minus_one(w, x, y, z)
    return out, (out + 1) * (dw / w + dz / z - dx / x - dy / y)


def times_phi(c, u_minus_1, log_u):
    """``c (u - 1 - log u)`` for ``c > 0``, also where ``u - 1`` overflows but the product does not.

    ``c = 1e-30``, ``u = 1e40`` (float32): ``u`` is ``inf`` but ``c (u - 1 - log u) = 1e10``;
    there ``exp(log c + log u) - c (1 + log u)`` is used. Elsewhere the value is
    ``c * x_minus_log1p(u - 1, log u)`` unchanged.
    """
    ok = u_minus_1 != jnp.inf  # NaN stays on the direct path (and stays NaN)
    direct = c * x_minus_log1p(jnp.where(ok, u_minus_1, 0.0), jnp.where(ok, log_u, 0.0))
    huge = jnp.exp(jnp.log(c) + log_u) - c * (1 + log_u)
    return jnp.where(ok, direct, huge)


def dirichlet_kl_stirling(a, b):
    """``(KL(Dir(a) ‖ Dir(b)), size)`` in the large-concentration form (last axis: components).

    With ``a_0 = sum a``, means ``p = a / a_0``, ``q = b / b_0`` and ``R`` the remainder
    Bregman divergence (``lgamma_remainder_bregman``), the Bregman form
    ``sum_i D(b_i, a_i) - D(b_0, a_0)`` splits exactly into

        sum_i b_i [p_i/q_i - 1 - log(p_i/q_i)] + sum_i R(b_i, a_i) - R(b_0, a_0):

    the ``a log a`` parts of ``lgamma``, which make every ``D`` huge and the textbook
    sum cancel at large concentrations, combine into the first sum (``b_0`` times a
    categorical KL, non-negative terms); the ``R`` are of size ``log`` of the concentrations.
    ``size`` is the sum of the terms' magnitudes. Beta is ``K = 2``.
    """
    a0, b0 = jnp.sum(a, axis=-1), jnp.sum(b, axis=-1)
    h = b - a
    log_pq = _safe_log_ratio(a, b) - _safe_log_ratio(a0, b0)[..., None]
    mean_part = jnp.sum(times_phi(b, _mean_ratio_minus_one(a, b), log_pq), axis=-1)
    parts, part_sizes = lgamma_remainder_bregman(b, a, h)
    whole, whole_size = lgamma_remainder_bregman(b0, a0, jnp.sum(h, axis=-1))
    value = mean_part + jnp.sum(parts, axis=-1) - whole
    return value, mean_part + jnp.sum(part_sizes, axis=-1) + whole_size


def dirichlet_neg_entropy(alpha):
    """``-H(Dir(alpha))`` in nats (last axis: components; ``K = 2`` is Beta), from whichever of
    two exact forms sums the smaller terms.

    * ``sum_i D(1, alpha_i) - D(K, alpha_0) + lgamma(K)`` (``D``: log-gamma Bregman
      divergence; ``KL(Dir(alpha) ‖ Dir(1, ..., 1)) - log Gamma(K)``): exact at the uniform
      ``alpha = 1``, but each ``D`` is of size ``alpha log alpha``;
    * the Stirling form ``(K-1)/2 log alpha_0 - ½ sum_i log(alpha_i / alpha_0) - (K-1)/2 log 2pi
      - sum_i mu(alpha_i) + mu(alpha_0) + sum_i (alpha_i - 1) psi~(alpha_i) - (alpha_0 - K) psi~(alpha_0)``
      with ``mu`` the Stirling remainder and ``psi~(a) = digamma(a) - log a``: every term
      of size ``log alpha`` or below, right at large concentrations.
    """
    k = alpha.shape[-1]
    a0 = jnp.sum(alpha, axis=-1)
    one = jnp.ones_like(alpha)
    parts = lgamma_bregman(one, alpha, 1 - alpha)
    whole = lgamma_bregman(jnp.full_like(a0, k), a0, jnp.sum(1 - alpha, axis=-1))
    lgamma_k = math.lgamma(k)
    bregman = jnp.sum(parts, axis=-1) - whole + lgamma_k
    bregman_size = jnp.sum(parts, axis=-1) + whole + lgamma_k
    logs = 0.5 * (k - 1) * jnp.log(a0) - 0.5 * jnp.sum(_safe_log_ratio(alpha, a0[..., None]), axis=-1)
    mus = jnp.sum(stirling_remainder(alpha), axis=-1), stirling_remainder(a0)
    slopes = (
        jnp.sum((alpha - 1) * digamma_minus_log(alpha), axis=-1),
        jnp.sum(alpha - 1, axis=-1) * digamma_minus_log(a0),
    )
    const = (k - 1) * HALF_LOG_2PI
    stirling = logs - const - mus[0] + mus[1] + slopes[0] - slopes[1]
    stirling_size = jnp.abs(logs) + const + jnp.abs(mus[0]) + jnp.abs(mus[1]) + jnp.abs(slopes[0]) + jnp.abs(slopes[1])
    return jnp.where(stirling_size < bregman_size, stirling, bregman)
