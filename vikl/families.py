"""Variational families ready for :func:`vikl.fit`: initializers from a dimension and a key.

Each function returns an ordinary :class:`vikl.Distribution` to pass as ``q0``
to :func:`vikl.fit`::

    q0 = vikl.families.full_rank(10, key)
    result = vikl.fit(q0, log_density, num_steps=2000, key=key)

Gaussian locations start at ``loc_scale * N(0, 1)`` (0 when ``key`` is None)
and scales at ``scale``; choose ``scale`` of the order of the target's spread.
Continuous families are reparameterized; :func:`categorical` and
:func:`bernoulli` are fitted with the score-function gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl._validate import check_int

__all__ = [
    "bernoulli",
    "categorical",
    "full_rank",
    "gaussian_mixture",
    "iaf",
    "low_rank",
    "mean_field",
    "real_nvp",
    "spline_flow",
]


def _dtype(dtype):
    return jnp.dtype(dtype) if dtype is not None else jnp.zeros(()).dtype


def _check_int(fn, name, value, lo=1):
    """``value`` as a Python int >= ``lo`` (NumPy/JAX integer scalars accepted)."""
    return check_int(name, value, lo, where=f"families.{fn}")


def _loc(key, shape, loc_scale, dtype):
    if key is None:
        return jnp.zeros(shape, dtype)
    return jnp.asarray(loc_scale, dtype) * jax.random.normal(key, shape, dtype)


def mean_field(dim: int, key=None, *, scale: float = 1.0, loc_scale: float = 0.1, dtype=None):
    """Mean-field Gaussian ``N(loc, diag(scale_diag^2))`` (:class:`vikl.MultivariateNormalDiag`).

    Args:
      dim: event dimension ``d``.
      key: PRNG key for the initial location (``None``: zeros).
      scale: initial standard deviation of every coordinate.
      loc_scale: spread of the random initial location.
      dtype: floating dtype (default float32, float64 under x64).
    """
    from vikl._distributions.mvn import MultivariateNormalDiag

    dim = _check_int("mean_field", "dim", dim)
    dt = _dtype(dtype)
    return MultivariateNormalDiag(_loc(key, (dim,), loc_scale, dt), jnp.full((dim,), scale, dt))


def full_rank(dim: int, key=None, *, scale: float = 1.0, loc_scale: float = 0.1, dtype=None):
    """Full-rank Gaussian ``N(loc, L L^T)`` (:class:`vikl.MultivariateNormal`), ``L = scale * I``.

    Args: as :func:`mean_field`.
    """
    from vikl._distributions.mvn import MultivariateNormal

    dim = _check_int("full_rank", "dim", dim)
    dt = _dtype(dtype)
    return MultivariateNormal(_loc(key, (dim,), loc_scale, dt), scale_tril=scale * jnp.eye(dim, dtype=dt))


def low_rank(dim: int, rank: int, key, *, scale: float = 1.0, factor_scale: float = 0.1,
             loc_scale: float = 0.1, dtype=None):
    """Low-rank-plus-diagonal Gaussian ``N(loc, W W^T + diag(cov_diag))``.

    ``W`` (``dim x rank``) starts at ``factor_scale * N(0, 1)``: at ``W = 0`` the
    gradient with respect to ``W`` vanishes, so a random start is needed.
    ``cov_diag`` starts at ``scale^2``.

    Args:
      dim: event dimension ``d``.
      rank: number of columns of ``W``.
      key: PRNG key (required).
      scale, factor_scale, loc_scale, dtype: see above and :func:`mean_field`.
    """
    from vikl._distributions.mvn import LowRankMultivariateNormal

    dim = _check_int("low_rank", "dim", dim)
    rank = _check_int("low_rank", "rank", rank)
    dt = _dtype(dtype)
    key_loc, key_w = jax.random.split(key)
    w = jnp.asarray(factor_scale, dt) * jax.random.normal(key_w, (dim, rank), dt)
    return LowRankMultivariateNormal(
        _loc(key_loc, (dim,), loc_scale, dt), w, jnp.full((dim,), scale * scale, dt)
    )


def gaussian_mixture(dim: int, num_components: int, key, *, scale: float = 1.0,
                     loc_scale: float = 1.0, dtype=None):
    """Mixture of ``K`` mean-field Gaussians with equal weights (:class:`vikl.Mixture`).

    Component locations are drawn ``loc_scale * N(0, I)`` (distinct, so the
    components can move to different modes); scales start at ``scale``.
    ``fit`` trains the weights (logits), locations and scales; the reverse-KL
    gradient reaches the weights through per-component stratified sampling
    (see :class:`vikl.objectives.ReverseKL`).

    Args:
      dim: event dimension ``d``.
      num_components: ``K``.
      key: PRNG key (required).
      scale, loc_scale, dtype: see above.
    """
    from vikl._distributions.mixture import Mixture
    from vikl._distributions.mvn import MultivariateNormalDiag

    dim = _check_int("gaussian_mixture", "dim", dim)
    num_components = _check_int("gaussian_mixture", "num_components", num_components)
    dt = _dtype(dtype)
    locs = _loc(key, (num_components, dim), loc_scale, dt)
    comps = MultivariateNormalDiag(locs, jnp.full((num_components, dim), scale, dt))
    return Mixture(jnp.zeros((num_components,), dt), comps)


def real_nvp(dim: int, key, *, num_layers: int = 4, hidden_size: int = 32,
             scale: float = 1.0, dtype=None):
    """RealNVP normalizing flow starting as ``N(0, scale^2 I)`` (:class:`vikl.RealNVP`).

    Args:
      dim: event dimension ``d``.
      key: PRNG key for the hidden weights (required).
      num_layers: number of affine coupling layers (depth).
      hidden_size: width of each conditioner's two hidden layers.
      scale: initial output scale.
      dtype: floating dtype.
    """
    from vikl._distributions.flows import RealNVP

    dim = _check_int("real_nvp", "dim", dim)
    dt = _dtype(dtype)
    return RealNVP.initialize(
        dim, key, num_layers=num_layers, hidden_size=hidden_size,
        scale=jnp.full((dim,), scale, dt), dtype=dt,
    )


def spline_flow(dim: int, key, *, num_layers: int = 4, hidden_size: int = 32,
                num_bins: int = 8, bound: float = 4.0, scale: float = 1.0, dtype=None):
    """Neural spline flow starting as ``N(0, scale^2 I)`` (:class:`vikl.SplineFlow`).

    Rational-quadratic spline couplings (Durkan et al. 2019) with identity
    tails outside ``[-bound, bound]`` (in base units, before the learned
    output ``loc + scale * .``); each layer starts as the identity.

    Args:
      dim: event dimension ``d``.
      key: PRNG key for the hidden weights (required).
      num_layers: number of spline coupling layers.
      hidden_size: width of each conditioner's two hidden layers.
      num_bins: number of spline bins ``K`` (>= 2).
      bound: half-width of the spline interval.
      scale: initial output scale.
      dtype: floating dtype.
    """
    from vikl._distributions.flows import SplineFlow

    dim = _check_int("spline_flow", "dim", dim)
    return SplineFlow.initialize(dim, key, num_layers=num_layers, hidden_size=hidden_size,
                                 num_bins=num_bins, bound=bound, scale=scale, dtype=_dtype(dtype))


def iaf(dim: int, key, *, num_layers: int = 4, hidden_size: int = 32, scale: float = 1.0,
        dtype=None):
    """Inverse autoregressive flow starting as ``N(0, scale^2 I)`` (:class:`vikl.InverseAutoregressiveFlow`).

    Affine autoregressive layers with MADE conditioners (Kingma et al. 2016):
    draws and their log densities in one pass per layer (fast reverse KL);
    ``log_prob`` at other points inverts each layer in ``d`` passes.

    Args:
      dim: event dimension ``d``.
      key: PRNG key for the hidden weights (required).
      num_layers: number of autoregressive layers.
      hidden_size: width of each MADE conditioner's two hidden layers.
      scale: initial output scale.
      dtype: floating dtype.
    """
    from vikl._distributions.flows import InverseAutoregressiveFlow

    dim = _check_int("iaf", "dim", dim)
    return InverseAutoregressiveFlow.initialize(dim, key, num_layers=num_layers,
                                                hidden_size=hidden_size, scale=scale,
                                                dtype=_dtype(dtype))


def categorical(num_categories: int, key=None, *, logit_scale: float = 0.01, dtype=None):
    """Categorical over ``{0, ..., K-1}`` with logits ``logit_scale * N(0, 1)`` (uniform if no key).

    Fitted with ``ReverseKL(gradient="score")`` (picked automatically).
    """
    from vikl._distributions.categorical import Categorical

    num_categories = _check_int("categorical", "num_categories", num_categories)
    return Categorical(logits=_loc(key, (num_categories,), logit_scale, _dtype(dtype)))


def bernoulli(shape=(), key=None, *, logit_scale: float = 0.01, dtype=None):
    """Independent Bernoullis of the given batch ``shape``, probabilities near 1/2."""
    from vikl._distributions.bernoulli import Bernoulli

    return Bernoulli(logits=_loc(key, tuple(shape), logit_scale, _dtype(dtype)))
