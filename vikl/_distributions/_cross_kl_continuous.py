"""Closed-form KL between different scalar continuous families (registered on import).

Every finite pair is ``KL(p‖q) = -H(p) - E_p[log q(X)]`` (nats) with the
expectation written through moments of ``p`` (mean, second moment, ``E log X``,
``E exp(-X/s)``). Pairs where ``p`` puts mass where ``q`` has none (e.g. a
real-line ``p`` against a positive ``q``), or where ``E_p[log q]`` diverges
because ``p`` has heavier tails than ``q`` allows (Cauchy against Normal, Laplace
or Gumbel; Student-t against Gumbel, or against Normal for ``df <= 2``; Laplace
against Gumbel when ``b >= s``), are ``+inf``. Where a
pair contains the other family as a special case (Gamma(1, l) = Exponential(l),
Beta(1, 1) = Uniform(0, 1)) the formula is arranged so that it tends to 0
without cancellation.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import digamma, erf, gammaln

from vikl._distributions.beta import Beta
from vikl._distributions.cauchy import Cauchy
from vikl._distributions.exponential import Exponential
from vikl._distributions.gamma import Gamma
from vikl._distributions.gumbel import EULER_GAMMA, Gumbel
from vikl._distributions.halfnormal import HalfNormal
from vikl._distributions.laplace import Laplace
from vikl._distributions.lognormal import LogNormal
from vikl._distributions.normal import Normal
from vikl._distributions.studentt import StudentT
from vikl._distributions.uniform import Uniform
from vikl._kernels import beta_neg_entropy, gamma_entropy_shape, gamma_kl, studentt_standard_entropy
from vikl._kl import register_kl
from vikl._math import (
    half_square_sum,
    log_of_ratio,
    reciprocal,
    scaled_reciprocal,
    square_ratio_term,
    x_minus_log1p,
    xlogx,
)
from vikl._special import (
    HALF_LOG_2PI,
    digamma_difference,
    digamma_minus_log,
    is64,
    lgamma_bregman,
    lgamma_bregmans,
    stirling_remainder,
    trigamma,
)

_HALF_LOG_2PI_E = 0.5 + HALF_LOG_2PI
_LOG2 = math.log(2.0)
_PI2_6 = math.pi**2 / 6

# ---------------------------------------------------------------- infinite pairs
_REAL_LINE = (Normal, Laplace, Cauchy, Gumbel, StudentT)
_HALF_LINE = (Exponential, Gamma, LogNormal, HalfNormal)
_BOUNDED = (Beta, Uniform)


@register_kl(_REAL_LINE, _HALF_LINE + _BOUNDED)
@register_kl(_HALF_LINE, _BOUNDED)
# Heavy tails: E_Cauchy[X²], E_Cauchy|X| and E[exp(-X/s)] diverge, as does the last for any Student t.
@register_kl(Cauchy, (Normal, Laplace, Gumbel))
@register_kl(StudentT, Gumbel)
def _kl_infinite(p, q):
    """``+inf``: the support of ``p`` is not inside that of ``q`` (or ``E_p[log q]`` diverges)."""
    return jnp.full(jnp.broadcast_shapes(p.batch_shape, q.batch_shape), jnp.inf, p.dtype)


# ---------------------------------------------------------------- helpers
def _kl_to_normal(neg_entropy_shift, width, mean, var_factor, q):
    """``KL(p ‖ N(mu, sigma²))`` for ``p`` with ``-H(p) = neg_entropy_shift - log width``,
    mean ``mean`` and variance ``var_factor * width²``.

    ``= neg_entropy_shift + log(sigma / width) + ½ log 2pi
    + ½ [var_factor (width / sigma)² + ((mean - mu) / sigma)²]``: written with the ratios
    ``width / sigma`` and ``(mean - mu) / sigma`` and the log of one quotient, so that the
    value does not depend on the units (squares of scales of 1e20 overflow float32, and
    ``log sigma - log width`` loses digits for scales of 1e30).
    """
    rho = width / q.scale
    z = (mean - q.loc) / q.scale
    return (neg_entropy_shift + HALF_LOG_2PI + log_of_ratio(q.scale, width)
            + 0.5 * (var_factor * (rho * rho) + z * z))


def _neg_log_gamma(mean, mean_log, q):
    """``-E_p[log Gamma(x; a, b)] = lgamma(a) - a log b - (a - 1) E log X + b E X``."""
    a, b = q.concentration, q.rate
    return gammaln(a) - a * jnp.log(b) - (a - 1) * mean_log + b * mean


# Extreme parameters (scales 1e-30 ... 1e30 and beyond): the helpers below keep every
# intermediate inside the floating-point range, so that an overflow means the value
# itself is out of range (+inf), never an inf - inf or 0 * inf (NaN) in a finite KL.
def _is_normal(x):
    """``x`` is finite and not below the smallest normal number (XLA flushes subnormals)."""
    return (jnp.abs(x) >= jnp.finfo(x.dtype).tiny) & jnp.isfinite(x)


def _log_product(x, y):
    """``log(x y)`` for positive ``x, y``: the log of the product where it is in range."""
    xy = x * y
    ok = _is_normal(xy)
    return jnp.where(ok, jnp.log(jnp.where(ok, xy, 1.0)), jnp.log(x) + jnp.log(y))


def _quotient(num, den1, den2):
    """``num / (den1 den2)`` for positive arrays, free of spurious over- or underflow.

    ``(num / den1) / den2`` where that is a normal number; otherwise through logs (its
    relative error is then an ulp of the log, ~1e-5 in float32 and 1e-13 in float64),
    which overflows to ``inf`` or underflows to 0 only when the value itself does.
    """
    t = (num / den1) / den2
    ok = _is_normal(t)
    return jnp.where(ok, t, jnp.exp(jnp.log(num) - jnp.log(den1) - jnp.log(den2)))


def _gamma_cross_term(c, r, log_mean, c_jensen, with_lgamma=True):
    """``-E_p[log Gamma(x; c, r)] - E_p[log X]`` from ``log E_p X`` and ``c J``, where
    ``J = log E_p X - E_p log X >= 0`` (Jensen's gap).

    With Stirling's remainder ``mu`` and ``t = r E X / c`` (the ratio of the means) it is
    ``c phi(t) + c J - ½ log c + ½ log 2pi + mu(c)``, ``phi(t) = t - 1 - log t >= 0``: the
    textbook ``lgamma(c) - c log r - (c - 1) E log X + r E X`` subtracts numbers of size
    ``c log c`` (negative values for c = r = 1e30), these terms are all of the size of the result.
    ``with_lgamma=False`` (for ``c < 1``): without the ``lgamma(c)`` in
    ``-½ log c + ½ log 2pi + mu(c) = lgamma(c) - c log c + c``, for a caller that pairs it
    with another ``lgamma``.
    """

    log_t = log_of_ratio(r, c) + log_mean
    t = jnp.exp(log_t)
    fin = jnp.isfinite(t)
    log_t_f = jnp.where(fin, log_t, 0.0)
    # t overflowed: c t = r E X may still be finite (c small); t >> log t, so an
    # overflowed c t means +inf (and c log t may overflow too: no inf - inf).
    c_t = jnp.exp(jnp.log(c) + log_t)
    c_phi_big = jnp.where(jnp.isinf(c_t), jnp.inf, c_t - c - c * log_t)
    c_phi = jnp.where(fin, c * x_minus_log1p(jnp.expm1(log_t_f), log_t_f), c_phi_big)
    if not with_lgamma:
        return c_phi + c_jensen - xlogx(c) + c
    return c_phi + c_jensen - 0.5 * jnp.log(c) + HALF_LOG_2PI + stirling_remainder(c)


def _beta_neg_entropy_plus_mean_log(a, b, with_lgamma_a=True):
    """``-H(Beta(a, b)) + E log X``; for ``min(a, b) < 1`` in a form free of the ``1/a``
    terms that cancel between the two (each ~1e30 at a = 1e-30):
    ``-log B(a, b) - a [digamma(a + b) - digamma(a)] + (1 - b) [digamma(a + b) - digamma(b)]``,
    with ``log B`` through a log-gamma Bregman divergence at the larger argument.
    ``with_lgamma_a=False`` (for ``a < 1`` only): without the ``-lgamma(a)`` in ``-log B``.
    """

    small = jnp.minimum(a, b) < 1
    a_s, b_s = jnp.where(small, a, 0.5), jnp.where(small, b, 1.0)
    lo_s, hi_s = jnp.minimum(a_s, b_s), jnp.maximum(a_s, b_s)
    total = a_s + b_s
    big_hi = hi_s >= 1
    hi_b = jnp.where(big_hi, hi_s, 1.0)
    neg_log_beta = jnp.where(
        big_hi,
        lgamma_bregman(hi_b + lo_s, hi_b, lo_s) + lo_s * digamma(hi_b) - gammaln(lo_s),
        gammaln(total) - gammaln(a_s) - gammaln(b_s))  # all three below ~700 here
    # digamma(x + d) - digamma(x) = [same at x + 1] + d / (x (x + d)), the last written
    # without the product x (x + d) (it underflows for x ~ 1e-30).
    one = jnp.ones_like(total)
    a_dpsi_a = a_s * digamma_difference(total + one, a_s + one, b_s) + b_s / total
    # (times 1/b, not divided by b: XLA rewrites (x / y) / b as x / (y b), which underflows)
    dpsi_b = digamma_difference(total + one, b_s + one, a_s) + (a_s / total) * reciprocal(b_s)
    if not with_lgamma_a:
        # lgamma(a + b) - lgamma(b): Bregman form for b >= 1, else through lgamma(1 + x)
        # = lgamma(x) + log x (both tiny: lgamma(1e-10 + 1e-30) - lgamma(1e-10) is ~1e-20).
        b_big = b_s >= 1
        b_b = jnp.where(b_big, b_s, 1.0)
        b_t = jnp.where(b_big, 0.5, b_s)
        neg_log_beta = jnp.where(
            b_big,
            lgamma_bregman(b_b + a_s, b_b, a_s) + a_s * digamma(b_b),
            log_of_ratio(b_t, b_t + a_s) + gammaln(1 + (b_t + a_s)) - gammaln(1 + b_t))
    tiny_form = neg_log_beta - a_dpsi_a + (1 - b_s) * dpsi_b
    a_l, b_l = jnp.where(small, 1.0, a), jnp.where(small, 1.0, b)
    usual = beta_neg_entropy(a_l, b_l) + (digamma(a_l) - digamma(a_l + b_l))
    return jnp.where(small, tiny_form, usual)


def _log1m_antiderivative(x):
    """``K(x) / x`` (0 at 0) for ``K(x) = x + (1 - x) log(1 - x) = -int_0^x log(1 - t) dt``,
    ``0 <= x <= 1``: below 0.1 the series ``sum_{k>=2} x^(k-1) / (k (k - 1))`` (no cancellation)."""
    small = x < 0.1
    xs = jnp.where(small, x, 0.0)
    series = jnp.zeros_like(xs)
    for k in range(18, 1, -1):
        series = series * xs + 1.0 / (k * (k - 1))
    xd = jnp.where(small, 0.5, x)
    one_minus = 1 - xd
    direct = xd + jnp.where(one_minus > 0, one_minus * jnp.log1p(-jnp.where(one_minus > 0, xd, 0.0)), 0.0)
    return jnp.where(small, xs * series, direct / xd)


def _log_beta(a, b):
    """``log B(a, b)``: ``lgamma`` sums below 1e3, where all three are below ~7e3; above, with
    the larger argument ``hi`` through ``lgamma(hi + lo) - lgamma(hi) = D + lo digamma(hi)``
    (``D``: log-gamma Bregman divergence), so that no ``a log a`` terms cancel."""

    lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
    big = hi >= 1e3
    hi_b = jnp.where(big, hi, 1e3)
    lo_b = jnp.where(big, lo, 1.0)
    large = gammaln(lo_b) - lgamma_bregman(hi_b + lo_b, hi_b, lo_b) - lo_b * digamma(hi_b)
    a_s, b_s = jnp.where(big, 1.0, a), jnp.where(big, 1.0, b)
    return jnp.where(big, large, gammaln(a_s) + gammaln(b_s) - gammaln(a_s + b_s))


def _gumbel_term(z, c, m_over_s, log_mgf):
    """``E_p[(X - m)/s] + E_p[exp(-(X - m)/s)]``: the ``p``-dependent part of ``-E_p[log q]``
    for ``q = Gumbel(m, s)``, as ``z + exp(L)`` with ``z = E_p[(X - m)/s]``.

    ``L = log E_p exp(-(X - m)/s)`` comes in two exact forms: centred, ``c - z`` with
    ``c = log E_p exp(-(X - E X)/s) >= 0``, and uncentred, ``m/s + log E_p exp(-X/s)``
    (``m_over_s + log_mgf``); the one whose terms are smaller is used (the other may be
    inf - inf). The value is at least ``1 + c`` and grows without bound as ``|z|`` does:
    an overflowed ``z`` (or an ``L`` that is NaN in both forms) means ``+inf``.
    """
    l_c = c - z
    l_u = m_over_s + log_mgf
    use_c = jnp.abs(c) + jnp.abs(z) <= jnp.abs(m_over_s) + jnp.abs(log_mgf)
    log_e = jnp.where(use_c, l_c, l_u)
    log_e = jnp.where(jnp.isnan(log_e), jnp.where(use_c, l_u, l_c), log_e)
    val = z + jnp.exp(log_e)
    ok = jnp.isfinite(z) & ~jnp.isnan(val)
    return jnp.where(ok, val, jnp.inf)


# ---------------------------------------------------------------- Normal as p
@register_kl(Normal, Gumbel)
def _kl_normal_gumbel(p, q):
    """KL(N(mu, sigma²) ‖ Gumbel(m, s)) = -½ log(2 pi e sigma²) + log s + (mu - m)/s
    + exp((m - mu)/s + sigma²/(2 s²)), in nats."""
    # In units of s (z, rho) and with the log of one quotient: unit-free, so scales of
    # 1e30 neither overflow nor lose digits in log s - log sigma.
    # An overflowed z or rho means +inf (never -inf + inf): see _gumbel_term.
    z = (p.loc - q.loc) / q.scale
    rho = p.scale / q.scale
    c = 0.5 * (rho * rho)  # log E exp(-(X - mu)/s)
    return -_HALF_LOG_2PI_E + log_of_ratio(q.scale, p.scale) + _gumbel_term(z, c, -z, c)


@register_kl(Normal, Laplace)
def _kl_normal_laplace(p, q):
    """KL(N(mu, sigma²) ‖ Laplace(m, b)) = log(2b/sigma) - ½ log(2 pi e) + E|X - m| / b, in nats,

    with ``E|X - m| = sigma sqrt(2/pi) exp(-d²/(2 sigma²)) + d erf(d / (sigma sqrt 2))``, ``d = mu - m``.
    """
    d = p.loc - q.loc
    z = d / p.scale
    mean_abs = p.scale * math.sqrt(2 / math.pi) * jnp.exp(-0.5 * z * z) + d * erf(z / math.sqrt(2.0))
    return jnp.log(2 * q.scale) - jnp.log(p.scale) - _HALF_LOG_2PI_E + mean_abs / q.scale


# ---------------------------------------------------------------- Laplace as p
@register_kl(Laplace, Normal)
def _kl_laplace_normal(p, q):
    """KL(Laplace(m, b) ‖ N(mu, sigma²)) = -1 - log(2b) + ½ log(2 pi sigma²)
    + (2b² + (m - mu)²) / (2 sigma²), in nats."""
    return _kl_to_normal(-1.0 - _LOG2, p.scale, p.loc, 2.0, q)


@register_kl(Laplace, Gumbel)
def _kl_laplace_gumbel(p, q):
    """KL(Laplace(mu, b) ‖ Gumbel(m, s)) in nats; ``+inf`` when ``b >= s``.

    ``= -1 - log(2b) + log s + (mu - m)/s + exp((m - mu)/s) / (1 - (b/s)²)``, using
    ``E exp(-X/s) = exp(-mu/s) / (1 - b²/s²)``, which is finite only for ``b < s``.
    """
    ok = p.scale < q.scale
    s = q.scale
    rho = jnp.where(ok, p.scale / s, 0.0)
    gap = jnp.where(ok, (s - p.scale) / s, 1.0)  # 1 - b/s, exact for b near s
    # In units of s: log E exp(-(X - mu)/s) = -log(1 - rho) - log(1 + rho) >= 0.
    c = -jnp.log(gap) - jnp.log1p(rho)
    z = (p.loc - q.loc) / s
    kl = -1.0 - _LOG2 + log_of_ratio(s, p.scale) + _gumbel_term(z, c, -z, c)
    return jnp.where(ok, kl, jnp.inf)


# ---------------------------------------------------------------- Gumbel / Student t as p
@register_kl(Gumbel, Normal)
def _kl_gumbel_normal(p, q):
    """KL(Gumbel(m, s) ‖ N(mu, sigma²)) = -log s - gamma - 1 + ½ log(2 pi sigma²)
    + (pi² s²/6 + (m + gamma s - mu)²) / (2 sigma²), in nats (gamma: Euler's constant)."""
    # The mean m + gamma s is not formed: for s << |m| it rounds to m (0.164 for 0.331 at
    # m = -1, s = 1e-10 in float32); (m - mu)/sigma + gamma s/sigma keeps it.
    rho = p.scale / q.scale
    # (an overflowed rho makes the value +inf through rho²; kept out of z to avoid inf - inf)
    z = (p.loc - q.loc) / q.scale + EULER_GAMMA * jnp.where(jnp.isfinite(rho), rho, 0.0)
    return (-(EULER_GAMMA + 1.0) + HALF_LOG_2PI + log_of_ratio(q.scale, p.scale)
            + 0.5 * (_PI2_6 * (rho * rho) + z * z))


# c(nu) = 1/(nu - 2) - [h(nu) - ½ log(2 pi e)] (h: entropy of the standard t) in powers of
# e = 1/nu: c = sum_{k=2}^{16} (N_k / 2k) e^k. The coefficients were fitted at 300 digits to
# mpmath values of c at nu ~ 1e6..1e8 and are the rationals below (7/4, 25/6, 65/8, ...);
# the series is asymptotic (its terms grow again past k ~ 16). Against 60-digit mpmath the
# 15 terms leave a relative error of 4.0e-8 at nu = 7 and 2.8e-17 at nu = 30, hence the
# switch-over points (float32: nu > 7, float64: nu > 30).
_T_SERIES = (7 / 4, 25 / 6, 65 / 8, 157 / 10, 127 / 4, 913 / 14, 2065 / 16, 4453 / 18, 2017 / 4,
             24601 / 22, 17075 / 8, 68269 / 26, 27307 / 4, 1421089 / 30, 1978145 / 32)


def _t_normal_gap(df):
    """``c(nu) = 1/(nu - 2) - (h(nu) - ½ log(2 pi e)) > 0``: KL(t_nu ‖ N(0, 1)), nu > 2.

    Both terms tend to ``1/nu`` while ``c ~ 7/(4 nu²)``, so the direct difference loses
    every digit for large ``nu`` (it gave 1.19e-7 for the exact 1.75e-12 at nu = 1e6 in
    float32); there the series above is summed instead.
    """
    threshold = 30.0 if is64(df.dtype) else 7.0
    large = df > threshold
    d_small = jnp.where(large, threshold, df)
    direct = 1 / (d_small - 2) - (studentt_standard_entropy(d_small) - _HALF_LOG_2PI_E)
    e = 1 / jnp.where(large, df, threshold)
    poly = jnp.zeros_like(e) + _T_SERIES[-1]
    for coef in _T_SERIES[-2::-1]:
        poly = poly * e + coef
    return jnp.where(large, e * e * poly, direct)


@register_kl(StudentT, Normal)
def _kl_studentt_normal(p, q):
    """KL(StudentT(nu, m, s) ‖ N(mu, sigma²)) in nats; ``+inf`` for ``nu <= 2``.

    ``= -H(p) + ½ log(2 pi sigma²) + (s² nu/(nu - 2) + (m - mu)²) / (2 sigma²)``
    (infinite for ``nu <= 2``: the variance of ``p`` is). With ``rho = s / sigma`` and
    ``nu / (nu - 2) = 1 + 2 / (nu - 2)`` it is evaluated as
    ``KL(N(m, s²) ‖ N(mu, sigma²)) + (rho² - 1) / (nu - 2) + c(nu)``, where ``c(nu)``
    (:func:`_t_normal_gap`) is the KL from the standard t to N(0, 1): no term cancels
    beyond a factor of ~2, so the value keeps its relative precision as ``nu -> inf``
    (where it tends to the Normal KL) and for any scales.
    """
    ok = p.df > 2
    df = jnp.where(ok, p.df, 3.0)
    s, inv = scaled_reciprocal(q.scale)
    z = ((p.loc - q.loc) * s) * inv
    rho = (p.scale * s) * inv
    normal_kl = half_square_sum(square_ratio_term(p.scale, q.scale), z, rho)
    d = (p.scale - q.scale) / q.scale  # rho - 1, exact for nearly equal scales
    kl = normal_kl + (d * (2 + d)) / (df - 2) + _t_normal_gap(df)
    return jnp.where(ok, kl, jnp.inf)


# ---------------------------------------------------------------- Exponential as p
@register_kl(Exponential, Normal)
def _kl_exponential_normal(p, q):
    """KL(Exp(l) ‖ N(mu, sigma²)) = log l - 1 + ½ log(2 pi sigma²) + (1/l² + (1/l - mu)²)/(2 sigma²)."""
    mean = 1 / p.rate
    return _kl_to_normal(-1.0, mean, mean, 1.0, q)


@register_kl(Exponential, Gumbel)
def _kl_exponential_gumbel(p, q):
    """KL(Exp(l) ‖ Gumbel(m, s)) = log l - 1 + log s + (1/l - m)/s + exp(m/s) l s / (1 + l s)."""

    lam, m, s = p.rate, q.loc, q.scale
    log_ls = _log_product(lam, s)
    u = _quotient(jnp.ones_like(lam), lam, s)  # E X / s = 1 / (l s)
    big = jnp.isinf(u)
    log1p_u = jnp.where(big, -log_ls, jnp.log1p(jnp.where(big, 0.0, u)))
    c = jnp.where(big, jnp.inf, x_minus_log1p(jnp.where(big, 0.0, u), log1p_u))
    z = (1 / lam - m) / s
    return log_ls - 1.0 + _gumbel_term(z, c, m / s, -log1p_u)


@register_kl(Exponential, Gamma)
def _kl_exponential_gamma(p, q):
    """KL(Exp(l) ‖ Gamma(a, b)) in nats, 0 for ``a = 1, b = l``.

    ``= r - 1 - a log r + lgamma(a) + gamma (a - 1)`` with ``r = b/l``, evaluated as
    ``[r - 1 - log r] - (a - 1) log r + D(a, 1)`` (``D``: log-gamma Bregman divergence).
    """
    a = q.concentration
    return gamma_kl(jnp.ones_like(a), p.rate, a, q.rate)  # Exp(l) = Gamma(1, l); large a too


@register_kl(Exponential, LogNormal)
def _kl_exponential_lognormal(p, q):
    """KL(Exp(l) ‖ LogNormal(mu, sigma)) = log l - 1 + E log X + log sigma + ½ log 2pi
    + (pi²/6 + (E log X - mu)²)/(2 sigma²), with ``E log X = -gamma - log l``."""
    # log l cancels between -H(p) and E log X; the rest in units of sigma (sigma² overflows).
    sigma = q.scale
    z = ((-EULER_GAMMA - q.loc) - jnp.log(p.rate)) / sigma
    rho = math.sqrt(_PI2_6) / sigma
    return -1.0 - EULER_GAMMA + HALF_LOG_2PI + jnp.log(sigma) + 0.5 * (rho * rho + z * z)


# ---------------------------------------------------------------- Gamma as p
@register_kl(Gamma, Normal)
def _kl_gamma_normal(p, q):
    """KL(Gamma(a, b) ‖ N(mu, sigma²)) = -H(p) + ½ log(2 pi sigma²) + (a/b² + (a/b - mu)²)/(2 sigma²)."""
    # In units of sigma (a/b², sigma² and (a/b)² overflow for rates or scales of 1e±20
    # in float32, giving inf/inf), with the mean over sigma formed without overflow.
    a, b, mu, sigma = p.concentration, p.rate, q.loc, q.scale
    rho = _quotient(jnp.sqrt(a), b, sigma)
    mean = a / b
    z = jnp.where(jnp.isfinite(mean), (mean - mu) / sigma, _quotient(a, b, sigma) - mu / sigma)
    z = jnp.where(jnp.isnan(z), jnp.inf, z)  # mean/sigma and mu/sigma both overflowed: mean >> mu
    return (_log_product(b, sigma) - gamma_entropy_shape(a) + HALF_LOG_2PI
            + 0.5 * (rho * rho + z * z))


@register_kl(Gamma, Exponential)
def _kl_gamma_exponential(p, q):
    """KL(Gamma(a, b) ‖ Exp(l)) in nats, 0 for ``a = 1, l = b``.

    ``= -H(p) - log l + l a / b``, evaluated as
    ``[r - 1 - log r] + (a - 1)(r - 1) + D(1, a)`` with ``r = l / b`` and ``D`` the
    log-gamma Bregman divergence.
    """
    a, b, lam = p.concentration, p.rate, q.rate
    kl = gamma_kl(a, b, jnp.ones_like(a), lam)  # Exp(l) = Gamma(1, l); large a too
    # Where r = l / b overflows (l = 1e10, b = 1e-30 in float32) the Bregman form gives inf for
    # a finite KL (1e30 at a = 1e-30); there -h(a) + log(b / l) + a l / b, nothing cancelling.
    over = ~jnp.isfinite(lam / b)
    a_l_over_b = jnp.exp(jnp.log(a) + jnp.log(lam) - jnp.log(b))
    kl_over = -gamma_entropy_shape(a) + log_of_ratio(b, lam) + a_l_over_b
    return jnp.where(over, kl_over, kl)


@register_kl(Gamma, Gumbel)
def _kl_gamma_gumbel(p, q):
    """KL(Gamma(a, b) ‖ Gumbel(m, s)) = -H(p) + log s + (a/b - m)/s + exp(m/s) (1 + 1/(b s))^(-a)."""

    a, b, m, s = p.concentration, p.rate, q.loc, q.scale
    one = jnp.ones_like(a)
    u = _quotient(a, b, s)  # E X / s
    v = _quotient(one, b, s)  # 1 / (b s)
    big = jnp.isinf(v)
    v_ok = jnp.where(big, 0.0, v)
    log1p_v = jnp.where(big, -_log_product(b, s), jnp.log1p(v_ok))
    # c = a (v - log1p v) = log E exp(-(X - E X)/s); u - a log1p(v) where v overflows.
    c = jnp.where(big, u - a * log1p_v, a * x_minus_log1p(v_ok, log1p_v))
    mean = a / b
    z = jnp.where(jnp.isfinite(mean), (mean - m) / s, u - m / s)
    neg_h = _log_product(b, s) - gamma_entropy_shape(a)  # -H(p) + log s
    return neg_h + _gumbel_term(z, c, m / s, -a * log1p_v)


@register_kl(Gamma, LogNormal)
def _kl_gamma_lognormal(p, q):
    """KL(Gamma(a, b) ‖ LogNormal(mu, sigma)) = -H(p) + E log X + log sigma + ½ log 2pi
    + (trigamma(a) + (E log X - mu)²)/(2 sigma²), with ``E log X = digamma(a) - log b``."""

    a, sigma = p.concentration, q.scale
    # -H(p) + E log X = digamma(a) - h(a) (log b cancels): with mu(a) (Stirling's remainder)
    # and psi~(a) = digamma(a) - log a it is ½ log a - ½ log 2pi - mu(a) + a psi~(a), free of
    # the 1/a terms that cancel for a -> 0 and of the a log a ones for a -> inf.
    psi_minus_h = 0.5 * jnp.log(a) - HALF_LOG_2PI - stirling_remainder(a) + a * digamma_minus_log(a)
    # sqrt(trigamma(a)) = sqrt(1/a² + trigamma(a + 1)) / ... without forming 1/a² (1e60).
    small = a < 1
    a_s = jnp.where(small, a, 1.0)
    sd_log = jnp.where(small, jnp.sqrt(1 + (a_s * a_s) * trigamma(a_s + 1)) / a_s,
                       jnp.sqrt(trigamma(jnp.where(small, 1.0, a))))
    # E log X - mu = psi~(a) + log(a / b) - mu: digamma(a) - log b loses every digit for a ≈ b large.
    z = (digamma_minus_log(a) + (log_of_ratio(a, p.rate) - q.loc)) / sigma
    rho = sd_log / sigma
    return psi_minus_h + HALF_LOG_2PI + jnp.log(sigma) + 0.5 * (rho * rho + z * z)


# ---------------------------------------------------------------- LogNormal as p
@register_kl(LogNormal, Gamma)
def _kl_lognormal_gamma(p, q):
    """KL(LogNormal(mu, sigma) ‖ Gamma(a, b)) = -H(p) + lgamma(a) - a log b - (a - 1) mu
    + b exp(mu + sigma²/2), in nats (``-H(p) = -mu - ½ log(2 pi e sigma²)``)."""
    # -H(p) + E log X = -½ log(2 pi e sigma²) (mu cancels); log E X = mu + sigma²/2, J = sigma²/2.
    c, sigma = q.concentration, p.scale
    log_mean = p.loc + 0.5 * (sigma * sigma)
    c_jensen = 0.5 * ((c * sigma) * sigma)
    return -_HALF_LOG_2PI_E - jnp.log(sigma) + _gamma_cross_term(c, q.rate, log_mean, c_jensen)


@register_kl(LogNormal, Exponential)
def _kl_lognormal_exponential(p, q):
    """KL(LogNormal(mu, sigma) ‖ Exp(l)) = -H(p) - log l + l exp(mu + sigma²/2), in nats."""
    neg_h = -p.loc - _HALF_LOG_2PI_E - jnp.log(p.scale)
    return neg_h - jnp.log(q.rate) + q.rate * p.mean


# ---------------------------------------------------------------- Beta as p
@register_kl(Beta, Normal)
def _kl_beta_normal(p, q):
    """KL(Beta(a, b) ‖ N(mu, sigma²)) = -H(p) + ½ log(2 pi sigma²) + (Var + (E X - mu)²)/(2 sigma²)."""
    # Var = m (1 - m) / (a + b + 1) with m = a/(a + b): a b / (a + b)² underflows to 0/0
    # for concentrations of 1e-30; in units of sigma, as sigma² under- or overflows.
    a, b = p.concentration1, p.concentration0
    total = a + b
    mean = a / total
    sd = jnp.sqrt(mean) * (jnp.sqrt(b / total) / jnp.sqrt(total + 1))  # no 1e-60 product
    rho = sd / q.scale
    z = (mean - q.loc) / q.scale
    return (beta_neg_entropy(a, b) + HALF_LOG_2PI + jnp.log(q.scale)
            + 0.5 * (rho * rho + z * z))


@register_kl(Beta, Exponential)
def _kl_beta_exponential(p, q):
    """KL(Beta(a, b) ‖ Exp(l)) = -H(p) - log l + l a/(a + b), in nats."""
    kl = beta_neg_entropy(p.concentration1, p.concentration0) - jnp.log(q.rate) + q.rate * p.mean
    # KL >= 0; where it is ~0 (Beta(1, b) vs Exp(b) for large b: 1/(b (b + 1))) the sum of
    # terms of size log b rounds to a few ulps either side of it.
    return jnp.maximum(kl, 0.0)


@register_kl(Beta, Gamma)
def _kl_beta_gamma(p, q):
    """KL(Beta(a, b) ‖ Gamma(c, r)) = -H(p) + lgamma(c) - c log r - (c - 1)(digamma(a) - digamma(a + b))
    + r a/(a + b), in nats."""

    a, b, c = p.concentration1, p.concentration0, q.concentration
    ratio = b / a
    near = ratio < 1
    log_mean = -jnp.where(near, jnp.log1p(jnp.where(near, ratio, 0.0)), log_of_ratio(a + b, a))
    # J = log E X - E log X >= 0 in two exact forms: psi~(a + b) - psi~(a) (psi~ = digamma - log)
    # loses a factor (a + b)/b to cancellation, digamma(a + b) - digamma(a) + log E X about 2a;
    # the latter through digamma(x + 1) = digamma(x) + 1/x (x = 1e-30 would underflow inside).
    jensen_psi = digamma_minus_log(a + b) - digamma_minus_log(a)
    one = jnp.ones_like(a)
    d_psi = digamma_difference(a + b + one, a + one, b) + (b / (a + b)) * reciprocal(a)
    jensen = jnp.where(a * b < a + b, d_psi + log_mean, jensen_psi)
    # a >= 1e3: from psi~(x) = -1/(2x) - 1/(12x²) + 1/(120x⁴) - ..., term by term with the
    # differences 1/x^k - 1/y^k written as products (y = a + b): no cancellation at all.
    large = a >= 1e3
    x = jnp.where(large, a, 1e3)
    y = x + jnp.where(large, b, 1.0)
    e = (jnp.where(large, b, 1.0) / x) * reciprocal(y)  # (y - x) / (x y)
    ix, iy = reciprocal(x), reciprocal(y)
    jensen_large = e * (0.5 + (ix + iy) / 12 - (ix + iy) * (ix * ix + iy * iy) / 120)
    jensen = jnp.where(large, jensen_large, jensen)
    kl = _beta_neg_entropy_plus_mean_log(a, b) + _gamma_cross_term(c, q.rate, log_mean, c * jensen)
    # a, c < 1: -lgamma(a) + lgamma(c) (each ~69 at 1e-30) paired as
    # log(a / c) + lgamma(1 + c) - lgamma(1 + a), exact 0 for a = c.
    pair = (a < 1) & (c < 1)
    a_p, c_p = jnp.where(pair, a, 0.5), jnp.where(pair, c, 0.5)
    lgamma_c_minus_a = log_of_ratio(a_p, c_p) + gammaln(1 + c_p) - gammaln(1 + a_p)
    kl_pair = (_beta_neg_entropy_plus_mean_log(a_p, b, with_lgamma_a=False) + lgamma_c_minus_a
               + _gamma_cross_term(c_p, q.rate, log_mean, c_p * jensen, with_lgamma=False))
    kl = jnp.where(pair, kl_pair, kl)
    # KL >= 0; where it is ~0 (Beta(1, b) vs Gamma(1, b), b large) terms of size log b
    # round to a few ulps either side of it.
    return jnp.maximum(kl, 0.0)


@register_kl(Beta, Uniform)
def _kl_beta_uniform(p, q):
    """KL(Beta(a, b) ‖ U[l, h]) = -H(p) + log(h - l) if ``l <= 0`` and ``h >= 1``, else ``+inf``.

    ``log(h - l)`` is taken as ``log1p((h - 1) - l)`` so that Beta(1, 1) vs U[0, 1] is exactly 0.
    """
    ok = (q.low <= 0) & (q.high >= 1)
    extra = jnp.where(ok, (q.high - 1) - q.low, 0.0)
    kl = beta_neg_entropy(p.concentration1, p.concentration0) + jnp.log1p(extra)
    return jnp.where(ok, kl, jnp.inf)


# ---------------------------------------------------------------- Uniform as p
def _uniform_mean_log(low, high):
    """``E log X`` under ``U[low, high]``, ``0 <= low``: ``(h log h - l log l)/(h - l) - 1``."""
    return (xlogx(high) - xlogx(low)) / (high - low) - 1


@register_kl(Uniform, Normal)
def _kl_uniform_normal(p, q):
    """KL(U[l, h] ‖ N(mu, sigma²)) = -log(h - l) + ½ log(2 pi sigma²)
    + ((h - l)²/12 + ((l + h)/2 - mu)²)/(2 sigma²), in nats."""
    return _kl_to_normal(0.0, p.high - p.low, p.mean, 1 / 12, q)


@register_kl(Uniform, Gumbel)
def _kl_uniform_gumbel(p, q):
    """KL(U[l, h] ‖ Gumbel(m, s)) = -log(h - l) + log s + ((l + h)/2 - m)/s
    + (s/(h - l)) (exp(-(l - m)/s) - exp(-(h - m)/s)), in nats."""
    w = p.high - p.low
    s = q.scale
    # In units of s: E exp(-(X - m)/s) = exp(-(l - m)/s) g(u), u = w/s,
    # log g(u) = log((1 - exp(-u)) / u) (-> 0 as u -> 0, -log u as u -> inf).
    u = w / s
    log_u = log_of_ratio(w, s)
    mid = _is_normal(u)
    u_mid = jnp.where(mid, u, 1.0)
    log_g = jnp.where(mid, jnp.log(-jnp.expm1(-u_mid) / u_mid), jnp.where(u > 1, -log_u, 0.0))
    c = 0.5 * u + log_g  # log E exp(-(X - E X)/s) = log(sinh(u/2) / (u/2)) >= 0
    z = (p.mean - q.loc) / s
    return -log_u + _gumbel_term(z, c, (q.loc - p.low) / s, log_g)


@register_kl(Uniform, Exponential)
def _kl_uniform_exponential(p, q):
    """KL(U[l, h] ‖ Exp(r)) = -log(h - l) - log r + r (l + h)/2 if ``l >= 0``, else ``+inf``."""
    ok = p.low >= 0
    kl = -jnp.log(p.high - p.low) - jnp.log(q.rate) + q.rate * p.mean
    return jnp.where(ok, kl, jnp.inf)


@register_kl(Uniform, Gamma)
def _kl_uniform_gamma(p, q):
    """KL(U[l, h] ‖ Gamma(a, b)) = -log(h - l) + lgamma(a) - a log b - (a - 1) E log X + b (l + h)/2
    if ``l >= 0``, else ``+inf``; ``E log X = (h log h - l log l)/(h - l) - 1``."""
    ok = p.low >= 0
    low = jnp.where(ok, p.low, 0.0)
    high = jnp.where(ok, p.high, 1.0)
    kl = -jnp.log(high - low) + _neg_log_gamma(0.5 * (low + high), _uniform_mean_log(low, high), q)
    return jnp.where(ok, kl, jnp.inf)


@register_kl(Uniform, Beta)
def _kl_uniform_beta(p, q):
    """KL(U[l, h] ‖ Beta(a, b)) in nats; ``+inf`` unless ``0 <= l`` and ``h <= 1``.

    ``= -log(h - l) - (a - 1) E log X - (b - 1) E log(1 - X) + log B(a, b)``, evaluated as
    ``-log(h - l) - (a - 1) A - (b - 1) B + [D(a, 1) + D(b, 1) - D(a + b, 2)]`` with
    ``A = (h log h - l log l)/(h - l)``, ``B = ((1-l) log(1-l) - (1-h) log(1-h))/(h - l)``
    and ``D`` the log-gamma Bregman divergence: exactly 0 for U[0, 1] vs Beta(1, 1).
    """
    a, b = q.concentration1, q.concentration0
    ok = (p.low >= 0) & (p.high <= 1)
    low = jnp.where(ok, p.low, 0.0)
    high = jnp.where(ok, p.high, 1.0)
    w = high - low
    big_a = (xlogx(high) - xlogx(low)) / w
    # E log(1 - X) = (K(l) - K(h)) / w with K(x) = x + (1 - x) log(1 - x) = sum_k>=2 x^k/(k(k-1)):
    # the series below 0.1, so that K(h) ~ h²/2 keeps its digits for small h (with
    # xlogx(1 - h) the term was lost for h = 1e-30: a KL 1 nat low).
    # (as (l/w) K(l)/l - (h/w) K(h)/h: K(h) = 5e-61 itself underflows in float32)
    mean_log1m = (low / w) * _log1m_antiderivative(low) - (high / w) * _log1m_antiderivative(high)
    big_b = mean_log1m + 1
    one = jnp.ones_like(a)
    d_a, d_b, d_s = lgamma_bregmans((a, one, a - 1), (b, one, b - 1), (a + b, 2 * one, (a - 1) + (b - 1)))
    log_beta_plus = d_a + d_b - d_s
    kl_bregman = -jnp.log(w) - (a - 1) * big_a - (b - 1) * big_b + log_beta_plus
    # Far from Beta(1, 1) the Bregman terms carry (a - 1) + (b - 1), which swamps log B(a, b)
    # for a concentration of 1e30 (1e30 for 0.5); there the textbook form with a stable log B.
    kl_direct = -jnp.log(w) - (a - 1) * (big_a - 1) - (b - 1) * mean_log1m + _log_beta(a, b)
    direct = (jnp.minimum(a, b) < 1e-3) | (jnp.maximum(a, b) >= 1e3)
    kl = jnp.where(direct, kl_direct, kl_bregman)
    return jnp.where(ok, jnp.maximum(kl, 0.0), jnp.inf)
