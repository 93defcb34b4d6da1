"""Finite mixtures of one batched component family."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from vikl import _constraints as constraints
from vikl._base import Distribution, param
from vikl._probs import public_repr as _public_repr
from vikl._probs import safe_log as _safe_log
from vikl._probs import setup_one_of as _setup_one_of
from vikl._validate import ArgumentTypeError

__all__ = ["Mixture"]


class Mixture(Distribution):
    """Finite mixture ``p(x) = sum_k w_k p_k(x)`` of the components of one batched distribution.

    Args:
      mixture_logits: unnormalized log-weights, shape ``(..., K)``; normalized
        with ``log_softmax``. An entry may be ``-inf`` (a component of weight
        0), but not NaN or ``+inf``, and each row needs one finite entry.
      components: ONE :class:`vikl.Distribution` whose *last batch axis* indexes
        the ``K`` components (e.g. ``vikl.Normal(loc, scale)`` with ``loc`` of
        shape ``(K,)``, or ``vikl.MultivariateNormalDiag`` with ``loc`` of shape
        ``(K, d)``). It is a child pytree: ``fit`` trains its parameters too.
      weights: mixing probabilities, shape ``(..., K)`` (non-negative, summing
        to 1); keyword-only, instead of ``mixture_logits``. ``K >= 1``.

    Pass exactly one of ``mixture_logits`` / ``weights``; both properties work
    afterwards. ``batch_shape`` is ``broadcast(weights batch, components.batch_shape[:-1])``
    and ``event_shape`` is ``components.event_shape``.

    ``sample`` draws a component index from the weights, then the component's
    value. Given the index it is as differentiable as the component's sample,
    but it carries no gradient to the weights, so the class sets
    ``reparameterized = False``: pathwise (reparameterization) gradients of a
    mixture are biased for the weights. ``log_prob`` uses ``logsumexp``. There
    is no closed-form entropy or KL: use :func:`vikl.estimate_kl`.

    Example:
      >>> import jax.numpy as jnp, vikl
      >>> m = vikl.Mixture(weights=[0.3, 0.7], components=vikl.Normal(jnp.array([-1.0, 2.0]), 1.0))
      >>> round(float(m.mean), 6), round(float(m.variance), 6)  # 1.1, 1 + 0.21 * 9
      (1.1, 2.89)
    """

    _mixture_logits: jax.Array = param(constraints.logits_vector)
    _weights: jax.Array = param(constraints.simplex)
    components: Distribution

    reparameterized = False
    __repr__ = _public_repr

    def __init__(self, mixture_logits=None, components=None, *, weights=None):
        if not isinstance(components, Distribution):
            raise ArgumentTypeError(
                "Mixture: components must be one batched vikl Distribution whose last batch axis "
                f"indexes the components; got {type(components).__name__}"
            )
        _setup_one_of(
            self,
            "mixture_logits",
            "weights",
            {"mixture_logits": mixture_logits, "weights": weights},
            components=components,
        )

    def _check_shapes(self):
        comp = self.components.batch_shape
        v = self._weights if self._weights is not None else self._mixture_logits
        name = "weights" if self._weights is not None else "mixture_logits"
        if len(comp) < 1:
            raise ValueError(
                "Mixture: components must have at least one batch axis (the last one indexes the "
                f"components); got batch_shape {tuple(comp)}"
            )
        if v.shape[-1] != comp[-1]:
            raise ValueError(
                f"Mixture: {name} has {v.shape[-1]} entries along its last axis (shape "
                f"{tuple(v.shape)}) but the components' last batch axis has {comp[-1]} "
                f"(components.batch_shape {tuple(comp)}); they must match."
            )
        try:
            jnp.broadcast_shapes(v.shape[:-1], comp[:-1])
        except ValueError as err:
            raise ValueError(
                f"Mixture: batch shapes do not broadcast: {name} {tuple(v.shape[:-1])} vs "
                f"components {tuple(comp[:-1])}"
            ) from err

    # ------------------------------------------------------------ shapes and params
    @property
    def batch_shape(self):
        v = self._weights if self._weights is not None else self._mixture_logits
        return tuple(jnp.broadcast_shapes(v.shape[:-1], tuple(self.components.batch_shape)[:-1]))

    @property
    def event_shape(self):
        return tuple(self.components.event_shape)

    @property
    def support(self):
        return self.components.support

    @property
    def num_components(self) -> int:
        """Number of components ``K``."""
        return int(self.components.batch_shape[-1])

    @property
    def weights(self) -> jax.Array:
        """Mixing probabilities, shape ``(..., K)``."""
        if self._weights is not None:
            return self._weights
        return jax.nn.softmax(self._mixture_logits, axis=-1)

    @property
    def mixture_logits(self) -> jax.Array:
        """Normalized log-weights, shape ``(..., K)`` (``-inf`` where a weight is 0)."""
        if self._mixture_logits is not None:
            return jax.nn.log_softmax(self._mixture_logits, axis=-1)
        return _safe_log(self._weights)

    def strata(self):
        """``(log_weights, components)``: objectives draw from each component (stratified)."""
        return jax.nn.log_softmax(self.mixture_logits, axis=-1), self.components

    # ------------------------------------------------------------ interface
    def component_log_probs(self, x):
        """``log w_k + log p_k(x)`` for every component, shape ``(...,) + batch_shape + (K,)``.

        Its ``logsumexp`` over the last axis is ``log_prob(x)``; its softmax gives
        the posterior responsibilities ``P(component = k | x)``.
        """
        e = len(self.event_shape)
        x = jnp.expand_dims(jnp.asarray(x), -(e + 1))
        return self.components.log_prob(x) + self.mixture_logits

    def log_prob(self, x):
        return logsumexp(self.component_log_probs(x), axis=-1)

    def _component_draws(self, key, sample_shape):
        """Independent draws of every component: ``sample_shape + batch_shape + (K,) + event``."""
        batch = self.batch_shape
        comp = tuple(self.components.batch_shape)[:-1]
        lead = batch[: len(batch) - len(comp)]
        aligned = batch[len(batch) - len(comp) :]
        s = len(sample_shape) + len(lead)
        if tuple(aligned) == comp:
            return self.components.sample(key, tuple(sample_shape) + tuple(lead))
        # The weights broadcast a size-1 component axis: draw those positions
        # separately (as extra sample axes) so that batch members stay independent.
        extra = tuple(b if c == 1 else 1 for b, c in zip(aligned, comp))
        x = self.components.sample(key, tuple(sample_shape) + tuple(lead) + extra)
        c = len(comp)
        keep = [s + i if comp[i] == 1 else s + c + i for i in range(c)]
        drop = [s + i if comp[i] != 1 else s + c + i for i in range(c)]
        perm = list(range(s)) + keep + drop + list(range(s + 2 * c, x.ndim))
        x = jnp.transpose(x, perm)
        return x.reshape(tuple(sample_shape) + tuple(batch) + x.shape[s + 2 * c :])

    def sample(self, key, sample_shape=()):
        key_index, key_components = jax.random.split(key)
        sample_shape = tuple(sample_shape)
        shape = sample_shape + self.batch_shape
        e = len(self.event_shape)
        logits = jax.lax.stop_gradient(self.mixture_logits)
        index = jax.random.categorical(key_index, logits, axis=-1, shape=shape)
        draws = self._component_draws(key_components, sample_shape)
        index = index.reshape(shape + (1,) * (e + 1))
        index = jnp.broadcast_to(index, shape + (1,) + draws.shape[len(shape) + 1 :])
        return jnp.take_along_axis(draws, index, axis=len(shape))[(Ellipsis, 0) + (slice(None),) * e]

    def _weights_for_event(self):
        w = self.weights
        return w.reshape(w.shape + (1,) * len(self.event_shape))

    @property
    def mean(self):
        """``sum_k w_k mean_k``."""
        axis = -(len(self.event_shape) + 1)
        return jnp.sum(self._weights_for_event() * self.components.mean, axis=axis)

    @property
    def variance(self):
        """Law of total variance: ``sum_k w_k [var_k + (mean_k - mean)²]`` (per coordinate)."""
        axis = -(len(self.event_shape) + 1)
        w = self._weights_for_event()
        mu = self.components.mean
        centre = jnp.expand_dims(jnp.sum(w * mu, axis=axis), axis)
        return jnp.sum(w * (self.components.variance + jnp.square(mu - centre)), axis=axis)

    def entropy(self):
        raise NotImplementedError(
            "Mixture has no closed-form entropy; estimate it as "
            "-mean(m.log_prob(m.sample(key, (n,)))) or use vikl.estimate_kl."
        )
