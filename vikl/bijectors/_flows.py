"""Flow layers (``event_ndims = 1``): affine and rational-quadratic spline couplings, IAF, Reverse.

Each layer is a :class:`Bijector` whose network weights live in one plain
child field ``weights`` (a dict of arrays): :func:`vikl.fit` trains their
floating leaves as unconstrained weights. Every initializer here zeroes the
output layer, so a fresh layer is the identity map.

Conditioners are small multilayer perceptrons with two hidden layers:
``out = a(a(x w1 + b1) w2 + b2) w3 + b3`` with ``a`` = ``relu`` (the default of
the spline and IAF layers: in reverse-KL fits it trains markedly faster) or
``tanh`` (:class:`AffineCoupling`'s default, RealNVP's original choice). A coupling layer conditions on
the first ``d1 = d // 2`` coordinates and transforms the other ``d - d1``; stack
layers with :class:`Reverse` in between so every coordinate gets transformed.

References:
  Dinh, Sohl-Dickstein, Bengio (2017). Density estimation using Real NVP.
  Durkan, Bekasov, Murray, Papamakarios (2019). Neural spline flows.
  Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling (2016). Improved
  variational inference with inverse autoregressive flow.
  Germain, Gregor, Murray, Larochelle (2015). MADE: masked autoencoder for
  distribution estimation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import is_concrete, static
from vikl.bijectors._bijector import Bijector

__all__ = [
    "AffineCoupling",
    "InverseAutoregressiveAffine",
    "RationalQuadraticSplineCoupling",
    "Reverse",
]

_MLP_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")


# ----------------------------------------------------------------------------- helpers
_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _mlp(w, x, activation="tanh"):
    """Two hidden layers (``activation``) and a linear output (``w`` a dict of weights)."""
    act = _ACTIVATIONS[activation]
    h = act(x @ w["w1"] + w["b1"])
    h = act(h @ w["w2"] + w["b2"])
    return h @ w["w3"] + w["b3"]


def _check_activation(owner: str, activation) -> str:
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"{owner}: activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}"
        )
    return activation


def _bounded(raw, bound):
    """``bound * tanh(raw / bound)``: a log-scale kept in ``(-bound, bound)``, slope 1 at 0."""
    return bound * jnp.tanh(raw / bound)


def init_mlp(key, n_in: int, hidden: int, n_out: int, dtype) -> dict:
    """Conditioner weights: hidden layers ``N(0, 1/fan_in)``, output layer zero."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (n_in, hidden), dtype) / math.sqrt(max(n_in, 1)),
        "b1": jnp.zeros((hidden,), dtype),
        "w2": jax.random.normal(k2, (hidden, hidden), dtype) / math.sqrt(hidden),
        "b2": jnp.zeros((hidden,), dtype),
        "w3": jnp.zeros((hidden, n_out), dtype),
        "b3": jnp.zeros((n_out,), dtype),
    }


def init_mlp_spread(key, n_in: int, hidden: int, n_out: int, dtype) -> dict:
    """:func:`init_mlp` with hidden biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    With zero biases a ReLU network is positively homogeneous in its input
    (``net(c a) = c net(a)`` for ``c > 0``, ``b3`` aside): every kink sits at
    the origin, so at the start a conditioner can only scale one fixed pattern
    along each ray, and the fit must first grow the biases. Random biases
    spread the kinks over the inputs' range from the first step. The output
    layer stays zero (the layer is still the identity) and the hidden weights
    are the ones :func:`init_mlp` draws from the same key.
    """
    w = init_mlp(key, n_in, hidden, n_out, dtype)
    kb1, kb2 = jax.random.split(jax.random.fold_in(key, 1))
    lim1, lim2 = 1 / math.sqrt(max(n_in, 1)), 1 / math.sqrt(hidden)
    w["b1"] = jax.random.uniform(kb1, (hidden,), dtype, -lim1, lim1)
    w["b2"] = jax.random.uniform(kb2, (hidden,), dtype, -lim2, lim2)
    return w


