"""A posterior with data, :class:`Posterior`: minibatch ELBO with the prior KL in closed form.

``Posterior(prior, log_likelihood, data)`` is the unnormalized density

    log p(theta | y) = log prior(theta) + sum_{i=1..N} log p(y_i | theta) + const,

kept as its three parts so that :class:`vikl.objectives.ReverseKL` can use

    -ELBO = -(N/B) sum_{i in batch} E_q[log p(y_i | theta)] + KL(q || prior),

with ``B`` observations per step and the KL in closed form when vikl's registry
has the pair. The data are leaves of the pytree: a fit's compiled program takes
them as arguments, so a second data set of the same shapes does not recompile,
and data sharded over devices with :mod:`jax.sharding` stay sharded (XLA splits
the likelihood's work and reduces the gradient).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _objective_terms as T
from vikl._base import Distribution, Module, is_concrete, static
from vikl._kl import kl_divergence
from vikl._validate import check_int

__all__ = ["Posterior"]

PRIOR_KL = ("auto", "analytic", "monte_carlo")
_FULL_DATA_CHUNK = 1 << 22  # elements of (draws x observations) evaluated at once by log_prob


def _leading(leaf) -> Optional[int]:
    shape = jnp.shape(leaf)
    return shape[0] if shape else None


def _as_array(leaf):
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return leaf
    return jnp.asarray(leaf)


def _observation_sharding(leaf):
    """``(mesh, axis names)`` sharding ``leaf``'s observation axis, or ``None``."""
    sharding = getattr(leaf, "sharding", None)
    if not isinstance(sharding, jax.sharding.NamedSharding):
        return None
    spec = tuple(sharding.spec) + (None,)
    names = spec[0]
    if names is None:
        return None
    names = names if isinstance(names, tuple) else (names,)
    return sharding.mesh, names


def _point_shape(prior):
    if not (hasattr(prior, "batch_shape") and hasattr(prior, "event_shape")):
        return None
    return tuple(prior.batch_shape) + tuple(prior.event_shape)


