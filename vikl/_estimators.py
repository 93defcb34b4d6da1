"""Monte-Carlo estimates of KL(p‖q) from samples of p."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from vikl._base import Distribution
from vikl._math import x_minus_log1p

__all__ = ["Estimate", "estimate_kl"]

_ESTIMATORS = ("k1", "k2", "k3")
# Elements (samples × batch × event) drawn at once by default: 2**19 float32 values
# = 2 MiB per array, small enough to stay in cache. Measured on a 2-core CPU for
# KL(p‖q) of two 10-d Gaussians with 1e6 samples: 124 ms with chunks of 2**19
# elements against 152 ms with 2**22 (and 2x faster for 1e7 scalar Normal draws).
_CHUNK_ELEMENTS = 2**19


class Estimate(NamedTuple):
    """A Monte-Carlo estimate: ``value`` and its standard error ``stderr``.

    ``stderr = sd(per-sample terms) / sqrt(num_samples)``; an interval of
    ``value ± 5 stderr`` holds the exact expectation with overwhelming probability
    when the terms have finite variance. Both have shape ``batch_shape``.
    """

    value: jax.Array
    stderr: jax.Array


def _terms(estimator, log_p, log_q):
    log_r = log_q - log_p  # log q(x)/p(x), x ~ p
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * log_r * log_r
    # k3: (r - 1) - log r, computed as y - log1p(y) with y = expm1(log r), which
    # does not cancel when r is close to 1.
    return x_minus_log1p(jnp.expm1(log_r), log_r)


def _chunk_stats(p, q, key, n, estimator):
    """(mean, M2) of the estimator's terms over ``n`` fresh samples of p."""
    # log p from the noise where the family can (a Gaussian: no triangular solve).
    if isinstance(p, Distribution):
        x, log_p = p.sample_and_log_prob(key, (n,))
    else:
        x = p.sample(key, (n,))
        log_p = p.log_prob(x)
    # Give p's samples leading unit axes so they broadcast against q's batch.
    p_batch = tuple(getattr(p, "batch_shape", ()))
    q_batch = tuple(getattr(q, "batch_shape", ()))
    extra = len(q_batch) - len(p_batch)
    if extra > 0:
        x = x.reshape((n,) + (1,) * extra + x.shape[1:])
        log_p = log_p.reshape((n,) + (1,) * extra + log_p.shape[1:])
    t = _terms(estimator, log_p, q.log_prob(x))
    mean = jnp.mean(t, axis=0)
    m2 = jnp.sum(jnp.square(t - mean), axis=0)
    return mean, m2