def _as_weights(owner: str, weights) -> dict:
    if not isinstance(weights, dict):
        raise TypeError(
            f"{owner}: weights must be a dict with keys {list(_MLP_KEYS)}; "
            f"got {type(weights).__name__}"
        )
    missing = set(_MLP_KEYS) - set(weights)
    if missing:
        raise ValueError(f"{owner}: weights lacks {sorted(missing)} (needs {list(_MLP_KEYS)})")
    return {k: jnp.asarray(weights[k]) for k in _MLP_KEYS}


def _check_mlp_shapes(owner: str, w: dict, n_in: int, n_out: int) -> None:
    """Raises ValueError unless ``w`` maps ``n_in`` inputs to ``n_out`` outputs, one dtype."""
    h = w["w1"].shape[-1] if jnp.ndim(w["w1"]) == 2 else -1
    want = {"w1": (n_in, h), "b1": (h,), "w2": (h, h), "b2": (h,), "w3": (h, n_out), "b3": (n_out,)}
    dtype = w["w1"].dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{owner}: weights must be floating arrays; got dtype {dtype}")
    for name, shape in want.items():
        if tuple(w[name].shape) != shape:
            raise ValueError(
                f"{owner}: weights['{name}'] must have shape {shape}; got {tuple(w[name].shape)}"
            )
        if w[name].dtype != dtype:
            raise ValueError(
                f"{owner}: weights['{name}'] has dtype {w[name].dtype}, weights['w1'] has {dtype}; "
                "use one floating dtype"
            )


def _check_finite(owner: str, w: dict) -> None:
    if not is_concrete(w):
        return
    for name in _MLP_KEYS:
        a = np.asarray(w[name])
        if not np.isfinite(a).all():
            raise ValueError(
                f"{owner}: weights['{name}'] must be finite; got "
                f"{constraints._nonfinite_counts(a)} value(s) (shape {a.shape})"
            )


class _Layer(Bijector):
    """Shared plumbing of the network layers: a ``weights`` dict and a static ``dim``."""

    event_ndims_in = 1
    event_ndims_out = 1

    def _check_shapes(self):
        _check_mlp_shapes(type(self).__name__, self.weights, *self._mlp_sizes())

    def _check_args(self):
        _check_finite(type(self).__name__, self.weights)

    def _mlp_sizes(self):
        """``(inputs, outputs)`` of the conditioner."""
        raise NotImplementedError

    @classmethod
    def _unchecked(cls, weights, **static_fields):
        """A layer built without checks (weights already validated, possibly traced)."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "weights", weights)
        for k in cls._static_fields:
            object.__setattr__(obj, k, static_fields[k])
        return obj

    @property
    def hidden_size(self) -> int:
        """Width of the conditioner's hidden layers."""
        return int(self.weights["w1"].shape[-1])

    def _checked(self, x, what):
        x = jnp.asarray(x)
        self._check_event(x, 1, what, (self.dim,))
        if not jnp.issubdtype(x.dtype, jnp.floating):  # integer input: the weights' dtype
            x = x.astype(self.weights["w1"].dtype)
        return x

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k in type(self)._static_fields if k != "dim")
        return (f"{type(self).__name__}(dim={self.dim}, hidden_size={self.hidden_size}{extra}, "
                f"dtype={jnp.dtype(self.weights['w1'].dtype).name})")


# ----------------------------------------------------------------------------- Reverse
class Reverse(Bijector):
    """Reverses the order of the last axis: ``y = x[..., ::-1]``; log-Jacobian 0.

    Placed between coupling or autoregressive layers so that the next layer
    conditions on (or transforms) the other coordinates.
    """

    event_ndims_in = 1
    event_ndims_out = 1
    is_constant_jacobian = True

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        self._check_event(x, 1, "x")
        return jnp.flip(x, axis=-1), jnp.zeros(x.shape[:-1], x.dtype)

    def inverse_and_log_det(self, y):
        return self.forward_and_log_det(y)


