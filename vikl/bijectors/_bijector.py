"""The :class:`Bijector` base class: invertible, differentiable maps with log-Jacobians.

A bijector is an immutable pytree (like a :class:`vikl.Distribution`): its
array parameters are leaves (declared with :func:`vikl.param` and a
constraint, so :func:`vikl.fit` can learn them), its configuration is static.

Shapes. A bijector acts on the trailing ``event_ndims_in`` axes of its input
and produces ``event_ndims_out`` trailing axes (equal for most; a simplex
bijector maps ``(K - 1,)`` to ``(K,)``, a correlation-Cholesky bijector maps
``(n (n - 1) / 2,)`` to ``(n, n)``). Leading axes are batch axes and broadcast
against the bijector's own ``batch_shape`` like NumPy arrays. Log-determinants
are summed over the event axes: ``forward_log_det_jacobian(x)`` has the shape
of ``x`` without its last ``event_ndims_in`` axes (broadcast with
``batch_shape``).

A subclass implements :meth:`forward_and_log_det` and
:meth:`inverse_and_log_det` (one pass each: the value and the log-Jacobian
share their intermediate terms); the four single-purpose methods derive from
them. Shape-changing subclasses also override :meth:`forward_event_shape` and
:meth:`inverse_event_shape`.

Checks. Event shapes are static, so applying a bijector to an input whose
event axes do not fit raises ``ValueError`` also under ``jit``; parameter
values are checked at construction on concrete values only (never under
``jit``), like distributions.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from vikl._base import Module, is_concrete

__all__ = ["Bijector", "sum_last"]


def sum_last(x, n: int):
    """Sums the last ``n`` axes of ``x`` (``n = 0``: ``x`` itself)."""
    return jnp.sum(x, axis=tuple(range(-n, 0))) if n else x


class Bijector(Module):
    """Base class of bijectors ``y = f(x)``.

    Class attributes a subclass may set:

    * ``event_ndims_in`` / ``event_ndims_out`` -- number of trailing axes of
      one input / output value (0 for elementwise maps);
    * ``is_constant_jacobian`` -- True when ``log|det J|`` does not depend on
      ``x`` (affine maps): a transformed distribution then has a closed-form
      entropy;
    * ``is_elementwise`` -- True for maps applied to each coordinate on its
      own (their log-Jacobian is elementwise before the event sum).
    """

    event_ndims_in: ClassVar[int] = 0
    event_ndims_out: ClassVar[int] = 0
    is_constant_jacobian: ClassVar[bool] = False
    is_elementwise: ClassVar[bool] = False

    # ------------------------------------------------------------------ to implement
    def forward_and_log_det(self, x):
        """``(f(x), log|det df/dx|)`` in one pass; log-det summed over the event axes."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_and_log_det")

    def inverse_and_log_det(self, y):
        """``(f^{-1}(y), log|det df^{-1}/dy|)`` in one pass (the second is ``-fldj(f^{-1}(y))``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement inverse_and_log_det")

    # ------------------------------------------------------------------ derived
    def forward(self, x):
        """``y = f(x)``."""
        return self.forward_and_log_det(x)[0]

    def inverse(self, y):
        """``x = f^{-1}(y)``."""
        return self.inverse_and_log_det(y)[0]

    def forward_log_det_jacobian(self, x):
        """``log|det df/dx|`` at ``x``, summed over the event axes."""
        return self.forward_and_log_det(x)[1]

    def inverse_log_det_jacobian(self, y):
        """``log|det df^{-1}/dy|`` at ``y``, summed over the event axes."""
        return self.inverse_and_log_det(y)[1]

    def forward_event_shape(self, shape) -> tuple[int, ...]:
        """Event shape of ``f(x)`` for an input event shape ``shape`` (a tuple)."""
        return tuple(shape)

    def inverse_event_shape(self, shape) -> tuple[int, ...]:
        """Event shape of ``f^{-1}(y)`` for an output event shape ``shape``."""
        return tuple(shape)

    # ------------------------------------------------------------------ comparing
    def same_as(self, other) -> bool:
        """Whether ``other`` is the same map (used to decide closed-form KLs).

        Two bijectors are the same when they have the same type, equal static
        configuration and equal parameters: the same array objects, or
        concrete arrays with equal shapes and values. Traced parameters (inside
        ``jit``) that are not the same object cannot be compared and count as
        different; parameter-free bijectors (``Exp``, ``Sigmoid``, ...) compare
        equal under ``jit`` too.
        """
        if type(self) is not type(other):
            return False
        mine, my_def = jax.tree_util.tree_flatten(self)
        theirs, their_def = jax.tree_util.tree_flatten(other)
        if my_def != their_def:
            return False
        for a, b in zip(mine, theirs):
            if a is b:
                continue
            if not (is_concrete(a) and is_concrete(b)):
                return False
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape or not np.array_equal(a, b):
                return False
        return True

    # ------------------------------------------------------------------ helpers
    def _check_event(self, x, ndims: int, what: str = "x", size=None):
        """Raises ``ValueError`` unless ``x`` has ``ndims`` event axes (of sizes ``size``)."""
        shape = jnp.shape(x)
        if len(shape) < ndims:
            raise ValueError(
                f"{type(self).__name__}: {what} must have at least {ndims} axis/axes (its event "
                f"axes); got shape {tuple(shape)}"
            )
        if size is not None and tuple(shape[len(shape) - ndims:]) != tuple(size):
            raise ValueError(
                f"{type(self).__name__}: the event shape of {what} must be {tuple(size)}; got "
                f"shape {tuple(shape)}"
            )
