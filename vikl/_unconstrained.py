"""Fitting targets with constrained support (ADVI): the unconstrained view of a target.

A target whose support is not all of R^d (a Gamma's ``(0, inf)``, a Beta's
``(0, 1)``, a Dirichlet's simplex) is fitted by a ``q`` on R^d through a
bijector ``b`` from R^d onto the support (Kucukelbir et al. 2017, "ADVI"):

    log p_u(u) = log p(b(u)) + log|det J_b(u)|,

the density of ``u = b^{-1}(x)`` for ``x ~ p``. Fitting ``q`` to ``p_u``
(any objective) and pushing it forward, ``b # q``, gives the fitted
distribution on the target's own scale; the KL is unchanged by the map,
``KL(b#q || p) = KL(q || p_u)``.

:func:`unconstrained` builds that view explicitly; :func:`vikl.fit` builds it
itself (:func:`for_fit`) when ``q0`` lives on R^d and the target does not. The
view carries a *layout* (:class:`BijectorLayout`), an object with
``constrain(u)``, that :class:`vikl.FitResult` keeps (and saves) to give draws
and the fitted distribution on the target's scale without the target.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints as constraints
from vikl._base import Distribution, Module
from vikl.bijectors._bijector import Bijector, sum_last

__all__ = ["unconstrained", "Unconstrained", "BijectorLayout", "default_bijector", "for_fit"]

_REAL_NAMES = ("real", "real_vector")


# ----------------------------------------------------------------------------- supports
def _is_numpyro_constraint(c) -> bool:
    return type(c).__module__.startswith("numpyro.")


def _numpyro_is_real(c) -> bool:
    from numpyro.distributions import constraints as nc  # imported: c comes from numpyro

    if c is nc.real:
        return True
    independent = getattr(nc, "_IndependentConstraint", None)
    return independent is not None and isinstance(c, independent) and _numpyro_is_real(
        c.base_constraint)


def is_real(support) -> bool:
    """Whether ``support`` (a vikl or NumPyro constraint) is all of R (or R^d)."""
    if support is None:
        return True
    if _is_numpyro_constraint(support):
        return _numpyro_is_real(support)
    return getattr(support, "name", None) in _REAL_NAMES


def support_of(target):
    """The support constraint a target declares (``None``: unknown, treated as all of R^d).

    vikl distributions and user families declare ``support``; NumPyro
    distributions too (a NumPyro constraint). Log-density callables and
    :class:`vikl.Empirical` data declare none (Empirical's class attribute is
    the real line); wrap them with :func:`unconstrained` and a bijector.
    """
    from vikl._distributions.empirical import Empirical

    if isinstance(target, Empirical) or isinstance(target, Unconstrained):
        return None
    support = getattr(target, "support", None)
    if isinstance(support, constraints.Constraint) or _is_numpyro_constraint(support):
        return support
    if support is None or callable(support):  # none, or a method (e.g. SciPy's support())
        return None
    raise ValueError(
        f"the target {_describe(target)} declares support={support!r} ({type(support).__name__}), "
        "which is neither a vikl constraint (vikl.constraints.positive, ...) nor a NumPyro one; "
        "declare one of those, or pass the bijector: vikl.unconstrained(target, bijector=...)")


def _describe(target) -> str:
    return type(target).__name__


def default_bijector(support, target=None):
    """The default bijector from R^d onto ``support`` (a vikl or NumPyro constraint).

    vikl constraints go through :func:`vikl.bijectors.bijector_for`, NumPyro
    ones through vikl's table of NumPyro constraints.

    Raises:
      ValueError: no bijector is known for ``support`` (e.g. an integer
        support); the message names it and how to pass one.
    """
    where = f" of the target {_describe(target)}" if target is not None else ""
    hint = ("Pass one explicitly: vikl.fit(q0, vikl.unconstrained(target, bijector=...)), with "
            "a vikl.bijectors.Bijector from R^d onto the support, or fit a q0 whose support is "
            "the target's.")
    if getattr(support, "is_discrete", False):
        raise ValueError(
            f"the support{where} is {support!r}, which is discrete: a continuous q cannot be "
            "fitted to it through a bijector (ADVI needs a continuous target)")
    try:
        if _is_numpyro_constraint(support):
            try:
                from vikl._numpyro_constraints import bijector_for_numpyro
            except ImportError:
                raise NotImplementedError("no NumPyro constraint table") from None
            return bijector_for_numpyro(support)
        from vikl.bijectors import bijector_for

        return bijector_for(support)
    except (NotImplementedError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"no bijector is known for the support{where}, {support!r} ({err}). {hint}") from err


# ----------------------------------------------------------------------------- the view
class BijectorLayout(Module):
    """How a flat unconstrained point maps to the target's scale: one bijector.

    What :class:`vikl.FitResult` keeps of an unconstrained fit (the layout),
    so a loaded result gives draws without the target. Methods:
    ``constrain(u)`` (the bijector's forward map), ``unconstrain(x)`` (its
    inverse) and ``constrained_distribution(q)``, the push-forward
    ``vikl.Transformed(q, bijector)``.
    """

    bijector: Bijector

    def constrain(self, u):
        """``b(u)``: unconstrained points -> the target's scale."""
        return self.bijector.forward(u)

    def unconstrain(self, x):
        """``b^{-1}(x)``: points on the target's scale -> unconstrained."""
        return self.bijector.inverse(x)

    def constrained_distribution(self, q):
        """The push-forward ``b # q`` (a :class:`vikl.Transformed`)."""
        from vikl._distributions.transformed import Transformed

        return Transformed(q, self.bijector)


