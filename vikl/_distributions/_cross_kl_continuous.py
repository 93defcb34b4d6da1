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

from vikl._distributions.beta import Beta, _beta_neg_entropy
from vikl._distributions.cauchy import Cauchy
from vikl._distributions.exponential import Exponential
from vikl._distributions.gamma import (
    Gamma,
    _gamma_entropy_shape,
    _gamma_kl,
    _is64,
    _lgamma_bregmans,
    _trigamma,
)
from vikl._distributions.gumbel import EULER_GAMMA, Gumbel
from vikl._distributions.halfnormal import HalfNormal
from vikl._distributions.laplace import Laplace
from vikl._distributions.lognormal import LogNormal
from vikl._distributions.normal import Normal
from vikl._distributions.studentt import StudentT, _standard_entropy
from vikl._distributions.uniform import Uniform
from vikl._kl import register_kl
from vikl._math import (
    half_square_sum,
    log_of_ratio,
    scaled_reciprocal,
    square_ratio_term,
    xlogx,
)

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_HALF_LOG_2PI_E = 0.5 + _HALF_LOG_2PI
_LOG2 = math.log(2.0)
_PI2_6 = math.pi**2 / 6

# ---------------------------------------------------------------- infinite pairs
_REAL_LINE = (Normal, Laplace, Cauchy, Gumbel, StudentT)
_HALF_LINE = (Exponential, Gamma, LogNormal, HalfNormal)
_BOUNDED = (Beta, Uniform)


def _kl_infinite(p, q):
    """``+inf``: the support of ``p`` is not inside that of ``q`` (or ``E_p[log q]`` diverges)."""
    return jnp.full(jnp.broadcast_shapes(p.batch_shape, q.batch_shape), jnp.inf, p.dtype)


for _P in _REAL_LINE:
    for _Q in _HALF_LINE + _BOUNDED:
        register_kl(_P, _Q)(_kl_infinite)
for _P in _HALF_LINE:
    for _Q in _BOUNDED:
        register_kl(_P, _Q)(_kl_infinite)
# Heavy tails: E_Cauchy[X²], E_Cauchy|X| and E[exp(-X/s)] diverge, as does the last for any Student t.
for _Q in (Normal, Laplace, Gumbel):
    register_kl(Cauchy, _Q)(_kl_infinite)
register_kl(StudentT, Gumbel)(_kl_infinite)
del _P, _Q


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
    return (neg_entropy_shift + _HALF_LOG_2PI + log_of_ratio(q.scale, width)
            + 0.5 * (var_factor * (rho * rho) + z * z))


def _neg_log_normal(mean, second_central, q):
    """``-E_p[log N(x; q.loc, q.scale²)]`` from the mean and variance of ``p``."""
    dm = mean - q.loc
    return _HALF_LOG_2PI + jnp.log(q.scale) + (second_central + dm * dm) / (2 * jnp.square(q.scale))


def _neg_log_gumbel(mean, log_mgf_neg, q):
    """``-E_p[log Gumbel(x; m, s)] = log s + (E X - m)/s + exp(m/s + log E exp(-X/s))``.

    ``log_mgf_neg`` is ``log E_p[exp(-X / s)]``.
    """
    m, s = q.loc, q.scale
    return jnp.log(s) + (mean - m) / s + jnp.exp(m / s + log_mgf_neg)


def _neg_log_gamma(mean, mean_log, q):
    """``-E_p[log Gamma(x; a, b)] = lgamma(a) - a log b - (a - 1) E log X + b E X``."""
    a, b = q.concentration, q.rate
    return gammaln(a) - a * jnp.log(b) - (a - 1) * mean_log + b * mean


def _neg_log_lognormal(mean_log, var_log, q):
    """``-E_p[log LogNormal(x; m, s)]`` from the mean and variance of ``log X`` under ``p``."""
    dm = mean_log - q.loc
    return mean_log + _HALF_LOG_2PI + jnp.log(q.scale) + (var_log + dm * dm) / (2 * jnp.square(q.scale))


def _gamma_neg_entropy(p):
    return jnp.log(p.rate) - _gamma_entropy_shape(p.concentration)


def _beta_mean_log(p):
    return digamma(p.concentration1) - digamma(p.concentration1 + p.concentration0)