# ----------------------------------------------------------------------------- affine coupling
class AffineCoupling(_Layer):
    """RealNVP's affine coupling layer (Dinh et al. 2017).

    With ``a = x[..., :d1]``, ``b = x[..., d1:]`` (``d1 = d // 2``) and
    ``(raw_s, t) = MLP(a)``: ``y = [a, b * exp(s) + t]`` where
    ``s = max_log_scale * tanh(raw_s / max_log_scale)``;
    ``log|det dy/dx| = sum s``. The inverse is exact and as cheap.

    Args:
      weights: dict ``w1 (d1, h)``, ``b1 (h,)``, ``w2 (h, h)``, ``b2 (h,)``,
        ``w3 (h, 2 (d - d1))``, ``b3 (2 (d - d1),)``; the last ``d - d1``
        outputs are the shift ``t``, the first the raw log-scale.
      dim: event size ``d`` (static).
      max_log_scale: bound on ``|s|`` (static), finite and > 0.
      activation: ``"tanh"`` (default) or ``"relu"``, the hidden layers' nonlinearity.
    """

    weights: dict = None
    dim: int = static(default=2)
    max_log_scale: float = static(default=3.0)
    activation: str = static(default="tanh")

    def __init__(self, weights, dim, max_log_scale=3.0, activation="tanh"):
        name = type(self).__name__
        weights = _as_weights(name, weights)
        dim = _static_int(name, "dim", dim)
        _check_scale_bound(name, max_log_scale)
        self._setup(weights=weights, dim=dim, max_log_scale=float(max_log_scale),
                    activation=_check_activation(name, activation))

    def _mlp_sizes(self):
        return self.dim // 2, 2 * (self.dim - self.dim // 2)

    @classmethod
    def initialize(cls, dim: int, key, *, hidden_size: int = 32, max_log_scale: float = 3.0,
                   activation: str = "tanh", dtype=None):
        """An identity coupling on ``R^dim`` (output layer zero)."""
        dim = _static_int(cls.__name__, "dim", dim)
        hidden_size = _static_int(cls.__name__, "hidden_size", hidden_size)
        d1 = dim // 2
        return cls(init_mlp(key, d1, hidden_size, 2 * (dim - d1), _float(dtype)), dim,
                   max_log_scale, activation)

    def _shift_and_log_scale(self, a):
        out = _mlp(self.weights, a, self.activation)
        d2 = out.shape[-1] // 2
        return _bounded(out[..., :d2], self.max_log_scale), out[..., d2:]

    def forward_and_log_det(self, x):
        x = self._checked(x, "x")
        d1 = self.dim // 2
        a, b = x[..., :d1], x[..., d1:]
        s, t = self._shift_and_log_scale(a)
        return jnp.concatenate([a, b * jnp.exp(s) + t], axis=-1), jnp.sum(s, axis=-1)

    def inverse_and_log_det(self, y):
        y = self._checked(y, "y")
        d1 = self.dim // 2
        a, b = y[..., :d1], y[..., d1:]
        s, t = self._shift_and_log_scale(a)
        return jnp.concatenate([a, (b - t) * jnp.exp(-s)], axis=-1), -jnp.sum(s, axis=-1)


# ----------------------------------------------------------------------------- spline coupling
_MIN_BIN = 1e-3
_MIN_DERIVATIVE = 1e-3


def _softplus(v):
    """``log(1 + exp(v))`` without overflow (fewer ops than ``jax.nn.softplus``)."""
    return jnp.maximum(v, 0) + jnp.log1p(jnp.exp(-jnp.abs(v)))


def _spline_params(raw, num_bins: int, bound: float):
    """Knots and derivatives of a rational-quadratic spline from raw network outputs.

    ``raw`` has ``3 K - 1`` entries on its last axis: ``K`` for the widths,
    ``K`` for the heights (softmax, each bin at least ``_MIN_BIN`` of the
    interval) and ``K - 1`` for the interior derivatives (softplus shifted to
    equal 1 at ``raw = 0``, plus ``_MIN_DERIVATIVE``). The boundary derivatives
    are 1, matching the identity tails.

    Returns:
      ``(xk, yk, dk)``: knot x positions and heights, shape ``(..., K + 1)``,
      running from ``-bound`` to ``bound``, and derivatives ``(..., K + 1)``.
    """
    k = num_bins
    dtype = raw.dtype

    # Running sums as one small matmul (a cumsum lowers to a slow reduce-window on CPU).
    upper = jnp.asarray(np.triu(np.ones((k, k - 1))), dtype)

    def knots(r):
        frac = _MIN_BIN + (1 - _MIN_BIN * k) * jax.nn.softmax(r, axis=-1)
        inner = -bound + 2 * bound * (frac @ upper)
        edge = jnp.full(r.shape[:-1] + (1,), bound, dtype)
        return jnp.concatenate([-edge, inner, edge], axis=-1)

    shift = math.log(math.expm1(1.0 - _MIN_DERIVATIVE))
    inner_d = _MIN_DERIVATIVE + _softplus(raw[..., 2 * k:] + shift)
    one = jnp.ones(raw.shape[:-1] + (1,), dtype)
    return knots(raw[..., :k]), knots(raw[..., k:2 * k]), jnp.concatenate([one, inner_d, one], -1)