class Posterior(Module):
    """A posterior with data: ``log p(theta | y) = log prior(theta) + sum_i log p(y_i | theta) + c``.

    A target for :func:`vikl.fit` (and :func:`vikl.fit_step`). With the
    reverse KL (the default objective) each step estimates

        -ELBO = -(N/B) sum_{i in batch} E_q[log p(y_i | theta)] + KL(q || prior),

    in nats, from ``objective.num_samples`` draws of ``q`` and a minibatch of
    ``B = batch_size`` observations drawn from the step's key: i.i.d. uniform
    indices, WITH replacement, fresh each step (unbiased for the full-data
    loss and its gradient, no epoch state, one gather per step). With
    ``batch_size=None`` every step uses all ``N`` observations (no data
    noise). The step key is split: one half picks the batch, the other draws
    ``q``.

    The prior KL: ``prior_kl="auto"`` uses ``vikl.kl_divergence(q, prior)``
    when the pair has a closed form (also through a shared bijector, see
    below) and the Monte-Carlo ``E_q[log q - log prior]`` on the same draws
    otherwise; ``"analytic"`` requires the closed form (a ``ValueError`` at
    the first step otherwise); ``"monte_carlo"`` never uses it. Each step
    records ``trace["prior_kl_analytic"]`` (1.0 closed form, 0.0 Monte Carlo).
    Gradient estimators (``ReverseKL(gradient=...)``): ``"reparam"`` and
    ``"score"`` apply to the likelihood term (and to the Monte-Carlo prior
    term); ``"stl"`` with the Monte-Carlo prior KL evaluates ``log q`` with
    stopped parameters, as for any target; with the closed-form KL there is
    no ``log q`` term to stop, and ``"stl"`` is the same as ``"reparam"``
    (the KL's exact gradient is used). A :class:`vikl.Mixture` ``q`` uses its
    stratified draws and the Monte-Carlo prior KL.

    Other objectives (Rényi, IWAE, chi-square, the self-normalized forward
    KL) and ``fit``'s PSIS diagnostics use :meth:`log_prob`, the FULL-data
    log density: ``batch_size`` applies to the reverse KL only. They evaluate
    ``N`` likelihood terms per draw, in chunks of about 4M terms.

    Constrained priors: for a prior whose ``support`` is not R^d (Beta, Gamma,
    Dirichlet, ...) and a ``q0`` on R^d, :func:`vikl.fit` fits ``q`` to the
    posterior of ``u = b^{-1}(theta)`` through the support's bijector ``b``
    (``vikl.unconstrained(posterior)`` builds that view; ``result.distribution``
    is ``Transformed(q, b)``). The prior KL is then ``KL(Transformed(q, b) ||
    prior)``: in closed form when the prior is itself ``Transformed(p0, b)``
    with the same ``b`` (it equals ``KL(q || p0)``) or another registered
    pair, else Monte Carlo with the log-Jacobian.

    Multiple devices: pass data already sharded along the observation axis,
    e.g. ``jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))``
    on a 1-D mesh. The compiled step keeps them in place, each device
    evaluates the likelihood of its share (the minibatch is constrained to
    the same sharding, so ``batch_size`` must be a multiple of the number of
    devices on that axis) and XLA sums the shares; the result equals the
    one-device fit up to float round-off.

    Args:
      prior: the prior of ``theta``: a :class:`vikl.Distribution`, a NumPyro
        distribution, or any object with ``log_prob`` (and ``batch_shape``,
        ``event_shape`` for the checks at construction). The shape of
        ``theta`` is ``prior.batch_shape + prior.event_shape``: for ``d``
        independent coefficients use e.g. ``vikl.Normal(jnp.zeros(d), 1.0)``.
      log_likelihood: ``log_likelihood(theta, y_i) -> scalar``, the log
        density of ONE observation ``y_i`` (one slice of ``data`` along its
        leading axis: an array, or the same pytree as ``data``) at ONE
        ``theta``; vikl vmaps it over observations and draws. It is part of
        the compiled program (a new function object compiles anew).
      data: an array, or a pytree of arrays, with a common leading
        observation axis of length ``N`` (e.g. ``(x, y)`` with shapes
        ``(N, k)`` and ``(N,)``). Arrays of the data set are arguments of the
        compiled program: another data set of the same shapes and dtypes
        reuses it.
      batch_size: observations per step, ``1 <= batch_size <= N``; ``None``:
        all of them.
      prior_kl: ``"auto"`` (default), ``"analytic"`` or ``"monte_carlo"``.

    Raises:
      ValueError: data leaves with different leading lengths (or none),
        data with NaN, ``batch_size`` outside ``[1, N]`` or not a multiple of
        the devices sharding the data, a ``log_likelihood`` that does not
        return one scalar per observation, or an unknown ``prior_kl``.
      TypeError: ``prior`` has no ``log_prob`` or ``log_likelihood`` is not
        callable.

    Example:
      >>> import jax, jax.numpy as jnp, vikl
      >>> y = jnp.array([0.3, 1.1, 0.8, 1.6])    # y_i ~ N(theta, 1), theta ~ N(0, 1)
      >>> post = vikl.Posterior(vikl.Normal(0.0, 1.0),
      ...                       lambda theta, y_i: vikl.Normal(theta, 1.0).log_prob(y_i), y)
      >>> res = vikl.fit(vikl.Normal(0.0, 1.0), post, optimizer=0.01, num_steps=2000,
      ...                num_samples=64, key=jax.random.key(0), progress=False)
      >>> q = res.distribution                   # exact posterior: N(0.76, 0.447^2)
      >>> round(float(q.loc), 1), round(float(q.scale), 2)
      (0.8, 0.45)
    """

    prior: Any
    data: Any
    bijector: Any
    log_likelihood: Callable = static()
    batch_size: Optional[int] = static(default=None)
    prior_kl: str = static(default="auto")
    _shard: Any = static(default=None)  # (mesh, axis names) of the observation axis, or None

    def __init__(self, prior, log_likelihood, data, *, batch_size=None, prior_kl="auto"):
        if not hasattr(prior, "log_prob"):
            raise TypeError(
                "Posterior: prior must be a distribution with log_prob (a vikl.Distribution, a "
                f"NumPyro distribution); got {type(prior).__name__}")
        if not callable(log_likelihood):
            raise TypeError(
                "Posterior: log_likelihood must be a function (theta, y_i) -> scalar; got "
                f"{type(log_likelihood).__name__}")
        if prior_kl not in PRIOR_KL:
            raise ValueError(f"Posterior: prior_kl must be one of {PRIOR_KL}; got {prior_kl!r}")
        data = jax.tree_util.tree_map(_as_array, data)
        n = _check_data(data)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, where="Posterior")
            if batch_size > n:
                raise ValueError(
                    f"Posterior: batch_size must be <= the number of observations N = {n}; got "
                    f"{batch_size} (pass batch_size=None for the full data)")
        shard = _data_sharding(data, batch_size)
        self._setup(prior=prior, data=data, bijector=None, log_likelihood=log_likelihood,
                    batch_size=batch_size, prior_kl=prior_kl, _shard=shard)
        point = _point_shape(prior)
        if point is not None:
            dtype = getattr(prior, "dtype", None) or jnp.zeros(()).dtype
            self._check_likelihood(jax.ShapeDtypeStruct(point, dtype))

    # ------------------------------------------------------------------ shapes
    @property
    def num_observations(self) -> int:
        """``N``, the length of the data's leading axis."""
        return _leading(jax.tree_util.tree_leaves(self.data)[0])

    @property
    def batch_shape(self):
        return tuple(getattr(self.prior, "batch_shape", ()) or ())

    @property
    def event_shape(self):
        return tuple(getattr(self.prior, "event_shape", ()) or ())

    @property
    def dtype(self):
        return getattr(self.prior, "dtype", None) or jnp.zeros(()).dtype

    @property
    def support(self):
        """The prior's support (all of R^d for the unconstrained view)."""
        from vikl._constraints import real

        return real if self.bijector is not None else getattr(self.prior, "support", None)

    @property
    def layout(self):
        """The unconstrained view's :class:`vikl._unconstrained.BijectorLayout`, else ``None``."""
        if self.bijector is None:
            return None
        from vikl._unconstrained import BijectorLayout

        return BijectorLayout(self.bijector)

    def _unconstrained_view(self, bijector):
        """The posterior of ``u = b^{-1}(theta)`` (what :func:`vikl.unconstrained` returns)."""
        from vikl._unconstrained import Unconstrained

        if self.bijector is not None:
            raise TypeError("unconstrained: target is already an unconstrained view")
        view = jax.tree_util.tree_map(lambda x: x, self)  # a shallow copy
        object.__setattr__(view, "prior", Unconstrained(self.prior, bijector))
        object.__setattr__(view, "bijector", bijector)
        return view

    def __repr__(self):
        view = f", bijector={type(self.bijector).__name__}" if self.bijector is not None else ""
        return (f"Posterior(prior={self.prior!r}, N={self.num_observations}, "
                f"batch_size={self.batch_size}, prior_kl={self.prior_kl!r}{view})")

    # ------------------------------------------------------------------ densities
    def _theta(self, u):
        return u if self.bijector is None else self.bijector.forward(u)

    def _log_lik_one(self, u, batch):
        """``sum_i log p(y_i | theta(u))`` over the observations in ``batch`` (ONE point ``u``)."""
        theta = self._theta(u)
        return jnp.sum(jax.vmap(self.log_likelihood, in_axes=(None, 0))(theta, batch))

    def _log_prior_one(self, u):
        return jnp.sum(self.prior.log_prob(u))

    def _check_likelihood(self, point):
        """Raises unless ``log_likelihood`` gives one scalar per observation at ``point``."""
        one = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct(jnp.shape(x)[1:], jnp.result_type(x)), self.data)
        try:
            out = jax.eval_shape(lambda t, y: self.log_likelihood(self._theta(t), y), point, one)
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 - a shape/type error inside the user's function
            raise ValueError(
                f"Posterior: log_likelihood(theta, y_i) failed for theta of shape "
                f"{tuple(point.shape)} and one observation y_i (data without its leading axis): "
                f"{type(err).__name__}: {err}") from err
        shapes = jax.tree_util.tree_map(lambda s: tuple(s.shape), out)
        if not (hasattr(out, "shape") and tuple(out.shape) == ()):
            raise ValueError(
                "Posterior: log_likelihood must return a scalar for ONE observation (vikl vmaps "
                f"it over the data's leading axis); got {shapes} for theta of shape "
                f"{tuple(point.shape)}. If it returns one value per observation of a whole "
                "batch, write it for one observation, or sum inside it")

    def log_prob(self, theta):
        """``log prior(theta) + sum_{i=1..N} log p(y_i | theta)`` for points of shape ``(...,) + point``.

        The full data (every observation), whatever ``batch_size``; unnormalized.
        The point shape is ``batch_shape + event_shape``; leading axes are kept.
        """
        theta = jnp.asarray(theta)
        point = self.batch_shape + self.event_shape
        if _point_shape(self.prior) is None:
            point = theta.shape[1:]
        lead = theta.shape[: theta.ndim - len(point)]
        if tuple(theta.shape[len(lead):]) != tuple(point):
            raise ValueError(
                f"Posterior.log_prob: theta must have shape (...,) + {tuple(point)} (the prior's "
                f"batch_shape + event_shape); got {tuple(theta.shape)}")
        flat = theta.reshape((-1,) + tuple(point))
        self._check_likelihood(jax.ShapeDtypeStruct(tuple(point), flat.dtype))
        m = flat.shape[0]
        chunk = max(1, min(m, _FULL_DATA_CHUNK // max(self.num_observations, 1)))
        lik = jax.lax.map(lambda u: self._log_lik_one(u, self.data), flat, batch_size=chunk)
        lp = self.prior.log_prob(flat)
        lp = lp.reshape(m, -1).sum(-1) if lp.ndim > 1 else lp
        return (lp + lik).reshape(lead)

    # ------------------------------------------------------------------ the reverse KL
    def minibatch(self, key):
        """The data of one step: ``batch_size`` observations drawn i.i.d. uniformly with
        replacement from ``key`` (all the data when ``batch_size`` is None)."""
        if self.batch_size is None:
            return self.data
        idx = jax.random.randint(key, (self.batch_size,), 0, self.num_observations)
        batch = jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), self.data)
        if self._shard is not None:
            mesh, names = self._shard
            P = jax.sharding.PartitionSpec
            batch = jax.tree_util.tree_map(
                lambda x: jax.lax.with_sharding_constraint(
                    x, jax.sharding.NamedSharding(mesh, P(names, *[None] * (x.ndim - 1)))),
                batch)
        return batch

    def prior_kl_closed_form(self, q):
        """``KL(q || prior)`` summed over coordinates in closed form, or ``None`` without one.

        For the unconstrained view, ``KL(Transformed(q, b) || prior)``.
        """
        if self.prior_kl == "monte_carlo" or (hasattr(q, "strata") and q.strata() is not None):
            return None
        prior = self.prior if self.bijector is None else self.prior.target
        if not isinstance(prior, Distribution):
            return None
        qq = q
        if self.bijector is not None:
            from vikl._distributions.transformed import Transformed

            try:
                qq = Transformed(q, self.bijector)
            except (ValueError, TypeError):
                return None
        try:
            kl = kl_divergence(qq, prior)
        except NotImplementedError:
            return None
        try:
            shape = jnp.broadcast_shapes(jnp.shape(kl), tuple(qq.batch_shape))
        except ValueError:
            shape = None
        if shape != tuple(qq.batch_shape):
            raise ValueError(
                f"Posterior: the prior (batch_shape {tuple(prior.batch_shape)}) does not match q "
                f"(batch_shape {tuple(qq.batch_shape)}): KL(q || prior) has shape "
                f"{tuple(jnp.shape(kl))}; give the prior the point shape of q")
        return jnp.sum(kl)

    def reverse_kl_loss(self, objective, q, key):
        """``(loss, aux)`` of :class:`vikl.objectives.ReverseKL` on this posterior (see the class).

        ``aux = {"prior_kl_analytic": 1.0 or 0.0}``.
        """
        point = tuple(q.batch_shape) + tuple(q.event_shape)
        mine = _point_shape(self.prior)
        if mine is not None and tuple(mine) != point:
            raise ValueError(
                f"Posterior: q has point shape {point} (batch_shape + event_shape) but the prior "
                f"of theta{' (unconstrained)' if self.bijector is not None else ''} has "
                f"{tuple(mine)}; they must match")
        self._check_likelihood(jax.ShapeDtypeStruct(point, q.dtype))
        key_batch, key_q = jax.random.split(key)
        batch = self.minibatch(key_batch)
        scale = self.num_observations / (self.batch_size or self.num_observations)
        n = objective.num_samples
        strata = q.strata() if hasattr(q, "strata") else None
        gradient = objective.gradient or (
            "reparam" if T.is_reparameterized(q if strata is None else strata[1]) else "score")
        if gradient != "score" and not T.is_reparameterized(q if strata is None else strata[1]):
            raise ValueError(
                f"ReverseKL(gradient={gradient!r}) needs a reparameterized q; "
                f"{type(q).__name__} is not. Use gradient='score'.")
        kl = self.prior_kl_closed_form(q)
        if kl is None and self.prior_kl == "analytic":
            raise ValueError(
                f"Posterior: prior_kl='analytic' but KL(q || prior) has no closed form for q "
                f"{type(q).__name__} and prior {type(self.prior).__name__}; use prior_kl='auto'")

        draws = getattr(objective, "draws", "mc")  # RQMC draws where ReverseKL has them
        extra = {} if draws == "mc" else {"draws": draws}
        if strata is not None and gradient != "score" and draws == "rqmc":
            raise ValueError(
                f"ReverseKL(draws='rqmc') does not support a {type(q).__name__} q (stratified "
                "per-component draws); use draws='mc'")

        def log_lik(u):
            return scale * self._log_lik_one(u, batch)

        if kl is None:
            def log_joint(u):
                return self._log_prior_one(u) + log_lik(u)

            if strata is not None and gradient != "score":
                loss = T.stratified_kl(q, strata, log_joint, key_q, n, stl=gradient == "stl")
            else:
                use_entropy = objective.analytic_entropy and gradient != "stl"
                entropy = T.entropy_or_none(q) if use_entropy else None
                loss = T.REVERSE_KL_GRADIENTS[gradient](q, log_joint, key_q, n, entropy, **extra)
            flag = 0.0
        else:
            zero = jnp.zeros((), jnp.result_type(kl))
            est = "score" if gradient == "score" else "reparam"
            loss = T.REVERSE_KL_GRADIENTS[est](q, log_lik, key_q, n, zero, **extra) + kl
            flag = 1.0
        return loss, {"prior_kl_analytic": jnp.asarray(flag, jnp.result_type(loss))}


