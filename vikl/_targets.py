"""How vikl touches a target (and any distribution it samples): one table of target kinds.

A target is what a fit or an estimator compares ``q`` with. vikl reaches it
only through the functions below, which dispatch on the first entry of
:data:`KINDS` whose ``matches`` accepts it:

* ``empirical`` -- :class:`vikl.Empirical` data: samples, no log density;
* ``distribution`` -- a :class:`vikl.Distribution`, a NumPyro distribution or
  any object with ``log_prob(x)`` (and ``sample(key, sample_shape)`` where
  needed); log densities are summed over every axis after the sample axis;
* ``callable`` -- a log density ``f(x) -> scalar`` of ONE point of shape
  ``q.batch_shape + q.event_shape`` (vmapped over draws; may be unnormalized);
* ``sampler`` -- any other object with ``sample`` only (forward KL by
  cross-entropy).

An unconstrained view (:func:`vikl.unconstrained`) of one of these is a
``distribution`` (its ``log_prob`` adds the log-Jacobian), except the view of
Empirical data (its data are the samples mapped through ``b^{-1}``) and of a
sampler (samples only).

A new kind of target (a transformed target, a NumPyro model, a posterior with
data) is one more :class:`TargetKind` placed in :data:`KINDS` before the
kinds it must shadow; objectives, ``fit`` and ``estimate_kl`` then accept it
with no other change.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from vikl._base import Distribution

__all__ = ["TargetKind", "KINDS", "kind_of", "log_prob", "has_log_prob", "can_sample",
           "sample", "data", "draw", "flat_sum"]


def flat_sum(v, n):
    """Sums every axis after the first of ``v`` (shape ``(n, ...)``) -> ``(n,)``."""
    v = jnp.asarray(v)
    if v.ndim == 0 or v.shape[0] != n:
        raise ValueError(
            f"log_prob returned shape {tuple(v.shape)} for {n} samples; expected a leading "
            f"axis of length {n} (one value per sample)"
        )
    return v.reshape(n, -1).sum(axis=-1) if v.ndim > 1 else v


# ----------------------------------------------------------------------------- the kinds
@dataclasses.dataclass(frozen=True)
class TargetKind:
    """How to touch one kind of target.

    Attributes:
      name: a short name for messages.
      matches: ``target -> bool``.
      log_prob: ``(target, x) -> (n,)`` log densities of a batch ``x`` of
        shape ``(n,) + point_shape``; ``None`` when the kind has none.
      sample: ``(target, key, n) -> (n,) + point_shape`` draws; ``None`` when
        the kind cannot be sampled (a per-target check is ``can_sample``).
      data: ``target -> array`` of observed points, or ``None``.
    """

    name: str
    matches: Callable[[Any], bool]
    log_prob: Optional[Callable] = None
    sample: Optional[Callable] = None
    data: Optional[Callable] = None


def _is_empirical(target) -> bool:
    from vikl._distributions import empirical  # a family module: imported when first needed

    return isinstance(target, empirical.Empirical)


def _unconstrained_inner(target):
    """The target inside an unconstrained view, else ``None``."""
    from vikl._unconstrained import Unconstrained  # imported when first needed

    return target.target if isinstance(target, Unconstrained) else None


def _is_unconstrained_data(target) -> bool:
    inner = _unconstrained_inner(target)
    return inner is not None and _is_empirical(inner)


def _is_unconstrained_sampler(target) -> bool:
    inner = _unconstrained_inner(target)
    return inner is not None and not hasattr(inner, "log_prob") and not callable(inner)


def _unconstrained_data(target):
    return target.bijector.inverse(jnp.asarray(target.target.samples))


def _object_log_prob(target, x):
    return flat_sum(target.log_prob(x), x.shape[0])


def _callable_log_prob(target, x):
    lp = jax.vmap(target)(x)
    if lp.ndim != 1:
        raise ValueError(
            f"a log-density callable must return a scalar for one point of shape "
            f"{tuple(x.shape[1:])}; got shape {tuple(lp.shape[1:])}"
        )
    return lp


def _object_sample(target, key, n):
    return target.sample(key, (n,))


EMPIRICAL = TargetKind("Empirical", _is_empirical, sample=_object_sample,
                       data=lambda t: jnp.asarray(t.samples))
UNCONSTRAINED_EMPIRICAL = TargetKind("unconstrained Empirical", _is_unconstrained_data,
                                     sample=_object_sample, data=_unconstrained_data)
UNCONSTRAINED_SAMPLER = TargetKind("unconstrained sampler", _is_unconstrained_sampler,
                                   sample=_object_sample)
DISTRIBUTION = TargetKind("distribution", lambda t: hasattr(t, "log_prob"),
                          log_prob=_object_log_prob, sample=_object_sample)
CALLABLE = TargetKind("log-density callable", callable, log_prob=_callable_log_prob,
                      sample=_object_sample)
SAMPLER = TargetKind("sampler", lambda t: hasattr(t, "sample"), sample=_object_sample)

#: Kinds in the order they are tried.
KINDS = (EMPIRICAL, UNCONSTRAINED_EMPIRICAL, UNCONSTRAINED_SAMPLER, DISTRIBUTION, CALLABLE,
         SAMPLER)


def kind_of(target) -> TargetKind:
    """The :class:`TargetKind` of ``target``.

    Raises:
      TypeError: ``target`` is none of the known kinds.
    """
    for kind in KINDS:
        if kind.matches(target):
            return kind
    raise TypeError(
        "target must be a Distribution, an object with log_prob/sample (e.g. a NumPyro "
        f"distribution) or a log-density callable; got {type(target).__name__}"
    )


# ----------------------------------------------------------------------------- access
def log_prob(target, x):
    """``log p(x)`` for a batch ``x`` of shape ``(n,) + point_shape`` -> ``(n,)``."""
    kind = kind_of(target)
    if kind.log_prob is None:
        raise ValueError(
            f"this objective needs the target's log density, but the target ({kind.name}, "
            f"{type(target).__name__}) is known only by its samples; use objective='forward_kl' "
            "(maximum likelihood on the data)"
        )
    return kind.log_prob(target, x)


def has_log_prob(target) -> bool:
    """Whether ``target`` has a log density (possibly unnormalized)."""
    try:
        return kind_of(target).log_prob is not None
    except TypeError:
        return False


def can_sample(target) -> bool:
    """Whether ``target`` can be sampled (``sample(key, sample_shape)``)."""
    try:
        kind = kind_of(target)
    except TypeError:
        return False
    inner = _unconstrained_inner(target)
    return kind.sample is not None and hasattr(target if inner is None else inner, "sample")


def sample(target, key, n):
    """``n`` draws of ``target`` -> shape ``(n,) + point_shape``."""
    kind = kind_of(target)
    if not can_sample(target):
        raise TypeError(
            f"this objective needs draws from the target, but the target ({kind.name}, "
            f"{type(target).__name__}) has no sample(key, sample_shape)"
        )
    return kind.sample(target, key, n)


def data(target):
    """The observed points of a data target (Empirical samples), else ``None``."""
    kind = kind_of(target)
    return None if kind.data is None else kind.data(target)


def draw(dist, key, n, stop_log_prob=False):
    """``n`` draws of ``dist`` and its log density at them (not summed) -> ``(x, log_prob)``.

    A vikl Distribution uses its ``sample_and_log_prob`` (the log density from
    the noise, e.g. no triangular solve for a Gaussian); with
    ``stop_log_prob`` its ``_sample_and_stopped_log_prob`` (parameters held
    fixed in the log density). Other objects draw, then evaluate
    ``log_prob`` (of ``stop_gradient(dist)`` with ``stop_log_prob``).
    """
    if isinstance(dist, Distribution):
        method = dist._sample_and_stopped_log_prob if stop_log_prob else dist.sample_and_log_prob
        return method(key, (n,))
    x = dist.sample(key, (n,))
    return x, (jax.lax.stop_gradient(dist) if stop_log_prob else dist).log_prob(x)