# ---------------------------------------------------------------- Normal as p
@register_kl(Normal, Gumbel)
def _kl_normal_gumbel(p, q):
    """KL(N(mu, sigma²) ‖ Gumbel(m, s)) = -½ log(2 pi e sigma²) + log s + (mu - m)/s
    + exp((m - mu)/s + sigma²/(2 s²)), in nats."""
    # In units of s (z, rho) and with the log of one quotient: unit-free, so scales of
    # 1e30 neither overflow nor lose digits in log s - log sigma.
    z = (p.loc - q.loc) / q.scale
    rho = p.scale / q.scale
    return -_HALF_LOG_2PI_E + log_of_ratio(q.scale, p.scale) + z + jnp.exp(0.5 * (rho * rho) - z)


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
    gap = jnp.where(ok, q.scale - p.scale, 1.0)
    log_mgf = -p.loc / q.scale - jnp.log(gap) - jnp.log(q.scale + p.scale) + 2 * jnp.log(q.scale)
    kl = -1.0 - _LOG2 - jnp.log(p.scale) + _neg_log_gumbel(p.loc, log_mgf, q)
    return jnp.where(ok, kl, jnp.inf)


# ---------------------------------------------------------------- Gumbel / Student t as p
@register_kl(Gumbel, Normal)
def _kl_gumbel_normal(p, q):
    """KL(Gumbel(m, s) ‖ N(mu, sigma²)) = -log s - gamma - 1 + ½ log(2 pi sigma²)
    + (pi² s²/6 + (m + gamma s - mu)²) / (2 sigma²), in nats (gamma: Euler's constant)."""
    return _kl_to_normal(-(EULER_GAMMA + 1.0), p.scale, p.mean, _PI2_6, q)


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
    threshold = 30.0 if _is64(df.dtype) else 7.0
    large = df > threshold
    d_small = jnp.where(large, threshold, df)
    direct = 1 / (d_small - 2) - (_standard_entropy(d_small) - _HALF_LOG_2PI_E)
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
    ls = p.rate * q.scale
    log_mgf = jnp.log(ls) - jnp.log1p(ls)
    return jnp.log(p.rate) - 1.0 + _neg_log_gumbel(1 / p.rate, log_mgf, q)


@register_kl(Exponential, Gamma)
def _kl_exponential_gamma(p, q):
    """KL(Exp(l) ‖ Gamma(a, b)) in nats, 0 for ``a = 1, b = l``.

    ``= r - 1 - a log r + lgamma(a) + gamma (a - 1)`` with ``r = b/l``, evaluated as
    ``[r - 1 - log r] - (a - 1) log r + D(a, 1)`` (``D``: log-gamma Bregman divergence).
    """
    a = q.concentration
    return _gamma_kl(jnp.ones_like(a), p.rate, a, q.rate)  # Exp(l) = Gamma(1, l); large a too


@register_kl(Exponential, LogNormal)
def _kl_exponential_lognormal(p, q):
    """KL(Exp(l) ‖ LogNormal(mu, sigma)) = log l - 1 + E log X + log sigma + ½ log 2pi
    + (pi²/6 + (E log X - mu)²)/(2 sigma²), with ``E log X = -gamma - log l``."""
    mean_log = -EULER_GAMMA - jnp.log(p.rate)
    return jnp.log(p.rate) - 1.0 + _neg_log_lognormal(mean_log, _PI2_6, q)


# ---------------------------------------------------------------- Gamma as p
@register_kl(Gamma, Normal)
def _kl_gamma_normal(p, q):
    """KL(Gamma(a, b) ‖ N(mu, sigma²)) = -H(p) + ½ log(2 pi sigma²) + (a/b² + (a/b - mu)²)/(2 sigma²)."""
    return _gamma_neg_entropy(p) + _neg_log_normal(p.mean, p.variance, q)


@register_kl(Gamma, Exponential)
def _kl_gamma_exponential(p, q):
    """KL(Gamma(a, b) ‖ Exp(l)) in nats, 0 for ``a = 1, l = b``.

    ``= -H(p) - log l + l a / b``, evaluated as
    ``[r - 1 - log r] + (a - 1)(r - 1) + D(1, a)`` with ``r = l / b`` and ``D`` the
    log-gamma Bregman divergence.
    """
    a = p.concentration
    return _gamma_kl(a, p.rate, jnp.ones_like(a), q.rate)  # Exp(l) = Gamma(1, l); large a too


@register_kl(Gamma, Gumbel)
def _kl_gamma_gumbel(p, q):
    """KL(Gamma(a, b) ‖ Gumbel(m, s)) = -H(p) + log s + (a/b - m)/s + exp(m/s) (1 + 1/(b s))^(-a)."""
    log_mgf = -p.concentration * jnp.log1p(1 / (p.rate * q.scale))
    return _gamma_neg_entropy(p) + _neg_log_gumbel(p.mean, log_mgf, q)