def _check_data(data) -> int:
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("Posterior: data must hold at least one array; got an empty pytree")
    paths = jax.tree_util.tree_flatten_with_path(data)[0]
    lengths = {jax.tree_util.keystr(p) or "data": _leading(x) for p, x in paths}
    if any(v is None for v in lengths.values()) or len(set(lengths.values())) > 1:
        raise ValueError(
            "Posterior: data arrays must share one leading observation axis of length N; got "
            f"leading lengths {lengths} (None: a scalar)")
    n = next(iter(lengths.values()))
    if n < 1:
        raise ValueError("Posterior: data has no observations (leading length 0)")
    for p, x in paths:
        if is_concrete(x) and jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            bad = int(jnp.sum(~jnp.isfinite(x)))
            if bad:
                raise ValueError(
                    f"Posterior: data{jax.tree_util.keystr(p)} has {bad} NaN or infinite "
                    f"value(s) of {math.prod(jnp.shape(x))}; drop or impute those observations")
    return n


def _data_sharding(data, batch_size):
    """``(mesh, axis names)`` sharding the observation axis of the data (one for all leaves)."""
    found = {_observation_sharding(x) for x in jax.tree_util.tree_leaves(data)}
    found.discard(None)
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(
            "Posterior: data leaves are sharded differently along the observation axis; shard "
            "them all with one NamedSharding(mesh, PartitionSpec(axis))")
    mesh, names = found.pop()
    devices = math.prod(mesh.shape[name] for name in names)
    if batch_size is not None and batch_size % devices:
        raise ValueError(
            f"Posterior: batch_size must be a multiple of the {devices} devices that shard the "
            f"data's observation axis (mesh axis {names}); got {batch_size}")
    return mesh, names
