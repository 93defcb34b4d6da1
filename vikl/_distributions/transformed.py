"""``Transformed``: the push-forward of a distribution through a bijector, and its KLs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vikl import _constraints as constraints
from vikl._base import Distribution, check_sample_shape
from vikl._distributions.lognormal import LogNormal
from vikl._distributions.normal import Normal
from vikl._kl import kl_divergence, register_kl
from vikl._params import unconstrain
from vikl.bijectors import _elementwise
from vikl.bijectors._bijector import Bijector, sum_last

__all__ = ["Transformed"]


def _shapes(base, bijector):
    """``(batch_shape, event_shape, prefix, extra)`` of ``Transformed(base, bijector)``.

    ``extra`` is the number of the base's event axes the bijector treats as batch
    axes (their log-dets are summed); ``prefix`` the leading batch axes the
    bijector adds in front of the base's batch shape. Raises ``ValueError``.
    """
    k = type(bijector).event_ndims_in
    base_event = tuple(base.event_shape)
    base_batch = tuple(base.batch_shape)
    if len(base_event) < k:
        raise ValueError(
            f"Transformed: bijector {type(bijector).__name__} acts on {k} event axis/axes, but "
            f"the base {type(base).__name__} has event shape {base_event} ({len(base_event)} "
            "axis/axes); use a base whose events have at least that many axes"
        )
    extra = len(base_event) - k
    outer = base_batch + base_event[:extra]  # the axes the bijector sees as batch axes
    bij_batch = tuple(bijector.batch_shape)
    try:
        full = tuple(jnp.broadcast_shapes(outer, bij_batch))
    except ValueError:
        full = None
    if full is None or (outer and full[len(full) - len(outer):] != outer):
        raise ValueError(
            f"Transformed: the bijector's batch shape {bij_batch} must broadcast against the "
            f"base's batch shape + leading event axes {outer} without changing them (it may only "
            "add leading batch axes); expand the base's parameters to the full batch shape instead"
        )
    try:
        event = base_event[:extra] + tuple(bijector.forward_event_shape(base_event[extra:]))
    except ValueError as err:
        raise ValueError(
            f"Transformed: bijector {type(bijector).__name__} does not accept the base's event "
            f"shape {base_event}: {err}"
        ) from err
    prefix = full[: len(full) - len(outer)]
    return prefix + base_batch, event, prefix, extra


class Transformed(Distribution):
    """The distribution of ``Y = f(X)`` for ``X ~ base`` and a bijector ``f``.

    ``log q(y) = log p(f^{-1}(y)) + log|det J_{f^{-1}}(y)|``. Sampling and
    ``sample_and_log_prob`` need only the forward pass
    (``log q(f(x)) = log p(x) - log|det J_f(x)|``); ``log_prob`` needs the inverse.

    Args:
      base: a continuous :class:`vikl.Distribution` (any family, also another
        ``Transformed``); its parameters are trained by :func:`vikl.fit`.
      bijector: a :class:`vikl.bijectors.Bijector` acting on the last
        ``event_ndims_in`` axes of the base's events; its array parameters (a
        learnable ``Affine``'s shift and scale) are trained too. Base event axes
        in front of those are batch axes for the bijector: an elementwise
        ``Exp`` on a ``MultivariateNormal`` base maps each coordinate, and the
        log-Jacobians are summed over the event.

    Shapes: ``event_shape = bijector.forward_event_shape(base.event_shape)``;
    ``batch_shape`` is the base's batch shape, with any leading batch axes of
    the bijector's parameters added in front (the bijector's batch shape may
    not expand the base's axes: broadcast the base's parameters instead).

    ``ReverseKL(gradient="stl")`` (sticking the landing) is supported: with a
    learnable bijector its stopped log density runs one inverse pass, so that
    the estimator stays unbiased for the bijector's parameters too.
    Construction checks the shapes (the bijector is traced once on the base's
    draw shape); shape checks also run under ``jit``, value checks do not.

    Closed forms, for bijectors with a constant Jacobian (affine maps:
    ``Identity``, ``Affine``, ``AffineTriL``): ``entropy() = H(base) + log|det J|``,
    ``mean = f(base.mean)``, and for elementwise ones ``variance = scale² base.variance``;
    otherwise they raise ``NotImplementedError``.

    KL divergence. KL is invariant under a bijection applied to both sides, so
    ``kl_divergence(Transformed(p, f), Transformed(q, g)) = kl_divergence(p, q)``
    when ``f.same_as(g)``, and ``NotImplementedError`` (use
    :func:`vikl.estimate_kl`) otherwise. "Same bijector" is decided by
    :meth:`Bijector.same_as`: same type, equal static configuration and equal
    parameters -- the same array objects, or concrete arrays with equal shapes
    and values. Parameter-free bijectors (``Exp``, ``Sigmoid``, ...) always
    match, also under ``jit``; bijectors with parameters traced under ``jit``
    match only when they hold the same traced arrays (the same object passed to
    both sides), so compute such KLs outside ``jit`` or share the bijector.
    ``LogNormal(m, s)`` and ``Transformed(Normal(m, s), Exp())`` are the same
    distribution and have closed-form KLs with each other both ways.

    Example:
      >>> import vikl
      >>> q = vikl.Transformed(vikl.Normal(0.0, 1.0), vikl.bijectors.Exp())
      >>> round(float(q.log_prob(2.0)), 6)  # = LogNormal(0, 1).log_prob(2)
      -1.852312
    """

    base: Distribution
    bijector: Bijector

    def __init__(self, base, bijector):
        if not isinstance(base, Distribution):
            raise TypeError(
                f"Transformed: base must be a vikl.Distribution; got {type(base).__name__}"
            )
        if not isinstance(bijector, Bijector):
            raise TypeError(
                "Transformed: bijector must be a vikl.bijectors.Bijector (e.g. "
                f"vikl.bijectors.Exp()); got {type(bijector).__name__}"
            )
        if base.support.is_discrete:
            raise ValueError(
                f"Transformed: base must be a continuous distribution; {type(base).__name__} "
                "is discrete (a bijector's log-Jacobian applies to densities only)"
            )
        self._setup(base=base, bijector=bijector)
        self._check_output_shape()

    def _check_output_shape(self):
        """Traces the bijector on the base's draw shape (no computation): a bijector whose
        parameters do not fit the base's events fails here, not at the first draw."""
        batch, event, _, _ = _shapes(self.base, self.bijector)
        x = jax.ShapeDtypeStruct(batch + tuple(self.base.event_shape), self.base.dtype)
        name = type(self.bijector).__name__
        try:
            y, _ = jax.eval_shape(self.bijector.forward_and_log_det, x)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"Transformed: bijector {name} cannot be applied to the base's draws (shape "
                f"{x.shape}: batch {batch} + event {tuple(self.base.event_shape)}): {err}"
            ) from err
        if tuple(y.shape) != batch + event:
            raise ValueError(
                f"Transformed: bijector {name} maps the base's draws of shape {x.shape} to shape "
                f"{tuple(y.shape)}, but its forward_event_shape says {batch + event}; the "
                "bijector's event shapes are inconsistent"
            )

    def _check_shapes(self):
        _shapes(self.base, self.bijector)

    # ------------------------------------------------------------------ shapes
    @property
    def batch_shape(self):
        return _shapes(self.base, self.bijector)[0]

    @property
    def event_shape(self):
        return _shapes(self.base, self.bijector)[1]

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def reparameterized(self):
        return self.base.reparameterized

    @property
    def support(self):
        return _support(self.base, self.bijector)

    # ------------------------------------------------------------------ sampling
    def _draw(self, key, sample_shape, method):
        """Draws of the base of shape ``sample_shape + batch_shape + base event``."""
        prefix = _shapes(self.base, self.bijector)[2]
        return getattr(self.base, method)(key, check_sample_shape(sample_shape) + prefix)

    def _extra(self):
        return _shapes(self.base, self.bijector)[3]

    def sample(self, key, sample_shape=()):
        return self.bijector.forward(self._draw(key, sample_shape, "sample"))

    def sample_and_log_prob(self, key, sample_shape=()):
        x, lp = self._draw(key, sample_shape, "sample_and_log_prob")
        y, fldj = self.bijector.forward_and_log_det(x)
        return y, lp - sum_last(fldj, self._extra())

    def _sample_and_stopped_log_prob(self, key, sample_shape=()):
        """Draws and ``log q(y)`` with all of q's parameters held fixed (sticking the landing).

        The value is ``log p(x) - log|det J_f(x)|``; its gradient reaches the
        parameters only through the draw ``y``, as
        ``d/dy log q_fixed(y) . dy``. With ``x~ = f_fixed^{-1}(y)`` (value ``x``),
        that is ``[d log p_fixed(x) - d log|det J_f_fixed|(x)] . dx~``. When the
        bijector has nothing learnable ``dx~ = dx``, the base's own stopped log
        density serves and no inverse runs; otherwise ``dx~`` holds the
        bijector's parameter tangents too and comes from the inverse at ``y``.
        Bijectors count as learnable when they hold trainable parameters (not
        ``constraints.fixed`` ones such as ``Interval``'s bounds) or weights;
        for the others (``Exp``, ``Sigmoid``, ``Interval``) no inverse runs.
        """
        sg = jax.lax.stop_gradient
        extra = self._extra()
        fixed_bij = sg(self.bijector)
        if not _is_learnable(self.bijector):
            x, s = self._draw(key, sample_shape, "_sample_and_stopped_log_prob")
            y = self.bijector.forward(x)  # (fixed parameters too may be differentiated)
            return y, s - sum_last(fixed_bij.forward_log_det_jacobian(x), extra)
        x = self._draw(key, sample_shape, "sample")
        y = self.bijector.forward(x)
        x_back = fixed_bij.inverse(y)
        x_tilde = sg(x) + (x_back - sg(x_back))  # value x, tangent J_f^{-1} dy
        s = sg(self.base).log_prob(x_tilde) - sum_last(
            fixed_bij.forward_log_det_jacobian(x_tilde), extra)
        return y, s

    def strata(self):
        """The base's strata pushed through the bijector (a Mixture base), else ``None``."""
        strata = self.base.strata()
        if strata is None:
            return None
        log_weights, components = strata
        return log_weights, Transformed(components, self.bijector)

    def log_prob(self, y):
        """``log p(f^{-1}(y)) + log|det J_{f^{-1}}(y)|``; ``-inf`` off the bijector's image."""
        x, ildj = self.bijector.inverse_and_log_det(y)
        base_lp = self.base.log_prob(x)
        # At the edge of the image (y = 0 for Exp) x is infinite and -inf + inf would be NaN.
        lp = jnp.where(base_lp == -jnp.inf, -jnp.inf, base_lp + sum_last(ildj, self._extra()))
        support = self.support
        if support.name in ("real", "real_vector"):
            return lp
        ok = support.check(y)  # e.g. y <= 0 for Exp, where log y - log y would give NaN
        more = len(self.event_shape) - support.event_dim  # event axes ``check`` kept
        ok = jnp.all(ok, axis=tuple(range(-more, 0))) if more > 0 else ok
        return jnp.where(ok, lp, -jnp.inf)

    # ------------------------------------------------------------------ closed forms
    def entropy(self):
        """``H(base) + log|det J_f|`` when ``f`` has a constant Jacobian (affine ``f``)."""
        if not type(self.bijector).is_constant_jacobian:
            raise NotImplementedError(
                "Transformed has no closed-form entropy with a "
                f"{type(self.bijector).__name__} bijector (its Jacobian is not constant); estimate it as "
                "-mean(log_prob(sample(key, (n,))))."
            )
        batch, _, _, extra = _shapes(self.base, self.bijector)
        x0 = jnp.zeros(batch + tuple(self.base.event_shape), self.base.dtype)
        fldj = sum_last(self.bijector.forward_log_det_jacobian(x0), extra)
        return jnp.broadcast_to(self.base.entropy() + fldj, batch)

    @property
    def mean(self):
        """``f(E[X])`` for an affine ``f`` (a constant Jacobian); else ``NotImplementedError``."""
        if type(self.bijector).is_constant_jacobian:
            return self._full(self.bijector.forward(self.base.mean))
        raise NotImplementedError(
            f"Transformed has no mean in closed form with a {type(self.bijector).__name__} "
            "bijector (only with affine ones); estimate it from sample(key, (n,))"
        )

    @property
    def variance(self):
        """``scale^2 Var[X]`` for an elementwise affine ``f``; else ``NotImplementedError``."""
        cls = type(self.bijector)
        if cls.is_constant_jacobian and cls.is_elementwise:
            var = self.base.variance
            log_scale = self.bijector.forward_log_det_jacobian(jnp.zeros_like(var))
            return self._full(jnp.exp(2 * log_scale) * var)
        raise NotImplementedError(
            f"Transformed has no variance in closed form with a {cls.__name__} bijector (only "
            "with elementwise affine ones); estimate it from sample(key, (n,))"
        )

    def _full(self, value):
        return jnp.broadcast_to(value, self.batch_shape + self.event_shape)


