"""Parameter and support constraints.

Every parameter of a :class:`vikl.Distribution` declares a constraint, and
every distribution declares its ``support`` as one. A constraint knows:

* ``check(x)`` -- a boolean array saying where ``x`` satisfies it (used at
  construction, outside ``jit``, to reject bad input with a clear message);
* ``description`` / ``describe_violation(x)`` -- the words of that message.

The map between a constraint's set and unconstrained space is a bijector,
looked up with :func:`vikl.bijectors.bijector_for` (one source of truth: the
parameter maps of :func:`vikl.fit` go through it too).

``event_dim`` is the number of trailing axes that belong to one value of the
parameter (0 for a scalar, 1 for a vector such as a simplex, 2 for a matrix
such as a Cholesky factor). Constraints with ``is_discrete=True`` or
``trainable=False`` have no bijection; ``fit`` keeps those parameters fixed.

Every constraint rejects NaN and infinities, with one documented exception:
logits (:data:`logit`, :data:`logits_vector`) may be ``-inf``, meaning an
outcome of probability 0 (and a scalar log-odds may be ``+inf``: probability
1). Positive values must be at least the dtype's smallest *normal* number
(``jnp.finfo(dtype).tiny``, about 1.2e-38 in float32 and 2.2e-308 in float64):
XLA flushes subnormal numbers to zero, so a smaller scale would be computed as
0 (``log(scale) = -inf``, ``0 / 0 = NaN``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Constraint",
    "corr_cholesky",
    "fixed",
    "fixed_vector",
    "greater_than",
    "interval",
    "less_than",
    "logit",
    "logits_vector",
    "lower_cholesky",
    "nonnegative_integer",
    "ordered_vector",
    "positive",
    "positive_definite",
    "positive_integer",
    "positive_vector",
    "real",
    "real_vector",
    "simplex",
    "unit_interval",
]


class Constraint:
    """Base class of parameter constraints.

    Subclasses set ``name`` (used in error messages), ``event_dim`` and
    implement ``check``. Their unconstrained map is the bijector registered for
    them (:func:`vikl.bijectors.register_bijector`).
    """

    name = "unconstrained"
    description = "valid"
    event_dim = 0
    is_discrete = False
    trainable = True

    def check(self, x):
        """Boolean array (shape ``x.shape[:x.ndim - event_dim]``): True where valid."""
        return jnp.ones(jnp.shape(x)[: jnp.ndim(x) - self.event_dim], dtype=bool)

    def describe_violation(self, x) -> str:
        """Human-readable summary of what is wrong with a concrete ``x``."""
        x = np.asarray(x)
        if x.size == 0:
            return f"shape {x.shape}"
        if np.issubdtype(x.dtype, np.number):
            return f"min {x.min():.6g}, max {x.max():.6g} (shape {x.shape})"
        return f"shape {x.shape}"

    def __repr__(self):
        return f"constraints.{self.name}"


def _nonfinite_counts(x) -> str:
    """``"2 NaN, 1 +inf"``-style summary of the non-finite entries of ``x`` ("" if none)."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.inexact):
        return ""
    parts = [
        f"{n} {what}"
        for n, what in (
            (int(np.isnan(x).sum()), "NaN"),
            (int(np.isposinf(x).sum()), "+inf"),
            (int(np.isneginf(x).sum()), "-inf"),
        )
        if n
    ]
    return ", ".join(parts)


def _tiny(x):
    """Smallest positive normal number of ``x``'s floating dtype (default float otherwise)."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.zeros(()).dtype
    return jnp.finfo(dtype).tiny


def _subnormal_note(x) -> str:
    """An explanation when ``x`` holds positive values below the dtype's smallest normal number."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        return ""
    tiny = float(jnp.finfo(jnp.result_type(x)).tiny)
    n = int(np.sum((x > 0) & (x < tiny)))
    if not n:
        return ""
    return (
        f"; {n} value(s) are subnormal (0 < value < {tiny:.6g}, the smallest normal "
        f"{np.dtype(x.dtype).name}): XLA flushes them to zero, so they would act as 0. Use "
        "float64 (jax.config.update('jax_enable_x64', True)) or rescale the problem"
    )


def _all_event(ok, event_dim):
    """Reduces an elementwise mask over the trailing ``event_dim`` axes."""
    if event_dim:
        ok = jnp.all(ok, axis=tuple(range(-event_dim, 0)))
    return ok


