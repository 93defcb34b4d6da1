"""Numerically careful scalar helpers shared by the families and the KL formulas."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "x_minus_log1p", "square_ratio_term", "xlogy", "xlogx", "log_base", "reciprocal", "with_score",
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
        self.tiny = float(info.tiny)
        # log 2 split into hi + lo with hi's trailing mantissa bits zero, so that k * hi is
        # exact for every exponent k (float32: 9 zero bits, |k| <= 150; float64: fdlibm's
        # split, 21 zero bits, |k| <= 1075).
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

    Range: a ratio below the smallest normal float (1.2e-38 in float32; the true
    value is then above 173) gives +inf; a negative or NaN ratio gives NaN.
    Derivatives are exact closed forms (a custom JVP): ``d/dr = 2 (r^2 - 1) / r``.
    Other float dtypes (float16, bfloat16) use :func:`x_minus_log1p`.
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    layout = _layout(np.dtype(jnp.result_type(a, b)))
    inv = reciprocal(b)
    d = (a - b) * inv
    r = a * inv
    if layout is None:
        return x_minus_log1p(d * (2 + d), 2 * jnp.log(r))
    bits = lax.bitcast_convert_type(r, layout.int_dtype)
    k = lax.shift_right_arithmetic(bits - layout.window_bits, layout.mantissa_bits)
    m = lax.bitcast_convert_type(bits - lax.shift_left(k, layout.mantissa_bits), r.dtype)
    k_zero = k == 0
    u = jnp.where(k_zero, d, m - 1)
    s = u * reciprocal(2 + u)
    t = s * s
    poly = t * (1.0 / (2 * layout.terms + 1)) + 1.0 / (2 * layout.terms - 1)
    for j in range(layout.terms - 2, 0, -1):
        poly = poly * t + 1.0 / (2 * j + 1)
    atanh_minus_s = s * t * poly
    kf = k.astype(r.dtype)
    far = (d * (2 + d) - kf * (2 * layout.ln2_hi)) - 4 * s - kf * (2 * layout.ln2_lo)
    value = jnp.where(k_zero, d * d * (2 - s), far) - 4 * atanh_minus_s
    # Ratios below the smallest normal float (zero included) have no exponent to reduce.
    return jnp.where(r >= layout.tiny, value, jnp.where(r >= 0, jnp.inf, jnp.nan))


@square_ratio_term.defjvp
def _square_ratio_term_jvp(primals, tangents):
    a, b = primals
    a_dot, b_dot = tangents
    inv = reciprocal(b)
    d = (a - b) * inv
    # d/dr [r^2 - 1 - 2 log r] = 2 (r^2 - 1) / r, with r^2 - 1 = d (2 + d) free of
    # cancellation, and dr = (da - r db) / b: the tangent is 2 d (2 + d) (da - r db) / a.
    r = a * inv
    return square_ratio_term(a, b), 2 * d * (2 + d) * reciprocal(a) * (a_dot - r * b_dot)


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