def _is_learnable(bijector) -> bool:
    """Whether :func:`vikl.fit` trains some of the bijector's arrays."""
    return bool(jax.tree_util.tree_leaves(unconstrain(bijector)))


# The image of the real line under the elementwise bijectors (by class name, so that a
# bijector added later without an entry falls back to ``real``).
_IMAGES = {
    "Exp": lambda b: constraints.positive,
    "Softplus": lambda b: constraints.positive,
    "Sigmoid": lambda b: constraints.unit_interval,
    "Tanh": lambda b: constraints.interval(-1.0, 1.0),
    "Interval": lambda b: constraints.interval(b.low, b.high),
    "GreaterThan": lambda b: constraints.greater_than(b.low),
    "LessThan": lambda b: constraints.less_than(b.high),
    "StickBreaking": lambda b: constraints.simplex,
    "SoftmaxCentered": lambda b: constraints.simplex,
    "Ordered": lambda b: constraints.ordered_vector,
    "CorrCholesky": lambda b: constraints.corr_cholesky,
    "LowerCholesky": lambda b: constraints.lower_cholesky,
}
_IMAGE_MODULES = ("vikl.bijectors._elementwise", "vikl.bijectors._structured")


class _UnknownImage(constraints.Constraint):
    """The support of a constrained base pushed through a map with no tabulated image.

    Not all of R^d (so :func:`vikl.fit` never treats such a q as unconstrained), and
    ``check`` accepts every value: nothing is known to refuse.
    """

    name = "unknown_image"
    description = "the image of the base's support under the bijector (not tabulated)"


