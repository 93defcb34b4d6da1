"""The :class:`Distribution` base class: immutable pytrees with declared parameters.

A family is a subclass with annotated fields. Each field is one of

* a *parameter*, declared with :func:`param` and a constraint: an array that
  is converted to a floating dtype, checked at construction (outside ``jit``)
  and broadcast against the other parameters; ``fit`` optimizes it in
  unconstrained space through the constraint's bijection;
* a *child*, a plain field holding any pytree (another Distribution, a dict of
  network weights); it travels through ``jit``/``vmap``/``grad`` as leaves;
* a *static* field, declared with :func:`static`: hashable, part of the
  compiled program (a dimension, a flag), never a leaf.

Subclassing turns the class into a frozen dataclass and registers it as a JAX
pytree whose unflatten skips ``__init__`` (JAX rebuilds trees from tracers,
zeros and ``None``; a validating ``__init__`` must not run then).

Example -- a new family in a few lines::

    class Logistic(vikl.Distribution):
        loc: jax.Array = vikl.param(vikl.constraints.real)
        scale: jax.Array = vikl.param(vikl.constraints.positive)

        def sample(self, key, sample_shape=()):
            shape = tuple(sample_shape) + self.batch_shape
            return self.loc + self.scale * jax.random.logistic(key, shape, self.loc.dtype)

        def log_prob(self, x):
            z = (x - self.loc) / self.scale
            return -z - 2 * jax.nn.softplus(-z) - jnp.log(self.scale)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._math import with_score
from vikl._validate import IntTypeError, check_int

__all__ = [
    "Distribution",
    "Module",
    "check_sample_shape",
    "is_concrete",
    "param",
    "static",
    "validation",
]

_VALIDATE = [True]


@contextlib.contextmanager
def validation(enabled: bool):
    """Context manager that turns construction-time argument checks on or off.

    Checks run only on concrete (non-traced) values; inside ``jit`` they never
    run. Turning them off saves a device-to-host copy per construction in eager
    loops::

        with vikl.validation(False):
            d = vikl.Normal(loc, scale)   # no check that scale > 0
    """
    old = _VALIDATE[0]
    _VALIDATE[0] = bool(enabled)
    try:
        yield
    finally:
        _VALIDATE[0] = old


def param(constraint: constraints.Constraint, *, default: Any = dataclasses.MISSING):
    """Declares a distribution parameter with its constraint (a dataclass field)."""
    return dataclasses.field(default=default, metadata={"constraint": constraint})


def static(*, default: Any = dataclasses.MISSING):
    """Declares a static (hashable, compile-time) field of a distribution."""
    return dataclasses.field(default=default, metadata={"static": True})


def is_concrete(*xs) -> bool:
    """True when none of ``xs`` (pytrees) holds a JAX tracer."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def _default_float():
    return jnp.zeros(()).dtype  # float32, or float64 under jax_enable_x64


def _integer_or_none(n):
    """``n`` as a Python int, or None when it is not an integer (bools and floats are not)."""
    try:
        return check_int("entry", n, minimum=-(2**63))
    except IntTypeError:
        return None


def check_sample_shape(sample_shape) -> tuple[int, ...]:
    """Validates a ``sample_shape`` and returns it as a tuple of Python ints.

    Accepts a tuple or list of non-negative integers (Python ints, NumPy
    integer scalars, 0-d integer arrays), a ``jax``/``numpy`` shape, or a
    single non-negative integer ``n``, read as ``(n,)`` (as NumPyro does).
    Every family's ``sample`` goes through it, so ``d.sample(key, 5)`` and
    ``d.sample(key, (5,))`` are the same draws.

    Raises:
      IntTypeError: (a ``TypeError`` and a ``ValueError``) a non-integer
        entry (a float, a bool, a traced value) or a non-sequence.
      ValueError: a negative entry.
    """
    if type(sample_shape) is tuple and all(type(n) is int and n >= 0 for n in sample_shape):
        return sample_shape  # the common case, checked cheaply
    expected = "sample_shape must be a tuple of non-negative ints (or one int n, read as (n,))"
    if isinstance(sample_shape, (tuple, list)):
        entries = list(sample_shape)
    elif _integer_or_none(sample_shape) is not None:
        entries = [sample_shape]
    else:
        raise IntTypeError(
            f"{expected}; got {sample_shape!r} (type {type(sample_shape).__name__})"
        )
    out = []
    for n in entries:
        value = _integer_or_none(n)
        if value is None:
            raise IntTypeError(
                f"{expected}; got {sample_shape!r}, whose entry {n!r} "
                f"(type {type(n).__name__}) is not an integer"
            )
        if value < 0:
            raise ValueError(f"{expected}; got {sample_shape!r}, which has the negative entry {value}")
        out.append(value)
    return tuple(out)


