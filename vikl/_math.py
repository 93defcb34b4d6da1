"""Numerically careful scalar helpers shared by the families and the KL formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["x_minus_log1p", "xlogy", "xlogx", "log_base", "reciprocal", "with_score"]


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