class _Real(Constraint):
    """Finite real numbers: NaN and ``+-inf`` are refused.

    An infinite location or weight is not a distribution (``inf - inf = NaN``
    appears in every formula); :class:`_Logits` is the exception for logits.
    """

    name = "real"
    description = "finite real numbers (not NaN or +-inf)"

    def __init__(self, event_dim=0):
        self.event_dim = event_dim

    def check(self, x):
        return _all_event(jnp.isfinite(x), self.event_dim)

    def describe_violation(self, x):
        x = np.asarray(x)
        return f"{_nonfinite_counts(x) or 'no non-finite'} value(s) (shape {x.shape})"


class _Logits(_Real):
    """Log-probabilities up to a constant: ``-inf`` (probability 0) is allowed, NaN is not.

    Unconstrained like :class:`_Real` (its identity maps), with a looser check.

    Scalar log-odds (``event_dim=0``, Bernoulli-like families) may be ``+inf``
    too (probability 1). Logit vectors (``event_dim=1``, normalized by a
    softmax over the last axis) may not hold ``+inf`` (``inf - inf`` in the
    softmax) and need at least one entry ``> -inf`` per vector.
    """

    def __init__(self, event_dim=0):
        self.event_dim = event_dim
        if event_dim == 0:
            self.name = "logit"
            self.description = "real numbers or +-inf (not NaN); -inf means probability 0"
        else:
            self.name = "logits_vector"
            self.description = (
                "real numbers or -inf (not NaN or +inf), at least one finite entry along the "
                "last axis; -inf marks an outcome of probability 0"
            )

    def check(self, x):
        if self.event_dim == 0:
            return ~jnp.isnan(x)
        ok = _all_event(~jnp.isnan(x) & (x < jnp.inf), self.event_dim)
        return ok & jnp.any(jnp.isfinite(x), axis=-1)

    def describe_violation(self, x):
        x = np.asarray(x)
        text = _nonfinite_counts(x) or "no non-finite"
        if self.event_dim and x.ndim and x.shape[-1]:
            empty = int(np.sum(~np.any(np.isfinite(x), axis=-1)))
            if empty:
                text += f"; {empty} vector(s) with no finite entry"
        return f"{text} value(s) (shape {x.shape})"


class _Positive(Constraint):
    """Finite values ``> 0`` (at least the dtype's smallest normal number).

    ``+inf`` is refused: a scale or rate of ``inf`` is not a distribution (no
    density), and formulas evaluated there give ``inf - inf = NaN``. Subnormal
    values (``0 < x < jnp.finfo(dtype).tiny``) are refused with an explanation:
    XLA flushes them to zero, so every formula would see a scale of 0.
    """

    name = "positive"
    description = "> 0 and finite"

    def __init__(self, event_dim=0):
        self.event_dim = event_dim

    def check(self, x):
        return _all_event((x >= _tiny(x)) & (x < jnp.inf), self.event_dim)

    def describe_violation(self, x):
        return super().describe_violation(x) + _subnormal_note(x)


class _UnitInterval(Constraint):
    name = "unit_interval"
    description = "in [0, 1]"

    def check(self, x):
        return (x >= 0) & (x <= 1)


class _Simplex(Constraint):
    """Probability vectors along the last axis (non-negative, summing to one).

    Its default bijector is the centred softmax: ``u`` in R^{K-1},
    ``x = softmax([u, 0])``; its inverse is ``u = log x[:-1] - log x[-1]``.
    """

    name = "simplex"
    description = "probabilities along the last axis (>= 0, summing to 1)"
    event_dim = 1
    atol = 1e-5  # float32 sums of 1000 probabilities drift by ~1e-6

    def check(self, x):
        tol = self.atol * max(1, int(np.sqrt(jnp.shape(x)[-1])))
        s = jnp.sum(x, axis=-1)
        return jnp.all(x >= 0, axis=-1) & (jnp.abs(s - 1) <= tol)

    def describe_violation(self, x):
        x = np.asarray(x)
        s = x.sum(-1)
        return (
            f"min entry {x.min():.6g}, row sums in [{s.min():.8g}, {s.max():.8g}] "
            f"(shape {x.shape})"
        )


