"""Elementwise bijectors (``event_ndims = 0``) and the affine maps.

Each elementwise bijector maps every coordinate on its own, so its
log-Jacobian is returned elementwise (shape of the broadcast of the input with
the bijector's ``batch_shape``). :class:`AffineTriL` is the exception: it acts
on vectors (``event_ndims = 1``) and sums its log-Jacobian over the vector.

Float32 care. Log-Jacobians use softplus / log-sigmoid forms, never
``log(sigmoid(x))`` or ``log(exp(x))``: at saturated inputs (``Sigmoid`` at
``+-40``, ``Softplus`` at ``-100``, ``Exp`` at ``+-90``) the value may round to
its bound but the log-Jacobian stays finite and correct, and so do gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import param
from vikl.bijectors._bijector import Bijector

__all__ = [
    "Affine",
    "AffineTriL",
    "Exp",
    "GreaterThan",
    "Identity",
    "Interval",
    "LessThan",
    "Power",
    "Sigmoid",
    "Softplus",
    "Tanh",
]


def _log1mexp(y):
    """``log(1 - exp(-y))`` for ``y > 0``, accurate for small and large ``y`` (Maechler 2012)."""
    small = y <= np.log(2.0)
    # Each branch gets an argument safe for it, so the unused one yields no NaN gradient.
    y_small = jnp.where(small, y, 1.0)
    y_large = jnp.where(small, 1.0, y)
    return jnp.where(small, jnp.log(-jnp.expm1(-y_small)), jnp.log1p(-jnp.exp(-y_large)))


class _Elementwise(Bijector):
    """Shared shape handling of the elementwise bijectors."""

    is_elementwise = True

    def _arg(self, x, what):
        """``x`` as an array whose shape broadcasts with ``batch_shape`` (ValueError otherwise)."""
        x = jnp.asarray(x)
        batch = self.batch_shape
        try:
            jnp.broadcast_shapes(jnp.shape(x), batch)
        except ValueError as err:
            raise ValueError(
                f"{type(self).__name__}: the shape of {what}, {tuple(jnp.shape(x))}, does not "
                f"broadcast with the bijector's batch_shape {tuple(batch)}"
            ) from err
        return x

    def _full(self, log_det, x):
        """``log_det`` broadcast to the shape of ``x`` broadcast with ``batch_shape``."""
        return jnp.broadcast_to(log_det, jnp.broadcast_shapes(jnp.shape(x), jnp.shape(log_det)))


class Identity(_Elementwise):
    """``y = x``; log-Jacobian 0."""

    is_constant_jacobian = True

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        return x, jnp.zeros_like(x)

    def inverse_and_log_det(self, y):
        y = jnp.asarray(y)
        return y, jnp.zeros_like(y)


class Exp(_Elementwise):
    """``y = exp(x)`` onto ``(0, inf)``; ``log|dy/dx| = x``."""

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        return jnp.exp(x), x

    def inverse_and_log_det(self, y):
        x = jnp.log(y)
        return x, -x


class Softplus(_Elementwise):
    """``y = log(1 + exp(x))`` onto ``(0, inf)``; ``log|dy/dx| = log sigmoid(x)``.

    The inverse is ``x = y + log(1 - exp(-y))``, with ``log(1 - exp(-y))``
    evaluated by the two-branch ``log1mexp`` (``log(-expm1(-y))`` for small
    ``y``, ``log1p(-exp(-y))`` for large ``y``), accurate at both ends.
    """

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        return jax.nn.softplus(x), jax.nn.log_sigmoid(x)

    def inverse_and_log_det(self, y):
        y = jnp.asarray(y)
        log1mexp = _log1mexp(y)
        return y + log1mexp, -log1mexp


class Sigmoid(_Elementwise):
    """``y = 1 / (1 + exp(-x))`` onto ``(0, 1)``.

    ``log|dy/dx| = -softplus(-x) - softplus(x)`` (finite at ``x = +-40`` in
    float32, where ``y`` itself rounds to 1 or to a tiny number). The inverse
    is the logit ``log(y) - log1p(-y)``.
    """

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        return jax.nn.sigmoid(x), -jax.nn.softplus(-x) - jax.nn.softplus(x)

    def inverse_and_log_det(self, y):
        y = jnp.asarray(y)
        log_y, log_1my = jnp.log(y), jnp.log1p(-y)
        return log_y - log_1my, -log_y - log_1my


class Tanh(_Elementwise):
    """``y = tanh(x)`` onto ``(-1, 1)``; ``log|dy/dx| = 2 (log 2 - x - softplus(-2x))``."""

    def forward_and_log_det(self, x):
        x = jnp.asarray(x)
        return jnp.tanh(x), 2.0 * (np.log(2.0) - x - jax.nn.softplus(-2.0 * x))

    def inverse_and_log_det(self, y):
        y = jnp.asarray(y)
        return jnp.arctanh(y), -jnp.log1p(-y) - jnp.log1p(y)


class Interval(_Elementwise):
    """``y = low + (high - low) sigmoid(x)`` onto ``(low, high)``.

    ``low`` and ``high`` are fixed (not trained by :func:`vikl.fit`): they
    describe a support. Construction checks ``low < high`` on concrete values.
    The forward map is evaluated from the nearer end (``high - (high - low)
    sigmoid(-x)`` for ``x > 0``) and the inverse as ``log(y - low) - log(high -
    y)``, so values close to either bound keep their accuracy.

    Args:
      low: lower bound(s), finite; broadcasts with ``high``.
      high: upper bound(s), finite, ``> low``.
    """

    low: jax.Array = param(constraints.fixed)
    high: jax.Array = param(constraints.fixed)

    def _check_args(self):
        low, high = np.asarray(self.low), np.asarray(self.high)
        if not np.all(low < high):
            raise ValueError(
                f"Interval: low must be < high everywhere; got low {low.tolist()} and high "
                f"{high.tolist()}"
            )

    def forward_and_log_det(self, x):
        x = self._arg(x, "x")
        width = self.high - self.low
        y = jnp.where(
            x > 0, self.high - width * jax.nn.sigmoid(-x), self.low + width * jax.nn.sigmoid(x)
        )
        log_det = jnp.log(width) - jax.nn.softplus(-x) - jax.nn.softplus(x)
        return y, log_det

    def inverse_and_log_det(self, y):
        y = self._arg(y, "y")
        log_lo, log_hi = jnp.log(y - self.low), jnp.log(self.high - y)
        return log_lo - log_hi, jnp.log(self.high - self.low) - log_lo - log_hi


class GreaterThan(_Elementwise):
    """``y = low + exp(x)`` onto ``(low, inf)``; ``log|dy/dx| = x``. ``low`` is fixed."""

    low: jax.Array = param(constraints.fixed)

    def forward_and_log_det(self, x):
        x = self._arg(x, "x")
        return self.low + jnp.exp(x), self._full(x, self.low)

    def inverse_and_log_det(self, y):
        y = self._arg(y, "y")
        x = jnp.log(y - self.low)
        return x, -x


class LessThan(_Elementwise):
    """``y = high - exp(x)`` onto ``(-inf, high)``; ``log|dy/dx| = x``. ``high`` is fixed."""

    high: jax.Array = param(constraints.fixed)

    def forward_and_log_det(self, x):
        x = self._arg(x, "x")
        return self.high - jnp.exp(x), self._full(x, self.high)

    def inverse_and_log_det(self, y):
        y = self._arg(y, "y")
        x = jnp.log(self.high - y)
        return x, -x


class Power(_Elementwise):
    """``y = x ** exponent`` on ``(0, inf)`` (``exponent != 0``, fixed).

    ``log|dy/dx| = log|exponent| + (exponent - 1) log x``; ``Power(0.5)`` is the
    square root.
    """

    exponent: jax.Array = param(constraints.fixed)

    def _check_args(self):
        p = np.asarray(self.exponent)
        if np.any(p == 0):
            raise ValueError(f"Power: exponent must be nonzero; got {p.tolist()}")

    def forward_and_log_det(self, x):
        x = self._arg(x, "x")
        p = self.exponent
        log_x = jnp.log(x)
        return jnp.exp(p * log_x), jnp.log(jnp.abs(p)) + (p - 1) * log_x

    def inverse_and_log_det(self, y):
        y = self._arg(y, "y")
        p = self.exponent
        log_x = jnp.log(y) / p
        return jnp.exp(log_x), -jnp.log(jnp.abs(p)) - (p - 1) * log_x


class Affine(_Elementwise):
    """``y = shift + scale * x`` elementwise, with a learnable ``shift`` and ``scale > 0``.

    The log-Jacobian ``log(scale)`` does not depend on ``x``
    (``is_constant_jacobian``). Both parameters are trained by :func:`vikl.fit`
    (``scale`` through ``log``).

    Args:
      shift: real array (default 0).
      scale: positive array (default 1); broadcasts with ``shift``.
    """

    shift: jax.Array = param(constraints.real, default=0.0)
    scale: jax.Array = param(constraints.positive, default=1.0)

    is_constant_jacobian = True

    def forward_and_log_det(self, x):
        x = self._arg(x, "x")
        return self.shift + self.scale * x, self._full(jnp.log(self.scale), x)

    def inverse_and_log_det(self, y):
        y = self._arg(y, "y")
        return (y - self.shift) / self.scale, self._full(-jnp.log(self.scale), y)


class AffineTriL(Bijector):
    """``y = shift + L x`` on vectors (``event_ndims = 1``), ``L`` lower-triangular.

    ``L = scale_tril`` has a positive diagonal, so ``log|det J| = sum log
    diag(L)`` (constant in ``x``); the inverse is a triangular solve. Both
    parameters are learnable (``scale_tril`` through the lower-Cholesky
    parameter map: strictly-lower part as is, ``log`` of the diagonal).

    Args:
      shift: vector(s) of size ``n`` (batch ``batch_shape``).
      scale_tril: ``(..., n, n)`` lower-triangular with a positive diagonal.
    """

    shift: jax.Array = param(constraints.real_vector)
    scale_tril: jax.Array = param(constraints.lower_cholesky)

    event_ndims_in = 1
    event_ndims_out = 1
    is_constant_jacobian = True

    def _check_shapes(self):
        n, m = jnp.shape(self.shift)[-1], jnp.shape(self.scale_tril)[-1]
        if n != m:
            raise ValueError(
                f"AffineTriL: shift has size {n} but scale_tril is {m} x {m}; they must match"
            )

    def _log_det(self, batch):
        diag = jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)
        log_det = jnp.sum(jnp.log(diag), axis=-1)
        return jnp.broadcast_to(log_det, jnp.broadcast_shapes(batch, jnp.shape(log_det)))

    def _vector(self, x, what):
        x = jnp.asarray(x)
        n = jnp.shape(self.shift)[-1]
        self._check_event(x, 1, what, (n,))
        try:
            batch = jnp.broadcast_shapes(jnp.shape(x)[:-1], self.batch_shape)
        except ValueError as err:
            raise ValueError(
                f"AffineTriL: the batch shape of {what}, {tuple(jnp.shape(x)[:-1])}, does not "
                f"broadcast with the bijector's batch_shape {tuple(self.batch_shape)}"
            ) from err
        return x, tuple(batch)

    def forward_and_log_det(self, x):
        x, batch = self._vector(x, "x")
        y = self.shift + jnp.matmul(self.scale_tril, x[..., None])[..., 0]
        return y, self._log_det(batch)

    def inverse_and_log_det(self, y):
        y, batch = self._vector(y, "y")
        n = jnp.shape(y)[-1]
        lower = jnp.broadcast_to(self.scale_tril, batch + (n, n))
        rhs = jnp.broadcast_to(y - self.shift, batch + (n,))[..., None]
        x = jax.scipy.linalg.solve_triangular(lower, rhs, lower=True)[..., 0]
        return x, -self._log_det(batch)
