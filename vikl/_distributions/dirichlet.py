"""The Dirichlet family on the probability simplex and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, polygamma

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._distributions.beta import _beta_kl_and_size
from vikl._kl import register_kl
from vikl._math import x_minus_log1p, xlogy

__all__ = ["Dirichlet"]


def _log_beta(alpha):
    """``log B(alpha) = sum_i log Gamma(alpha_i) - log Gamma(sum_i alpha_i)``."""
    return jnp.sum(gammaln(alpha), axis=-1) - gammaln(jnp.sum(alpha, axis=-1))


class Dirichlet(Distribution):
    """Dirichlet distribution over probability vectors (the last axis).

    ``p(x) = prod_i x_i^(alpha_i - 1) / B(alpha)`` on the simplex
    ``{x : x_i >= 0, sum_i x_i = 1}``, with ``B(alpha) = prod_i Gamma(alpha_i) / Gamma(alpha_0)``
    and ``alpha_0 = sum_i alpha_i``.

    Args:
      concentration: ``alpha``, > 0, shape ``batch + (K,)``.

    Sampling uses ``jax.random.dirichlet`` (normalized Gamma draws, generated in log space so
    small concentrations do not underflow) and is reparameterized through implicit
    differentiation of the Gamma sampler.

    Example:
      >>> import jax.numpy as jnp, vikl
      >>> float(vikl.Dirichlet(jnp.ones(3)).entropy())  # log(1/2) = -0.6931472: uniform on the 2-simplex (float32: JAX gammaln(1) = 4.8e-7)
      -0.69314...
    """

    concentration: jax.Array = param(constraints.positive_vector)

    support = constraints.simplex

    @property
    def event_shape(self):
        return tuple(self.concentration.shape[-1:])

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + tuple(self.batch_shape)
        alpha = self.concentration
        return jax.random.dirichlet(key, alpha, shape, alpha.dtype)

    def log_prob(self, x):
        """``sum_i (alpha_i - 1) log x_i - log B(alpha)``; ``-inf`` off the simplex.

        Points whose entries are negative, or whose sum is off 1 by more than the
        tolerance of ``constraints.simplex``, get ``-inf``. On the boundary (some
        ``x_i = 0``) the density is 0 where ``alpha_i > 1`` and ``+inf`` where ``alpha_i < 1``.
        """
        alpha = self.concentration
        x = jnp.asarray(x, alpha.dtype) if not hasattr(x, "dtype") else x
        inside = constraints.simplex.check(x)
        k = alpha.shape[-1]
        safe = jnp.where(inside[..., None], x, jnp.asarray(1.0 / k, x.dtype))
        value = jnp.sum(xlogy(alpha - 1, safe), axis=-1) - _log_beta(alpha)
        return jnp.where(inside, value, -jnp.inf)

    def entropy(self):
        """``log B(alpha) + (alpha_0 - K) psi(alpha_0) - sum_i (alpha_i - 1) psi(alpha_i)``, nats."""
        alpha = self.concentration
        a0 = jnp.sum(alpha, axis=-1)
        k = alpha.shape[-1]
        return (
            _log_beta(alpha)
            + (a0 - k) * digamma(a0)
            - jnp.sum((alpha - 1) * digamma(alpha), axis=-1)
        )

    @property
    def mean(self):
        alpha = self.concentration
        return alpha / jnp.sum(alpha, axis=-1, keepdims=True)

    @property
    def variance(self):
        alpha = self.concentration
        a0 = jnp.sum(alpha, axis=-1, keepdims=True)
        return alpha * (a0 - alpha) / (a0 * a0 * (a0 + 1))

    @property
    def covariance_matrix(self):
        """``(diag(m) - m m^T) / (alpha_0 + 1)`` with ``m`` the mean; shape ``batch + (K, K)``."""
        alpha = self.concentration
        a0 = jnp.sum(alpha, axis=-1, keepdims=True)
        m = alpha / a0
        outer = m[..., :, None] * m[..., None, :]
        diag = m[..., :, None] * jnp.eye(alpha.shape[-1], dtype=alpha.dtype)
        return (diag - outer) / (a0[..., None] + 1)


# Stirling series of log Gamma: sum_j c_j x^-(2j+1), c_j = B_{2j+2} / ((2j+2)(2j+1)).
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188)


def _phi_poly(m):
    """Coefficients (lowest first) of ``P_m`` with ``(1+t)^-m - 1 + m t = t^2 P_m(t) / (1+t)^m``."""
    one_plus_t_m = np.polynomial.polynomial.polypow([1.0, 1.0], m)
    num = np.polynomial.polynomial.polyadd(
        np.polynomial.polynomial.polysub([1.0], one_plus_t_m),
        np.polynomial.polynomial.polymul([0.0, float(m)], one_plus_t_m),
    )
    return tuple(float(c) for c in num[2:])


_PHI = {2 * j + 1: _phi_poly(2 * j + 1) for j in range(len(_STIRLING))}


def _lgamma_bregman(x, h):
    """``log Gamma(x + h) - log Gamma(x) - psi(x) h`` (>= 0) for ``x > 0``, ``x + h > 0``.

    Accurate to a few ulps for every ``h``, including ``|h| << x`` where the direct
    difference cancels (it is about ``psi'(x) h^2 / 2``). The Bregman divergence is linear in
    the function, so with ``n`` chosen to make ``min(x, x + h) + n`` large,
    ``log Gamma(z) = log Gamma(z + n) - sum_{k<n} log(z + k)`` gives

        B(x, h) = B_Stirling(x + n, h) + sum_{k<n} [t_k - log1p(t_k)],   t_k = h / (x + k),

    and for ``X = x + n``, ``Y = X + h``, ``t = h / X`` the Stirling part is

        Y (u - log1p(u)) + (t - log1p(t)) / 2 + sum_j c_j (Y^-m - X^-m + m h X^-(m+1)),

    ``u = -h / Y``, ``m = 2j + 1``: every piece is a sum of non-negative terms.
    """
    f64 = jnp.finfo(x.dtype).bits > 32
    thr, coefs = (17, _STIRLING) if f64 else (8, _STIRLING[:3])
    y = x + h
    low = jnp.minimum(x, y)

    def shift_step(k, carry):
        acc, shift = carry
        use = low + shift < thr
        term = x_minus_log1p(h / (x + shift))
        return acc + jnp.where(use, term, 0.0), shift + jnp.where(use, 1.0, 0.0)

    zeros = jnp.zeros_like(x)
    acc, shift = jax.lax.fori_loop(0, thr, shift_step, (zeros, zeros))
    xs = x + shift
    ys = xs + h
    t = h / xs
    log1p_t = jnp.log1p(t)
    total = ys * x_minus_log1p(-h / ys, -log1p_t) + 0.5 * x_minus_log1p(t, log1p_t) + acc
    small = jnp.abs(t) < 0.5
    ts = jnp.where(small, t, 0.0)
    for j, c in enumerate(coefs):
        m = 2 * j + 1
        poly = jnp.zeros_like(ts)
        for coef in reversed(_PHI[m]):
            poly = poly * ts + coef
        series = ts * ts * poly / (1 + ts) ** m * xs ** (-m)
        direct = ys ** (-m) - xs ** (-m) + m * h * xs ** (-m - 1)
        total = total + c * jnp.where(small, series, direct)
    return total


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    """KL(Dir(a) ‖ Dir(b)), in nats::

        log Gamma(a_0) - log Gamma(b_0) - sum_i [log Gamma(a_i) - log Gamma(b_i)]
          + sum_i (a_i - b_i) (psi(a_i) - psi(a_0)),        a_0 = sum_i a_i.

    This is the Bregman divergence of the log-normalizer, so it is evaluated as
    ``sum_i B(a_i, b_i - a_i) - B(a_0, b_0 - a_0)`` with
    ``B(x, h) = log Gamma(x + h) - log Gamma(x) - psi(x) h`` computed without cancellation
    (see ``_lgamma_bregman``): nearly equal concentrations keep their digits instead of
    losing them to the difference of ``gammaln`` values.
    """
    a, b = p.concentration, q.concentration
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            "kl_divergence(Dirichlet, Dirichlet): the two have different numbers of "
            f"categories, {a.shape[-1]} and {b.shape[-1]} (concentration shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)})."
        )
    return _kl_concentrations(*jnp.broadcast_arrays(a, b))


@jax.custom_jvp
def _kl_concentrations(a, b):
    """KL(Dir(a) ‖ Dir(b)) for concentrations of equal shape (see ``_kl_dirichlet_dirichlet``).

    Two exact forms, and the one with the smaller sum of term magnitudes wins:

    * the Bregman form ``sum_i B(a_i, h_i) - B(a_0, h_0)``, ``h = b - a``: right for
      nearly equal Dirichlets, but when one component ``k`` carries almost all the
      mass, ``B(a_k, h_k)`` and ``B(a_0, h_0)`` are large and nearly equal;
    * the chain rule split at that component, ``KL(Beta(r, a_k) ‖ Beta(r', b_k))``
      (``r``, ``r'`` the rest's totals; the Beta KL picks its own form, see
      ``beta._beta_kl_and_size``) plus the Bregman form of the rest,
      ``sum_{i != k} B(a_i, h_i) - B(r, r' - r)``.
    """
    h = b - a
    parts = _lgamma_bregman(a, h)
    a0, h0 = jnp.sum(a, axis=-1), jnp.sum(h, axis=-1)
    whole = _lgamma_bregman(a0, h0)
    bregman = jnp.sum(parts, axis=-1) - whole
    if a.shape[-1] < 2:
        return bregman
    k = jnp.argmax(a + b, axis=-1)
    top = jax.nn.one_hot(k, a.shape[-1], dtype=bool)
    pick = lambda v: jnp.sum(jnp.where(top, v, 0.0), axis=-1)  # noqa: E731
    rest = lambda v: jnp.sum(jnp.where(top, 0.0, v), axis=-1)  # noqa: E731
    r, r2, hr = rest(a), rest(b), rest(h)
    beta, beta_size = _beta_kl_and_size(r, pick(a), r2, pick(b))
    rest_parts = rest(parts)
    rest_whole = _lgamma_bregman(r, hr)
    chain = beta + (rest_parts - rest_whole)
    use = beta_size + rest_parts + rest_whole < jnp.sum(parts, axis=-1) + whole
    return jnp.where(use, chain, bregman)


@_kl_concentrations.defjvp
def _kl_concentrations_jvp(primals, tangents):
    # Closed-form derivatives of the Bregman divergence of F(a) = sum log Gamma(a_i) - log Gamma(a_0):
    #   dKL/da = F''(a) (a - b),   dKL/db = F'(b) - F'(a),   F'(a)_i = psi(a_i) - psi(a_0).
    a, b = primals
    da, db = tangents
    a0, b0 = jnp.sum(a, axis=-1), jnp.sum(b, axis=-1)
    grad_a = polygamma(1, a) * (a - b) - (polygamma(1, a0) * (a0 - b0))[..., None]
    grad_b = digamma(b) - digamma(a) - (digamma(b0) - digamma(a0))[..., None]
    return _kl_concentrations(a, b), jnp.sum(grad_a * da + grad_b * db, axis=-1)