def _callable_log_prob(fn, u, point_ndim):
    lead = u.shape[: u.ndim - point_ndim]
    flat = u.reshape((-1,) + u.shape[u.ndim - point_ndim:])
    return jax.vmap(fn)(flat).reshape(lead)


class Unconstrained(Distribution):
    """The unconstrained view of a target: ``log p_u(u) = log p(b(u)) + log|det J_b(u)|``.

    Built by :func:`unconstrained`; see there. ``sample`` maps the target's
    draws through ``b^{-1}`` (forward KL from samples); ``layout`` is the
    :class:`BijectorLayout` a fit keeps. ``event_shape`` is the unconstrained
    event shape ``b.inverse_event_shape(target.event_shape)``.
    """

    target: Any
    bijector: Bijector

    def __init__(self, target, bijector):
        self._setup(target=target, bijector=bijector)

    def _target_event(self):
        return tuple(getattr(self.target, "event_shape", ()) or ())

    def _check_shapes(self):
        k_out = type(self.bijector).event_ndims_out
        event = self._target_event()
        if callable(self.target) and not hasattr(self.target, "log_prob"):
            return
        if len(event) < k_out:
            raise ValueError(
                f"unconstrained: the bijector {type(self.bijector).__name__} produces events of "
                f"{k_out} axis/axes, but the target {_describe(self.target)} has event shape "
                f"{event}; pass a bijector onto the target's event shape")
        try:
            self.bijector.inverse_event_shape(event[len(event) - k_out:])
        except ValueError as err:
            raise ValueError(
                f"unconstrained: the bijector {type(self.bijector).__name__} does not map onto "
                f"the target's event shape {event}: {err}") from err

    @property
    def batch_shape(self):
        return tuple(getattr(self.target, "batch_shape", ()) or ())

    @property
    def event_shape(self):
        event = self._target_event()
        k_out = type(self.bijector).event_ndims_out
        head = event[: len(event) - k_out]
        return head + tuple(self.bijector.inverse_event_shape(event[len(event) - k_out:]))

    @property
    def dtype(self):
        dtype = getattr(self.target, "dtype", None)
        return dtype if dtype is not None and jnp.issubdtype(dtype, jnp.floating) else super().dtype

    @property
    def layout(self) -> BijectorLayout:
        """The :class:`BijectorLayout` of this view (what a :class:`FitResult` keeps)."""
        return BijectorLayout(self.bijector)

    def log_prob(self, u):
        u = jnp.asarray(u)
        y, log_det = self.bijector.forward_and_log_det(u)
        target = self.target
        if hasattr(target, "log_prob"):
            lp = target.log_prob(y)
            extra = len(self._target_event()) - type(self.bijector).event_ndims_out
        else:  # a log-density callable of one point
            point_ndim = len(self.batch_shape) + len(self._target_event())
            lp = _callable_log_prob(target, y, point_ndim or y.ndim - 1)
            extra = y.ndim - type(self.bijector).event_ndims_out - lp.ndim
        return lp + sum_last(log_det, max(extra, 0))

    def sample(self, key, sample_shape=()):
        if not hasattr(self.target, "sample"):
            raise NotImplementedError(
                f"the target {_describe(self.target)} has no sample(key, sample_shape)")
        return self.bijector.inverse(self.target.sample(key, sample_shape))

    def __repr__(self):
        return f"Unconstrained({_describe(self.target)}, {type(self.bijector).__name__})"