class _LowerCholesky(Constraint):
    """Square lower-triangular matrices with a positive diagonal.

    Parameters of this constraint are trained through a matrix map: the
    strictly-lower part is left as is, the diagonal goes through ``exp``.
    """

    name = "lower_cholesky"
    description = "square lower-triangular with a positive, finite diagonal and finite entries"
    event_dim = 2

    def check(self, x):
        x = jnp.asarray(x)
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            return jnp.zeros(x.shape[:-2] if x.ndim >= 2 else (), bool)
        upper = jnp.triu(x, k=1)
        diag = jnp.diagonal(x, axis1=-2, axis2=-1)
        finite = jnp.all(jnp.isfinite(x), axis=(-2, -1))
        diag_ok = jnp.all(diag >= _tiny(x), axis=-1)
        return jnp.all(upper == 0, axis=(-2, -1)) & diag_ok & finite

    def describe_violation(self, x):
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            return f"shape {x.shape}; expected a square matrix in the last two axes"
        upper = np.abs(np.triu(x, 1)).max() if x.shape[-1] > 1 else 0.0
        diag = np.diagonal(x, axis1=-2, axis2=-1)
        bad = int(np.sum(~np.isfinite(x)))
        nonfinite = f", {bad} non-finite entr{'y' if bad == 1 else 'ies'}" if bad else ""
        return (
            f"largest |entry| above the diagonal {upper:.6g}, smallest diagonal entry "
            f"{diag.min():.6g}{nonfinite} (shape {x.shape}){_subnormal_note(diag)}"
        )


def _is_tracer(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _fmt(v) -> str:
    """A short text for a bound: its value when small and concrete, its shape otherwise."""
    if _is_tracer(v):
        return "(traced)"
    a = np.asarray(v)
    if a.size == 1:
        return f"{a.item():.6g}"
    if a.size <= 4:
        return str(np.round(a.astype(float), 6).tolist())
    return f"array{list(a.shape)}"


class _Interval(Constraint):
    """Values in the closed interval ``[low, high]`` (bounds broadcast with the value).

    Build one with :func:`interval`; ``low`` and ``high`` may be arrays (the
    per-instance support of a batch of ``Uniform`` distributions).
    """

    name = "interval"

    def __init__(self, low, high):
        self.low = low
        self.high = high
        self.description = f"in [{_fmt(low)}, {_fmt(high)}]"

    def check(self, x):
        return (x >= self.low) & (x <= self.high)

    def __repr__(self):
        return f"constraints.interval({_fmt(self.low)}, {_fmt(self.high)})"


class _GreaterThan(Constraint):
    """Finite values ``> low`` (``low`` broadcasts with the value)."""

    name = "greater_than"

    def __init__(self, low):
        self.low = low
        self.description = f"> {_fmt(low)} and finite"

    def check(self, x):
        return (x > self.low) & (x < jnp.inf)

    def __repr__(self):
        return f"constraints.greater_than({_fmt(self.low)})"


class _LessThan(Constraint):
    """Finite values ``< high`` (``high`` broadcasts with the value)."""

    name = "less_than"

    def __init__(self, high):
        self.high = high
        self.description = f"< {_fmt(high)} and finite"

    def check(self, x):
        return (x < self.high) & (x > -jnp.inf)

    def __repr__(self):
        return f"constraints.less_than({_fmt(self.high)})"


def _check_bounds(what, **bounds):
    """ValueError unless the concrete bounds are real, not NaN, and (for two) ``low < high``."""
    if _is_tracer(*bounds.values()):
        return
    arrays = {}
    for k, v in bounds.items():
        a = np.asarray(v)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"constraints.{what}: {k} must be real numbers; got dtype {a.dtype}")
        if np.any(np.isnan(a)):
            raise ValueError(f"constraints.{what}: {k} must not be NaN; got {_fmt(a)}")
        arrays[k] = a
    if len(arrays) == 2 and not np.all(arrays["low"] < arrays["high"]):
        raise ValueError(
            f"constraints.{what}: low must be < high everywhere; got low {_fmt(arrays['low'])} "
            f"and high {_fmt(arrays['high'])}"
        )


def interval(low, high) -> Constraint:
    """The constraint ``low <= x <= high`` (closed; default bijector :class:`Interval`).

    Args:
      low: lower bound(s) (array-like, broadcasting with ``high``).
      high: upper bound(s), ``> low`` where concrete.

    Raises:
      ValueError: concrete bounds with a NaN or with ``low >= high`` somewhere.
    """
    _check_bounds("interval", low=low, high=high)
    return _Interval(low, high)


def greater_than(low) -> Constraint:
    """The constraint ``x > low`` (finite ``x``; default bijector ``low + exp(u)``)."""
    _check_bounds("greater_than", low=low)
    return _GreaterThan(low)


def less_than(high) -> Constraint:
    """The constraint ``x < high`` (finite ``x``; default bijector ``high - exp(u)``)."""
    _check_bounds("less_than", high=high)
    return _LessThan(high)


class _OrderedVector(Constraint):
    """Finite vectors whose entries strictly increase along the last axis."""

    name = "ordered_vector"
    description = "finite, strictly increasing along the last axis"
    event_dim = 1

    def check(self, x):
        x = jnp.asarray(x)
        increasing = jnp.all(x[..., 1:] > x[..., :-1], axis=-1)
        return increasing & jnp.all(jnp.isfinite(x), axis=-1)


