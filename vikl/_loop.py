"""The fit loop's pure pieces: :func:`fit_init` and :func:`fit_step`.

In the style of optax's ``init``/``update`` and BlackJAX's ``init``/``step``:
``fit_init`` turns an initial distribution into a :class:`FitState`
(unconstrained parameters, optimizer state, step count, key) and ``fit_step``
advances it by one optimizer step. Both are pure functions of pytrees, so a
user can run them inside their own ``jax.jit``/``lax.scan``/``vmap`` (a custom
schedule, amortized inference, a loop with other updates). :func:`vikl.fit`
is a driver over the same update: it adds chunking, the progress bar, the
divergence stop, batching and diagnostics, and gives the same numbers as a
loop of ``fit_step`` calls.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from vikl import objectives as _objectives
from vikl._base import Distribution
from vikl._optimizers import resolve_optimizer
from vikl._params import constrain, unconstrain

__all__ = ["FitState", "fit_init", "fit_step"]

# Non-finite codes of one step (bit flags), reported by ``vikl.fit`` when the fit diverges.
GRADIENT_NONFINITE = 1
PARAMS_NONFINITE = 2


def standard_promotion():
    """Optax relies on NumPy's implicit promotion; keep it working under strict mode."""
    return jax.numpy_dtype_promotion("standard")


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class FitState:
    """The state of a fit between steps (a pytree; :func:`fit_init` makes one).

    Attributes:
      params: the unconstrained parameters (``vikl._params.unconstrain`` of a
        Distribution, or the user's pytree of arrays as given).
      opt_state: the optax state.
      step: steps taken so far (an int32 scalar array).
      key: the run's PRNG key; step ``t`` uses ``fold_in(split(key)[0], t)``
        unless :func:`fit_step` is given its own key.
      template: the initial Distribution (its non-trainable fields and
        structure), or ``None`` when ``params`` is a plain pytree.
      objective: the resolved objective (static).
      optimizer: the optax ``GradientTransformation`` (static).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    template: Any
    objective: Any
    optimizer: Any

    @property
    def distribution(self):
        """The current ``q``: the Distribution rebuilt from ``params`` (or ``params`` itself)."""
        return current_q(self.template, self.params)

    def replace(self, **changes) -> "FitState":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def tree_flatten(self):
        children = (self.params, self.opt_state, self.step, self.key, self.template)
        return children, (self.objective, self.optimizer)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def current_q(template, params):
    """The objective's ``q``: the Distribution of ``params``, or ``params`` when there is no template."""
    return params if template is None else constrain(template, params)


def objective_value(objective, q, target, key):
    """``(loss, aux)`` of ``objective`` at ``q``, checked: a scalar loss and a dict of aux values."""
    fn = getattr(objective, "loss_and_aux", None)
    out = fn(q, target, key) if fn is not None else objective(q, target, key)
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], dict):
            raise TypeError("an objective must return a loss or (loss, aux_dict)")
        loss, aux = out
    else:
        loss, aux = out, {}
    loss = jnp.asarray(loss)
    if loss.shape != ():
        raise ValueError(f"the objective returned a loss of shape {loss.shape}; expected a scalar")
    return loss, aux


def update(objective, optimizer, template, target, params, opt_state, key):
    """One optimizer step: ``(params, opt_state, loss, aux, code)``.

    ``code`` flags what was non-finite in this step (0: nothing;
    ``GRADIENT_NONFINITE`` and/or ``PARAMS_NONFINITE``); ``loss`` and ``aux``
    are the objective's at the parameters before the step.
    """
    def loss_fn(p, k):
        return objective_value(objective, current_q(template, p), target, k)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, key)
    with standard_promotion():  # optax mixes Python floats with int32 step counts
        if _has_linesearch(opt_state):
            # optax.lbfgs and other line-search optimizers evaluate the loss at trial points: the
            # same step key, so that the line search sees one deterministic function.
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=loss, grad=grads,
                value_fn=lambda p: loss_fn(p, key)[0])
        else:
            updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    zero = jnp.int32(0)
    code = jnp.where(_all_finite(grads), zero, jnp.int32(GRADIENT_NONFINITE)) + jnp.where(
        _all_finite(params), zero, jnp.int32(PARAMS_NONFINITE))
    return params, opt_state, loss, aux, code


