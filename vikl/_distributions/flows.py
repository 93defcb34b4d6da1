"""Normalizing flows: RealNVP (affine coupling layers on a Gaussian base), pure JAX."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import Distribution, is_concrete, param, static
from vikl._validate import check_int

__all__ = ["RealNVP"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _split(dim: int) -> int:
    """Number of conditioning coordinates ``d1``; each layer transforms the other ``dim - d1``."""
    return dim // 2


def _conditioner(layer, za, max_log_scale):
    """Shift ``t`` and bounded log-scale ``s`` of the transformed half, from ``za``."""
    h = jnp.tanh(za @ layer["w1"] + layer["b1"])
    h = jnp.tanh(h @ layer["w2"] + layer["b2"])
    out = h @ layer["w3"] + layer["b3"]
    d2 = out.shape[-1] // 2
    raw_s, t = out[..., :d2], out[..., d2:]
    s = max_log_scale * jnp.tanh(raw_s / max_log_scale)
    return s, t


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _init_weights(key, dim, num_layers, hidden_size, dtype):
    """Conditioner weights: hidden layers ``N(0, 1/fan_in)``, output layer zero (identity)."""
    d1 = _split(dim)
    d2 = dim - d1
    layers = []
    for k in jax.random.split(key, num_layers):
        k1, k2 = jax.random.split(k)
        layers.append({
            "w1": jax.random.normal(k1, (d1, hidden_size), dtype) / math.sqrt(max(d1, 1)),
            "b1": jnp.zeros((hidden_size,), dtype),
            "w2": jax.random.normal(k2, (hidden_size, hidden_size), dtype) / math.sqrt(hidden_size),
            "b2": jnp.zeros((hidden_size,), dtype),
            "w3": jnp.zeros((hidden_size, 2 * d2), dtype),
            "b3": jnp.zeros((2 * d2,), dtype),
        })
    return tuple(layers)


class RealNVP(Distribution):
    """RealNVP normalizing flow: affine coupling layers on a standard Gaussian base.

    A draw is ``x = loc + scale * f(z)``, ``z ~ N(0, I_d)``, where ``f`` is a
    stack of ``num_layers`` affine couplings (Dinh et al. 2017). Each coupling
    keeps the first ``d1 = d // 2`` coordinates ``a`` and maps the rest ``b`` to
    ``b * exp(s(a)) + t(a)``, with ``s, t`` from a two-hidden-layer tanh MLP
    (``s`` bounded by ``max_log_scale`` through a tanh); the coordinates are
    then reversed so the next layer transforms the other half.

    ``log q(x) = log N(z; 0, I) - sum_layers sum s - sum log scale`` (change of
    variables; ``z = f^{-1}((x - loc) / scale)``), in nats.

    Args:
      loc: shift of the output, shape ``(d,)``.
      scale: positive scale of the output, shape ``(d,)``.
      weights: tuple of ``num_layers`` dicts with ``w1 (d1, h)``, ``b1 (h,)``,
        ``w2 (h, h)``, ``b2 (h,)``, ``w3 (h, 2 (d - d1))``, ``b3 (2 (d - d1),)``;
        trained as unconstrained weights by ``fit``.
      max_log_scale: bound on each coupling's log-scale (static), finite and > 0.

    Raises:
      ValueError: a non-finite ``loc``, ``scale`` or weight (checked at
        construction on concrete values), mismatched weight shapes, or a
        ``max_log_scale`` that is not finite and > 0.

    ``event_shape = (d,)``, ``batch_shape = ()``. Sampling is reparameterized.
    ``log_prob`` runs the inverse pass; ``sample_and_log_prob`` uses the
    forward pass only. Build one with :meth:`initialize` (identity at start).
    """

    loc: jax.Array = param(constraints.real_vector)
    scale: jax.Array = param(constraints.positive_vector)
    weights: tuple = ()
    max_log_scale: float = static(default=3.0)

    def __init__(self, loc, scale, weights, max_log_scale=3.0):
        weights = tuple(
            {k: jnp.asarray(v) for k, v in dict(layer).items()} for layer in weights
        )
        if not (isinstance(max_log_scale, (int, float, np.integer, np.floating))
                and not isinstance(max_log_scale, bool)
                and math.isfinite(max_log_scale) and max_log_scale > 0):
            raise ValueError(
                f"RealNVP: max_log_scale must be a finite number > 0; got {max_log_scale!r}"
            )
        self._setup(loc=loc, scale=scale, weights=weights, max_log_scale=float(max_log_scale))

    @classmethod
    def initialize(cls, dim: int, key, *, num_layers: int = 4, hidden_size: int = 32,
                   loc=None, scale=None, dtype=None):
        """A flow that starts as the identity: ``x = loc + scale * z``.

        Hidden weights are drawn ``N(0, 1/fan_in)``; the output layer of each
        conditioner is zero, so every coupling starts as the identity and the
        flow equals ``N(loc, diag(scale^2))`` (default ``N(0, I)``).

        Args:
          dim: event dimension ``d`` (>= 1).
          key: PRNG key for the hidden weights.
          num_layers: number of coupling layers (depth).
          hidden_size: width of the conditioners' hidden layers.
          loc, scale: initial output shift and scale (default 0 and 1).
          dtype: floating dtype (default: float32, or float64 under x64).
        """
        where = "RealNVP.initialize"
        dim = check_int("dim", dim, where=where)
        num_layers = check_int("num_layers", num_layers, where=where)
        hidden_size = check_int("hidden_size", hidden_size, where=where)
        dtype = jnp.dtype(dtype if dtype is not None else jnp.zeros(()).dtype)
        layers = _init_weights(key, dim, num_layers, hidden_size, dtype)
        loc = jnp.zeros((dim,), dtype) if loc is None else jnp.asarray(loc, dtype)
        scale = jnp.ones((dim,), dtype) if scale is None else jnp.asarray(scale, dtype)
        return cls(loc, scale, layers)

    def _check_shapes(self):
        if jnp.ndim(self.loc) != 1:
            raise ValueError(
                f"RealNVP: loc must have shape (d,) (one flow per object; vmap for batches); "
                f"got shape {tuple(jnp.shape(self.loc))}"
            )
        d = self.loc.shape[-1]
        d1, d2 = _split(d), d - _split(d)
        for i, layer in enumerate(self.weights):
            missing = {"w1", "b1", "w2", "b2", "w3", "b3"} - set(layer)
            if missing:
                raise ValueError(f"RealNVP: weights[{i}] lacks {sorted(missing)}")
            h = layer["w1"].shape[-1]
            want = {"w1": (d1, h), "b1": (h,), "w2": (h, h), "b2": (h,), "w3": (h, 2 * d2), "b3": (2 * d2,)}
            for name, shape in want.items():
                if tuple(layer[name].shape) != shape:
                    raise ValueError(
                        f"RealNVP: weights[{i}]['{name}'] must have shape {shape} for d = {d}; "
                        f"got {tuple(layer[name].shape)}"
                    )
                if layer[name].dtype != self.loc.dtype:
                    raise ValueError(
                        f"RealNVP: weights[{i}]['{name}'] has dtype {layer[name].dtype}, "
                        f"loc has {self.loc.dtype}; use one floating dtype"
                    )

    def _check_args(self):
        if not is_concrete(self.weights):
            return
        for i, layer in enumerate(self.weights):
            for name in sorted(layer):
                w = np.asarray(layer[name])
                bad = ~np.isfinite(w)
                if bad.any():
                    raise ValueError(
                        f"RealNVP: weights[{i}]['{name}'] must be finite; got "
                        f"{constraints._nonfinite_counts(w)} value(s) (shape {w.shape}). "
                        "A non-finite weight makes every sample and log_prob NaN."
                    )

    def __repr__(self):
        hidden = self.weights[0]["w1"].shape[-1] if self.weights else 0
        return (
            f"RealNVP(dim={self.event_shape[0] if jnp.ndim(self.loc) else '?'}, "
            f"num_layers={self.num_layers}, hidden_size={hidden}, dtype={jnp.dtype(self.loc.dtype).name})"
        )

    @property
    def event_shape(self):
        return tuple(jnp.shape(self.loc)[-1:])

    @property
    def num_layers(self) -> int:
        """Number of coupling layers."""
        return len(self.weights)

    def _forward(self, z):
        """``f(z)`` and ``sum log|det df/dz|`` (base space -> before the output affine)."""
        d1 = _split(z.shape[-1])
        logdet = jnp.zeros(z.shape[:-1], z.dtype)
        for layer in self.weights:
            za, zb = z[..., :d1], z[..., d1:]
            s, t = _conditioner(layer, za, self.max_log_scale)
            z = jnp.flip(jnp.concatenate([za, zb * jnp.exp(s) + t], axis=-1), axis=-1)
            logdet = logdet + jnp.sum(s, axis=-1)
        return z, logdet

    def _inverse(self, y):
        """``f^{-1}(y)`` and ``sum log|det df/dz|`` at that ``z``."""
        d1 = _split(y.shape[-1])
        logdet = jnp.zeros(y.shape[:-1], y.dtype)
        for layer in reversed(self.weights):
            y = jnp.flip(y, axis=-1)
            ya, yb = y[..., :d1], y[..., d1:]
            s, t = _conditioner(layer, ya, self.max_log_scale)
            y = jnp.concatenate([ya, (yb - t) * jnp.exp(-s)], axis=-1)
            logdet = logdet + jnp.sum(s, axis=-1)
        return y, logdet

    def _base_log_prob(self, z):
        return -0.5 * jnp.sum(z * z, axis=-1) - z.shape[-1] * _HALF_LOG_2PI

    def sample(self, key, sample_shape=()):
        return self.sample_and_log_prob(key, sample_shape)[0]

    def sample_and_log_prob(self, key, sample_shape=()):
        z = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        y, logdet = self._forward(z)
        x = self.loc + self.scale * y
        return x, self._base_log_prob(z) - logdet - jnp.sum(jnp.log(self.scale), axis=-1)

    def log_prob(self, x):
        x = jnp.asarray(x)
        z, logdet = self._inverse((x - self.loc) / self.scale)
        return self._base_log_prob(z) - logdet - jnp.sum(jnp.log(self.scale), axis=-1)
