"""The Binomial family and its closed-form KL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from vikl import _constraints as constraints
from vikl._base import Distribution, is_concrete, param
from vikl._kl import register_kl
from vikl._probs import (
    as_value,
    bernoulli_parts,
    is_integer,
    kl_from_parts,
    lattice_entropy,
    lattice_window,
    logits_of,
    probs_of,
    public_repr,
    setup_one_of,
    success_failure,
    xlog,
)

__all__ = ["Binomial"]


@jax.jit
def _binomial_entropy(n, p1, p0, logit):
    """Binomial entropy (one compiled program, also when called eagerly)."""
    size, v_max = lattice_window(n.dtype)
    v = n * p1 * p0
    degenerate = (p1 == 0) | (p0 == 0) | (n == 0)
    large = (v > v_max) & ~degenerate
    use_window = ~large & ~degenerate
    # Window sum (inputs masked so unused branches stay finite).
    n_w = jnp.where(use_window, n, 1.0)
    logit_w = jnp.where(use_window, logit, 0.0)
    p1_w = jnp.where(use_window, p1, 0.5)
    mode = jnp.minimum(jnp.floor((n_w + 1) * p1_w), n_w)
    exact = lattice_entropy(
        mode,
        lambda k: jnp.log(n_w[..., None] - k) - jnp.log1p(k) + logit_w[..., None],
        jnp.zeros_like(mode),
        n_w,
        size,
    )
    # Edgeworth expansion for large variance.
    v_s = jnp.where(large, v, v_max)
    pq = jnp.where(large, p1 * p0, 0.25)
    g1sq = jnp.square(jnp.where(large, p0 - p1, 0.0)) / v_s
    g2 = (1 - 6 * pq) / v_s
    series = 0.5 * jnp.log(2 * jnp.pi * jnp.e * v_s) - (
        g1sq / 12 + g2 * g2 / 48 + 7 * g1sq * g1sq / 48 - g1sq * g2 / 8
    )
    return jnp.where(degenerate, 0.0, jnp.where(large, series, exact))


class Binomial(Distribution):
    """Binomial distribution: successes in ``total_count`` independent trials.

    ``P(X = k) = C(n, k) p^k (1 - p)^(n - k)`` for ``k = 0, ..., n``.

    Args:
      total_count: number of trials ``n``, a non-negative integer (stored in the
        floating dtype; not trained by ``fit``).
      probs: success probability ``p`` in ``[0, 1]``.
      logits: log-odds of success, any real.

    Pass exactly one of ``probs`` / ``logits``; ``d.probs`` and ``d.logits``
    both work afterwards. Samples are counts in the parameter's floating dtype,
    shape ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` off ``{0, ..., n}``.

    The entropy has no closed form: :meth:`entropy` sums ``-p log p`` over a
    window of 256 (float32) / 2048 (float64) points around the mode, exact to
    round-off while the variance ``n p (1 - p)`` is at most 300 / 10_000, and
    uses the Edgeworth expansion
    ``½ log(2πe v) - γ1²/12 - γ2²/48 - 7γ1⁴/48 + γ1²γ2/8`` (``v = np(1-p)``,
    ``γ1² = (1-2p)²/v``, ``γ2 = (1-6p(1-p))/v``, error ``O(v⁻³)``) above that.

    Example:
      >>> import vikl
      >>> d = vikl.Binomial(10, probs=0.3)
      >>> float(d.mean), round(float(d.variance), 6)
      (3.0, 2.1)
    """

    total_count: jax.Array = param(constraints.nonnegative_integer)
    _probs: jax.Array = param(constraints.unit_interval)
    _logits: jax.Array = param(constraints.logit)

    reparameterized = False
    __repr__ = public_repr
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None):
        setup_one_of(
            self, "probs", "logits", {"probs": probs, "logits": logits}, total_count=total_count
        )

    @property
    def probs(self) -> jax.Array:
        """Success probability ``p``, shape ``batch_shape``."""
        return jnp.broadcast_to(probs_of(self), self.batch_shape)

    @property
    def logits(self) -> jax.Array:
        """Log-odds of success ``log p - log(1 - p)``."""
        return jnp.broadcast_to(logits_of(self), self.batch_shape)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        p = jax.lax.stop_gradient(self.probs)
        n = jax.lax.stop_gradient(self.total_count)
        draws = jax.random.binomial(key, n, p, shape, dtype=p.dtype)
        # Exact at the degenerate ends (some samplers return NaN for n = 0).
        draws = jnp.where(p == 0, 0.0, jnp.where(p == 1, n, draws))
        return jnp.where(n == 0, 0.0, draws)

    def log_prob(self, x):
        _, _, log_p1, log_p0 = success_failure(self)
        n = self.total_count
        x = as_value(x, n.dtype)
        valid = (x >= 0) & (x <= n) & is_integer(x)
        xs = jnp.where(valid, x, 0.0)
        log_choose = gammaln(n + 1) - gammaln(xs + 1) - gammaln(n - xs + 1)
        out = log_choose + xlog(xs, log_p1) + xlog(n - xs, log_p0)
        return jnp.where(valid, out, -jnp.inf)

    def entropy(self):
        """Shannon entropy in nats (window sum or Edgeworth series; see the class doc)."""
        p1, p0, _, _ = success_failure(self)
        shape = self.batch_shape
        args = (self.total_count, p1, p0, self.logits)
        return _binomial_entropy(*(jnp.broadcast_to(a, shape) for a in args))

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def variance(self):
        p1, p0, _, _ = success_failure(self)
        return self.total_count * p1 * p0


@register_kl(Binomial, Binomial)
def _kl_binomial_binomial(p, q):
    """KL(Bin(n, a)‖Bin(n, b)) = n [a log(a/b) + (1-a) log((1-a)/(1-b))], in nats.

    Same ``total_count``: ``n`` times the Bernoulli KL, computed as non-negative
    terms ``a g(b/a) + (1-a) g((1-b)/(1-a))``, ``g(t) = t - 1 - log t``, without
    cancellation for nearly equal ``a``, ``b``. Where ``p.total_count >
    q.total_count``, ``+inf`` (``p`` reaches counts ``q`` cannot), unless ``p``
    is a point mass: at 0 (``a = 0``; KL ``= -n_q log(1 - b)``) or at ``n_p``
    (``a = 1``; KL ``= -log q(n_p)``). ``p.total_count < q.total_count`` with
    ``0 < a < 1`` has no closed form: ``NotImplementedError`` on concrete inputs (use
    :func:`vikl.estimate_kl`), ``NaN`` under ``jit``.
    """
    if is_concrete(p, q):
        n_p, n_q = np.asarray(p.total_count), np.asarray(q.total_count)
        a1, a0 = (np.asarray(t) for t in success_failure(p)[:2])
        no_form = (n_p < n_q) & (a1 > 0) & (a0 > 0) & (n_p > 0)
        if np.any(no_form):
            raise NotImplementedError(
                "kl_divergence(Binomial, Binomial) with p.total_count < q.total_count and "
                "0 < p.probs < 1 has no closed form; use "
                "vikl.estimate_kl(p, q, key, num_samples=...)."
            )
    return _kl_binomial_core(p, q)


@jax.jit
def _kl_binomial_core(p, q):
    n_p, n_q = p.total_count, q.total_count
    a1, a0, _, _ = success_failure(p)
    _, _, lb1, lb0 = success_failure(q)
    shape = jnp.broadcast_shapes(p.batch_shape, q.batch_shape)
    n_p, n_q, a1, a0 = (jnp.broadcast_to(t, shape) for t in (n_p, n_q, a1, a0))
    at_zero = (a1 == 0) | (n_p == 0)  # p is the point mass at 0
    at_n = (a0 == 0) & ~at_zero  # p is the point mass at n_p
    no_form = (n_p < n_q) & ~at_zero & ~at_n
    # n times the Bernoulli KL, with n folded into the (homogeneous) Bregman terms so that a
    # representable result does not underflow on the way; 0 for n = 0.
    w, v, lw, lv, x = bernoulli_parts(p, q)
    n_col = jnp.broadcast_to(n_p, shape)[..., None]
    same = kl_from_parts((n_col * w, n_col * v, lw, lv, x))
    out = jnp.where(n_p == n_q, same, jnp.inf)
    out = jnp.where(at_zero, 0.0 - xlog(n_q, lb0), out)  # 0.0 - : no -0.0 at n_q = 0
    # p = delta_{n_p}: KL = -log q(n_p), +inf when n_p > n_q.
    k = jnp.where(at_n & (n_p <= n_q), n_p, 0.0)
    log_q_at_k = (
        gammaln(n_q + 1) - gammaln(k + 1) - gammaln(n_q - k + 1) + xlog(k, lb1) + xlog(n_q - k, lb0)
    )
    out = jnp.where(at_n, jnp.where(n_p <= n_q, -log_q_at_k, jnp.inf), out)
    return jnp.where(no_form, jnp.nan, out)
