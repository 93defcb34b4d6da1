"""The Gamma family, its closed-form KL, and the log-gamma Bregman kernel.

``_lgamma_bregman(y, x)`` = ``lgamma(y) - lgamma(x) - digamma(x) (y - x)`` is the
part of every Gamma/Beta/Gumbel KL that cancels catastrophically when the two
distributions are close; it is computed here without cancellation and reused by
``beta.py``, ``gumbel.py`` and ``_cross_kl_continuous.py``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._kl import register_kl
from vikl._math import x_minus_log1p, xlogy

__all__ = ["Gamma"]

_HALF_LOG_2PI_E = 0.5 * (1.0 + math.log(2 * math.pi))

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


def _is64(dtype) -> bool:
    return jnp.finfo(dtype).bits > 32


def _shift_plan(dtype):
    return (10, 8) if _is64(dtype) else (7, 3)


def _stacked_shifts(x, n):
    return x + jnp.arange(n, dtype=x.dtype).reshape((n,) + (1,) * jnp.ndim(x))


# Bernoulli numbers B_2, B_4, ..., B_16.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)


def _log_ratio(num, den, diff=None):
    """``log(num / den)`` for positive arrays, accurate to a few ulps also when ``num ≈ den``.

    ``log(num) - log(den)`` has an absolute error of ~1 ulp of ``log(num)``, which is
    a large relative error when the ratio is near 1; there ``log1p((num - den)/den)``
    is used instead (``diff``: ``num - den`` if known more accurately than the rounded difference).
    """
    d = ((num - den) if diff is None else diff) / den
    near = jnp.abs(d) < 0.5
    return jnp.where(near, jnp.log1p(jnp.where(near, d, 0.0)), jnp.log(num) - jnp.log(den))


# ------------------------------------------------------------ digamma differences and trigamma
def _trigamma(x):
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


def _digamma_difference(y, x, delta):
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
        power_sum = sum(tw ** (2 * i - l) * tz ** (l + 1) for l in range(2 * i))
        series = series + (b / (2 * i)) * power_sum
    return head + _log_ratio(w, z, delta) + delta * (tw * tz / 2 + series)


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
    """The kernel of ``_lgamma_bregman`` (arrays of one dtype; ``delta = y - x``)."""
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
    tangent = _digamma_difference(y, x, delta) * dy - _trigamma(x) * delta * dx
    return out, jnp.broadcast_to(tangent, out.shape)


_lgamma_bregman_core.defjvp(_lgamma_bregman_jvp)
# One compiled kernel (~150 operations, slow to dispatch one by one in eager mode);
# the analytic derivative keeps the gradient program small too.
_lgamma_bregman_impl = jax.jit(_lgamma_bregman_core)


def _lgamma_bregman(y, x, delta=None):
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


def _lgamma_bregmans(*triples):
    """Several ``_lgamma_bregman(y, x, delta)`` in one stacked call (one kernel instead of many).

    Each triple is ``(y, x, delta)``; they broadcast against each other. Returns a tuple.
    """
    dtype = jnp.result_type(*[v for t in triples for v in t])
    shape = jnp.broadcast_shapes(*[jnp.shape(v) for t in triples for v in t])
    cols = [jnp.stack([jnp.broadcast_to(jnp.asarray(t[i], dtype), shape) for t in triples]) for i in range(3)]
    out = _lgamma_bregman_impl(*cols)
    return tuple(out[i] for i in range(len(triples)))


@jax.jit
def _gamma_entropy_shape(a):
    """``a + lgamma(a) + (1 - a) digamma(a)``: the entropy of ``Gamma(a, 1)``.

    For large ``a`` the three terms (each ~ ``a log a``) cancel to about
    ``½ log(2 pi e a)``; there the asymptotic series is used instead:
    ``½(1 + log 2pi) + ½ log a - 1/(3a) - 1/(12a²) - 1/(90a³) + 1/(120a⁴) + 1/(210a⁵) - 1/(252a⁶)``.
    """
    a = jnp.asarray(a)
    threshold = 100.0 if _is64(a.dtype) else 10.0
    large = a > threshold
    a_big = jnp.where(large, a, threshold)
    a_small = jnp.where(large, 1.0, a)
    direct = a_small + gammaln(a_small) + (1 - a_small) * digamma(a_small)
    t = 1 / a_big
    tail = t * (-1 / 3 + t * (-1 / 12 + t * (-1 / 90 + t * (1 / 120 + t * (1 / 210 - t / 252)))))
    asym = _HALF_LOG_2PI_E + 0.5 * jnp.log(a_big) + tail
    return jnp.where(large, asym, direct)


class Gamma(Distribution):
    """Gamma distribution on ``x >= 0`` (shape/rate parameterization).

    ``p(x) = rate^a x^(a - 1) exp(-rate x) / Gamma(a)`` with ``a = concentration``.
    Mean ``a / rate``, variance ``a / rate²``; entropy
    ``a - log rate + lgamma(a) + (1 - a) digamma(a)`` nats.

    Args:
      concentration: shape ``a``, > 0.
      rate: inverse scale, > 0.

    Sampling is reparameterized: ``jax.random.gamma`` has implicit-reparameterization
    gradients with respect to ``concentration``, and ``x = g / rate``.
    """

    concentration: jax.Array = param(constraints.positive)
    rate: jax.Array = param(constraints.positive)

    support = constraints.positive

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        g = jax.random.gamma(key, self.concentration, shape, self.concentration.dtype)
        return g / self.rate

    def log_prob(self, x):
        a, b = self.concentration, self.rate
        negative = x < 0
        x_safe = jnp.where(negative | (x == jnp.inf), 1.0, x)
        lp = xlogy(a - 1, x_safe) + a * jnp.log(b) - b * x_safe - gammaln(a)
        return jnp.where(negative | (x == jnp.inf), -jnp.inf, lp)

    def cdf(self, x):
        """``P(X <= x)``, the regularized lower incomplete gamma function."""
        return jax.scipy.special.gammainc(self.concentration, jnp.maximum(self.rate * x, 0.0))

    def entropy(self):
        return _gamma_entropy_shape(self.concentration) - jnp.log(self.rate)

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def variance(self):
        return self.concentration / jnp.square(self.rate)

    @property
    def mode(self):
        return jnp.maximum(self.concentration - 1, 0.0) / self.rate


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    """KL(Gamma(a1, b1) ‖ Gamma(a2, b2)) in nats.

    ``= (a1 - a2) digamma(a1) - lgamma(a1) + lgamma(a2) + a2 log(b1/b2) + a1 (b2 - b1)/b1``,
    evaluated as ``D(a2, a1) + a1 [r - 1 - log r] + (a1 - a2) log r`` with
    ``r = b2 / b1`` and ``D`` the log-gamma Bregman divergence, so that nearly
    equal Gammas give an accurate small KL.
    """
    a1, b1, a2, b2 = p.concentration, p.rate, q.concentration, q.rate
    r_minus_1 = (b2 - b1) / b1
    log_r = _log_ratio(b2, b1, b2 - b1)
    scale_term = x_minus_log1p(r_minus_1, log_r)
    return _lgamma_bregman(a2, a1, a2 - a1) + a1 * scale_term + (a1 - a2) * log_r
