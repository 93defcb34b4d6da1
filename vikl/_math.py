"""Numerically careful scalar helpers shared by the families and the KL formulas."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "x_minus_log1p", "square_ratio_term", "scaled_reciprocal", "half_square_sum", "log_of_ratio",
    "xlogy", "xlogx", "log_base", "reciprocal", "with_score",
]


def reciprocal(x):
    """``1 / x``, written so that XLA fuses it into every consumer.

    XLA:CPU will not duplicate a ``divide`` into several fusions, so a quotient
    used twice is written to memory and read back; ``integer_pow(x, -1)`` is
    fused like any cheap elementwise op. Same result as ``1 / x``.
    """
    return lax.integer_pow(x, -1)


def _series_terms(dtype) -> int:
    # Truncating the series below after n terms leaves a relative error of
    # about |s| t^n / (2n + 1) <= (1/3) (1/9)^n / (2n + 1): below float32's
    # 6e-8 for n = 7 and float64's 1.1e-16 for n = 15.
    return 15 if jnp.finfo(dtype).bits > 32 else 7


def x_minus_log1p(x, log1p_x=None):
    """``x - log(1 + x)`` for ``x > -1``, accurate to a few ulps even near 0.

    The direct form loses all digits when ``|x|`` is small (the result is about
    ``x**2 / 2``). With ``s = x / (2 + x)`` one has ``log1p(x) = 2 atanh(s)`` and
    ``x = 2 s / (1 - s)``, so::

        x - log1p(x) = 2 s^2 / (1 - s) - 2 s^3 * sum_{k>=1} s^(2k-2) / (2k + 1)

    whose terms do not cancel. The series is used for ``|s| < 1/3``
    (``-0.5 < x < 1``) and the direct form elsewhere, where it loses at most
    about two bits.

    Args:
      x: array, ``x > -1``.
      log1p_x: optional ``log(1 + x)`` computed more accurately by the caller
        (e.g. ``2 * (log a - log b)`` when ``1 + x = (a / b)**2``); used in the
        direct branch, where ``1 + x`` itself may have lost digits (``x`` near -1).

    This is the kernel of every Gaussian KL here:
    ``r - 1 - log r = x_minus_log1p(r - 1)``. Gradients are finite wherever the value is;
    ``x = +inf`` gives ``+inf``.
    """
    x = jnp.asarray(x)
    s = x * reciprocal(2 + x)
    # |s| < 1/3 exactly when -1/2 < x < 1; tested on x itself because 1 / (2 + x)
    # flushes to zero for x > 8.5e37 in float32, which would make s look small.
    small = (x > -0.5) & (x < 1.0)
    # No "safe" where around s and x: |s| <= 1 for every finite x > -1, so the
    # unused series branch stays finite and its gradient is multiplied by an
    # exact zero. x = +inf (an overflowed ratio of finite scales) is returned as
    # +inf; the direct form would be inf - inf = NaN there.
    t = s * s
    n = _series_terms(x.dtype)
    poly = jnp.zeros_like(t) + 1.0 / (2 * n + 1)
    for k in range(n - 1, 0, -1):
        poly = poly * t + 1.0 / (2 * k + 1)
    # 2 t / (1 - s) = t (2 + x), since 1 - s = 2 / (2 + x).
    series = t * (2 + x - 2 * s * poly)
    x_big = jnp.where(small, 1.0, x)
    if log1p_x is None:
        direct = x_big - jnp.log1p(x_big)
    else:
        direct = x_big - jnp.where(small, 0.0, log1p_x)
    return jnp.where(small, series, jnp.where(x == jnp.inf, x, direct))


class _FloatLayout:
    """Bit layout of a float dtype for the range reduction in :func:`square_ratio_term`."""

    def __init__(self, dtype):
        info = np.finfo(dtype)
        self.int_dtype = np.dtype(f"int{info.bits}")
        self.mantissa_bits = info.nmant
        # Bits of 0.68: subtracting them and shifting right gives the k of r = m 2^k
        # with m in [0.68, 1.36), for every positive normal r. The window is placed so
        # that the k = +-1 forms cancel equally little at its two ends (at most ~6x,
        # against 7x for [sqrt(1/2), sqrt(2))).
        self.window_bits = int(np.array(0.68, dtype).view(self.int_dtype))
        # The exponent field: EXP - (bits(b) & EXP) is the bit pattern of 2^(1 - e) for
        # b = f 2^e (f in [1, 2)), a power of two that brings b into [2, 4) and is itself
        # normal for every normal b (the result of 1/b alone is subnormal above 2^emax-1).
        self.exp_mask = int(np.array(np.inf, dtype).view(self.int_dtype))
        self.tiny_bits = int(np.array(info.tiny, dtype).view(self.int_dtype))
        self.two_bits = int(np.array(2.0, dtype).view(self.int_dtype))
        # 2^(1 - e) = 2^(h1) 2^(h2) with both halves in [2^-63, 2^64] (float32): the bits
        # of 2^h1 are half_bits - (floor(E / 2) << nmant), E the biased exponent field.
        bias = int(np.array(1.0, dtype).view(self.int_dtype)) >> self.mantissa_bits
        self.half_bits = (bias + (bias + 1) // 2) << self.mantissa_bits
        # log 2 split into hi + lo with hi's trailing mantissa bits zero, so that k * hi is
        # exact for every exponent k (float32: 9 zero bits, |k| <= 256; float64: fdlibm's
        # split, 21 zero bits, |k| <= 2100).
        if info.bits == 32:
            self.ln2_hi, self.ln2_lo = 0.693145751953125, 1.428606765330187e-06
            # Truncation of the atanh series below: |s| < 0.19, so 4 terms leave a
            # relative error under 5e-7 in atanh(s) - s, itself at most ~3% of the result.
            self.terms = 4
        else:
            self.ln2_hi, self.ln2_lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
            self.terms = 11


@functools.lru_cache(maxsize=None)
def _layout(dtype):
    """The layout of float32 or float64; ``None`` for other dtypes."""
    return _FloatLayout(dtype) if dtype in (np.float32, np.float64) else None


def _scaled(b, layout):
    """``(s, b s, E_b)``: ``s`` the power of two putting ``b s`` in ``[2, 4)``, ``E_b`` b's exponent bits.

    Exact. ``s`` is a normal float for every normal ``b``; ``b = inf`` gets ``s = tiny``
    (so ``b s = inf`` and ``1 / (b s) = 0``, not NaN).
    """
    exp_b = lax.bitcast_convert_type(b, layout.int_dtype) & layout.exp_mask
    s = lax.bitcast_convert_type(jnp.maximum(layout.exp_mask - exp_b, layout.tiny_bits), b.dtype)
    return s, b * s, exp_b


def _significand(a, layout):
    """``(a_m, E_a)``: ``a = a_m 2^(e_a - 1)`` with ``a_m`` in ``[2, 4)`` (for normal ``a``), and a's exponent bits."""
    bits_a = lax.bitcast_convert_type(a, layout.int_dtype)
    exp_a = bits_a & layout.exp_mask
    return lax.bitcast_convert_type(bits_a - exp_a + layout.two_bits, a.dtype), exp_a