def _has_linesearch(opt_state) -> bool:
    """Whether an optax state holds a line search's state (the optimizer needs ``value_fn``)."""
    from optax._src import linesearch

    kinds = (linesearch.ScaleByZoomLinesearchState, linesearch.ScaleByBacktrackingLinesearchState)
    return any(isinstance(x, kinds) for x in jax.tree_util.tree_leaves(
        opt_state, is_leaf=lambda x: isinstance(x, kinds)))


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def step_key(key, step):
    """The key of step ``step`` of a run with key ``key``: ``fold_in(split(key)[0], step)``."""
    return jax.random.fold_in(jax.random.split(key)[0], step)


def init_params(q0):
    """``(params, template)``: unconstrained parameters of a Distribution, or a float pytree as is."""
    if isinstance(q0, Distribution):
        return unconstrain(q0), q0
    leaves = jax.tree_util.tree_leaves(q0)
    if not leaves or not all(hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
                             for x in leaves):
        raise TypeError(
            "fit_init: q0 must be a vikl.Distribution or a pytree of floating-point arrays "
            f"(e.g. network weights); got {type(q0).__name__}"
        )
    return q0, None


def fit_init(q0, *, key, objective=None, optimizer=None, num_samples: Optional[int] = None) -> FitState:
    """Starts a fit: the :class:`FitState` of ``q0`` before its first step.

    Pure and cheap (no compilation); the state is a pytree, so it can be
    created or carried inside ``jax.jit``.

    Args:
      q0: the initial :class:`vikl.Distribution` (optimized in unconstrained
        space; the objective sees a Distribution), or any pytree of
        floating-point arrays (e.g. network weights for amortized inference;
        optimized as is, and passed as is to the objective).
      key: the run's PRNG key (typed or legacy); :func:`fit_step` derives
        step ``t``'s key as ``fold_in(split(key)[0], t)``, as :func:`vikl.fit`
        does.
      objective: as in :func:`vikl.fit` (a name, an objective object or a
        function ``(q, target, key) -> loss | (loss, aux_dict)``); default
        ``"reverse_kl"``.
      optimizer: as in :func:`vikl.fit` (an optax transformation, a learning
        rate, a schedule or ``None`` for ``optax.adam(1e-2)``).
      num_samples: overrides the objective's draws per step.

    Returns:
      A :class:`FitState` at step 0.
    """
    objective = _objectives.get("reverse_kl" if objective is None else objective, num_samples)
    optimizer = resolve_optimizer(optimizer)
    params, template = init_params(q0)
    with standard_promotion():
        opt_state = optimizer.init(params)
    key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    return FitState(params, opt_state, jnp.zeros((), jnp.int32), key, template, objective, optimizer)


def fit_step(state: FitState, target, key=None):
    """Advances a fit by one optimizer step: ``(new_state, loss, aux)``.

    Evaluates the objective and its gradient at ``state``'s parameters
    (``loss`` and ``aux`` belong to those parameters, before the update, as
    ``FitResult.losses`` does), then applies one optax update. Pure: wrap it
    in ``jax.jit`` (a Distribution or array target can be an argument; close
    over a log-density callable) or call it inside your own ``lax.scan``.

    Args:
      state: a :class:`FitState` from :func:`fit_init` or a previous step.
      target: what the objective compares ``q`` with (see :func:`vikl.fit`);
        for a user objective anything it accepts, e.g. a batch of data.
      key: this step's PRNG key; ``None`` (default) uses
        ``fold_in(split(state.key)[0], state.step)``, which makes a loop of
        steps reproduce :func:`vikl.fit` bit for bit.

    Returns:
      ``(state, loss, aux)``: the advanced state, the scalar loss and the
      objective's aux dict (empty for most objectives).
    """
    if not isinstance(state, FitState):
        raise TypeError(f"fit_step: state must be a vikl.FitState (from vikl.fit_init); got {type(state).__name__}")
    if key is None:
        key = step_key(state.key, state.step)
    params, opt_state, loss, aux, _ = update(
        state.objective, state.optimizer, state.template, target, state.params, state.opt_state, key)
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), loss, aux