def _check_data(target, bijector):
    """Empirical data must map to finite unconstrained points (strictly inside the support)."""
    from vikl import _base

    samples = target.samples
    if not _base.is_concrete(samples):
        return
    u = np.asarray(bijector.inverse(samples))
    bad = ~np.isfinite(u)
    if bad.any():
        raise ValueError(
            f"unconstrained: {int(bad.sum())} of {u.size} Empirical sample coordinate(s) map to "
            f"non-finite unconstrained values under {type(bijector).__name__}.inverse: the samples "
            "must lie strictly inside the bijector's image (e.g. > 0 for Exp, in (0, 1) for "
            "Sigmoid); drop or clip them")


def unconstrained(target, bijector=None) -> Unconstrained:
    """The unconstrained view of ``target``: fit a ``q`` on R^d to a target with constrained support.

    ``log p_u(u) = log p(b(u)) + log|det J_b(u)|`` is the density of
    ``u = b^{-1}(X)``, ``X ~ target``. :func:`vikl.fit` builds this view by
    itself for a ``q0`` on R^d and a target that declares a support; call it
    to choose the bijector, or for targets that declare none (a log-density
    callable, :class:`vikl.Empirical` samples of a positive quantity).

    Args:
      target: a :class:`vikl.Distribution`, a NumPyro distribution, any object
        with ``log_prob`` (and ``support``), a log-density callable of one
        point, or :class:`vikl.Empirical` data (forward KL; its samples go
        through ``b^{-1}``).
      bijector: a :class:`vikl.bijectors.Bijector` from R^d onto the target's
        support; default ``vikl.bijectors.bijector_for(target.support)``.

    Returns:
      An :class:`Unconstrained` target (``log_prob``, ``sample`` when the
      target samples, ``event_shape`` the unconstrained one, ``layout``); for
      a :class:`vikl.Posterior`, the posterior of ``u = b^{-1}(theta)`` (a
      ``Posterior`` with the same data, ``batch_size`` and prior KL rule).

    Raises:
      TypeError: ``bijector`` is not a Bijector, or ``target`` is not a target.
      ValueError: no bijector is given and none is known for the target's
        support (or it declares none); Empirical samples outside the
        bijector's image; event shapes that do not fit.

    Example:
      >>> import jax, vikl
      >>> view = vikl.unconstrained(vikl.Gamma(2.0, 1.0))   # through Exp
      >>> res = vikl.fit(vikl.Normal(0.0, 1.0), view, num_steps=10, key=jax.random.key(0),
      ...                progress=False)
      >>> res.draws(jax.random.key(1), 3).shape
      (3,)
    """
    from vikl._distributions.empirical import Empirical

    if isinstance(target, Unconstrained):
        raise TypeError("unconstrained: target is already an unconstrained view")
    if not (hasattr(target, "log_prob") or hasattr(target, "sample") or callable(target)):
        raise TypeError(
            "unconstrained: target must be a distribution (an object with log_prob or sample) "
            f"or a log-density callable; got {type(target).__name__}")
    if bijector is None:
        support = support_of(target)
        if support is None:
            raise ValueError(
                f"unconstrained: the target {_describe(target)} declares no support (a "
                "log-density callable or Empirical samples); pass bijector=, e.g. "
                "vikl.bijectors.Exp() for a positive quantity")
        bijector = default_bijector(support, target)
    elif not isinstance(bijector, Bijector):
        raise TypeError(
            "unconstrained: bijector must be a vikl.bijectors.Bijector (e.g. "
            f"vikl.bijectors.Exp()); got {type(bijector).__name__}")
    if isinstance(target, Empirical):
        _check_data(target, bijector)
    if hasattr(target, "_unconstrained_view"):  # a vikl.Posterior: its own view (minibatches kept)
        return target._unconstrained_view(bijector)
    return Unconstrained(target, bijector)