def scaled_reciprocal(b):
    """``(s, inv)`` with ``1 / b = s * inv`` for ``b > 0``, both factors normal floats.

    ``s`` is the power of two that brings ``b`` into ``[2, 4)`` and ``inv = 1 / (b s)``.
    ``x / b`` is then ``(x s) * inv``: the same float as ``x * reciprocal(b)`` wherever
    ``1 / b`` is a normal float (scaling by a power of two is exact), and still right for
    ``b`` above ``1 / tiny`` (8.5e37 in float32), where ``1 / b`` is subnormal and
    flushes to 0. ``b = inf`` gives ``inv = 0``. For float16/bfloat16 (no layout) ``s = 1``.
    The same expressions as in :func:`square_ratio_term`, so that XLA computes the
    quotient once when both are used.
    """
    b = jnp.asarray(b)
    layout = _layout(np.dtype(b.dtype))
    if layout is None:
        return jnp.ones_like(b), reciprocal(b)
    s, b_s, _ = _scaled(b, layout)
    return s, reciprocal(b_s)


@jax.custom_jvp
def square_ratio_term(a, b):
    """``r^2 - 1 - log(r^2)`` for ``r = a / b`` (``a, b > 0``): twice a Gaussian KL's scale part.

    ``KL(N(m1, s1^2) ‖ N(m2, s2^2)) = ½ [square_ratio_term(s1, s2) + (m1 - m2)^2 / s2^2]``.

    Accurate near ``r = 1``, where the textbook form loses every digit, and as
    fast as the textbook form, whose ``log`` it replaces: with ``r = m 2^k``,
    ``m`` in ``[0.68, 1.36)`` (read off the bits of ``r``) and
    ``s = (m - 1) / (m + 1)``, one has ``log m = 2 atanh(s)`` and::

        k = 0:  r^2 - 1 - 2 log r = d^2 (2 - s) - 4 (atanh(s) - s),   d = (a - b) / b
        k != 0: r^2 - 1 - 2 log r = d (2 + d) - 2 k log 2 - 4 atanh(s)

    where, for ``k = 0``, ``m - 1 = d`` is taken from ``(a - b) / b`` (an exact
    difference when ``a`` is near ``b``), and ``atanh(s) - s = s^3 (1/3 + s^2/5 + ...)``
    is a short series (``|s| < 0.19``). The ``k = 0`` form has no cancelling terms,
    so the result keeps float32's precision however close ``a`` is to ``b``; the
    ``k != 0`` form cancels by at most ~6x. Measured in float32 against a float64
    reference over 3 million ratios from 1e-30 to 1e18 at five values of ``b``
    (``python -m benchmarks.normal_kernel_accuracy``): median relative error at most
    4.8e-8, largest 1.07e-6 (9.0 eps; the ``x_minus_log1p`` form it replaced: 10.5 eps).

    Range: every pair of positive normal floats, at the cost of a few integer operations
    (no second formula): ``b`` is scaled into ``[2, 4)`` by a power of two ``s`` read off
    its exponent bits (``d = (a s - b s) / (b s)``, the same float as ``(a - b) / b``
    wherever ``1 / b`` is normal, and right for ``b`` above 8.5e37 in float32, where
    ``1 / b`` underflows), and ``k, m`` are read off ``x = a_m / (b s)``, ``a_m`` in
    ``[2, 4)`` being ``a``'s significand: ``r = x 2^(e_a - e_b)``, whose exponent is
    added to ``x``'s bits as an integer, so ratios far below the smallest normal float
    (``-1 - 2 log r``, e.g. 178.6 for ``r = 1e-39``) are as accurate as any other. A ratio
    whose square overflows gives +inf (the true value does not fit); ``a = 0`` (or a
    subnormal ``a``, or ``b = inf``) gives +inf; a negative (``-0`` included) or NaN input gives NaN.
    Derivatives are exact closed forms (a custom JVP): ``d/dr = 2 (r^2 - 1) / r``.
    Other float dtypes (float16, bfloat16) use :func:`x_minus_log1p`.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    layout = _layout(np.dtype(jnp.result_type(a, b)))
    if layout is None:
        inv = reciprocal(b)
        d = (a - b) * inv
        return x_minus_log1p(d * (2 + d), 2 * jnp.log(a * inv))
    nm = layout.mantissa_bits
    scale, b_s, exp_b = _scaled(b, layout)
    inv = reciprocal(b_s)
    d = (a * scale - b_s) * inv
    a_m, exp_a = _significand(a, layout)
    x = a_m * inv  # in (1/2, 2) for positive normal a and b
    bits_a = lax.bitcast_convert_type(a, layout.int_dtype)
    # The bits r = x 2^(e_a - e_b) would have with an unbounded exponent field (bits(r)
    # itself wherever r is normal: the k and m of the textbook reduction, bit for bit).
    bits_x = lax.bitcast_convert_type(x, layout.int_dtype)
    bits = bits_x + (exp_a - exp_b)
    k = lax.shift_right_arithmetic(bits - layout.window_bits, nm)
    m = lax.bitcast_convert_type(bits - lax.shift_left(k, nm), x.dtype)
    k_zero = k == 0
    u = jnp.where(k_zero, d, m - 1)
    s = u * reciprocal(2 + u)
    t = s * s
    poly = t * (1.0 / (2 * layout.terms + 1)) + 1.0 / (2 * layout.terms - 1)
    for j in range(layout.terms - 2, 0, -1):
        poly = poly * t + 1.0 / (2 * j + 1)
    atanh_minus_s = s * t * poly
    kf = k.astype(x.dtype)
    far = (d * (2 + d) - kf * (2 * layout.ln2_hi)) - 4 * s - kf * (2 * layout.ln2_lo)
    value = jnp.where(k_zero, d * d * (2 - s), far) - 4 * atanh_minus_s
    # As integers, min(bits(a), bits(x)) is at least bits(tiny) for positive normal a
    # and b (x is NaN for b = 0 or NaN, where the value is NaN too); in [0, bits(tiny))
    # for a = 0, a subnormal a, or b = inf (x = a_m * 0): the ratio 0, value +inf (a + inf,
    # so that a NaN a stays NaN); and negative for a negative a or b (x < 0), -0 included: NaN.
    low = jnp.minimum(bits_a, bits_x)
    return jnp.where(low >= layout.tiny_bits, value, jnp.where(low >= 0, a + jnp.inf, jnp.nan))


@square_ratio_term.defjvp
def _square_ratio_term_jvp(primals, tangents):
    a, b = primals
    a_dot, b_dot = tangents
    # d/dr [r^2 - 1 - 2 log r] = 2 (r^2 - 1) / r, with r^2 - 1 = d (2 + d) free of
    # cancellation, and dr = (da - r db) / b: the tangent is 2 d (2 + d) (da / a - db / b).
    layout = _layout(np.dtype(jnp.result_type(a, b)))
    if layout is None:
        inv = reciprocal(b)
        d = (a - b) * inv
        r = a * inv
        return square_ratio_term(a, b), 2 * d * (2 + d) * reciprocal(a) * (a_dot - r * b_dot)
    coef_a, coef_b = _square_ratio_term_slopes(a, b, layout)
    return square_ratio_term(a, b), coef_a * a_dot - coef_b * b_dot


def _square_ratio_term_slopes(a, b, layout):
    """``(2 (r^2 - 1) / a, 2 (r^2 - 1) / b)`` for every pair of positive normal floats.

    Each is a product of two factors of about the square root of the result's
    size (no intermediate over- or underflows unless the result does, within a
    factor 2), and neither takes a quotient the other uses: in reverse mode XLA
    then computes each derivative in one pass over ``a`` and ``b`` (a shared
    division would be written to memory and read back), sharing only
    ``1 / (b s)``, as the textbook form shares ``1 / b``.

    * ``2 (r^2 - 1) / b = (d s) (2 (2 + d) / (b s))``, ``s`` and ``b s`` as in the
      forward pass: ``2 (2 + d) / (b s)`` lies within ``(1/2, 1 + r]``.
    * ``2 (r^2 - 1) / a = (d h1) (2 (2 + d) / a_m) h2`` with ``a = a_m 2^(e_a - 1)``,
      ``a_m`` in ``[2, 4)`` and ``h1 h2 = 2^(1 - e_a)`` split into two halves of about
      ``2^(-e_a / 2)``: both factors are then about the square root of the result.
    """
    scale, b_s, _ = _scaled(b, layout)
    inv = reciprocal(b_s)
    d = (a * scale - b_s) * inv
    coef_b = (d * scale) * ((2 + d) * (2 * inv))
    a_m, exp_a = _significand(a, layout)
    half = lax.shift_right_logical(exp_a, 1) & layout.exp_mask  # floor(E_a / 2) << nm
    h1 = lax.bitcast_convert_type(layout.half_bits - half, a.dtype)
    h2 = lax.bitcast_convert_type(layout.half_bits - (exp_a - half), a.dtype)
    coef_a = (d * h1) * (((2 + d) * (2 * reciprocal(a_m))) * h2)
    return coef_a, coef_b


@jax.custom_jvp
def _halved(x):
    """``x / 2`` for ``x >= 0`` (0 for a subnormal ``x``), by decrementing the exponent field.

    Integer arithmetic on the bits, so that XLA cannot fold the halving into a
    product: ``(x / 2) * x`` stays that (``(x * c) * (x * c)`` or ``(x * 0.5) * x``
    are rewritten as ``(x * x) * c'``, and ``x * x`` overflows first).
    """
    int_dtype = np.dtype(f"int{np.dtype(x.dtype).itemsize * 8}")
    one = 1 << int(np.finfo(x.dtype).nmant)
    bits = lax.bitcast_convert_type(x, int_dtype)
    return lax.bitcast_convert_type(jnp.maximum(bits - one, 0), x.dtype)


_halved.defjvps(lambda x_dot, ans, x: 0.5 * x_dot)


def half_square_sum(term, z, r):
    """``½ (term + z²)`` for ``term = square_ratio_term(.., ..)`` of the scale ratio ``r``.

    ``term`` (about ``r²``) and ``z²`` overflow while their half still fits (for a KL
    between half the largest float and the largest), so the halves are taken first:
    ``½ z²`` as ``(|z| / 2) |z|``, and ``½ term`` as ``(r / 2) r`` where ``r`` exceeds
    ``2^(emax / 2 - 1)`` (2^63 in float32; ``term`` is finite below), exact there to a
    relative ``(1 + |log r²|) / r²`` (1e-36 in float32; 7e-4 in float16), in value and
    derivative. The same floats as ``0.5 * (term + z * z)`` elsewhere. The choice is
    made on ``r``: the derivative never needs ``term``'s value (in reverse mode only
    its derivative is computed, in one pass).
    """
    term, z, r = jnp.asarray(term), jnp.asarray(z), jnp.asarray(r)
    z_abs = jnp.abs(z)
    big = 2.0 ** (jnp.finfo(r.dtype).maxexp // 2 - 1)
    return jnp.where(r > big, _halved(r) * r, 0.5 * term) + _halved(z_abs) * z_abs


def log_of_ratio(a, b):
    """``log(a / b)`` for positive ``a, b``, to about an ulp of the result.

    ``log(a) - log(b)`` carries an absolute error of an ulp of ``log a`` (7.6e-6 for
    ``a = 1e38`` in float32), large next to a result of order 1; the log of the
    rounded quotient is used instead, and the difference of logs only where the
    quotient under- or overflows (the result is then large and the difference exact
    to a relative ulp or so).
    """
    r = a / b
    normal = (r >= jnp.finfo(r.dtype).tiny) & (r < jnp.inf)
    return jnp.where(normal, jnp.log(jnp.where(normal, r, 1.0)), jnp.log(a) - jnp.log(b))


def with_score(x, log_q, score):
    """``log_q`` in value, with gradient ``score . dx``: the stopped-parameter log density.

    ``log_q`` and ``score = d log q / dx`` are taken as constants; the result's
    gradient reaches whatever ``x`` depends on through ``score`` alone, which
    is the sticking-the-landing term. ``x`` has ``log_q.ndim + event_ndims`` axes.
    The value is ``log_q`` itself: the product ``score . dx`` is formed only
    when a derivative is taken (a custom JVP), not in the forward pass.
    """
    sg = jax.lax.stop_gradient
    return _stopped_log_density(sg(log_q), x, sg(score))


@jax.custom_jvp
def _stopped_log_density(log_q, x, score):
    return log_q


@_stopped_log_density.defjvp
def _stopped_log_density_jvp(primals, tangents):
    log_q, x, score = primals
    _, x_dot, _ = tangents  # log_q and score are constants (stopped by the caller)
    t = x_dot * score
    if t.ndim > log_q.ndim:
        t = jnp.sum(t.reshape(log_q.shape + (-1,)), axis=-1)
    return log_q, t


def xlogy(x, y):
    """``x * log(y)`` with ``0 * log(y) = 0`` (also for ``y = 0``) and finite gradients there.

    Uses the double-``where`` pattern, so the gradient with respect to ``y`` is 0
    (not NaN) where ``x == 0``.
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    zero = x == 0
    safe_y = jnp.where(zero, 1.0, y)
    return jnp.where(zero, 0.0, x * jnp.log(safe_y))


def xlogx(x):
    """``x * log(x)`` with ``0 * log 0 = 0`` and a finite gradient away from 0."""
    return xlogy(x, x)


def log_base(base):
    """``log(base)`` for unit conversion; ``None`` means nats (returns 1)."""
    if base is None:
        return 1.0
    if base <= 0 or base == 1:
        raise ValueError(f"base must be > 0 and != 1 (e.g. 2 for bits, None for nats); got {base}")
    import math

    return math.log(base)