_SAMPLING_METHODS = ("sample", "sample_and_log_prob", "_sample_and_stopped_log_prob")


def _with_checked_sample_shape(method):
    """Wraps ``method(self, key, sample_shape=(), ...)`` to validate ``sample_shape`` first."""

    @functools.wraps(method)
    def wrapper(self, key, sample_shape=(), *args, **kwargs):
        return method(self, key, check_sample_shape(sample_shape), *args, **kwargs)

    wrapper._vikl_checks_sample_shape = True
    return wrapper


def _missing_param_error(cls_name: str, name: str, constraint) -> ValueError:
    return ValueError(
        f"{cls_name}: {name} is required; got None. Pass an array of "
        f"{constraint.description} (shape batch_shape"
        f"{' + event_shape' if constraint.event_dim else ''})."
    )


def _to_float_array(cls_name: str, name: str, value, constraint) -> jax.Array:
    """Converts a user value to a floating JAX array, with a clear error otherwise."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)) or hasattr(value, "__jax_array__"):
        dtype = np.dtype(value.dtype)
        if jnp.issubdtype(dtype, jnp.floating):
            return jnp.asarray(value)
        if jnp.issubdtype(dtype, jnp.integer) or dtype == np.bool_:
            if constraint.is_discrete:
                return jnp.asarray(value, dtype=_default_float())
            raise ValueError(
                f"{cls_name}: {name} must have a floating dtype; got {dtype} "
                f"(shape {tuple(value.shape)}). Pass e.g. jnp.asarray({name}, dtype=jnp.float32)."
            )
        raise ValueError(
            f"{cls_name}: {name} must be a real floating-point array; got dtype {dtype}."
        )
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise ValueError(f"{cls_name}: {name} must be array-like; got {type(value).__name__}") from err
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise ValueError(
            f"{cls_name}: {name} must be real numbers; got {type(value).__name__} of dtype {arr.dtype}."
        )
    # Python scalars and lists are converted to the default float dtype.
    return jnp.asarray(arr, dtype=_default_float())


class _FromNoise:
    """Mixin for a family whose draws are ``x = T(eps)`` of standard noise ``eps``.

    The family defines ``_sample_eps(key, sample_shape) -> (x, eps)``,
    ``_log_prob_std(eps)`` (``log p`` at ``T(eps)``, from the noise) and
    ``_score(eps)`` (``d log p / dx`` at ``T(eps)``); the mixin turns them into
    :meth:`sample`, :meth:`sample_and_log_prob` (no inverse of ``T``) and the
    sticking-the-landing log density. List it before :class:`Distribution`.
    """

    def sample(self, key, sample_shape=()):
        return self._sample_eps(key, sample_shape)[0]

    def sample_and_log_prob(self, key, sample_shape=()):
        x, eps = self._sample_eps(key, sample_shape)
        return x, self._log_prob_std(eps)

    def _sample_and_stopped_log_prob(self, key, sample_shape=()):
        x, eps = self._sample_eps(key, sample_shape)
        return x, with_score(x, self._log_prob_std(eps), self._score(eps))


class Module:
    """Base of vikl's immutable pytrees with declared parameters (distributions, bijectors).

    A subclass is turned into a frozen dataclass and registered as a JAX pytree.
    Its fields are parameters (:func:`param`, with a constraint: converted to a
    floating array, broadcast, checked at construction outside ``jit``), child
    pytrees, or static fields (:func:`static`). ``batch_shape`` is the broadcast
    of the parameters' batch shapes.
    """

    # ------------------------------------------------------------------ plumbing
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Generate __init__ unless this class or a parent family wrote its own.
        inherited = cls.__init__
        custom_init = "__init__" in cls.__dict__ or not (
            inherited is object.__init__ or getattr(inherited, "_vikl_generated", False)
        )
        dataclasses.dataclass(frozen=True, eq=False, repr=False, init=not custom_init)(cls)
        if not custom_init:
            cls.__init__._vikl_generated = True
        fields = dataclasses.fields(cls)
        cls._static_fields = tuple(f.name for f in fields if f.metadata.get("static"))
        cls._child_fields = tuple(f.name for f in fields if not f.metadata.get("static"))
        cls._param_constraints = {
            f.name: f.metadata["constraint"] for f in fields if "constraint" in f.metadata
        }
        cls._optional_params = frozenset(
            f.name for f in fields
            if "constraint" in f.metadata and (f.name.startswith("_") or f.default is None)
        )

        def flatten_with_keys(obj):
            children = tuple(
                (jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in cls._child_fields
            )
            aux = tuple(getattr(obj, n) for n in cls._static_fields)
            return children, aux

        def flatten(obj):
            return (
                tuple(getattr(obj, n) for n in cls._child_fields),
                tuple(getattr(obj, n) for n in cls._static_fields),
            )

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for n, v in zip(cls._child_fields, children):
                object.__setattr__(obj, n, v)
            for n, v in zip(cls._static_fields, aux):
                object.__setattr__(obj, n, v)
            return obj

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)

    def __post_init__(self):
        # Called by the dataclass-generated __init__.
        self._setup()

    def _setup(self, **values):
        """Converts, checks and broadcasts the parameters; call from a custom ``__init__``.

        ``values`` are assigned to fields first (a custom ``__init__`` passes the
        parameters here instead of setting them one by one).
        """
        cls = type(self)
        name = cls.__name__
        for k, v in values.items():
            object.__setattr__(self, k, v)
        for k in cls._child_fields + cls._static_fields:
            if not hasattr(self, k):
                object.__setattr__(self, k, None)
        params = {}
        for k, c in cls._param_constraints.items():
            v = getattr(self, k)
            if v is None:
                if k not in cls._optional_params:
                    raise _missing_param_error(name, k, c)
                continue
            params[k] = _to_float_array(name, k, v, c)
        if params:
            dtypes = [p.dtype for p in params.values()]
            dtype = max(dtypes, key=lambda d: np.dtype(d).itemsize)
            params = {k: (p if p.dtype == dtype else p.astype(dtype)) for k, p in params.items()}
        # Broadcast batch dimensions.
        batch_shapes = []
        for k, p in params.items():
            ed = cls._param_constraints[k].event_dim
            if p.ndim < ed:
                raise ValueError(
                    f"{name}: {k} must have at least {ed} dimension(s) "
                    f"({cls._param_constraints[k].name}); got shape {tuple(p.shape)}"
                )
            if ed == 1 and p.shape[-1] == 0:
                raise ValueError(
                    f"{name}: {k} must have at least one entry along its last axis (the event "
                    f"axis); got shape {tuple(p.shape)}"
                )
            batch_shapes.append(p.shape[: p.ndim - ed])
        try:
            batch = jnp.broadcast_shapes(*batch_shapes) if batch_shapes else ()
        except ValueError as err:
            shapes = ", ".join(f"{k}: {tuple(p.shape)}" for k, p in params.items())
            raise ValueError(f"{name}: parameter batch shapes do not broadcast ({shapes})") from err
        for k, p in params.items():
            ed = cls._param_constraints[k].event_dim
            target = tuple(batch) + tuple(p.shape[p.ndim - ed :])
            if tuple(p.shape) != target:
                p = jnp.broadcast_to(p, target)
            object.__setattr__(self, k, p)
        self._check_shapes()
        if _VALIDATE[0] and is_concrete(params):
            for k, p in params.items():
                c = cls._param_constraints[k]
                ok = np.asarray(c.check(p))
                if not ok.all():
                    raise ValueError(
                        f"{name}: {k} must be {c.description}; got {c.describe_violation(p)}"
                    )
            self._check_args()

    def _check_shapes(self):
        """Cross-parameter shape checks; run at every construction, also under ``jit``
        (shapes are static there). Families override, raising ``ValueError``."""

    def _check_args(self):
        """Cross-parameter value checks, run on concrete values only (never under
        ``jit``) and only while validation is on; families override."""

    # ------------------------------------------------------------------ shapes
    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the batch of independent distributions this object holds."""
        shapes = []
        for k, c in type(self)._param_constraints.items():
            v = getattr(self, k)
            if v is None:
                continue
            shapes.append(jnp.shape(v)[: jnp.ndim(v) - c.event_dim])
        return tuple(jnp.broadcast_shapes(*shapes)) if shapes else ()

    @property
    def dtype(self):
        """Floating dtype of the parameters."""
        for k in type(self)._param_constraints:
            v = getattr(self, k)
            if v is not None and jnp.issubdtype(jnp.result_type(v), jnp.floating):
                return jnp.result_type(v)
        return _default_float()

    def __repr__(self):
        parts = []
        for k in type(self)._child_fields + type(self)._static_fields:
            v = getattr(self, k, None)
            if v is None:
                continue
            if isinstance(v, (jax.Array, np.ndarray)):
                if v.size <= 4 and is_concrete(v):
                    parts.append(f"{k}={np.asarray(v).tolist()}")
                else:
                    parts.append(f"{k}={jnp.dtype(v.dtype).name}{list(v.shape)}")
            else:
                parts.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Distribution(Module):
    """Base class of vikl probability distributions.

    Shapes: ``sample(key, sample_shape)`` returns an array of shape
    ``sample_shape + batch_shape + event_shape``; ``log_prob(x)`` takes ``x`` of
    shape ``(...,) + batch_shape + event_shape`` (broadcasting) and returns
    ``(...,) + batch_shape``. Parameters broadcast against each other like NumPy
    arrays; ``batch_shape`` is computed from their shapes.

    Class attributes a family may set:

    * ``reparameterized`` -- True when ``sample`` is a differentiable function
      of the parameters (pathwise/reparameterization gradients are valid);
    * ``support`` -- the constraint that samples satisfy.

    Optional members, overridden by the families that have them in closed form
    (the base raises ``NotImplementedError: <Family> has no closed-form <member>``):
    ``entropy()``, ``mean``, ``variance`` (and ``stddev`` from it), ``mode``,
    ``cdf(x)`` and ``icdf(u)``.

    Values outside the support get ``log_prob = -inf`` (never NaN).
    """

    reparameterized: ClassVar[bool] = True
    support: ClassVar[constraints.Constraint] = constraints.real

    # ------------------------------------------------------------------ plumbing
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Every family's sampling methods validate sample_shape (also inherited ones
        # from mixins such as _FromNoise, which are not Distribution subclasses).
        for meth in _SAMPLING_METHODS:
            fn = getattr(cls, meth)
            if not getattr(fn, "_vikl_checks_sample_shape", False):
                setattr(cls, meth, _with_checked_sample_shape(fn))

    # ------------------------------------------------------------------ shapes
    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one draw from one distribution of the batch."""
        return ()

    # ------------------------------------------------------------------ interface
    def sample(self, key: jax.Array, sample_shape=()) -> jax.Array:
        """Draws samples of shape ``sample_shape + batch_shape + event_shape``.

        ``sample_shape`` is a tuple of non-negative ints; one int ``n`` means
        ``(n,)``. It is validated (for every family) before the family's own
        ``sample`` runs: a negative or non-integer entry raises ``ValueError``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement sample")

    def log_prob(self, x) -> jax.Array:
        """Log density (or log mass) at ``x``; ``-inf`` outside the support."""
        raise NotImplementedError(f"{type(self).__name__} does not implement log_prob")

    def sample_and_log_prob(self, key: jax.Array, sample_shape=()):
        """Returns ``(x, log_prob(x))`` for ``x = sample(key, sample_shape)``.

        The same draws as :meth:`sample` with the same key. Families override it
        when the log density is cheaper from the noise that made ``x`` (a
        Gaussian: no triangular solve; a flow: no inverse pass). For a
        reparameterized family the gradient of ``log_prob(x)`` with respect to
        the parameters is the total derivative through ``x`` as well.
        """
        x = self.sample(key, sample_shape)
        return x, self.log_prob(x)

    def _sample_and_stopped_log_prob(self, key: jax.Array, sample_shape=()):
        """``(x, s)``: the draws of :meth:`sample` and ``log q(x)`` with q's parameters
        held fixed, so the gradient of ``s`` reaches the parameters only through
        ``x`` (the sticking-the-landing term of Roeder et al. 2017).

        Families with a cheap score ``d log q / dx`` at their own draws override it.
        """
        x = self.sample(key, sample_shape)
        return x, jax.lax.stop_gradient(self).log_prob(x)

    def prob(self, x) -> jax.Array:
        """Density (or mass) at ``x``: ``exp(log_prob(x))``."""
        return jnp.exp(self.log_prob(x))

    def entropy(self) -> jax.Array:
        """Differential (or Shannon) entropy in nats, shape ``batch_shape``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form entropy; estimate it as "
            "-mean(log_prob(sample(key, (n,))))."
        )

    def strata(self):
        """Strata for Monte-Carlo objectives: ``(log_weights, components)`` or ``None``.

        A family that is a weighted sum of components (a mixture) returns the
        normalized log weights, shape ``(K,)``, and the components as one
        Distribution of batch shape ``(K,)``; objectives then draw from each
        component, ``E_q f = sum_k w_k E_{q_k} f``, so that reparameterized
        gradients reach the weights. ``None`` (the default): draw from ``q``.
        """
        return None

    # ------------------------------------------------------- optional members
    # A family overrides those it has in closed form; the others raise a
    # NotImplementedError naming the family and the member.
    def _absent(self, member: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no closed-form {member}")

    @property
    def mean(self) -> jax.Array:
        """Mean, shape ``batch_shape + event_shape``."""
        raise self._absent("mean")

    @property
    def variance(self) -> jax.Array:
        """Variance (per coordinate), shape ``batch_shape + event_shape``."""
        raise self._absent("variance")

    @property
    def mode(self) -> jax.Array:
        """A most probable value (the location of the density's maximum), shape
        ``batch_shape + event_shape``; families whose density has no unique maximum
        document which value they return."""
        raise self._absent("mode")

    def cdf(self, x) -> jax.Array:
        """``P(X <= x)`` for scalar events, shape ``broadcast(x.shape, batch_shape)``."""
        raise self._absent("cdf")

    def icdf(self, u) -> jax.Array:
        """The quantile function, the inverse of :meth:`cdf`: the ``x`` with
        ``P(X <= x) = u`` for ``u`` in ``[0, 1]``, shape ``broadcast(u.shape, batch_shape)``."""
        raise self._absent("icdf")

    @property
    def stddev(self) -> jax.Array:
        """Standard deviation, ``sqrt(variance)``."""
        return jnp.sqrt(self.variance)

    # ------------------------------------------------------------------ helpers
    def _extended_shape(self, sample_shape=()) -> tuple[int, ...]:
        """``sample_shape + batch_shape + event_shape`` (``sample_shape`` validated)."""
        sample_shape = check_sample_shape(sample_shape)
        return sample_shape + tuple(self.batch_shape) + tuple(self.event_shape)
