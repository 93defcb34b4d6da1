"""The Poisson family, its closed-form KL, and the lattice-entropy helper it shares with Binomial."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, logsumexp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._distributions.categorical import _as_value, _is_integer
from vikl._kl import register_kl
from vikl._math import x_minus_log1p

__all__ = ["Poisson"]


def _window(dtype):
    """Static window length and the largest variance it resolves, per dtype.

    The window holds ``M`` consecutive support points centred on the mode;
    with half-width ``M/2`` at least 7 (float32) / 10 (float64) standard
    deviations the mass left out is below the dtype's round-off.
    """
    if jnp.finfo(dtype).bits > 32:
        return 2048, 10_000.0
    return 256, 300.0


def _lattice_entropy(mode, log_ratio, lower, upper, size):
    """Entropy ``-sum_k p_k log p_k`` of a unimodal lattice pmf, summed over a window.

    ``log_ratio(k) = log p(k+1) - log p(k)`` (called where ``k`` and ``k+1``
    are in ``[lower, upper]``). The unnormalized log-pmf is accumulated
    outward from the mode by two cumulative sums of these O(1) ratios, so no
    large ``lgamma`` terms cancel (accurate in float32 even for huge counts),
    then normalized inside the window.
    """
    half = size // 2
    dtype = mode.dtype
    j = jnp.arange(-half, half, dtype=dtype)
    k = mode[..., None] + j
    in_support = (k >= lower[..., None]) & (k <= upper[..., None])
    step_ok = (k >= lower[..., None]) & (k + 1 <= upper[..., None])
    k_safe = jnp.where(step_ok, k, mode[..., None])
    ratio = jnp.where(step_ok, log_ratio(k_safe), 0.0)
    zero = jnp.zeros(ratio.shape[:-1] + (1,), dtype)
    fwd = jnp.concatenate([zero, jnp.cumsum(ratio[..., half:-1], axis=-1)], axis=-1)
    bwd = -jnp.cumsum(ratio[..., half - 1 :: -1], axis=-1)[..., ::-1]
    s = jnp.where(in_support, jnp.concatenate([bwd, fwd], axis=-1), -jnp.inf)
    log_z = logsumexp(s, axis=-1, keepdims=True)
    w = jnp.exp(s - log_z)
    s_safe = jnp.where(in_support, s, 0.0)
    return log_z[..., 0] - jnp.sum(jnp.where(in_support, w * s_safe, 0.0), axis=-1)


@jax.jit
def _poisson_entropy(rate):
    """Poisson entropy in nats: window sum for moderate rates, asymptotic series beyond.

    ``H(λ) = ½ log(2πeλ) - 1/(12λ) - 1/(24λ²) - 19/(360λ³) - 9/(80λ⁴) + O(λ⁻⁵)``
    (the series is used only where its truncation error is far below round-off).
    Jitted, so that an eager call compiles one program rather than op by op.
    """
    size, v_max = _window(rate.dtype)
    large = rate > v_max
    small_rate = jnp.where(large, 1.0, rate)
    mode = jnp.floor(small_rate)
    log_rate = jnp.log(small_rate)
    exact = _lattice_entropy(
        mode,
        lambda k: log_rate[..., None] - jnp.log1p(k),
        jnp.zeros_like(mode),
        jnp.full_like(mode, jnp.inf),
        size,
    )
    lam = jnp.where(large, rate, v_max)
    u = 1.0 / lam
    series = 0.5 * jnp.log(2 * jnp.pi * jnp.e * lam) - u * (
        1.0 / 12 + u * (1.0 / 24 + u * (19.0 / 360 + u * (9.0 / 80)))
    )
    return jnp.where(large, series, exact)


class Poisson(Distribution):
    """Poisson distribution on ``{0, 1, 2, ...}``: ``P(X = k) = rate^k exp(-rate) / k!``.

    Args:
      rate: mean number of events, > 0.

    Samples are counts in the parameter's floating dtype (exact integers),
    shape ``sample_shape + batch_shape``; sampling is not reparameterized
    (``reparameterized = False``). ``log_prob`` is ``-inf`` at negative or
    non-integer values.

    The entropy has no closed form: :meth:`entropy` sums ``-p log p`` over a
    fixed window of 256 (float32) / 2048 (float64) points around the mode —
    exact to round-off — for ``rate <= 300`` / ``10_000``, and uses the
    asymptotic series ``½ log(2πe rate) - 1/(12 rate) - ...`` above that.

    Example:
      >>> import vikl
      >>> round(float(vikl.Poisson(3.0).mean), 6)
      3.0
    """

    rate: jax.Array = param(constraints.positive)

    reparameterized = False
    support = constraints.nonnegative_integer

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        rate = jax.lax.stop_gradient(self.rate)
        return jax.random.poisson(key, rate, shape).astype(rate.dtype)

    def log_prob(self, x):
        x = _as_value(x, self.rate.dtype)
        valid = (x >= 0) & _is_integer(x)
        xs = jnp.where(valid, x, 0.0)
        out = xs * jnp.log(self.rate) - self.rate - gammaln(xs + 1)
        return jnp.where(valid, out, -jnp.inf)

    def entropy(self):
        """Shannon entropy in nats (window sum or asymptotic series; see the class doc)."""
        return _poisson_entropy(self.rate)

    @property
    def mean(self):
        return self.rate

    @property
    def variance(self):
        return self.rate

    @property
    def mode(self):
        """``floor(rate)`` (also ``rate - 1`` when ``rate`` is an integer)."""
        return jnp.floor(self.rate)


@register_kl(Poisson, Poisson)
@jax.jit
def _kl_poisson_poisson(p, q):
    """KL(Poi(a)‖Poi(b)) = a log(a/b) - a + b = b[x log1p(x) - (x - log1p(x))], x = a/b - 1.

    In nats. The second form keeps full precision for ``a ≈ b`` (the result is
    about ``b x²/2``).
    """
    a, b = p.rate, q.rate
    x = (a - b) / b
    log_ratio = jnp.where(jnp.abs(x) < 0.5, jnp.log1p(x), jnp.log(a) - jnp.log(b))
    # For a > 2 b the plain a log(a/b) - (a - b) loses at most two bits, and it stays
    # finite where x = a/b - 1 overflows (a/b > 3e38 in float32) while the KL does not.
    big = x > 1
    xs = jnp.where(big, 0.0, x)
    near = b * (xs * log_ratio - x_minus_log1p(xs, jnp.where(big, 0.0, log_ratio)))
    return jnp.where(big, a * log_ratio - (a - b), near)
