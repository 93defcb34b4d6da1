"""KL and entropy kernels on plain arrays that several families share.

The Gamma KL serves ``Gamma ‖ Gamma`` and the Exponential/Gamma pairs, the Beta KL the
Beta and Dirichlet KLs, the Beta and Gamma (negative) entropies and the Student-t
entropy the cross-family KLs. Each is a function of arrays of one dtype; no family
module is imported here (the log-gamma numerics they build on are in ``vikl._special``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from vikl._special import (
    HALF_LOG_2PI,
    cross_ratio_minus_one,
    digamma_difference,
    digamma_minus_log,
    dirichlet_kl_stirling,
    dirichlet_neg_entropy,
    is64,
    lgamma_bregman,
    lgamma_bregmans,
    lgamma_remainder_bregman,
    log_ratio,
    stirling_remainder,
    times_phi,
    trigamma,
)

__all__ = [
    "beta_kl",
    "beta_kl_and_size",
    "beta_neg_entropy",
    "bregman_lgamma_grads",
    "gamma_entropy_shape",
    "gamma_kl",
    "studentt_log_normalizer",
    "studentt_standard_entropy",
]


# ---------------------------------------------------------------- Gamma
@jax.jit
def gamma_entropy_shape(a):
    """``a + lgamma(a) + (1 - a) digamma(a)``: the entropy of ``Gamma(a, 1)``.

    The three terms are each of size ``a log a`` and cancel to about ``½ log(2 pi e a)``;
    with Stirling's remainder ``mu`` and ``psi~(a) = digamma(a) - log a`` (both from
    convergent series, ``vikl._special``) the same value is
    ``½ log(2 pi) + ½ log a + mu(a) + (1 - a) psi~(a)``, whose terms are of size
    ``log a`` (and ``1/a`` for small ``a``, where the entropy is that large).
    """
    a = jnp.asarray(a)
    return HALF_LOG_2PI + 0.5 * jnp.log(a) + stirling_remainder(a) + (1 - a) * digamma_minus_log(a)


def _gamma_mean_ratio(a1, b1, a2, b2, log_r):
    """``(t - 1, log t)`` for ``t = (a1 / b1) / (a2 / b2)``, the ratio of two Gamma means.

    Near ``t = 1`` (means agreeing to many digits, however large the concentrations)
    ``t - 1`` is formed from exact products (``_special.cross_ratio_minus_one``); elsewhere
    from the rounded quotient, which is then accurate to a few ulps relative.
    """
    t = (a1 / a2) * (b2 / b1)
    near = jnp.abs(t - 1) < 0.5
    finite = (t > jnp.finfo(t.dtype).tiny) & (t < jnp.finfo(t.dtype).max)
    log_t = jnp.where(finite, jnp.log(jnp.where(finite, t, 1.0)), log_ratio(a1, a2, a1 - a2) + log_r)
    # a1 / a2 may overflow (or underflow) where t does not: Gamma(1e10, 1e-10) against
    # Gamma(1e-30, 1e-30) has t = 1e20, a1 / a2 = 1e40 (float32); t then comes from log t.
    far = jnp.where(finite, t - 1, jnp.expm1(log_t))
    t_minus_1 = jnp.where(near, cross_ratio_minus_one(a1, a2, b1, b2), far)
    return t_minus_1, log_t


@jax.jit
def gamma_kl(a1, b1, a2, b2):
    """KL(Gamma(a1, b1) ‖ Gamma(a2, b2)) for arrays of one dtype.

    With ``r = b2 / b1``, ``D`` the log-gamma Bregman divergence and ``phi(u) = u - 1 - log u``:

    * ``D(a2, a1) + a1 phi(r) + (a1 - a2) log r``: right for nearly equal Gammas, but
      at large concentrations its terms are of size ``a log a`` (1e7 for Gamma(1e6, 1e3)
      ‖ Gamma(1, 1e-3), whose KL is 6.49);
    * ``a2 phi(t) + R(a2, a1)``, ``t = (a1 / b1) / (a2 / b2)`` the ratio of the means and
      ``R`` the Bregman divergence of ``lgamma(a) - a log a + a``
      (``_special.lgamma_remainder_bregman``), of size ``log(a2 / a1)``: right whenever
      a concentration is large.

    The rounding error of each is a few ulps of the sum of its terms' magnitudes; the
    smaller sum picks the form.
    """
    r_minus_1 = (b2 - b1) / b1
    log_r = log_ratio(b2, b1, b2 - b1)
    scale_term = times_phi(a1, r_minus_1, log_r)
    d = lgamma_bregman(a2, a1, a2 - a1)
    shape_term = (a1 - a2) * log_r
    bregman = d + scale_term + shape_term
    bregman_size = d + scale_term + jnp.abs(shape_term)
    t_minus_1, log_t = _gamma_mean_ratio(a1, b1, a2, b2, log_r)
    mean_term = times_phi(a2, t_minus_1, log_t)
    rem, rem_size = lgamma_remainder_bregman(a2, a1, a2 - a1)
    use = mean_term + rem_size < bregman_size
    return jnp.where(use, mean_term + rem, bregman)


# ---------------------------------------------------------------- Beta
@jax.jit
def beta_neg_entropy(a, b):
    """``-H(Beta(a, b)) = KL(Beta(a, b) ‖ Uniform(0, 1))`` in nats.

    ``= -log B(a, b) + (a-1) digamma(a) + (b-1) digamma(b) - (a+b-2) digamma(a+b)``: the
    two-component Dirichlet case of ``_special.dirichlet_neg_entropy`` (a Bregman form,
    exact at ``a = b = 1``, or a Stirling form for large concentrations, whichever sums
    the smaller terms).
    """
    dtype = jnp.result_type(a, b)
    a, b = jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    return dirichlet_neg_entropy(jnp.stack([a, b], axis=-1))


@jax.custom_jvp
@jax.jit
def beta_kl(a1, b1, a2, b2):
    """KL(Beta(a1, b1) ‖ Beta(a2, b2)); see ``beta_kl_and_size``.

    Differentiated by its closed-form derivatives (``_beta_kl_jvp``), not through the
    forms: autodiff of the forms compiled to 41k (float32) and 93k (float64) HLO lines,
    7.5 s and 14 s of XLA:CPU compile for one gradient, against 0.3 s now.

    A negative value within rounding error of 0 is returned as 0. Where every form meets
    ``inf - inf`` (a concentration near the float minimum next to
    a large one: ``a2 digamma(a1) ~ -a2 / a1`` overflows), the value is ``+inf``, not NaN.
    The KL is then of the order of that ratio (``KL(Beta(1e-30, 1e-30) ‖ Beta(1e-30, 1e10))
    = 5e39`` in float32) and beyond the float range in every case the issue-19 sweep
    met; a finite KL that needs an overflowing intermediate (possible in principle) is
    not recovered.
    """
    value, size = beta_kl_and_size(a1, b1, a2, b2)
    finite = jnp.isfinite(a1) & jnp.isfinite(b1) & jnp.isfinite(a2) & jnp.isfinite(b2)
    # A negative value within the form's rounding error (a few ulps of its terms' total
    # size) is rounding: the KL is >= 0, so 0 is as close to it (e.g. -4.6e-29 for 1e-10
    # in float32 at Beta(1e-30, 1e10) ‖ Beta(1e-30, 1e30), a term of 1e-40 flushed to 0).
    rounding = (value < 0) & (value >= -8 * jnp.finfo(value.dtype).eps * size)
    value = jnp.where(rounding, 0.0, value)
    return jnp.where(jnp.isnan(value) & finite, jnp.inf, value)


@beta_kl.defjvp
def _beta_kl_jvp(primals, tangents):
    """The Beta KL as the two-component Dirichlet KL, a Bregman divergence of
    ``F(a, b) = log Gamma(a) + log Gamma(b) - log Gamma(a + b)``; with ``s = a + b`` and
    ``d = p2 - p1`` for each parameter::

        dKL/da1 = -d_a psi'(a1) + d_s psi'(s1)        dKL/da2 = Δψ(a2, a1) - Δψ(s2, s1)
        dKL/db1 = -d_b psi'(b1) + d_s psi'(s1)        dKL/db2 = Δψ(b2, b1) - Δψ(s2, s1)

    evaluated by ``bregman_lgamma_grads`` (digamma differences without cancellation,
    ``0 * psi'(x)`` = 0 also where ``psi'(x)`` overflows, finite second derivatives).
    """
    a1, b1, a2, b2 = jnp.broadcast_arrays(*primals)
    grad_p, grad_q = bregman_lgamma_grads(jnp.stack([a1, b1], axis=-1), jnp.stack([a2, b2], axis=-1))
    grads = (grad_p[..., 0], grad_p[..., 1], grad_q[..., 0], grad_q[..., 1])
    value = beta_kl(*primals)
    return value, sum(g * t for g, t in zip(grads, tangents))


def _bregman_grad_terms(y, x, d):
    """``(Δψ(y, x), d psi'(x))`` elementwise, ``d = y - x`` (as accurate as the caller has it).

    ``Δψ`` is ``_special.digamma_difference`` (no cancellation when ``y ≈ x``). Where
    ``d == 0`` both are ``d * psi'(x)``: the value is 0 (also where ``psi'(x)`` overflows,
    ``x`` near the float minimum, and where ``x y`` underflows in ``digamma_difference``,
    which there gives 0/0), the derivative along ``d`` is ``psi'(x)`` (the exact one, not
    0 as from a ``where(d == 0, 0, ...)`` guard), saturated at the largest float where it
    overflows, and the derivative along ``x`` is ``d psi''(x) = 0``.

    Double ``where``: the branch a ``where`` does not select is differentiated too (its
    cotangent is 0, and ``0 * inf`` is NaN), so the differentiated kernels see ``x = y = 1``
    where ``d == 0``; ``psi'(x)`` there is a constant (``stop_gradient``) from a second
    row of the same ``trigamma`` call, with its input cut off from differentiation too.
    """
    zero = d == 0
    x_live = jnp.where(zero, 1.0, x)
    y_live = jnp.where(zero, 1.0, y)
    both = trigamma(jnp.stack([x_live, jax.lax.stop_gradient(x)]))
    slope = jax.lax.stop_gradient(jnp.minimum(both[1], jnp.finfo(x.dtype).max))
    d_trigamma = d * jnp.where(zero, slope, both[0])
    dpsi = jnp.where(zero, d * slope, digamma_difference(y_live, x_live, d))
    return dpsi, d_trigamma


def bregman_lgamma_grads(a, b):
    """``(dKL/da, dKL/db)`` for ``KL(Dir(a) ‖ Dir(b))``, concentrations along the last axis.

    The KL is the Bregman divergence of ``F(a) = sum_i log Gamma(a_i) - log Gamma(a_0)``,
    ``a_0 = sum_i a_i``, so with ``h = b - a``::

        dKL/da = F''(a) (a - b):   -h_i psi'(a_i) + h_0 psi'(a_0)
        dKL/db = F'(b) - F'(a):    Δψ(b_i, a_i) - Δψ(b_0, a_0),     h_0 = sum_i h_i

    with every digamma difference ``Δψ`` formed without cancellation and every
    ``h psi'(a)`` exactly 0 where ``h == 0`` (see ``_bregman_grad_terms``; the
    derivatives of these are finite there, so ``jax.hessian`` of the KL is too). The
    totals ride along as a (K+1)-th column, so each kernel is traced once.
    """
    k = a.shape[-1]
    h = b - a

    def with_total(v):
        return jnp.concatenate([v, jnp.sum(v, axis=-1, keepdims=True)], axis=-1)

    dpsi, d_trigamma = _bregman_grad_terms(with_total(b), with_total(a), with_total(h))
    grad_a = d_trigamma[..., k:] - d_trigamma[..., :k]
    grad_b = dpsi[..., :k] - dpsi[..., k:]
    return grad_a, grad_b


def beta_kl_and_size(a1, b1, a2, b2):
    """``(KL(Beta(a1, b1) ‖ Beta(a2, b2)), size)`` from whichever of two exact forms sums
    the smaller terms; ``size`` is the sum of that form's term magnitudes (its rounding
    error is a few ulps of it).

    The KL does not change when ``a`` and ``b`` swap roles in both Betas, so the
    pair is first ordered to make ``a1 + a2 <= b1 + b2``. With ``D`` the log-gamma
    Bregman divergence, ``s = a + b``, ``da = a2 - a1``, ``db = b2 - b1``,
    ``ds = da + db`` and ``Δψ(y, x) = digamma(y) - digamma(x)``:

    * ``D(a2, a1) + D(b2, b1) - D(s2, s1)``: three terms >= 0, right for nearly equal
      Betas, but when ``a << b`` the last two are large and nearly equal
      (13.16 - 13.13 = 0.036 for Beta(0.05, 30) ‖ Beta(0.05, 7), ~400x cancellation);
    * ``D(a2, a1) + ds Δψ(s1, b1) - a2 Δψ(b2, b1) + D(s1, b1) - D(s2, b2)``, the same
      sum regrouped (``lgamma(b + a) - lgamma(b) = a digamma(b) + D(b + a, b)``),
      whose terms are small exactly when ``a`` is small against ``b``.

    The rounding error of a sum is a few ulps of the sum of its terms' magnitudes,
    so that sum picks the form. Every ``D`` and ``Δψ`` is evaluated without
    cancellation (``lgamma_bregman``, ``digamma_difference``). A third form,
    ``_special.dirichlet_kl_stirling`` (``b_0`` times the KL between the means plus
    log-sized Stirling remainders), takes over when the concentrations are large, where
    both forms above sum terms of size ``a log a`` (float32 relative error ~0.1 at
    Beta(1e6, 1e6) ‖ Beta(1e3, 1e3) before it).
    """
    swap = a1 + a2 > b1 + b2
    a1, b1 = jnp.where(swap, b1, a1), jnp.where(swap, a1, b1)
    a2, b2 = jnp.where(swap, b2, a2), jnp.where(swap, a2, b2)
    da, db = a2 - a1, b2 - b1
    s1, s2, ds = a1 + b1, a2 + b2, da + db
    d_a, d_b, d_s, d_s1b, d_s2b = lgamma_bregmans(
        (a2, a1, da), (b2, b1, db), (s2, s1, ds), (s1, b1, a1), (s2, b2, a2)
    )
    shape = jnp.shape(d_a)
    ys, xs, ks = (jnp.stack([jnp.broadcast_to(v, shape) for v in col]) for col in ((s1, b2), (b1, b1), (a1, db)))
    g_s1b, g_b = digamma_difference(ys, xs, ks)
    bregman = (d_a, d_b, -d_s)
    # digamma(s1) - digamma(b1) = a1 trigamma(b1) to rounding where a1 < eps b1; formed as
    # ds a1 trigamma(b1) there, since the difference alone may underflow (1e-40 in float32
    # at a1 = 1e-30, b1 = 1e10: the KL 1e-10 of Beta(1e-30, 1e10) ‖ Beta(1e-30, 1e30) was lost).
    tiny_a1 = a1 < jnp.finfo(jnp.result_type(a1)).eps * b1
    t_b1 = trigamma(b1)
    a1_t = a1 * t_b1
    # The product of three in the order that neither underflows nor overflows midway.
    product = jnp.where(a1_t > jnp.finfo(jnp.result_type(a1)).tiny, ds * a1_t, (ds * t_b1) * a1)
    ds_g = jnp.where(tiny_a1, product, ds * g_s1b)
    regrouped = (d_a, ds_g, -a2 * g_b, d_s1b, -d_s2b)
    size_bregman = d_a + d_b + d_s
    size_regrouped = sum((jnp.abs(t) for t in regrouped[1:]), d_a)
    use = size_regrouped < size_bregman
    value = jnp.where(use, sum(regrouped[1:], regrouped[0]), sum(bregman[1:], bregman[0]))
    size = jnp.where(use, size_regrouped, size_bregman)
    value, size = _beta_kl_tiny_b2(value, size, size_regrouped, regrouped, a2, b1, b2, s2)
    def pair(u, v):
        return jnp.stack(jnp.broadcast_arrays(u, v), axis=-1)

    stirling, size_stirling = dirichlet_kl_stirling(pair(a1, b1), pair(a2, b2))
    use = size_stirling < size
    return jnp.where(use, stirling, value), jnp.where(use, size_stirling, size)


def _beta_kl_tiny_b2(value, size, size_regrouped, regrouped, a2, b1, b2, s2):
    """The regrouped Beta KL with ``-a2 Δψ(b2, b1) - D(s2, b2)`` taken as one term, where the
    two overflow: ``b2`` near the float minimum next to a large ``a2`` (``a2 digamma(b2)``
    ~ ``-a2 / b2``; float32 ``Beta(1e-10, 1e30) ‖ Beta(1e10, 1e-30)`` gave 0 for 1e20).

    Their ``a2 digamma(b2)`` parts cancel exactly, leaving
    ``a2 digamma(b1) - (lgamma(s2) - lgamma(b2))``. Used only where the regrouped sum
    overflowed and this one sums smaller terms, so other inputs keep their values.
    """
    d_a, ds_g, _, d_s1b, _ = regrouped
    psi_term = a2 * digamma(b1)
    lg_s2, lg_b2 = gammaln(s2), gammaln(b2)
    combined = d_a + ds_g + (psi_term - (lg_s2 - lg_b2)) + d_s1b
    combined_size = d_a + jnp.abs(ds_g) + jnp.abs(psi_term) + jnp.abs(lg_s2) + jnp.abs(lg_b2) + jnp.abs(d_s1b)
    use = ~jnp.isfinite(size_regrouped) & (combined_size < size)
    return jnp.where(use, combined, value), jnp.where(use, combined_size, size)


# ---------------------------------------------------------------- Student t
@jax.jit
def studentt_log_normalizer(df):
    """``lgamma((df+1)/2) - lgamma(df/2) - ½ log(df pi)``, without the large-``df`` cancellation.

    With ``a = df/2``: ``lgamma(a + ½) - lgamma(a) = D(a + ½, a) + ½ digamma(a)``
    (``D`` the log-gamma Bregman divergence), so the value is
    ``D(a + ½, a) + ½ (digamma(a) - log a) - ½ log(2 pi)``.
    """
    a = 0.5 * df
    lgamma_ratio_minus_half_digamma = lgamma_bregman(a + 0.5, a, jnp.full_like(a, 0.5))
    return lgamma_ratio_minus_half_digamma + 0.5 * (digamma(a) - jnp.log(a)) - HALF_LOG_2PI


@jax.jit
def studentt_standard_entropy(df):
    """Entropy of ``StudentT(df, 0, 1)`` in nats.

    ``(df+1)/2 [digamma((df+1)/2) - digamma(df/2)] + log(sqrt(df) B(df/2, ½))``;
    for large ``df`` (where the digamma difference cancels) the series
    ``½ log(2 pi e) + e + e²/4 - e³/6 - e⁴/8 + 3e⁵/10 + e⁶/4``, ``e = 1/df``.
    """
    threshold = 100.0 if is64(df.dtype) else 10.0
    large = df > threshold
    d_small = jnp.where(large, 1.0, df)
    h = 0.5 * (d_small + 1)
    # log(sqrt(df) B(df/2, ½)) is minus the log normalizer.
    direct = h * (digamma(h) - digamma(0.5 * d_small)) - studentt_log_normalizer(d_small)
    e = 1 / jnp.where(large, df, threshold)
    series = e * (1 + e * (0.25 + e * (-1 / 6 + e * (-0.125 + e * (0.3 + 0.25 * e)))))
    return jnp.where(large, 0.5 + HALF_LOG_2PI + series, direct)
