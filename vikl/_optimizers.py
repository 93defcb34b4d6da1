"""Optimizers of :func:`vikl.fit`: the default Adam, what ``optimizer=`` may be, and continuation.

``fit(..., optimizer=...)`` accepts an optax ``GradientTransformation``, a
learning rate, an optax schedule or ``None``; :func:`resolve_optimizer` turns
each into a transformation, sharing one object per learning rate or schedule
so that repeated fits reuse their compiled programs. Continuing a
:class:`vikl.FitResult` reuses its optimizer (:func:`continuation_optimizer`)
and its state, checked against the optimizer's (:func:`restore_opt_state`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["default_optimizer", "resolve_optimizer", "continuation_optimizer", "restore_opt_state",
           "preconditioned_adam", "clip_gradient_spikes"]

DEFAULT_LEARNING_RATE = 1e-2

_ADAMS: dict = {}  # learning rate -> optax.adam(learning rate)
_SCHEDULED: dict = {}  # schedule -> optax.adam(schedule)


class OptLeaves(tuple):
    """Optimizer-state leaves whose structure could not be stored; rebuilt on continuation."""


def default_optimizer(learning_rate: float = DEFAULT_LEARNING_RATE):
    """``optax.adam(learning_rate)``, created once per learning rate (so compiles are shared)."""
    lr = float(learning_rate)
    if lr not in _ADAMS:
        _ADAMS[lr] = optax.adam(lr)
    return _ADAMS[lr]


def _real_scalar(x):
    """``x`` as a float if it is a real number (Python, NumPy or a 0-d concrete array), else None."""
    if isinstance(x, (bool, np.bool_)) or not (isinstance(x, (int, float, np.number))
                                               or (isinstance(x, (np.ndarray, jax.Array)) and x.ndim == 0)):
        return None
    if not (np.issubdtype(np.asarray(x).dtype, np.integer) or np.issubdtype(np.asarray(x).dtype, np.floating)):
        return None
    return float(x)


def _is_schedule(fn) -> bool:
    """Whether ``fn`` maps a step count to a learning rate (tried on the step count 0)."""
    try:
        return _real_scalar(fn(0)) is not None
    except Exception:  # noqa: BLE001 - any failure means "not a schedule"
        return False


def resolve_optimizer(optimizer):
    """``None`` -> Adam(1e-2); float -> Adam(lr); schedule -> Adam(schedule); optax object as is.

    Raises:
      ValueError: a learning rate that is not finite and > 0.
      TypeError: anything else that is not an optax transformation or a schedule.
    """
    if optimizer is None:
        return default_optimizer()
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    lr = _real_scalar(optimizer)
    if lr is not None:
        if not 0 < lr < float("inf"):
            raise ValueError(f"fit: a learning rate must be finite and > 0; got {optimizer!r}")
        return default_optimizer(lr)
    if callable(optimizer):
        if optimizer not in _SCHEDULED:
            if not _is_schedule(optimizer):
                raise TypeError(
                    f"fit: optimizer {optimizer!r} is callable but not a schedule (calling it with "
                    "the step count 0 must return a number); pass an optax GradientTransformation "
                    "(e.g. optax.adam(1e-3)), a learning rate or an optax schedule")
            _SCHEDULED[optimizer] = optax.adam(optimizer)
        return _SCHEDULED[optimizer]
    raise TypeError(
        "fit: optimizer must be an optax GradientTransformation, a learning rate, an optax "
        f"schedule or None; got {type(optimizer).__name__}"
    )


def describe_optimizer(opt) -> dict:
    """What a file can record of ``opt``: ``{"adam": lr}`` for a default Adam,
    ``{"preconditioned_adam": lr}`` for :func:`preconditioned_adam`, else its repr."""
    for lr, o in _ADAMS.items():
        if o is opt:
            return {"adam": lr}
    for lr, o in _PRECONDITIONED.items():
        if o is opt:
            return {"preconditioned_adam": lr}
    return {"custom": repr(opt)[:200]}


def continuation_optimizer(result, optimizer):
    """The optimizer for continuing ``result`` (a FitResult): ``optimizer`` if given, else its own."""
    if optimizer is not None:
        return resolve_optimizer(optimizer)
    if result.optimizer is None:
        raise ValueError(
            "fit: this FitResult was loaded from a file and used a custom optimizer, which "
            "cannot be stored; pass optimizer= (the same one) to continue"
        )
    return result.optimizer


def restore_opt_state(result, optimizer):
    """``result``'s optimizer state, checked against ``optimizer``'s structure and shapes.

    Raises:
      ValueError: the state does not match (a different optax chain).
    """
    if result.opt_state is None:
        raise ValueError(
            "fit: this FitResult has no optimizer state (a full-rank fit saved before vikl's "
            "format 4 changed the factor's parameter map), so it cannot be continued "
            "step for step. Restart the optimizer from its fitted q with "
            "fit(result.unconstrained_distribution, ...)."
        )
    init = optimizer.init if result.batch_size is None else jax.vmap(optimizer.init)
    with jax.numpy_dtype_promotion("standard"):
        want = jax.eval_shape(init, result.params)
    want_leaves, treedef = jax.tree_util.tree_flatten(want)
    stored = isinstance(result.opt_state, OptLeaves)
    have = list(result.opt_state) if stored else jax.tree_util.tree_leaves(result.opt_state)
    same = len(have) == len(want_leaves) and all(
        tuple(np.shape(h)) == tuple(w.shape) for h, w in zip(have, want_leaves)
    )
    if not stored:
        same = same and jax.tree_util.tree_structure(result.opt_state) == treedef
    if not same:
        raise ValueError(
            "fit: the optimizer's state does not match this FitResult's (a different optax "
            "chain?). Continue with the same optimizer, or restart the optimizer with "
            "fit(result.unconstrained_distribution, ...)."
        )
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(h) for h in have])


# ----------------------------------------------------------------------------- converge mode
_PRECONDITIONED: dict = {}


def preconditioned_adam(learning_rate: float = 1e-2):
    """Adam whose steps are scaled by ``q0``'s own standard deviations (``fit``'s converge default).

    ``optax.chain(clip_gradient_spikes(), scale_by_adam(), scale_by_initial_scale(),
    scale(-learning_rate))``:
    at ``init`` the parameters of a Gaussian family (``Normal``,
    ``MultivariateNormalDiag``, ``MultivariateNormal``,
    ``LowRankMultivariateNormal``) give each coordinate's standard deviation
    ``sd_i``; a location's steps (and a low-rank factor's row ``i``) are
    multiplied by ``sd_i`` (they are in the units of ``x_i``); log-scales and
    the unit-lower ratios of a full-rank factor are unitless and kept. So
    ``learning_rate`` is in units of the initial posterior sd on every
    coordinate, whatever the scales of the posterior (they differ by 10^4 in
    unscaled regressions). The scales live in the optimizer state, so one
    object (created once per learning rate) serves every fit without
    recompiling. Other parameter trees get plain Adam. A gradient spike (one
    Monte-Carlo draw in a heavy tail) is scaled down before it reaches Adam's
    moments (:func:`clip_gradient_spikes`).
    """
    lr = float(learning_rate)
    if lr not in _PRECONDITIONED:
        _PRECONDITIONED[lr] = optax.chain(clip_gradient_spikes(), optax.scale_by_adam(),
                                          _scale_by_initial_sd(), optax.scale(-lr))
    return _PRECONDITIONED[lr]


class ClipGradientSpikesState(NamedTuple):
    """Running statistics of the log gradient norm (see :func:`clip_gradient_spikes`)."""

    count: jax.Array  # gradients seen
    mean: jax.Array  # of log ||g|| (plain mean during the warm-up, then exponentially weighted)
    var: jax.Array  # of log ||g||, the same way
    num_clipped: jax.Array  # gradients clipped so far


def _log_global_norm(tree, dtype):
    """``log ||tree||`` computed without overflow (a float32 gradient of 1e30 has a finite log norm)."""
    leaves = [jnp.asarray(x, dtype) for x in jax.tree_util.tree_leaves(tree)]
    big = jnp.max(jnp.stack([jnp.max(jnp.abs(x), initial=0.0) for x in leaves]))
    big = jnp.maximum(big, jnp.finfo(dtype).tiny)
    return jnp.log(big) + 0.5 * jnp.log(sum(jnp.sum((x / big) ** 2) for x in leaves))


def clip_gradient_spikes(z: float = 4.0, min_ratio: float = 10.0, decay: float = 0.98,
                         warmup: int = 10) -> optax.GradientTransformation:
    """Scales down a gradient whose norm is a spike against the recent ones (an optax transformation).

    A Monte-Carlo gradient of the ELBO can be heavy-tailed: on a model with a
    log-scale inside an ``exp`` (a heteroscedastic noise sd, a hierarchical
    scale), one draw in the tail gives a gradient 1e5-1e20 times the usual. In
    Adam such a gradient fills the second-moment estimate, whose decay (0.999 per
    step) then keeps the steps of those coordinates near zero for 10^4-10^5
    steps, and its first moment throws the parameters out of the basin. This
    transformation, put before Adam, keeps running statistics of the log of the
    global gradient norm (mean ``m`` and variance ``s^2``, exponentially weighted
    with ``decay`` after a plain average over the first ``warmup`` gradients) and
    rescales a gradient whose log norm exceeds ``m + max(z s, log(min_ratio))``
    down to that norm; its direction is kept. The statistics take the clipped
    norm, so a spike does not raise the threshold. Nothing is clipped during the
    warm-up, and a gradient that is not clipped passes through bit for bit.

    A non-finite gradient is not repaired (it still makes the fit stop with
    :class:`vikl.FitDivergedError`). ``state.num_clipped`` counts the clipped
    gradients; :func:`preconditioned_adam` (``fit``'s converge-mode default)
    starts with this transformation.

    Raises:
      ValueError: ``z`` or ``decay`` outside its range, ``min_ratio`` not > 1,
        ``warmup`` not a positive integer.
    """
    if not (math.isfinite(z) and z > 0):
        raise ValueError(f"clip_gradient_spikes: z must be a finite number > 0; got {z!r}")
    if not (math.isfinite(min_ratio) and min_ratio > 1):
        raise ValueError(f"clip_gradient_spikes: min_ratio must be a finite number > 1; got {min_ratio!r}")
    if not 0 < decay < 1:
        raise ValueError(f"clip_gradient_spikes: decay must be in (0, 1); got {decay!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 1:
        raise ValueError(f"clip_gradient_spikes: warmup must be an integer >= 1; got {warmup!r}")
    log_min_ratio = math.log(min_ratio)

    def init(params):
        leaves = [x for x in jax.tree_util.tree_leaves(params) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
        dtype = jnp.result_type(*leaves) if leaves else jnp.result_type(float)
        zero = jnp.zeros((), dtype)
        return ClipGradientSpikesState(jnp.zeros((), jnp.int32), zero, zero, jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        del params
        dtype = state.mean.dtype
        log_norm = _log_global_norm(updates, dtype)
        threshold = state.mean + jnp.maximum(z * jnp.sqrt(state.var), log_min_ratio)
        clip = (state.count >= warmup) & (log_norm > threshold)
        factor = jnp.exp(jnp.minimum(threshold - log_norm, 0.0))
        updates = jax.tree_util.tree_map(lambda g: jnp.where(clip, g * factor.astype(g.dtype), g), updates)
        # Running mean and variance of the (clipped) log norm: Welford's update with weight
        # 1/n during the warm-up, 1 - decay after it.
        seen = jnp.where(clip, threshold, log_norm)
        count = state.count + 1
        w = jnp.where(state.count >= warmup, jnp.asarray(1 - decay, dtype), 1 / count.astype(dtype))
        delta = seen - state.mean
        mean = state.mean + w * delta
        var = (1 - w) * (state.var + w * delta**2)
        finite = jnp.isfinite(seen)  # a non-finite gradient leaves the statistics as they were
        new = ClipGradientSpikesState(
            count=jnp.where(finite, count, state.count), mean=jnp.where(finite, mean, state.mean),
            var=jnp.where(finite, var, state.var), num_clipped=state.num_clipped + clip.astype(jnp.int32))
        return updates, new

    return optax.GradientTransformation(init, update)


class ScaleByInitialSdState(NamedTuple):
    """The per-parameter step multipliers fixed at ``init``."""

    multipliers: object


def _parameter_map(constraint_name, u):
    from vikl import _constraints as constraints  # imported late: bijectors import this module's users
    from vikl.bijectors._registry import bijector_for

    return bijector_for(getattr(constraints, constraint_name), parameter=True).forward(u)


def _positive(u):
    return _parameter_map("positive", u)


def _lower_cholesky(u):
    return _parameter_map("lower_cholesky", u)


def _multipliers(params):
    """Per-leaf step multipliers (see :func:`preconditioned_adam`); ones for unknown trees."""
    ones = jax.tree_util.tree_map(jnp.ones_like, params)
    if not isinstance(params, dict) or "loc" not in params:
        return ones
    keys = set(params)
    if keys == {"loc", "scale"} or keys == {"loc", "scale_diag"}:
        sd = _positive(params["scale" if "scale" in keys else "scale_diag"])
        return {**ones, "loc": jnp.broadcast_to(sd, params["loc"].shape)}
    if keys == {"loc", "scale_tril"} and params["scale_tril"].ndim == 2:
        # The factor's coordinates (log row scales, ratios y_ij / y_ii) are free of the
        # posterior's scale already: only the location's steps are scaled.
        tril = _lower_cholesky(params["scale_tril"])
        return {**ones, "loc": jnp.sqrt(jnp.sum(tril**2, axis=1))}
    if keys == {"loc", "cov_factor", "cov_diag"} and params["cov_factor"].ndim == 2:
        sd = jnp.sqrt(jnp.sum(params["cov_factor"] ** 2, axis=1) + _positive(params["cov_diag"]))
        return {**ones, "loc": sd, "cov_factor": jnp.broadcast_to(sd[:, None], params["cov_factor"].shape)}
    return ones


def _scale_by_initial_sd():
    def init(params):
        return ScaleByInitialSdState(jax.lax.stop_gradient(_multipliers(params)))

    def update(updates, state, params=None):
        del params
        return jax.tree_util.tree_map(lambda u, m: u * m.astype(u.dtype), updates, state.multipliers), state

    return optax.GradientTransformation(init, update)
