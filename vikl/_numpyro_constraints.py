"""NumPyro support constraints -> vikl bijectors (the table behind :class:`vikl.NumPyroModel`).

:func:`bijector_for_numpyro` gives, for a NumPyro constraint, the vikl
bijector whose image is the constraint's set and whose map is NumPyro's own
``biject_to(constraint)`` (same unconstrained coordinates, same log-Jacobian),
so a flat draw means the same point to vikl and to NumPyro (and
``log_prob`` of a :class:`vikl.NumPyroModel` equals minus NumPyro's potential
energy at the same unconstrained point). ``independent(base, n)`` wrappers map
to the base's bijector: the extra event axes change only which axes a
log-determinant is summed over, and a site's log-determinant is summed over
all of its axes anyway (:func:`site_block`).

NumPyro is imported only inside :func:`bijector_for_numpyro`; the bijectors
are plain vikl modules, so a saved layout loads without NumPyro.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vikl.bijectors._bijector import Bijector
from vikl.bijectors._combinators import Block, Chain
from vikl.bijectors._elementwise import Exp, GreaterThan, Identity, Interval, LessThan, Sigmoid, Softplus
from vikl.bijectors._structured import CorrCholesky, LowerCholesky, Ordered, StickBreaking

__all__ = ["bijector_for_numpyro", "site_block", "SUPPORTED"]

#: The NumPyro constraints :func:`bijector_for_numpyro` maps (for messages and docs).
SUPPORTED = (
    "real, real_vector, real_matrix, positive, nonnegative, softplus_positive, unit_interval, "
    "interval, open_interval, circular, greater_than(_eq), less_than(_eq), simplex, "
    "ordered_vector, positive_ordered_vector, corr_cholesky, lower_cholesky, and "
    "independent(...) of these"
)


def _bound(value, what):
    """A support bound as a floating array (NumPyro keeps Python/NumPy/JAX numbers)."""
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(
            f"bijector_for_numpyro: the constraint's {what} must be numbers; got {value!r}")
    return jnp.asarray(arr, dtype=jnp.zeros(()).dtype) if arr.dtype.kind in "iub" else \
        jnp.asarray(value)


def _scalar_bijector(c, C):
    """The bijector of a NumPyro constraint with ``event_dim == 0``, or ``None``."""
    if isinstance(c, C._SoftplusPositive):
        return Softplus()
    if isinstance(c, (C._Positive, C._Nonnegative)):
        return Exp()
    if isinstance(c, C._UnitInterval):
        return Sigmoid()
    if isinstance(c, C._Interval):  # interval, open_interval, circular
        return Interval(_bound(c.lower_bound, "lower_bound"), _bound(c.upper_bound, "upper_bound"))
    if isinstance(c, C._GreaterThan):  # greater_than, greater_than_eq
        return GreaterThan(_bound(c.lower_bound, "lower_bound"))
    if isinstance(c, C._LessThan):  # less_than, less_than_eq
        return LessThan(_bound(c.upper_bound, "upper_bound"))
    if type(c) is C._Real:
        return Identity()
    return None


def _event_bijector(c, C):
    """The bijector of a NumPyro constraint with event axes, or ``None``."""
    table = {
        C._Simplex: StickBreaking,
        C._OrderedVector: Ordered,
        C._CorrCholesky: CorrCholesky,
        C._LowerCholesky: LowerCholesky,  # exactly: not softplus / scaled-unit variants
    }
    if type(c) in table:
        return table[type(c)]()
    if type(c) is C._PositiveOrderedVector:  # NumPyro: exp(ordered(x))
        return Chain([Exp(), Ordered()])
    return None


def bijector_for_numpyro(constraint) -> Bijector:
    """The vikl bijector onto a NumPyro support ``constraint``: NumPyro's own map.

    The map equals ``numpyro.distributions.transforms.biject_to(constraint)``
    (the same unconstrained coordinates and log-Jacobian): ``real`` ->
    ``Identity``; ``positive``/``nonnegative`` -> ``Exp``;
    ``softplus_positive`` -> ``Softplus``; ``unit_interval`` -> ``Sigmoid``;
    ``interval(low, high)`` (also ``open_interval``, ``circular``) ->
    ``Interval``; ``greater_than(low)`` -> ``GreaterThan``; ``less_than(high)``
    -> ``LessThan``; ``simplex`` -> ``StickBreaking``; ``ordered_vector`` ->
    ``Ordered``; ``positive_ordered_vector`` -> ``Chain([Exp(), Ordered()])``;
    ``corr_cholesky`` -> ``CorrCholesky``; ``lower_cholesky`` ->
    ``LowerCholesky``; ``independent(c, n)`` (``real_vector``, ...) -> the
    bijector of ``c`` (sum its log-determinant over the extra ``n`` axes).

    Raises:
      ValueError: a discrete constraint (integers, booleans): no bijection
        onto unconstrained reals exists.
      NotImplementedError: a continuous constraint with no vikl bijector yet
        (``corr_matrix``, ``positive_definite``, ``sphere``, ``l1_ball``, ...);
        the message names it and lists the supported ones.
      TypeError: ``constraint`` is not a NumPyro constraint.
    """
    from numpyro.distributions import constraints as C

    if not isinstance(constraint, C.Constraint):
        raise TypeError(
            "bijector_for_numpyro: constraint must be a numpyro.distributions.constraints "
            f"Constraint; got {type(constraint).__name__}"
        )
    if constraint.is_discrete:
        raise ValueError(
            f"bijector_for_numpyro: the constraint {constraint!r} is discrete; a discrete "
            "variable has no bijection onto unconstrained reals"
        )
    base = constraint
    while isinstance(base, C._IndependentConstraint):
        base = base.base_constraint
    found = _event_bijector(base, C) or _scalar_bijector(base, C)
    if found is None:
        hint = ""
        if isinstance(base, (C._CorrMatrix, C._PositiveDefinite)):
            hint = (". Sample the Cholesky factor instead (dist.LKJCholesky for LKJ, a "
                    "lower_cholesky scale_tril) and form L @ L.T with numpyro.deterministic")
        raise NotImplementedError(
            f"bijector_for_numpyro: no vikl bijector for the NumPyro constraint {constraint!r} "
            f"({type(base).__name__}); supported: {SUPPORTED}{hint}"
        )
    return found


def site_block(bijectors, shapes) -> Block:
    """The :class:`~vikl.bijectors.Block` mapping one flat vector onto sites of ``shapes``.

    Block ``i`` maps its slice with ``bijectors[i]`` onto a value of shape
    ``shapes[i]`` (the site's shape: batch axes and the bijector's event axes);
    the log-determinant is summed over all of them.
    """
    return Block(list(bijectors), out_shapes=[tuple(int(n) for n in s) for s in shapes])