# ----------------------------------------------------------------------------- fit's choice
def has_layout(target) -> bool:
    """Whether ``target`` is already an unconstrained view (it has a ``layout`` with ``constrain``)."""
    return hasattr(getattr(target, "layout", None), "constrain")


def _same_support(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b) or getattr(a, "event_dim", 0) != getattr(b, "event_dim", 0):
        return False
    va, vb = vars(a) if hasattr(a, "__dict__") else {}, vars(b) if hasattr(b, "__dict__") else {}
    if set(va) != set(vb):
        return False
    for k in va:
        x, y = va[k], vb[k]
        if x is y:
            continue
        try:
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        except Exception:  # traced or not comparable: not known to be equal
            return False
    return True


def _point_shape(d):
    return tuple(getattr(d, "batch_shape", ()) or ()) + tuple(getattr(d, "event_shape", ()) or ())


def for_fit(q, target):
    """The target :func:`vikl.fit` optimizes for a ``q`` of ``q0``'s family: ``target`` or its view.

    * a target that is already a view (has a ``layout``), or whose support
      is all of R^d or unknown (a callable, Empirical data): as is;
    * a ``q`` whose support is not all of R^d (a Gamma ``q`` for a Gamma
      target, a Beta ``q`` for a Uniform(0, 1), a ``Transformed`` ``q``): as is,
      fitted directly;
    * a ``q`` on R^d: :func:`unconstrained` ``(target)`` with the default bijector.

    Raises:
      ValueError: no bijector is known for the target's support; ``q``'s
        point shape is not the unconstrained point shape.
    """
    if has_layout(target):
        return target
    support = support_of(target)
    if support is None or is_real(support):
        return target
    q_support = getattr(q, "support", None)
    if q_support is not None and _same_support(q_support, support):
        return target
    if q_support is not None and not is_real(q_support):
        # q0 lives on a constrained set of its own (a Beta q for a Uniform(0, 1) target, a
        # vikl Gamma q for a NumPyro Gamma): fitted directly, as the user wrote it; a q0
        # whose mass lies outside the target's support stops with an infinite loss.
        return target
    try:
        view = unconstrained(target)
    except ValueError as err:
        raise ValueError(
            f"fit: the target ({_describe(target)}) has support {support!r}, not all of R^d, and "
            f"q0 ({type(q).__name__}) lives on R^d: {err}") from None
    want, have = _point_shape(view), _point_shape(q)
    if want != have:
        raise ValueError(
            f"fit: q0 ({type(q).__name__}) has point shape {have} (batch_shape + event_shape), "
            f"but the target ({_describe(target)}, support {support!r}) is fitted through "
            f"{type(view.bijector).__name__} in an unconstrained space of point shape {want}; "
            f"use a q0 of point shape {want}")
    return view


def push_forward(layout, q, batched=False):
    """``q`` on the target's scale by ``layout.constrained_distribution``; ``None`` without one.

    ``batched``: ``q`` and the layout carry a leading axis of fit members (vmapped).
    """
    push = getattr(layout, "constrained_distribution", None)
    if push is None:
        return None
    if not batched:
        return push(q)
    return jax.vmap(lambda lay, q: lay.constrained_distribution(q))(layout, q)