def _combine(a, b):
    """Chan et al.'s pairwise update of (count, mean, M2)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    n = na + nb
    delta = mb - ma
    wb = nb / n
    return n, ma + delta * wb, sa + sb + delta * delta * na * wb


def _estimate(p, q, key, num_samples, estimator, chunk_size):
    num_full, rem = divmod(num_samples, chunk_size)
    key_full, key_rem = jax.random.split(key)
    stats = None
    if num_full:
        keys = jax.random.split(key_full, num_full)
        mean0, m20 = _chunk_stats(p, q, keys[0], chunk_size, estimator)
        dtype = mean0.dtype
        init = (jnp.asarray(chunk_size, dtype), mean0, m20)

        def body(carry, k):
            m, s = _chunk_stats(p, q, k, chunk_size, estimator)
            return _combine(carry, (jnp.asarray(chunk_size, dtype), m, s)), None

        stats, _ = lax.scan(body, init, keys[1:])
    if rem:
        m, s = _chunk_stats(p, q, key_rem, rem, estimator)
        part = (jnp.asarray(rem, m.dtype), m, s)
        stats = part if stats is None else _combine(stats, part)
    _, mean, m2 = stats
    var = m2 / (num_samples - 1)
    return Estimate(mean, jnp.sqrt(var / num_samples))


_estimate_jit = jax.jit(_estimate, static_argnums=(3, 4, 5))


def _is_array_pytree(obj) -> bool:
    leaves = jax.tree_util.tree_leaves(obj)
    return all(isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)) or hasattr(leaf, "dtype") for leaf in leaves)


def _default_chunk(p, num_samples):
    shape = ()
    try:
        shape = tuple(getattr(p, "batch_shape", ())) + tuple(getattr(p, "event_shape", ()))
    except Exception:  # pragma: no cover - exotic targets
        shape = ()
    per_sample = max(1, math.prod(shape))
    chunk = _CHUNK_ELEMENTS // per_sample
    if chunk >= num_samples:
        return num_samples
    # An even number of draws: JAX generates normals about twice as fast for an even
    # count of rows as for an odd one (measured: 12 ms against 23 ms for 100,000 and
    # 99,999 draws of a 10-d Gaussian).
    return max(1, chunk - chunk % 2)


def estimate_kl(p, q, key, num_samples: int = 10_000, estimator: str = "k1", *, chunk_size=None):
    """Monte-Carlo estimate of ``KL(p‖q) = E_p[log p(X) − log q(X)]``, in nats.

    Draws ``X_1..X_n ~ p`` and averages one of Schulman's estimators of the
    log-ratio ``log r = log q(X) − log p(X)``:

    * ``"k1"``: ``−log r``. Unbiased; high variance; single terms can be negative.
    * ``"k2"``: ``½ (log r)²``. Biased (it estimates a second-order approximation
      of KL, exact as p → q); low variance; never negative.
    * ``"k3"``: ``(r − 1) − log r``. Unbiased (``E_p[r] = 1``) and never negative,
      with low variance when p ≈ q; heavy-tailed when q has much heavier tails than p.

    All three need normalized ``log_prob`` for both p and q: with an unnormalized
    q (``log q + c``), ``k1`` is shifted by ``−c`` (so it still ranks candidate
    q's and gives correct gradients), while ``k2``/``k3`` are wrong.

    Samples are drawn in chunks so memory stays bounded for any ``num_samples``
    (``1e8`` works); chunk statistics are combined exactly (Chan et al.). The
    whole computation is one compiled program for pytree distributions (vikl's
    and NumPyro's); other objects with ``sample``/``log_prob`` are traced per call.

    Args:
      p: the distribution to sample from; needs ``sample(key, sample_shape)`` and
        ``log_prob(x)``.
      q: needs ``log_prob(x)``.
      key: a JAX PRNG key (typed or legacy); used once, split internally.
      num_samples: number of draws from p (static; >= 2).
      estimator: ``"k1"``, ``"k2"`` or ``"k3"`` (static).
      chunk_size: draws per chunk (static). Defaults to an even number of draws
        holding about 2**19 values (2 MiB of float32), which keeps each chunk in
        cache. Results depend on it (the random stream is split per chunk), not on
        anything else.

    Returns:
      :class:`Estimate` with ``value`` and ``stderr``, of shape
      ``broadcast(p.batch_shape, q.batch_shape)``.

    Raises:
      ValueError: unknown ``estimator`` or ``num_samples < 2``.

    References:
      J. Schulman, "Approximating KL divergence" (2020),
      http://joschu.net/blog/kl-approx.html
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}; got {estimator!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2; got {num_samples!r}")
    for obj, name, needs in ((p, "p", ("sample", "log_prob")), (q, "q", ("log_prob",))):
        for method in needs:
            if not callable(getattr(obj, method, None)):
                raise TypeError(f"estimate_kl: {name} must have a {method}() method; got {type(obj).__name__}")
    if chunk_size is None:
        chunk_size = _default_chunk(p, num_samples)
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    chunk_size = min(chunk_size, num_samples)
    if _is_array_pytree((p, q)):
        return _estimate_jit(p, q, key, num_samples, estimator, chunk_size)
    run = jax.jit(functools.partial(_estimate, p, q), static_argnums=(1, 2, 3))
    return run(key, num_samples, estimator, chunk_size)
