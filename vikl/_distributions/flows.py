"""Normalizing flows on a standard Gaussian base: RealNVP, neural spline flow, IAF (pure JAX).

Each flow is ``x = loc + scale * f(z)``, ``z ~ N(0, I_d)``, where ``f`` applies
its layers (bijectors from :mod:`vikl.bijectors`) in order with a
:class:`vikl.bijectors.Reverse` after each, so consecutive layers transform
different coordinates. ``sample_and_log_prob`` runs the forward pass only;
``log_prob`` runs the inverse pass.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import Distribution, is_concrete, param, static
from vikl._validate import check_int
from vikl.bijectors._flows import (
    AffineCoupling,
    InverseAutoregressiveAffine,
    RationalQuadraticSplineCoupling,
    Reverse,
    _check_finite,
)

__all__ = ["InverseAutoregressiveFlow", "RealNVP", "SplineFlow"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _split(dim: int) -> int:
    """Number of conditioning coordinates ``d1``; each layer transforms the other ``dim - d1``."""
    return dim // 2


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


def _with_reversals(layers):
    """``(l0, Reverse(), l1, Reverse(), ...)``: the bijectors ``f`` applies, in order."""
    out = []
    for layer in layers:
        out += [layer, Reverse()]
    return tuple(out)


def _flip(x):
    return jnp.flip(x, axis=-1)


class _FlowBase(Distribution):
    """Shared passes of the flows: ``x = loc + scale * f(z)``, ``z ~ N(0, I)``.

    A subclass has ``loc`` and ``scale`` parameters and implements
    ``_layers()``, the trainable bijectors; ``f`` applies each followed by a
    reversal of the coordinates.
    """

    def _layers(self):
        raise NotImplementedError

    def _forward(self, z):
        """``f(z)`` and ``sum log|det df/dz|`` (base space -> before the output affine)."""
        logdet = jnp.zeros(z.shape[:-1], z.dtype)
        for layer in self._layers():
            z, ld = layer.forward_and_log_det(z)
            z = _flip(z)
            logdet = logdet + ld
        return z, logdet

    def _inverse(self, y):
        """``f^{-1}(y)`` and ``sum log|det df/dz|`` at that ``z``."""
        logdet = jnp.zeros(y.shape[:-1], y.dtype)
        for layer in reversed(self._layers()):
            y, ld = layer.inverse_and_log_det(_flip(y))
            logdet = logdet - ld
        return y, logdet

    def _base_log_prob(self, z):
        return -0.5 * jnp.sum(z * z, axis=-1) - z.shape[-1] * _HALF_LOG_2PI

    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        return self.loc + self.scale * self._forward(z)[0]

    def sample_and_log_prob(self, key, sample_shape=()):
        z = jax.random.normal(key, self._extended_shape(sample_shape), self.loc.dtype)
        y, logdet = self._forward(z)
        x = self.loc + self.scale * y
        return x, self._base_log_prob(z) - logdet - jnp.sum(jnp.log(self.scale), axis=-1)

    def log_prob(self, x):
        x = jnp.asarray(x)
        if jnp.shape(x)[-1:] != tuple(self.event_shape):
            raise ValueError(
                f"{type(self).__name__}.log_prob: x must have event shape {tuple(self.event_shape)} "
                f"(its last axis); got shape {tuple(jnp.shape(x))}"
            )
        z, logdet = self._inverse((x - self.loc) / self.scale)
        return self._base_log_prob(z) - logdet - jnp.sum(jnp.log(self.scale), axis=-1)

    @property
    def event_shape(self):
        return tuple(jnp.shape(self.loc)[-1:])

    @property
    def bijector(self):
        """``f`` as one :class:`vikl.bijectors.Chain`: a draw is ``loc + scale * f.forward(z)``.

        ``f`` applies ``layer_0, Reverse(), layer_1, Reverse(), ...`` in this order (a Chain
        lists them last-applied first). It is a view: ``sample``/``log_prob`` run the same
        layers directly.
        """
        from vikl.bijectors._combinators import Chain

        return Chain(list(_with_reversals(self._layers()))[::-1])


class RealNVP(_FlowBase):
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
    def num_layers(self) -> int:
        """Number of coupling layers."""
        return len(self.weights)

    def _layers(self):
        d = self.loc.shape[-1]
        return tuple(
            AffineCoupling._unchecked(layer, dim=d, max_log_scale=self.max_log_scale,
                                      activation="tanh")
            for layer in self.weights
        )


# ----------------------------------------------------------------------------- layered flows
class _LayeredFlow(_FlowBase):
    """A flow whose ``layers`` field holds its trainable bijectors (all of ``_layer_type``)."""

    _layer_type = None
    loc: jax.Array = param(constraints.real_vector)
    scale: jax.Array = param(constraints.positive_vector)
    layers: tuple = ()

    def __init__(self, loc, scale, layers):
        name = type(self).__name__
        if not isinstance(layers, (tuple, list)):
            raise TypeError(
                f"{name}: layers must be a tuple of {self._layer_type.__name__} bijectors; "
                f"got {type(layers).__name__}"
            )
        self._setup(loc=loc, scale=scale, layers=tuple(layers))

    def _layers(self):
        return self.layers

    @property
    def num_layers(self) -> int:
        """Number of trainable layers."""
        return len(self.layers)

    def _check_shapes(self):
        name = type(self).__name__
        if jnp.ndim(self.loc) != 1:
            raise ValueError(
                f"{name}: loc must have shape (d,) (one flow per object; vmap for batches); "
                f"got shape {tuple(jnp.shape(self.loc))}"
            )
        d = self.loc.shape[-1]
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, self._layer_type):
                raise TypeError(
                    f"{name}: layers[{i}] must be a {self._layer_type.__name__}; "
                    f"got {type(layer).__name__}"
                )
            if layer.dim != d:
                raise ValueError(f"{name}: layers[{i}] acts on dim {layer.dim}; loc has d = {d}")
            layer._check_shapes()
            dt = layer.weights["w1"].dtype
            if dt != self.loc.dtype:
                raise ValueError(
                    f"{name}: layers[{i}] has dtype {dt}, loc has {self.loc.dtype}; "
                    "use one floating dtype"
                )

    def _check_args(self):
        for i, layer in enumerate(self.layers):
            _check_finite(f"{type(self).__name__}: layers[{i}]", layer.weights)

    def __repr__(self):
        first = self.layers[0] if self.layers else None
        extra = "" if first is None else repr(first)[len(type(first).__name__) + 1:-1]
        extra = ", ".join(p for p in extra.split(", ") if not p.startswith(("dim=", "dtype=")))
        return (f"{type(self).__name__}(dim={self.event_shape[0] if jnp.ndim(self.loc) else '?'}, "
                f"num_layers={self.num_layers}{', ' + extra if extra else ''}, "
                f"dtype={jnp.dtype(self.loc.dtype).name})")


def _start(cls, where, dim, key, num_layers, hidden_size, scale, dtype, make):
    """Checked common arguments and the initial ``(loc, scale, layers)``."""
    dim = check_int("dim", dim, where=where)
    num_layers = check_int("num_layers", num_layers, where=where)
    hidden_size = check_int("hidden_size", hidden_size, where=where)
    dtype = jnp.dtype(dtype if dtype is not None else jnp.zeros(()).dtype)
    keys = jax.random.split(key, num_layers)
    layers = tuple(make(dim, k, hidden_size, dtype) for k in keys)
    loc = jnp.zeros((dim,), dtype)
    scale = jnp.broadcast_to(jnp.asarray(scale, dtype), (dim,))
    return cls(loc, scale, layers)


class SplineFlow(_LayeredFlow):
    """Neural spline flow: rational-quadratic spline couplings on a Gaussian base.

    ``x = loc + scale * f(z)``, ``z ~ N(0, I_d)``; ``f`` stacks
    :class:`vikl.bijectors.RationalQuadraticSplineCoupling` layers (Durkan et
    al. 2019), each followed by a reversal of the coordinates. Each coupling
    maps half of the coordinates through monotone rational-quadratic splines on
    ``[-bound, bound]`` (identity outside) conditioned on the other half.

    Args:
      loc: shift of the output, shape ``(d,)``.
      scale: positive scale of the output, shape ``(d,)``.
      layers: tuple of ``RationalQuadraticSplineCoupling`` on ``R^d``; their
        weights are trained as unconstrained weights by ``fit``.

    ``event_shape = (d,)``, ``batch_shape = ()``; sampling is reparameterized;
    ``sample_and_log_prob`` uses the forward pass only, ``log_prob`` the
    (analytic) inverse. Build one with :meth:`initialize` or
    :func:`vikl.families.spline_flow` (identity at start).
    """

    _layer_type = RationalQuadraticSplineCoupling

    @classmethod
    def initialize(cls, dim: int, key, *, num_layers: int = 4, hidden_size: int = 32,
                   num_bins: int = 8, bound: float = 4.0, scale=1.0, activation: str = "relu",
                   dtype=None):
        """A spline flow equal to ``N(0, diag(scale^2))`` (every layer the identity).

        Args:
          dim: event dimension ``d`` (>= 1).
          key: PRNG key for the hidden weights.
          num_layers: number of spline coupling layers.
          hidden_size: width of each conditioner's two hidden layers.
          num_bins: spline bins ``K`` (>= 2).
          bound: half-width ``B`` of the spline interval in base units.
          scale: initial output scale (a number or shape ``(d,)``).
          activation: the conditioners' nonlinearity, ``"relu"`` or ``"tanh"``.
          dtype: floating dtype (default float32, float64 under x64).
        """
        where = f"{cls.__name__}.initialize"
        num_bins = check_int("num_bins", num_bins, 2, where=where)

        def make(d, k, h, dt):
            return RationalQuadraticSplineCoupling.initialize(
                d, k, hidden_size=h, num_bins=num_bins, bound=bound, activation=activation, dtype=dt)

        return _start(cls, where, dim, key, num_layers, hidden_size, scale, dtype, make)


class InverseAutoregressiveFlow(_LayeredFlow):
    """Inverse autoregressive flow (Kingma et al. 2016) on a Gaussian base.

    ``x = loc + scale * f(z)``, ``z ~ N(0, I_d)``; ``f`` stacks
    :class:`vikl.bijectors.InverseAutoregressiveAffine` layers (MADE
    conditioners), each followed by a reversal of the coordinates. Drawing and
    the log density of the draws (``sample_and_log_prob``) take one network
    pass per layer -- the cheap direction for reverse-KL fitting; ``log_prob``
    at arbitrary points inverts each layer sequentially (``d`` passes).

    Args:
      loc: shift of the output, shape ``(d,)``.
      scale: positive scale of the output, shape ``(d,)``.
      layers: tuple of ``InverseAutoregressiveAffine`` on ``R^d``.

    ``event_shape = (d,)``, ``batch_shape = ()``; sampling is reparameterized.
    Build one with :meth:`initialize` or :func:`vikl.families.iaf`.
    """

    _layer_type = InverseAutoregressiveAffine

    @classmethod
    def initialize(cls, dim: int, key, *, num_layers: int = 4, hidden_size: int = 32,
                   max_log_scale: float = 3.0, scale=1.0, activation: str = "relu", dtype=None):
        """An IAF equal to ``N(0, diag(scale^2))`` (every layer the identity).

        Args:
          dim: event dimension ``d`` (>= 1).
          key: PRNG key for the hidden weights.
          num_layers: number of autoregressive layers.
          hidden_size: width of each MADE conditioner's two hidden layers.
          max_log_scale: bound on each layer's log-scale.
          scale: initial output scale (a number or shape ``(d,)``).
          activation: the conditioners' nonlinearity, ``"relu"`` or ``"tanh"``.
          dtype: floating dtype (default float32, float64 under x64).
        """
        def make(d, k, h, dt):
            return InverseAutoregressiveAffine.initialize(
                d, k, hidden_size=h, max_log_scale=max_log_scale, activation=activation, dtype=dt)

        return _start(cls, f"{cls.__name__}.initialize", dim, key, num_layers, hidden_size,
                      scale, dtype, make)