@register_kl(Gamma, LogNormal)
def _kl_gamma_lognormal(p, q):
    """KL(Gamma(a, b) ‖ LogNormal(mu, sigma)) = -H(p) + E log X + log sigma + ½ log 2pi
    + (trigamma(a) + (E log X - mu)²)/(2 sigma²), with ``E log X = digamma(a) - log b``."""
    a = p.concentration
    mean_log = digamma(a) - jnp.log(p.rate)
    return _gamma_neg_entropy(p) + _neg_log_lognormal(mean_log, _trigamma(a), q)


# ---------------------------------------------------------------- LogNormal as p
@register_kl(LogNormal, Gamma)
def _kl_lognormal_gamma(p, q):
    """KL(LogNormal(mu, sigma) ‖ Gamma(a, b)) = -H(p) + lgamma(a) - a log b - (a - 1) mu
    + b exp(mu + sigma²/2), in nats (``-H(p) = -mu - ½ log(2 pi e sigma²)``)."""
    neg_h = -p.loc - _HALF_LOG_2PI_E - jnp.log(p.scale)
    return neg_h + _neg_log_gamma(p.mean, p.loc, q)


@register_kl(LogNormal, Exponential)
def _kl_lognormal_exponential(p, q):
    """KL(LogNormal(mu, sigma) ‖ Exp(l)) = -H(p) - log l + l exp(mu + sigma²/2), in nats."""
    neg_h = -p.loc - _HALF_LOG_2PI_E - jnp.log(p.scale)
    return neg_h - jnp.log(q.rate) + q.rate * p.mean


# ---------------------------------------------------------------- Beta as p
@register_kl(Beta, Normal)
def _kl_beta_normal(p, q):
    """KL(Beta(a, b) ‖ N(mu, sigma²)) = -H(p) + ½ log(2 pi sigma²) + (Var + (E X - mu)²)/(2 sigma²)."""
    return _beta_neg_entropy(p.concentration1, p.concentration0) + _neg_log_normal(p.mean, p.variance, q)


@register_kl(Beta, Exponential)
def _kl_beta_exponential(p, q):
    """KL(Beta(a, b) ‖ Exp(l)) = -H(p) - log l + l a/(a + b), in nats."""
    return _beta_neg_entropy(p.concentration1, p.concentration0) - jnp.log(q.rate) + q.rate * p.mean


@register_kl(Beta, Gamma)
def _kl_beta_gamma(p, q):
    """KL(Beta(a, b) ‖ Gamma(c, r)) = -H(p) + lgamma(c) - c log r - (c - 1)(digamma(a) - digamma(a + b))
    + r a/(a + b), in nats."""
    neg_h = _beta_neg_entropy(p.concentration1, p.concentration0)
    return neg_h + _neg_log_gamma(p.mean, _beta_mean_log(p), q)


@register_kl(Beta, Uniform)
def _kl_beta_uniform(p, q):
    """KL(Beta(a, b) ‖ U[l, h]) = -H(p) + log(h - l) if ``l <= 0`` and ``h >= 1``, else ``+inf``.

    ``log(h - l)`` is taken as ``log1p((h - 1) - l)`` so that Beta(1, 1) vs U[0, 1] is exactly 0.
    """
    ok = (q.low <= 0) & (q.high >= 1)
    extra = jnp.where(ok, (q.high - 1) - q.low, 0.0)
    kl = _beta_neg_entropy(p.concentration1, p.concentration0) + jnp.log1p(extra)
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
    # In units of s: E exp(-(X - m)/s) = exp(-(l - m)/s) (1 - exp(-w/s)) / (w/s).
    log_s_over_w = log_of_ratio(s, w)
    log_mgf = -(p.low - q.loc) / s + log_s_over_w + jnp.log(-jnp.expm1(-w / s))
    return log_s_over_w + (p.mean - q.loc) / s + jnp.exp(log_mgf)


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
    big_b = (xlogx(1 - low) - xlogx(1 - high)) / w
    one = jnp.ones_like(a)
    d_a, d_b, d_s = _lgamma_bregmans((a, one, a - 1), (b, one, b - 1), (a + b, 2 * one, (a - 1) + (b - 1)))
    log_beta_plus = d_a + d_b - d_s
    kl = -jnp.log(w) - (a - 1) * big_a - (b - 1) * big_b + log_beta_plus
    return jnp.where(ok, kl, jnp.inf)