def _bin_terms(v, knots, xk, yk, dk):
    """Left knot, width, left height, height, slopes at both ends of the bin holding ``v``."""
    k = xk.shape[-1] - 1
    idx = jnp.sum(v[..., None] >= knots[..., 1:k], axis=-1)
    onehot = (idx[..., None] == jnp.arange(k)).astype(v.dtype)
    table = jnp.stack([xk[..., :k], xk[..., 1:], yk[..., :k], yk[..., 1:], dk[..., :k], dk[..., 1:]],
                      axis=-2)
    x0, x1, y0, y1, d0, d1 = jnp.moveaxis(jnp.sum(onehot[..., None, :] * table, axis=-1), -1, 0)
    return x0, x1 - x0, y0, y1 - y0, d0, d1


def _log_slope(xi, s, d0, d1):
    """``log dy/dx`` of the rational-quadratic segment at ``xi`` (Durkan et al. eq. 5).

    ``dy/dx = s^2 (d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2) / den^2``; every factor
    is positive and bounded away from 0 and inf (bins and slopes have floors),
    so one log of the ratio is accurate.
    """
    c = xi * (1 - xi)
    den = s + (d1 + d0 - 2 * s) * c
    num = d1 * xi * xi + 2 * s * c + d0 * (1 - xi) ** 2
    return jnp.log(num * (s * s) / (den * den)), den


def rq_spline_forward(x, xk, yk, dk, bound):
    """Rational-quadratic spline on ``[-bound, bound]``, identity outside; ``(y, log dy/dx)``."""
    inside = jnp.abs(x) <= bound
    xc = jnp.clip(x, -bound, bound)
    x0, w, y0, h, d0, d1 = _bin_terms(xc, xk, xk, yk, dk)
    s = h / w
    xi = jnp.clip((xc - x0) / w, 0, 1)
    c = xi * (1 - xi)
    log_slope, den = _log_slope(xi, s, d0, d1)
    y = y0 + h * (s * xi * xi + d0 * c) / den
    return jnp.where(inside, y, x), jnp.where(inside, log_slope, 0)


def rq_spline_inverse(y, xk, yk, dk, bound):
    """Inverse of :func:`rq_spline_forward`: ``(x, log dx/dy)`` (stable quadratic root)."""
    inside = jnp.abs(y) <= bound
    yc = jnp.clip(y, -bound, bound)
    x0, w, y0, h, d0, d1 = _bin_terms(yc, yk, xk, yk, dk)
    s = h / w
    dy = yc - y0
    e = d1 + d0 - 2 * s
    a = h * (s - d0) + dy * e
    b = h * d0 - dy * e
    c = -s * dy
    disc = jnp.maximum(b * b - 4 * a * c, 0)
    xi = jnp.clip(2 * c / (-b - jnp.sqrt(disc)), 0, 1)
    log_slope, _ = _log_slope(xi, s, d0, d1)
    return jnp.where(inside, x0 + xi * w, y), jnp.where(inside, -log_slope, 0)