_UNKNOWN = _UnknownImage()


def _support(base, bijector):
    """The image of the base's support under the bijector, where known.

    Unknown images: ``real`` for a base on all of R or R^d (the flows and
    affine maps keep R^d), else a constraint that is not all of R^d.

    Known: a bijector's own ``codomain`` constraint if it has one; ``Identity``
    (the base's support); the maps of ``_IMAGES`` on a base supported on all of R
    or R^d (for a vector base ``positive_vector`` for ``Exp`` and ``Softplus``, the
    elementwise constraint for the other elementwise maps).
    """
    codomain = getattr(bijector, "codomain", None)
    if isinstance(codomain, constraints.Constraint):
        return codomain
    if isinstance(bijector, _elementwise.Identity):
        return base.support
    vector = len(base.event_shape) > 0
    image = _IMAGES.get(type(bijector).__name__)
    if image is not None and type(bijector).__module__ in _IMAGE_MODULES:
        if base.support.name in ("real", "real_vector") and base.support.event_dim <= 1:
            out = image(bijector)
            if out is constraints.positive and vector and len(base.event_shape) == 1:
                return constraints.positive_vector
            return out
    if base.support.name in ("real", "real_vector"):
        return constraints.real_vector if vector else constraints.real
    return _UNKNOWN  # a constrained base through a map whose image is not tabulated


