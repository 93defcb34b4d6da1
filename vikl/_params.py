"""Unconstrained parameters of a distribution: :func:`unconstrain` and :func:`constrain`.

``fit`` optimizes a distribution's parameters in unconstrained space. For a
distribution ``d``, ``unconstrain(d)`` returns a nested ``dict`` that mirrors
its fields:

* a trainable parameter (declared with ``param(c)``, ``c.trainable``) maps to
  ``bijector_for(c, parameter=True).inverse(value)``, a real array (e.g.
  ``log scale`` for a positive scale, the centred log-ratios of a simplex);
* a child field holding another Distribution (``Mixture.components``) or a
  bijector (``Transformed.bijector``) maps to that object's own dict, recursively;
* any other child field (a pytree of network weights, as in ``RealNVP``) is
  trained as is: its floating-point leaves are unconstrained weights;
* non-trainable parameters (``constraints.fixed`` data such as Empirical
  samples, integer counts) and ``None`` fields are left out and stay fixed.

``constrain(template, params)`` is the inverse: it rebuilds a distribution of
the template's type, taking the trainable values from ``params`` (through
the bijector's ``forward``) and everything else from the template. It does not run the
family's validating constructor, so it is cheap and safe under ``jit``,
``grad`` and ``vmap``.

Families whose fields are redundant (e.g. one that stores both ``probs`` and
``logits``) register a pair of functions with :func:`register_params` so that
only one parameterization is trained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vikl._base import Distribution, Module
from vikl.bijectors._registry import bijector_for

__all__ = ["constrain", "num_params", "register_params", "unconstrain"]

_CUSTOM: dict[type, tuple[Callable, Callable]] = {}


def register_params(cls: type, to_params: Callable, from_params: Callable) -> None:
    """Registers how a family maps to and from unconstrained parameters.

    Args:
      cls: the Distribution subclass (subclasses inherit the registration).
      to_params: ``dist -> dict`` of unconstrained arrays (may recurse with
        :func:`unconstrain` for child distributions).
      from_params: ``(template_dist, dict) -> dist``, the inverse; it must
        not call a validating constructor on traced values.
    """
    if not (isinstance(cls, type) and issubclass(cls, Distribution)):
        raise TypeError(f"register_params: cls must be a Distribution subclass; got {cls!r}")
    _CUSTOM[cls] = (to_params, from_params)


def _custom(cls):
    for base in cls.__mro__:
        if base in _CUSTOM:
            return _CUSTOM[base]
    return None


def _is_float_leaf(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(jnp.result_type(x), jnp.floating)


def unconstrain(dist: Any) -> dict:
    """Maps a distribution to its unconstrained trainable parameters (a nested dict).

    Args:
      dist: a :class:`vikl.Distribution` (possibly holding child distributions
        or weight pytrees).

    Returns:
      A dict keyed by field name. Values are real arrays (the constraint's
      inverse applied to the parameter), nested dicts for child
      distributions, or the weight pytree itself.

    Raises:
      TypeError: ``dist`` is not a vikl Distribution.
    """
    if not isinstance(dist, Module):
        raise TypeError(
            f"unconstrain expects a vikl.Distribution; got {type(dist).__name__}. "
            "Variational families are Distribution subclasses (see vikl.Distribution)."
        )
    cls = type(dist)
    custom = _custom(cls)
    if custom is not None:
        return custom[0](dist)
    out = {}
    constraints = cls._param_constraints
    for name in cls._child_fields:
        value = getattr(dist, name)
        if value is None:
            continue
        c = constraints.get(name)
        if c is not None:
            if c.trainable and not c.is_discrete:
                out[name] = bijector_for(c, parameter=True).inverse(value)
        elif isinstance(value, Module):
            sub = unconstrain(value)
            if jax.tree_util.tree_leaves(sub):
                out[name] = sub
        elif _is_module_seq(value):
            sub = type(value)(unconstrain(v) for v in value)
            if jax.tree_util.tree_leaves(sub):
                out[name] = sub
        else:
            weights = jax.tree_util.tree_map(lambda x: x if _is_float_leaf(x) else None, value)
            if jax.tree_util.tree_leaves(weights):
                out[name] = weights
    return out


def _rebuild(dist, values: dict):
    """A copy of ``dist`` with some child fields replaced, without running ``__init__``."""
    cls = type(dist)
    obj = object.__new__(cls)
    for name in cls._child_fields + cls._static_fields:
        object.__setattr__(obj, name, values.get(name, getattr(dist, name, None)))
    return obj


def constrain(template: Any, params: dict) -> Any:
    """Rebuilds a distribution from a template and unconstrained parameters.

    The inverse of :func:`unconstrain`: ``constrain(d, unconstrain(d))``
    equals ``d`` up to the round-off of the bijections. Fields absent from
    ``params`` are copied from ``template``.

    Args:
      template: a :class:`vikl.Distribution` of the wanted structure.
      params: a dict as returned by :func:`unconstrain` (possibly traced).

    Returns:
      A distribution of ``type(template)``. No argument checks run.
    """
    cls = type(template)
    custom = _custom(cls)
    if custom is not None:
        return custom[1](template, params)
    constraints = cls._param_constraints
    values = {}
    for name, u in params.items():
        c = constraints.get(name)
        current = getattr(template, name)
        if c is not None:
            values[name] = bijector_for(c, parameter=True).forward(u)
        elif isinstance(current, Module):
            values[name] = constrain(current, u)
        elif _is_module_seq(current):
            values[name] = type(current)(constrain(t, p) for t, p in zip(current, u))
        else:
            values[name] = jax.tree_util.tree_map(
                lambda t, v: t if v is None else v, current, u, is_leaf=lambda x: x is None
            ) if _has_none(u) else u
    return _rebuild(template, values)


def _is_module_seq(value) -> bool:
    """A non-empty tuple/list of Modules (the bijectors of a Chain or Block)."""
    return (isinstance(value, (tuple, list)) and len(value) > 0
            and all(isinstance(v, Module) for v in value))


def _has_none(tree) -> bool:
    found = []
    jax.tree_util.tree_map(lambda x: found.append(x is None), tree, is_leaf=lambda x: x is None)
    return any(found)


def num_params(params) -> int:
    """Number of scalar unconstrained parameters in a params pytree."""
    return int(sum(jnp.size(x) for x in jax.tree_util.tree_leaves(params)))