class RationalQuadraticSplineCoupling(_Layer):
    """Neural spline coupling layer (Durkan et al. 2019), with linear tails.

    With ``a = x[..., :d1]`` (``d1 = d // 2``), each of the other ``d - d1``
    coordinates goes through its own monotone rational-quadratic spline on
    ``[-bound, bound]`` with ``num_bins`` bins, whose bin widths, heights
    (softmax) and interior knot derivatives (softplus) are the outputs of an
    MLP of ``a``; outside ``[-bound, bound]`` the map is the identity (the
    boundary derivatives are 1, so the map is C^1). ``log|det dy/dx|`` sums the
    log-slopes; the inverse solves the segment's quadratic in its stable form.

    Args:
      weights: dict ``w1 (d1, h)``, ``b1``, ``w2 (h, h)``, ``b2``,
        ``w3 (h, (d - d1) (3 K - 1))``, ``b3``; per transformed coordinate the
        outputs are ``K`` widths, ``K`` heights, ``K - 1`` derivatives.
      dim: event size ``d`` (static).
      num_bins: ``K >= 2`` (static).
      bound: ``B > 0``, half-width of the spline interval (static).
      activation: ``"relu"`` (default) or ``"tanh"``, the hidden layers' nonlinearity.
    """

    weights: dict = None
    dim: int = static(default=2)
    num_bins: int = static(default=8)
    bound: float = static(default=4.0)
    activation: str = static(default="relu")

    def __init__(self, weights, dim, num_bins=8, bound=4.0, activation="relu"):
        name = type(self).__name__
        weights = _as_weights(name, weights)
        dim = _static_int(name, "dim", dim)
        num_bins = _static_int(name, "num_bins", num_bins, 2)
        _check_scale_bound(name, bound, "bound")
        self._setup(weights=weights, dim=dim, num_bins=num_bins, bound=float(bound),
                    activation=_check_activation(name, activation))

    def _mlp_sizes(self):
        return self.dim // 2, (self.dim - self.dim // 2) * (3 * self.num_bins - 1)

    @classmethod
    def initialize(cls, dim: int, key, *, hidden_size: int = 32, num_bins: int = 8,
                   bound: float = 4.0, activation: str = "relu", dtype=None):
        """An identity spline coupling on ``R^dim`` (output layer zero: equal bins, slopes 1).

        The hidden biases are random (:func:`init_mlp_spread`), not zero: a ReLU
        conditioner with zero biases has all its kinks at the origin, and
        reverse-KL fits of multimodal or ring-shaped targets then stall in poor
        optima far more often.
        """
        name = cls.__name__
        dim = _static_int(name, "dim", dim)
        hidden_size = _static_int(name, "hidden_size", hidden_size)
        num_bins = _static_int(name, "num_bins", num_bins, 2)
        d1 = dim // 2
        n_out = (dim - d1) * (3 * num_bins - 1)
        return cls(init_mlp_spread(key, d1, hidden_size, n_out, _float(dtype)), dim, num_bins, bound,
                   activation)

    def _knots(self, a):
        out = _mlp(self.weights, a, self.activation)
        raw = out.reshape(out.shape[:-1] + (self.dim - self.dim // 2, 3 * self.num_bins - 1))
        return _spline_params(raw, self.num_bins, self.bound)

    def forward_and_log_det(self, x):
        x = self._checked(x, "x")
        d1 = self.dim // 2
        a, b = x[..., :d1], x[..., d1:]
        yb, ld = rq_spline_forward(b, *self._knots(a), self.bound)
        return jnp.concatenate([a, yb], axis=-1), jnp.sum(ld, axis=-1)

    def inverse_and_log_det(self, y):
        y = self._checked(y, "y")
        d1 = self.dim // 2
        a, b = y[..., :d1], y[..., d1:]
        xb, ld = rq_spline_inverse(b, *self._knots(a), self.bound)
        return jnp.concatenate([a, xb], axis=-1), jnp.sum(ld, axis=-1)


# ----------------------------------------------------------------------------- IAF
@functools.lru_cache(maxsize=None)
def made_masks(dim: int, hidden: int):
    """MADE masks (numpy bool) of the three weight matrices; output ``i`` sees inputs ``< i``.

    Input ``j`` has degree ``j + 1``; hidden units get degrees ``1 .. d - 1``
    in turn; a hidden unit of degree ``m`` sees inputs of degree ``<= m`` and
    units of degree ``<= m``; output ``i`` (degree ``i + 1``, in both the
    log-scale and the shift halves) sees hidden units of degree ``<= i``.
    """
    deg_in = np.arange(1, dim + 1)
    deg_h = (np.arange(hidden) % max(dim - 1, 1)) + 1
    m1 = deg_h[None, :] >= deg_in[:, None]
    m2 = deg_h[None, :] >= deg_h[:, None]
    m3 = np.tile(deg_in[None, :] > deg_h[:, None], (1, 2))
    return m1, m2, m3


class InverseAutoregressiveAffine(_Layer):
    """Affine inverse autoregressive layer (Kingma et al. 2016) with a MADE conditioner.

    ``y_i = x_i * exp(s_i(x_{<i})) + t_i(x_{<i})``, where ``(raw_s, t)`` come
    from one masked MLP pass over ``x`` (MADE, Germain et al. 2015) and
    ``s = max_log_scale * tanh(raw_s / max_log_scale)``;
    ``log|det dy/dx| = sum s``. The forward map (the sampling direction of a
    flow on a noise base) and its log-det take one network pass, so a flow's
    draws and their log densities cost one pass per layer; the inverse is
    sequential: ``d`` passes in a ``lax.fori_loop`` (after pass ``k`` the first
    ``k`` coordinates are exact).

    Args:
      weights: dict ``w1 (d, h)``, ``b1``, ``w2 (h, h)``, ``b2``,
        ``w3 (h, 2 d)``, ``b3 (2 d,)`` (raw log-scales first, then shifts);
        the MADE masks are applied on the fly, so masked entries are ignored.
      dim: event size ``d`` (static).
      max_log_scale: bound on ``|s|`` (static), finite and > 0.
      activation: ``"relu"`` (default) or ``"tanh"``, the hidden layers' nonlinearity.
    """

    weights: dict = None
    dim: int = static(default=2)
    max_log_scale: float = static(default=3.0)
    activation: str = static(default="relu")

    def __init__(self, weights, dim, max_log_scale=3.0, activation="relu"):
        name = type(self).__name__
        weights = _as_weights(name, weights)
        dim = _static_int(name, "dim", dim)
        _check_scale_bound(name, max_log_scale)
        self._setup(weights=weights, dim=dim, max_log_scale=float(max_log_scale),
                    activation=_check_activation(name, activation))

    def _mlp_sizes(self):
        return self.dim, 2 * self.dim

    @classmethod
    def initialize(cls, dim: int, key, *, hidden_size: int = 32, max_log_scale: float = 3.0,
                   activation: str = "relu", dtype=None):
        """An identity IAF layer on ``R^dim`` (output layer zero)."""
        dim = _static_int(cls.__name__, "dim", dim)
        hidden_size = _static_int(cls.__name__, "hidden_size", hidden_size)
        return cls(init_mlp(key, dim, hidden_size, 2 * dim, _float(dtype)), dim, max_log_scale,
                   activation)

    def _masked(self):
        w = self.weights
        m1, m2, m3 = made_masks(self.dim, w["w1"].shape[-1])
        dt = w["w1"].dtype
        return dict(w, w1=w["w1"] * m1.astype(dt), w2=w["w2"] * m2.astype(dt),
                    w3=w["w3"] * m3.astype(dt))

    def _log_scale_and_shift(self, w, x):
        out = _mlp(w, x, self.activation)
        return _bounded(out[..., :self.dim], self.max_log_scale), out[..., self.dim:]

    def forward_and_log_det(self, x):
        x = self._checked(x, "x")
        s, t = self._log_scale_and_shift(self._masked(), x)
        return x * jnp.exp(s) + t, jnp.sum(s, axis=-1)

    def inverse_and_log_det(self, y):
        y = self._checked(y, "y")
        w = self._masked()

        def step(_, x):
            s, t = self._log_scale_and_shift(w, x)
            return (y - t) * jnp.exp(-s)

        x = jax.lax.fori_loop(0, self.dim, step, y)
        s, _ = self._log_scale_and_shift(w, x)
        return x, -jnp.sum(s, axis=-1)


# ----------------------------------------------------------------------------- checks
def _float(dtype):
    dt = jnp.dtype(dtype if dtype is not None else jnp.zeros(()).dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype; got {dt}")
    return dt


def _static_int(owner: str, name: str, value, minimum: int = 1) -> int:
    from vikl._validate import check_int

    return check_int(name, value, minimum, where=owner)


def _check_scale_bound(owner: str, value, name: str = "max_log_scale") -> None:
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
          and math.isfinite(value) and value > 0)
    if not ok:
        raise ValueError(f"{owner}: {name} must be a finite number > 0; got {value!r}")