# ----------------------------------------------------------------------------- KL
def _kl_error(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"No closed-form KL: {what}. Use vikl.estimate_kl(p, q, key, num_samples=...) for a "
        "Monte-Carlo estimate."
    )


def _batch(value, p, q):
    shape = jnp.broadcast_shapes(tuple(p.batch_shape), tuple(q.batch_shape))
    return jnp.broadcast_to(value, shape)


@register_kl(Transformed, Transformed)
def _kl_transformed_transformed(p, q):
    """``KL(f#p0 ‖ g#q0) = KL(p0 ‖ q0)`` when ``f.same_as(g)`` (KL is bijection-invariant)."""
    if not p.bijector.same_as(q.bijector):
        raise _kl_error(
            f"the two Transformed distributions use different bijectors "
            f"({type(p.bijector).__name__} and {type(q.bijector).__name__}, or equal types with "
            "different or traced parameters; see Transformed's docstring)"
        )
    return _batch(kl_divergence(p.base, q.base), p, q)


def _as_log_normal_base(t):
    """The Normal base of ``t`` when ``t = Transformed(Normal, Exp)``, else None."""
    if isinstance(t.bijector, _elementwise.Exp) and type(t.base) is Normal:
        return t.base
    return None


@register_kl(LogNormal, Transformed)
def _kl_lognormal_transformed(p, q):
    """``KL(LogNormal(m, s) ‖ Transformed(Normal(m', s'), Exp)) = KL(N(m, s) ‖ N(m', s'))``."""
    base = _as_log_normal_base(q)
    if base is None:
        raise _kl_error(
            "KL(LogNormal ‖ Transformed) has a closed form only for Transformed(Normal, Exp); "
            f"got Transformed({type(q.base).__name__}, {type(q.bijector).__name__})"
        )
    return _batch(kl_divergence(LogNormal(p.loc, p.scale), LogNormal(base.loc, base.scale)), p, q)


@register_kl(Transformed, LogNormal)
def _kl_transformed_lognormal(p, q):
    """``KL(Transformed(Normal(m, s), Exp) ‖ LogNormal(m', s')) = KL(N(m, s) ‖ N(m', s'))``."""
    base = _as_log_normal_base(p)
    if base is None:
        raise _kl_error(
            "KL(Transformed ‖ LogNormal) has a closed form only for Transformed(Normal, Exp); "
            f"got Transformed({type(p.base).__name__}, {type(p.bijector).__name__})"
        )
    return _batch(kl_divergence(LogNormal(base.loc, base.scale), q), p, q)