def _square(x) -> bool:
    return x.ndim >= 2 and x.shape[-1] == x.shape[-2]


class _CorrCholesky(Constraint):
    """Cholesky factors of correlation matrices: lower-triangular, positive
    diagonal, each row of unit Euclidean norm (within ``atol * sqrt(n)``)."""

    name = "corr_cholesky"
    description = (
        "square lower-triangular with a positive diagonal and rows of unit norm (the Cholesky "
        "factor of a correlation matrix)"
    )
    event_dim = 2
    atol = 1e-5  # float32 row norms of unit rows drift by ~1e-7 per entry

    def check(self, x):
        x = jnp.asarray(x)
        if not _square(x):
            return jnp.zeros(x.shape[:-2] if x.ndim >= 2 else (), bool)
        tol = self.atol * max(1.0, float(np.sqrt(x.shape[-1])))
        lower = jnp.all(jnp.triu(x, k=1) == 0, axis=(-2, -1))
        diag = jnp.all(jnp.diagonal(x, axis1=-2, axis2=-1) > 0, axis=-1)
        norms = jnp.sqrt(jnp.sum(x * x, axis=-1))
        unit = jnp.all(jnp.abs(norms - 1) <= tol, axis=-1)
        return lower & diag & unit & jnp.all(jnp.isfinite(x), axis=(-2, -1))

    def describe_violation(self, x):
        x = np.asarray(x)
        if not _square(x):
            return f"shape {x.shape}; expected a square matrix in the last two axes"
        upper = np.abs(np.triu(x, 1)).max() if x.shape[-1] > 1 else 0.0
        norms = np.sqrt(np.sum(x.astype(float) ** 2, axis=-1))
        return (
            f"largest |entry| above the diagonal {upper:.6g}, smallest diagonal entry "
            f"{np.diagonal(x, axis1=-2, axis2=-1).min():.6g}, row norms in "
            f"[{norms.min():.8g}, {norms.max():.8g}] (shape {x.shape})"
        )


class _PositiveDefinite(Constraint):
    """Symmetric positive-definite matrices (symmetric within a relative ``rtol``)."""

    name = "positive_definite"
    description = "symmetric positive-definite (finite) matrices"
    event_dim = 2
    rtol = 1e-5

    def check(self, x):
        x = jnp.asarray(x)
        if not _square(x):
            return jnp.zeros(x.shape[:-2] if x.ndim >= 2 else (), bool)
        finite = jnp.all(jnp.isfinite(x), axis=(-2, -1))
        x = jnp.where(finite[..., None, None], x, jnp.eye(x.shape[-1], dtype=x.dtype))
        xt = jnp.swapaxes(x, -1, -2)
        size = jnp.max(jnp.abs(x), axis=(-2, -1))
        symmetric = jnp.all(jnp.abs(x - xt) <= self.rtol * size[..., None, None], axis=(-2, -1))
        smallest = jnp.linalg.eigvalsh(0.5 * (x + xt))[..., 0]
        return finite & symmetric & (smallest > 0)


class _Integer(Constraint):
    is_discrete = True
    trainable = False

    def __init__(self, name, lower):
        self.name = name
        self.lower = lower
        self.description = f"integers >= {lower} (finite)"

    def check(self, x):
        return (x >= self.lower) & (jnp.floor(x) == x) & jnp.isfinite(x)


class _Fixed(Constraint):
    """Any finite real array, never trained (data, e.g. Empirical samples)."""

    trainable = False

    def __init__(self, event_dim=0):
        self.name = "fixed"
        self.description = "finite real numbers (not NaN or +-inf)"
        self.event_dim = event_dim

    def check(self, x):
        return _all_event(jnp.isfinite(x), self.event_dim)

    def describe_violation(self, x):
        x = np.asarray(x)
        return f"{_nonfinite_counts(x) or 'no non-finite'} value(s) (shape {x.shape})"


real = _Real()
real_vector = _Real(event_dim=1)
real_vector.name = "real_vector"
logit = _Logits()
logits_vector = _Logits(event_dim=1)
positive = _Positive()
positive_vector = _Positive(event_dim=1)
positive_vector.name = "positive_vector"
unit_interval = _UnitInterval()
simplex = _Simplex()
lower_cholesky = _LowerCholesky()
nonnegative_integer = _Integer("nonnegative_integer", 0)
positive_integer = _Integer("positive_integer", 1)
fixed = _Fixed()
fixed_vector = _Fixed(event_dim=1)
ordered_vector = _OrderedVector()
corr_cholesky = _CorrCholesky()
positive_definite = _PositiveDefinite()
