"""The closed-form KL registry and :func:`kl_divergence`.

Closed forms live beside their families (``_distributions/<family>.py``, pairs of
two families in ``_distributions/_cross_kl_*.py``) and register themselves with the
``@register_kl(P, Q)`` decorator on a module-level function, the only way the
package registers one (``P`` or ``Q`` may be a tuple of types for a function that
serves several pairs). Lookup walks the MROs of both arguments, keeps the
registered pairs that match, and picks the unique most specific one; two
incomparable matches raise (register the exact pair to settle it). ``(Q, P)`` is
never added implicitly: KL is asymmetric.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp

from vikl._base import Distribution

__all__ = ["register_kl", "kl_divergence", "registered_kl_pairs"]

_KL_REGISTRY: dict[tuple[type, type], Callable] = {}


def _types(t, arg: str) -> tuple[type, ...]:
    """``t`` (a Distribution subclass or a non-empty tuple of them) as a tuple; else TypeError."""
    types = t if isinstance(t, tuple) and t else (t,)
    for one in types:
        if not (isinstance(one, type) and issubclass(one, Distribution)):
            raise TypeError(
                f"register_kl: {arg} must be a Distribution subclass or a non-empty tuple of "
                f"them; got {t!r}"
            )
    return types


def register_kl(type_p, type_q):
    """Decorator registering a closed-form ``KL(p‖q)`` for ``p: type_p``, ``q: type_q``.

    The one way to register a closed form: decorate a module-level function. The
    function takes ``(p, q)`` and returns an array of shape
    ``broadcast(p.batch_shape, q.batch_shape)`` in nats. Subclasses of the
    registered types dispatch to it unless a more specific pair is registered.
    One function serves several pairs through stacked decorators, or through
    tuples of types (as in ``isinstance``): ``register_kl((P1, P2), Q)`` registers
    ``(P1, Q)`` and ``(P2, Q)``.

    Args:
      type_p: a :class:`vikl.Distribution` subclass, or a tuple of them.
      type_q: likewise, for the second argument.

    Raises:
      TypeError: ``type_p`` or ``type_q`` is not a Distribution subclass (or a
        non-empty tuple of them).

    Example::

        @vikl.register_kl(MyFamily, vikl.Normal)
        def _kl_myfamily_normal(p, q):
            ...
    """
    pairs = [(tp, tq) for tp in _types(type_p, "type_p") for tq in _types(type_q, "type_q")]

    def decorator(fn):
        for pair in pairs:
            _KL_REGISTRY[pair] = fn
        _dispatch.cache_clear()
        return fn

    return decorator


def registered_kl_pairs() -> dict[tuple[type, type], Callable]:
    """A copy of the registry: ``{(type_p, type_q): fn}``."""
    return dict(_KL_REGISTRY)


@functools.lru_cache(maxsize=None)
def _dispatch(type_p: type, type_q: type):
    matches = [
        (tp, tq)
        for (tp, tq) in _KL_REGISTRY
        if issubclass(type_p, tp) and issubclass(type_q, tq)
    ]
    if not matches:
        return None
    # Keep the pairs no other match is more specific than.
    best = [
        m
        for m in matches
        if not any(
            o != m and issubclass(o[0], m[0]) and issubclass(o[1], m[1]) for o in matches
        )
    ]
    if len(best) > 1:
        names = ", ".join(f"({a.__name__}, {b.__name__})" for a, b in best)
        raise NotImplementedError(
            f"kl_divergence({type_p.__name__}, {type_q.__name__}) is ambiguous: the registered "
            f"pairs {names} match equally well. Register the exact pair with "
            f"@vikl.register_kl({type_p.__name__}, {type_q.__name__})."
        )
    return _KL_REGISTRY[best[0]]


def kl_divergence(p, q):
    """Closed-form Kullback-Leibler divergence ``KL(p‖q)``.

    ``KL(p‖q) = E_p[log p(X) - log q(X)]``, in nats. Not symmetric.

    Args:
      p, q: two :class:`vikl.Distribution` objects whose pair has a registered
        closed form (batch shapes broadcast), or two arrays of probabilities
        along the last axis (each row non-negative and summing to one), which
        are treated as Categorical distributions.

    Returns:
      An array of shape ``broadcast(p.batch_shape, q.batch_shape)`` (for arrays:
      ``broadcast(p.shape, q.shape)[:-1]``). ``+inf`` where ``p`` puts mass
      where ``q`` has none; terms with ``p = 0`` contribute 0 (``0 log 0 = 0``).

    Raises:
      NotImplementedError: no closed form is registered for the pair; the
        message points to :func:`vikl.estimate_kl` (Monte Carlo).
      ValueError: probability arrays that are negative or do not sum to one, or
        whose last axes differ.
    """
    if not isinstance(p, Distribution) and not isinstance(q, Distribution):
        from vikl._probs import as_probs, kl_probs

        return kl_probs(as_probs(p, "p"), as_probs(q, "q"))
    if not isinstance(p, Distribution) or not isinstance(q, Distribution):
        raise TypeError(
            "kl_divergence: p and q must both be vikl Distributions or both be probability "
            f"arrays; got {type(p).__name__} and {type(q).__name__}"
        )
    fn = _dispatch(type(p), type(q))
    if fn is None:
        raise NotImplementedError(
            f"No closed-form KL is registered for ({type(p).__name__}, {type(q).__name__}). "
            "Use vikl.estimate_kl(p, q, key, num_samples=...) for a Monte-Carlo estimate, or "
            f"register one with @vikl.register_kl({type(p).__name__}, {type(q).__name__})."
        )
    return jnp.asarray(fn(p, q))
