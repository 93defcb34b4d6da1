"""The Empirical distribution: a target known only through samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import Distribution, param, static
from vikl._validate import check_int

__all__ = ["Empirical"]


class Empirical(Distribution):
    """The empirical distribution of a fixed set of samples (uniform weight ``1/n`` on each).

    Use it as the target of ``vikl.fit(..., objective="forward_kl")``, which
    needs only samples of the target. It has no density: :meth:`log_prob`
    raises.

    Args:
      samples: array of shape ``(n,) + batch_shape + event_shape``; a floating
        dtype (cast integer data first), finite (NaN and ``+-inf`` are
        rejected: they would make every moment NaN). Not trained by ``fit``.
      event_ndims: number of trailing axes forming one event; default
        ``samples.ndim - 1`` (one distribution, no batch). A smaller value
        makes the middle axes a batch of independent empirical distributions,
        each with ``n`` samples.

    ``sample`` draws with replacement (uniform indices); it is not
    reparameterized (``reparameterized = False``). ``mean`` and ``variance``
    are the sample moments (population variance, ``ddof = 0``).

    Example:
      >>> import jax.numpy as jnp, vikl
      >>> d = vikl.Empirical(jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
      >>> d.num_samples, d.event_shape, d.mean.tolist()
      (3, (2,), [2.0, 3.0])
    """

    samples: jax.Array = param(constraints.fixed)
    event_ndims: int = static()

    reparameterized = False

    def __init__(self, samples, event_ndims=None):
        if samples is None:
            raise ValueError(
                "Empirical: samples is required; got None. Pass an array of shape "
                "(n,) + batch_shape + event_shape."
            )
        ndim = int(np.ndim(samples))
        if ndim < 1:
            raise ValueError(
                f"Empirical: samples must have a leading sample axis, shape (n,) + event_shape; "
                f"got a scalar (shape {np.shape(samples)})"
            )
        if event_ndims is None:
            event_ndims = ndim - 1
        event_ndims = check_int("event_ndims", event_ndims, minimum=0, where="Empirical")
        if not 0 <= event_ndims <= ndim - 1:
            raise ValueError(
                f"Empirical: event_ndims must be in [0, samples.ndim - 1] = [0, {ndim - 1}]; "
                f"got {event_ndims} (samples shape {np.shape(samples)})"
            )
        self._setup(samples=samples, event_ndims=int(event_ndims))

    def _check_shapes(self):
        if self.samples.shape[0] < 1:
            raise ValueError(
                f"Empirical: samples must hold at least one sample; got shape {self.samples.shape}"
            )

    @property
    def batch_shape(self):
        return tuple(self.samples.shape[1 : self.samples.ndim - self.event_ndims])

    @property
    def event_shape(self):
        return tuple(self.samples.shape[self.samples.ndim - self.event_ndims :])

    @property
    def num_samples(self) -> int:
        """Number of stored samples ``n``."""
        return int(self.samples.shape[0])

    def sample(self, key, sample_shape=()):
        """Resamples with replacement: shape ``sample_shape + batch_shape + event_shape``."""
        sample_shape = tuple(sample_shape)
        batch, event = self.batch_shape, self.event_shape
        size = int(np.prod(batch, dtype=np.int64))
        index = jax.random.randint(key, sample_shape + (size,), 0, self.num_samples)
        flat = self.samples.reshape((self.num_samples, size) + event)
        draws = flat[index, jnp.arange(size)]
        return draws.reshape(sample_shape + batch + event)

    def log_prob(self, x):
        raise NotImplementedError(
            "Empirical has no density: it is known only through its samples. Use it as the "
            "target of forward KL (vikl.fit(q, target, objective='forward_kl')), or compare "
            "distributions through samples."
        )

    def entropy(self):
        raise NotImplementedError(
            "Empirical has no density, hence no entropy; estimate the entropy of a fitted "
            "density model instead."
        )

    @property
    def mean(self):
        """Sample mean over the sample axis."""
        return jnp.mean(self.samples, axis=0)

    @property
    def variance(self):
        """Population sample variance (``ddof = 0``) over the sample axis."""
        return jnp.var(self.samples, axis=0)
