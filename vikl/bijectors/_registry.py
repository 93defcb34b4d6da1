"""From a constraint to its default bijector: :func:`bijector_for` and :func:`register_bijector`.

``bijector_for(c)`` returns a bijector whose ``forward`` maps unconstrained
real arrays onto the set described by the constraint ``c`` (NumPyro's
``biject_to``, TFP's default event-space bijector). It is the one source of
truth for unconstrained maps: :func:`vikl.fit` trains every parameter through
``bijector_for(c, parameter=True)``.

Built-in table (``vikl.constraints.X`` -> ``vikl.bijectors.Y``):

==============================  ================================================
``real``, ``real_vector``,      :class:`Identity`
``logit``, ``logits_vector``
``positive``,                   :class:`Exp`
``positive_vector``
``unit_interval``               :class:`Sigmoid`
``interval(low, high)``         :class:`Interval` ``(low, high)``
``greater_than(low)``           :class:`GreaterThan` ``(low)`` (``low + exp``)
``less_than(high)``             :class:`LessThan` ``(high)`` (``high - exp``)
``simplex``                     ``SoftmaxCentered`` (``K - 1 -> K``)
``lower_cholesky``              ``LowerCholesky`` (``n (n + 1) / 2 -> (n, n)``)
``ordered_vector``              ``Ordered``
``corr_cholesky``               ``CorrCholesky`` (``n (n - 1) / 2 -> (n, n)``)
``positive_definite``           ``Chain([L -> L L^T, LowerCholesky])``
==============================  ================================================

Two parameter maps (``parameter=True``) differ from the support's map. A
``simplex`` parameter uses the same centred softmax, evaluated with vikl's
historical operations (``jax.nn.softmax``; ``SoftmaxCentered`` computes
``exp(log_softmax)``, equal up to the last bit), so seeded fits stay
bit-identical. Parameters of constraint ``lower_cholesky``
(``MultivariateNormal.scale_tril``, ``AffineTriL.scale_tril``) use a matrix
map: the unconstrained value is an ``(n, n)`` matrix ``u``, the factor is
``diag(exp(diag u)) (I + tril(u, -1))`` (row scales times a unit-lower factor,
NumPyro's ``scaled_unit_lower_cholesky``; the upper part of ``u`` is ignored),
so optimizer states keep the matrix's shape and every coordinate is free of
the posterior's scale (format 4 of saved fits; older files are converted on load). As a *support* (a target to
be fitted in unconstrained space) ``lower_cholesky`` maps from the
``n (n + 1) / 2`` free coordinates, with no idle dimensions.

Event axes. The elementwise bijectors of vector constraints (``real_vector``,
``positive_vector``, ...) return per-coordinate log-Jacobians; a caller sums
them over the constraint's ``event_dim`` axes (as ``vikl.Transformed`` sums a
bijector's log-Jacobian over its base's event axes).

Discrete constraints (integers) and ``fixed`` data have no bijector: asking
for one raises :class:`NoBijectorError` (a ``ValueError`` and a
``NotImplementedError``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl.bijectors._bijector import Bijector
from vikl.bijectors._combinators import Chain
from vikl.bijectors._elementwise import (
    Exp,
    GreaterThan,
    Identity,
    Interval,
    LessThan,
    Sigmoid,
)
from vikl.bijectors._structured import CorrCholesky, LowerCholesky, Ordered, SoftmaxCentered

__all__ = ["NoBijectorError", "bijector_for", "register_bijector"]


class NoBijectorError(NotImplementedError, ValueError):
    """No bijector is registered for a constraint (or it is discrete / fixed data)."""


# ----------------------------------------------------------------------------- helper bijectors
def _square(bij, x, what):
    """``x`` as an array ending in a square ``(n, n)`` event (ValueError otherwise)."""
    x = jnp.asarray(x)
    bij._check_event(x, 2, what)
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"{type(bij).__name__}: {what} must be square in its last two axes; got shape "
            f"{tuple(x.shape)}"
        )
    return x


class _LowerCholeskyMatrix(Bijector):
    """The ``(n, n) -> (n, n)`` parameter map of ``lower_cholesky``: row scales times a
    unit-lower-triangular factor (NumPyro's ``scaled_unit_lower_cholesky``).

    ``y = diag(s) (I + tril(u, -1))`` with ``s = exp(diag(u))``, i.e.
    ``y_ii = exp(u_ii)`` and ``y_ij = exp(u_ii) u_ij`` below the diagonal. The
    strictly-upper part of ``u`` is ignored, so this is a bijection between
    lower-triangular matrices (its inverse returns zeros above the diagonal).
    Over the ``n (n + 1) / 2`` lower-triangular coordinates the Jacobian is block
    triangular (row ``i``: ``i + 1`` entries, each scaled by ``exp(u_ii)``), so
    ``log|det J| = sum_i (i + 1) u_ii`` (``i`` from 0).

    Why not ``tril(u, -1) + diag(exp(diag(u)))`` (vikl's map up to format 3): an
    optimizer such as Adam moves each coordinate by about its learning rate per step
    whatever the posterior's scale, so raw below-diagonal entries crawl toward
    correlations of a posterior with sds of 1e-3 (and overshoot those of sds of 1e3).
    ``u_ij = y_ij / y_ii`` is free of the scale.
    """

    event_ndims_in = 2
    event_ndims_out = 2

    @staticmethod
    def _row_weights(n, dtype):
        return jnp.arange(1, n + 1, dtype=dtype)

    def forward_and_log_det(self, x):
        u = _square(self, x, "x")
        n = u.shape[-1]
        log_diag = jnp.diagonal(u, axis1=-2, axis2=-1)
        eye = jnp.eye(n, dtype=u.dtype)
        unit = jnp.tril(u, k=-1) + eye
        log_det = jnp.sum(self._row_weights(n, u.dtype) * log_diag, -1)
        return jnp.exp(log_diag)[..., :, None] * unit, log_det

    def inverse_and_log_det(self, y):
        y = _square(self, y, "y")
        n = y.shape[-1]
        diag = jnp.diagonal(y, axis1=-2, axis2=-1)
        log_diag = jnp.log(diag)
        eye = jnp.eye(n, dtype=y.dtype)
        unit = jnp.tril(y, k=-1) / diag[..., :, None]
        log_det = -jnp.sum(self._row_weights(n, y.dtype) * log_diag, -1)
        return unit + log_diag[..., None] * eye, log_det


class _SimplexParameterMap(Bijector):
    """``softmax([u, 0])`` (``K - 1 -> K``), computed with vikl's historical operations.

    The same map as ``SoftmaxCentered``; the value is ``jax.nn.softmax`` (not
    ``exp(log_softmax)``, equal only up to the last bit), so seeded fits with
    simplex parameters stay bit-identical.
    """

    event_ndims_in = 1
    event_ndims_out = 1

    def forward_and_log_det(self, x):
        u = jnp.asarray(x)
        self._check_event(u, 1, "x")
        zeros = jnp.zeros(u.shape[:-1] + (1,), u.dtype)
        y = jax.nn.softmax(jnp.concatenate([u, zeros], axis=-1), axis=-1)
        return y, jnp.sum(jnp.log(y), axis=-1)

    def inverse_and_log_det(self, y):
        y = jnp.asarray(y)
        self._check_event(y, 1, "y")
        logx = jnp.log(y)
        return logx[..., :-1] - logx[..., -1:], -jnp.sum(logx, axis=-1)

    def forward_event_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_event_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)


class _CholeskyOuter(Bijector):
    """``L -> L L^T``: from lower-triangular matrices with a positive diagonal onto SPD matrices.

    ``log|det J| = n log 2 + sum_i (n - i) log L_ii`` (``i = 0 .. n-1``), the
    Jacobian between the ``n (n + 1) / 2`` lower-triangular coordinates of
    ``L`` and those of ``L L^T`` (NumPyro's ``CholeskyTransform`` convention);
    the inverse is the Cholesky factorization.
    """

    event_ndims_in = 2
    event_ndims_out = 2

    def _log_det(self, lower):
        n = lower.shape[-1]
        powers = jnp.arange(n, 0, -1).astype(lower.dtype)
        log_diag = jnp.log(jnp.diagonal(lower, axis1=-2, axis2=-1))
        return n * jnp.log(jnp.asarray(2.0, lower.dtype)) + jnp.sum(powers * log_diag, axis=-1)

    def forward_and_log_det(self, x):
        lower = _square(self, x, "x")
        return lower @ jnp.swapaxes(lower, -1, -2), self._log_det(lower)

    def inverse_and_log_det(self, y):
        lower = jnp.linalg.cholesky(_square(self, y, "y"))
        return lower, -self._log_det(lower)


# ----------------------------------------------------------------------------- the table
_IDENTITY, _EXP, _SIGMOID = Identity(), Exp(), Sigmoid()
_MATRIX_CHOLESKY, _SIMPLEX_PARAMETER = _LowerCholeskyMatrix(), _SimplexParameterMap()

_TABLE: dict = {
    constraints._Real: lambda c: _IDENTITY,
    constraints._Positive: lambda c: _EXP,
    constraints._UnitInterval: lambda c: _SIGMOID,
    constraints._Interval: lambda c: Interval(c.low, c.high),
    constraints._GreaterThan: lambda c: GreaterThan(c.low),
    constraints._LessThan: lambda c: LessThan(c.high),
    constraints._Simplex: lambda c: SoftmaxCentered(),
    constraints._LowerCholesky: lambda c: LowerCholesky(),
    constraints._OrderedVector: lambda c: Ordered(),
    constraints._CorrCholesky: lambda c: CorrCholesky(),
    constraints._PositiveDefinite: lambda c: Chain([_CholeskyOuter(), LowerCholesky()]),
}
# Parameter maps that differ from the support's map: vikl's historical ones, kept so that
# optimizer states and saved fits keep their shapes and seeded fits their bits.
_PARAMETER_TABLE: dict = {
    constraints._LowerCholesky: lambda c: _MATRIX_CHOLESKY,
    constraints._Simplex: lambda c: _SIMPLEX_PARAMETER,
}


def register_bijector(constraint, factory: Callable) -> None:
    """Registers the default bijector of a constraint class or of one constraint object.

    Args:
      constraint: a :class:`vikl.constraints.Constraint` subclass (its
        subclasses inherit the registration) or instance (that object only;
        an instance registration wins over its class's).
      factory: ``constraint -> Bijector``, called by :func:`bijector_for` with
        the constraint asked about (so it can read e.g. its bounds).

    The registration replaces any earlier one for the same key, also the
    parameter map of that key (``bijector_for(..., parameter=True)``).

    Raises:
      TypeError: ``constraint`` is neither a Constraint subclass nor instance,
        or ``factory`` is not callable.
    """
    is_class = isinstance(constraint, type) and issubclass(constraint, constraints.Constraint)
    if not (is_class or isinstance(constraint, constraints.Constraint)):
        raise TypeError(
            "register_bijector: constraint must be a vikl.constraints.Constraint subclass or "
            f"instance; got {constraint!r} ({type(constraint).__name__})"
        )
    if not callable(factory):
        raise TypeError(
            "register_bijector: factory must be a callable constraint -> Bijector; got "
            f"{type(factory).__name__}"
        )
    _TABLE[constraint] = factory
    _PARAMETER_TABLE.pop(constraint, None)


def _lookup_key(constraint):
    """The registration that applies to ``constraint``: itself, else its nearest class."""
    try:
        if constraint in _TABLE:
            return constraint
    except TypeError:  # an unhashable constraint object: only class registrations apply
        pass
    for cls in type(constraint).__mro__:
        if cls in _TABLE:
            return cls
    return None


def bijector_for(constraint, *, parameter: bool = False) -> Bijector:
    """The default bijector from unconstrained space onto a constraint's set.

    Args:
      constraint: a :class:`vikl.constraints.Constraint` (e.g.
        ``vikl.constraints.positive``, a distribution's ``support``).
      parameter: True for the map used to train a parameter of this
        constraint (differs from the support's map only for
        ``lower_cholesky``, see the module docs).

    Returns:
      A :class:`Bijector` ``b`` with ``b.forward(u)`` in the constraint's set.

    Raises:
      TypeError: ``constraint`` is not a vikl constraint.
      NoBijectorError: (a ``ValueError`` and ``NotImplementedError``) the
        constraint is discrete, fixed data, or has no registered bijector.
    """
    if not isinstance(constraint, constraints.Constraint):
        raise TypeError(
            f"bijector_for expects a vikl.constraints.Constraint; got {constraint!r} "
            f"({type(constraint).__name__})"
        )
    if constraint.is_discrete or not constraint.trainable:
        kind = "discrete" if constraint.is_discrete else "fixed (not trainable)"
        raise NoBijectorError(
            f"bijector_for: constraint {constraint!r} is {kind}; it has no bijector to "
            "unconstrained space (discrete values cannot be fitted by a continuous q)"
        )
    key = _lookup_key(constraint)
    if key is None:
        raise NoBijectorError(
            f"bijector_for: no bijector is registered for constraint {constraint!r} "
            f"({type(constraint).__name__}); register one with "
            "vikl.bijectors.register_bijector(constraint_class_or_instance, factory)"
        )
    factory = _PARAMETER_TABLE.get(key) if parameter else None
    bijector = (factory or _TABLE[key])(constraint)
    if not isinstance(bijector, Bijector):
        raise TypeError(
            f"the bijector factory registered for {constraint!r} returned "
            f"{type(bijector).__name__}, not a vikl.bijectors.Bijector"
        )
    return bijector
