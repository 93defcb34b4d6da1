"""The variational fitting loop :func:`fit`: a driver over :func:`vikl.fit_step`.

Design (see ``fit``'s docstring for the user-facing contract):

* One step is ``vikl._loop.update``, the same function that the public
  :func:`vikl.fit_step` runs: parameters are optimized in unconstrained space
  (``vikl._params``), the distribution is rebuilt from them inside the
  compiled step without running its validating constructor.
* The run is split into chunks. One chunk is one call of a jitted
  ``lax.fori_loop`` whose trip count is a traced argument, so all chunks of a
  run execute the same compiled code and chunk boundaries cannot change the
  results. The first chunk is one step (it may include compilation) unless
  an earlier fit measured the step rate of the same program and shapes; each
  later one is sized from the measured rate to last about 0.25 s with the
  progress bar on (0.5 s off), at most 4096 steps: Ctrl-C stops a fit within
  about a second whatever a step costs (``FitInterrupted`` keeps the steps
  done), and the bar moves. The bar and
  the divergence check run on the host between chunks. Results are
  bit-identical with the bar on or off.
* The compiled programs are cached by ``jax.jit`` on a hashable spec
  (objective, optimizer, the target's non-array parts): a second ``fit`` with
  the same shapes, objective and optimizer object does not recompile.
* Step ``t`` (counted from the first fit of a chain of continuations) uses the
  key ``fold_in(key_steps, t)``, with ``key_steps, key_diag = split(key)``, and
  the diagnostics after ``T`` steps use ``fold_in(key_diag, T)``; so
  ``fit(fit(q0, n=a), n=b)`` reproduces ``fit(q0, n=a+b)`` bit for bit, and so
  does a loop of ``vikl.fit_step`` from ``vikl.fit_init(q0, key=key)``.
* Without ``num_steps`` (run until converged), ``vikl._init.for_fit`` first
  sets ``q0`` and the optimizer; chunks then hold whole windows of steps
  (``_chunk_windows``: the same step plus, in the loop's carry, each window's
  sum of parameters) and the host checks the rule of
  :mod:`vikl._convergence` at fixed window counts. When it holds inside a
  chunk, the chunk is rerun from its start to that checkpoint, so the stop
  does not depend on chunk timing either. Trust checks (``FitWarning``)
  follow.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _convergence, _init, _loop, _objective_terms, _qmc, _targets, _unconstrained
from vikl import objectives as _objectives
from vikl._base import Distribution
from vikl._diagnostics import ISDiagnostics
from vikl._fit_result import FitDivergedError, FitResult, FitWarning
from vikl._optimizers import continuation_optimizer, resolve_optimizer, restore_opt_state
from vikl._params import unconstrain
from vikl._static import _is_array, _split_static, _Static
from vikl._validate import check_int

__all__ = ["fit", "FitResult", "FitDivergedError", "FitInterrupted"]

DEFAULT_NUM_DIAGNOSTIC_SAMPLES = 2000
_PROGRESS_SECONDS = 0.25  # target duration of a chunk with the progress bar on
_QUIET_SECONDS = 0.5  # ... and off (the divergence check and Ctrl-C get a chance)
_MAX_CAPACITY = 4**6  # longest chunk, in steps (its step keys are derived together)
_SKIP = "skip"  # _resolve_init: do not call vikl._init.for_fit at all


class FitInterrupted(KeyboardInterrupt):
    """Raised by :func:`vikl.fit` on Ctrl-C (``KeyboardInterrupt``): keeps the work done.

    ``err.result`` is the :class:`FitResult` of the steps completed before the
    interrupt (``losses`` and ``trace`` truncated to them, ``num_steps``
    counting them). Continue it with ``vikl.fit(err.result, target,
    num_steps=...)``: the chain reproduces an uninterrupted run bit for bit.
    Code that catches ``KeyboardInterrupt`` catches this too.

    Example::

        try:
            res = vikl.fit(q0, target, num_steps=100_000, key=key)
        except vikl.FitInterrupted as err:
            res = err.result          # steps done so far
    """

    def __init__(self, result):
        self.result = result
        super().__init__(f"fit interrupted after {result.num_steps} steps; err.result holds them")


# ----------------------------------------------------------------------------- static parts
def _stack_static(trees, what):
    """Splits a list of pytrees with equal static parts; stacks their array leaves."""
    statics = [_split_static(t) for t in trees]
    first = statics[0][0]
    shapes = [tuple((jnp.shape(x), jnp.result_type(x)) for x in d) for _, d in statics]
    for i, (s, _) in enumerate(statics[1:], 1):
        if s != first or shapes[i] != shapes[0]:
            raise ValueError(
                f"fit: {what}[{i}] differs in structure from {what}[0] (type, static fields or "
                f"shapes); a batch of {what}s must differ only in array values"
            )
    dyn = [jnp.stack(xs) for xs in zip(*(d for _, d in statics))]
    return first, dyn


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Everything that shapes the compiled program besides array shapes (hash computed once)."""

    objective: Any
    optimizer: Any
    q_static: _Static
    target_static: _Static
    q_batched: bool
    target_batched: bool
    batched: bool

    def __post_init__(self):
        object.__setattr__(self, "_hash", hash((
            self.objective, self.optimizer, self.q_static, self.target_static,
            self.q_batched, self.target_batched, self.batched)))

    def __hash__(self):
        return self._hash



def _vmap_if(spec, fn, axes):
    if not spec.batched:
        return fn
    return jax.vmap(fn, in_axes=axes)


# ----------------------------------------------------------------------------- compiled parts
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _init_state(q_static, optimizer, q_batched, q_dyn):
    def one(q_dyn):
        params = unconstrain(q_static.rebuild(q_dyn))
        with _loop.standard_promotion():
            return params, optimizer.init(params)

    return jax.vmap(one)(q_dyn) if q_batched else one(q_dyn)


def _chunk_single(spec, cap, params, opt_state, q_dyn, target_dyn, key, start, n):
    """``n`` steps from ``start``: params, opt_state and per-step losses, aux, non-finite codes."""
    step_key = jax.random.split(key)[0]
    template = spec.q_static.rebuild(q_dyn)
    target = spec.target_static.rebuild(target_dyn)
    update = functools.partial(_loop.update, spec.objective, spec.optimizer, template, target)

    def loss_fn(p, key):
        return _loop.objective_value(spec.objective, _loop.current_q(template, p), target, key)

    (loss_shape, aux_shapes) = jax.eval_shape(loss_fn, params, jax.random.fold_in(step_key, start))
    losses = jnp.zeros((cap,), loss_shape.dtype)
    auxes = jax.tree_util.tree_map(lambda s: jnp.zeros((cap,) + s.shape, s.dtype), aux_shapes)
    codes = jnp.zeros((cap,), jnp.int32)

    def step(i, state):
        p, s, losses, auxes, codes = state
        # A dynamic slice and a dynamic update (``.at[i].set`` would be a scatter). Keep the
        # default negative-index handling: allow_negative_indices=False measured ~20% slower
        # steps at F2 d=10 on CPU, though it removes one select from the loop body.
        p, s, loss, aux, code = update(p, s, jax.lax.dynamic_index_in_dim(keys, i, keepdims=False))
        put = lambda b, a: jax.lax.dynamic_update_index_in_dim(b, a, i, 0)  # noqa: E731
        return p, s, put(losses, loss), jax.tree_util.tree_map(put, auxes, aux), put(codes, code)

    # Step t uses fold_in(step_key, t) (``_loop.step_key``). The chunk's keys are derived
    # together by one vectorized threefry call (a fold_in inside the loop is a small while
    # loop that costs more than a whole step of a small problem on CPU).
    keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, start + jnp.arange(cap, dtype=start.dtype))
    return jax.lax.fori_loop(0, n, step, (params, opt_state, losses, auxes, codes))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run_chunk(spec, cap, params, opt_state, q_dyn, target_dyn, key, start, n):
    fn = functools.partial(_chunk_single, spec, cap)
    axes = (0, 0, 0 if spec.q_batched else None, 0 if spec.target_batched else None, 0, None, None)
    return _vmap_if(spec, fn, axes)(params, opt_state, q_dyn, target_dyn, key, start, n)


def _chunk_windows(spec, cap, window, params, opt_state, q_dyn, target_dyn, key, start, n):
    """``n`` steps (a multiple of ``window``) as ``_chunk_single``, plus each window's parameter sum.

    The sum of the parameters entering each step (those its loss belongs to) is
    carried through the loop and written out per window, so the Polyak average
    costs one addition per step and no per-step copies leave the device.
    """
    step_key = jax.random.split(key)[0]
    template = spec.q_static.rebuild(q_dyn)
    target = spec.target_static.rebuild(target_dyn)
    update = functools.partial(_loop.update, spec.objective, spec.optimizer, template, target)

    def loss_fn(p, key):
        return _loop.objective_value(spec.objective, _loop.current_q(template, p), target, key)

    (loss_shape, aux_shapes) = jax.eval_shape(loss_fn, params, jax.random.fold_in(step_key, start))
    losses = jnp.zeros((cap,), loss_shape.dtype)
    auxes = jax.tree_util.tree_map(lambda s: jnp.zeros((cap,) + s.shape, s.dtype), aux_shapes)
    codes = jnp.zeros((cap,), jnp.int32)
    acc = jax.tree_util.tree_map(jnp.zeros_like, params)
    sums = jax.tree_util.tree_map(lambda x: jnp.zeros((cap // window,) + x.shape, x.dtype), params)

    def step(i, state):
        p, s, losses, auxes, codes, acc, sums = state
        acc = jax.tree_util.tree_map(jnp.add, acc, p)
        p, s, loss, aux, code = update(p, s, jax.lax.dynamic_index_in_dim(keys, i, keepdims=False))
        put = lambda b, a: jax.lax.dynamic_update_index_in_dim(b, a, i, 0)  # noqa: E731
        put_w = lambda b, a: jax.lax.dynamic_update_index_in_dim(b, a, i // window, 0)  # noqa: E731
        sums = jax.tree_util.tree_map(put_w, sums, acc)
        end = (i + 1) % window == 0
        acc = jax.tree_util.tree_map(lambda a: jnp.where(end, jnp.zeros_like(a), a), acc)
        return (p, s, put(losses, loss), jax.tree_util.tree_map(put, auxes, aux), put(codes, code),
                acc, sums)

    keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, start + jnp.arange(cap, dtype=start.dtype))
    out = jax.lax.fori_loop(0, n, step, (params, opt_state, losses, auxes, codes, acc, sums))
    return out[:5] + (out[6],)


_run_windows = jax.jit(_chunk_windows, static_argnums=(0, 1, 2))


def _finish_single(spec, num, params, q_dyn, target_dyn, key, step):
    q = _loop.current_q(spec.q_static.rebuild(q_dyn), params)
    if not num:
        return q, None
    target = spec.target_static.rebuild(target_dyn)
    x, logq = _objective_terms.sample_and_log_prob(q, jax.random.fold_in(jax.random.split(key)[1], step), num)
    return q, _targets.log_prob(target, x) - logq


@functools.partial(jax.jit, static_argnums=(0, 1))
def _finish(spec, num, params, q_dyn, target_dyn, key, step):
    """The fitted distribution and, with ``num > 0``, ``num`` log importance weights."""
    fn = functools.partial(_finish_single, spec, num)
    axes = (0, 0 if spec.q_batched else None, 0 if spec.target_batched else None, 0, None)
    return _vmap_if(spec, fn, axes)(params, q_dyn, target_dyn, key, step)


def _diagnostics(spec, num, params, q_dyn, target_dyn, key, end, batched):
    """PSIS k-hat and ESS of ``num`` draws from the fitted q (NaN when unavailable)."""
    if not num:
        return ISDiagnostics.unavailable()
    try:
        _, logw = _finish(spec, num, params, q_dyn, target_dyn, key, end)
    except NotImplementedError:  # the target's log_prob or q's sample is missing
        return ISDiagnostics.unavailable()
    logw = np.asarray(logw)
    if batched:
        return ISDiagnostics.stack([ISDiagnostics.from_log_weights(lw) for lw in logw])
    return ISDiagnostics.from_log_weights(logw)


# ----------------------------------------------------------------------------- helpers
def _is_key_batch(key) -> bool:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.ndim > 1:
            raise ValueError(f"fit: key must be one key or a 1-D batch of keys; got shape {key.shape}")
        return key.ndim == 1
    if key.dtype != jnp.uint32 or key.ndim not in (1, 2):
        raise ValueError(
            "fit: key must be a PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)) or a batch "
            f"of keys; got dtype {key.dtype}, shape {key.shape}"
        )
    return key.ndim == 2


def _capacity(num_steps: int) -> int:
    """Loss-buffer capacity of the compiled chunk: the power of 4 at or above ``num_steps``.

    One executable serves every chunk of a run (chunks differ only in the traced
    trip count, so their steps run the very same code) and every step count
    within the same power of 4.
    """
    n = min(num_steps, _MAX_CAPACITY)
    return 1 if n <= 1 else 1 << (2 * math.ceil(math.log(n, 4) - 1e-9))


class _Chunker:
    """Chunk lengths of about ``seconds`` each, from the measured step rate.

    Without a known ``rate`` (steps per second, remembered from an earlier fit
    of the same program and shapes) the first chunk is one step: it may
    include compilation, and a step may be slow. Each later chunk is sized
    from the rate measured on the chunk before it (an underestimate: a chunk's
    time includes the host's overhead), growing at most 64-fold per chunk.
    Results do not depend on where chunks end; only the host's work between
    chunks (progress, divergence check) does.
    """

    def __init__(self, cap, fixed, seconds, rate=None):
        self.cap, self.fixed, self.seconds, self.rate = cap, fixed, seconds, rate
        self.next = fixed or (max(1, int(rate * seconds)) if rate else 1)

    def take(self, remaining):
        return min(self.next, remaining, self.cap)

    def update(self, steps, seconds):
        if self.fixed:
            return
        self.rate = steps / max(seconds, 1e-9)
        self.next = int(min(self.cap, 64 * steps, max(1, self.rate * self.seconds)))


_RATES: dict = {}  # (spec, cap, argument shapes) -> last measured steps per second


def _rate_key(run, cap):
    shapes = tuple((jnp.shape(x), jnp.result_type(x)) for x in jax.tree_util.tree_leaves(
        (run.params, run.q_dyn, run.target_dyn)))
    return run.spec, cap, shapes


_WHAT = {_loop.GRADIENT_NONFINITE: "gradient", _loop.PARAMS_NONFINITE: "parameters"}


def _raise_diverged(history, chunk, codes, start, batched, replay):
    """Raises FitDivergedError for the first step of ``chunk`` with a non-finite loss, gradient or parameter.

    ``replay(offset, member)`` gives ``(q, params)`` before the chunk's step ``offset``.
    """
    rows, codes = (chunk, codes) if batched else (chunk[None], codes[None])
    members, offsets = np.nonzero(~np.isfinite(rows) | (codes != 0))
    j = int(np.argmin(offsets))
    member, offset = int(members[j]), int(offsets[j])
    past = [np.asarray(h if batched else h[None])[member] for h in history]
    losses = np.concatenate(past + [rows[member, : offset + 1]])
    finite = np.flatnonzero(np.isfinite(losses))
    value = float(rows[member, offset])
    code = int(codes[member, offset])
    what = "loss" if not math.isfinite(value) else _WHAT.get(code & _loop.GRADIENT_NONFINITE or code)
    q, params = replay(offset, member)
    raise FitDivergedError(
        step=start + offset,
        value=value,
        last_finite_loss=float(losses[finite[-1]]) if finite.size else None,
        losses=losses,
        member=member if batched else None,
        what=what,
        last_finite_params=params,
        last_finite_distribution=q,
    )


def _replay(run, cap, done, start, offset, member):
    """``(q, params)`` after ``start + offset`` steps: the chunk that diverged rerun to its ``offset``."""
    params = done.params
    if offset:
        params = _run_chunk(run.spec, cap, params, done.opt_state, run.q_dyn, run.target_dyn,
                            run.key, np.int32(start), np.int32(offset))[0]
    q, _ = _finish(run.spec, 0, params, run.q_dyn, run.target_dyn, run.key, np.int32(start + offset))
    if run.batch is not None:
        q, params = jax.tree_util.tree_map(lambda x: x[member], (q, params))
    return q, params


# ----------------------------------------------------------------------------- setup
@dataclasses.dataclass
class _Run:
    """A prepared fit: the compiled program's spec, its arguments and the state to start from."""

    spec: _Spec
    params: Any
    opt_state: Any
    q_dyn: Any
    target_dyn: Any
    key: Any
    step0: int
    batch: Optional[int]
    has_log_prob: bool
    previous: Optional[FitResult]
    init: Optional[str] = None  # the initializer that ran, if any


def _start(q0, objective, optimizer, key):
    """``(previous, q_list, q0, q_batched, objective, optimizer, key)`` from ``fit``'s arguments."""
    if isinstance(q0, FitResult):
        previous = q0
        objective = previous.objective if objective is None else objective
        if objective is None:
            raise ValueError(
                "fit: continuing a loaded FitResult whose objective was a user function; "
                "pass objective= again"
            )
        key = previous.key if key is None else key
        q_batched = previous.batch_size is not None
        return previous, None, previous.unconstrained_distribution, q_batched, objective, \
            continuation_optimizer(previous, optimizer), key
    q_list = list(q0) if isinstance(q0, (list, tuple)) else None
    for i, q in enumerate(q_list or [q0]):
        if not isinstance(q, Distribution):
            raise TypeError(
                f"fit: q0{'[%d]' % i if q_list else ''} must be a vikl.Distribution (a "
                f"variational family) or a FitResult; got {type(q).__name__}"
            )
    return None, q_list, q0, q_list is not None, objective, resolve_optimizer(optimizer), key


def _batch_size(previous, q_list, q_batched, t_list, key, key_batched):
    sizes = {
        name: n
        for name, n in (
            ("q0", len(q_list) if q_list is not None else (previous.batch_size if q_batched else None)),
            ("target", len(t_list) if t_list is not None else None),
            ("key", key.shape[0] if key_batched else None),
        )
        if n is not None
    }
    if len(set(sizes.values())) > 1:
        raise ValueError(f"fit: batch sizes differ: {sizes}; give equal lengths (or one item)")
    batch = next(iter(sizes.values()), None)
    if batch is not None and batch < 1:
        raise ValueError("fit: an empty batch was given")
    return batch


#: Draws per step of the converge mode's default objective for families with RQMC draws.
#: ``python -m benchmarks.converge_draws`` (four posteriordb posteriors, float64, both Gaussian
#: families): 4 RQMC draws stop at the same step as 16 and end within 0.026 nats of the
#: family's best ELBO (16 draws: 0.011), means within 0.048 reference sd, for a quarter of
#: the gradient evaluations (table in benchmarks/results/converge_draws.md).
CONVERGE_RQMC_DRAWS = 4


def _prepare(q0, target, objective, optimizer, key, num_samples, *, init=_SKIP,
             converge=False) -> _Run:
    """Resolves ``fit``'s arguments into a :class:`_Run` (batching, spec, initial state).

    ``init``: what :func:`vikl._init.for_fit` gets as ``init`` on a single
    fresh fit (``_SKIP``: it is not called); ``converge``: whether the fit runs
    to a stopping rule (batches refused).
    """
    user_optimizer = optimizer
    previous, q_list, q0, q_batched, objective, optimizer, key = _start(q0, objective, optimizer, key)
    if key is None:
        raise ValueError("fit: key is required, e.g. key=jax.random.key(0)")
    if objective is None and converge:  # RQMC draws where q's family has them (issue 22 §5)
        objective = _objectives.get("reverse_kl", num_samples).replace(draws="auto")
        q_any = q0 if q_list is None else q_list[0]
        if num_samples is None and _qmc.resolve("auto", q_any) == "rqmc":
            objective = objective.replace(num_samples=CONVERGE_RQMC_DRAWS)
    objective = _objectives.get("reverse_kl" if objective is None else objective, num_samples)
    key = key if isinstance(key, jax.Array) else jnp.asarray(key)
    key_batched = _is_key_batch(key)
    t_list = list(target) if isinstance(target, (list, tuple)) else None
    q_first = q_list[0] if q_list is not None else (
        jax.tree_util.tree_map(lambda x: x[0], q0) if q_batched else q0)
    if t_list is not None:
        t_list = [_unconstrained.for_fit(q_first, t) for t in t_list]
    else:
        target = _unconstrained.for_fit(q_first, target)
    batch = _batch_size(previous, q_list, q_batched, t_list, key, key_batched)
    if batch is not None and (converge or init != _SKIP):
        raise ValueError(
            f"fit: {'num_steps=None (run until converged)' if converge else f'init={init!r}'} "
            "needs a single fit; got a batch (a list of q0s or targets, or a batch of keys). "
            "Give num_steps for a batched fit, or fit the members one by one"
        )
    ran_init = None
    if init != _SKIP and previous is None:
        before = q0
        out = _init.for_fit(q0, target, init=init, optimizer=user_optimizer,
                            key=jax.random.fold_in(key, 0x5EED), converge=converge)
        q0, optimizer = out[0], resolve_optimizer(out[1])
        if q0 is not before:
            ran_init = out[2] if len(out) > 2 else init
    q_static, q_dyn = _stack_static(q_list, "q0") if q_list is not None else _split_static(q0)
    target_static, target_dyn = (
        _stack_static(t_list, "target") if t_list is not None else _split_static(target))
    if batch is not None and not key_batched:
        key = jax.random.split(key, batch)
    spec = _Spec(objective, optimizer, q_static, target_static, q_batched, t_list is not None,
                 batch is not None)
    if previous is not None:
        params, opt_state = previous.params, restore_opt_state(previous, optimizer)
    else:
        params, opt_state = _init_state(q_static, optimizer, q_batched, q_dyn)
        if batch is not None and not q_batched:  # restarts from one q0: one state per member
            params, opt_state = jax.tree_util.tree_map(
                lambda x: jnp.broadcast_to(x, (batch,) + x.shape), (params, opt_state))
    has_log_prob = _targets.has_log_prob(t_list[0] if t_list is not None else target)
    return _Run(spec, params, opt_state, q_dyn, target_dyn, key,
                previous.num_steps if previous is not None else 0, batch, has_log_prob, previous,
                ran_init)


# ----------------------------------------------------------------------------- the loop
@dataclasses.dataclass
class _Done:
    """What the loop has finished: per-chunk losses and aux, and the state after the last chunk.

    Updated by one assignment per chunk, so a ``KeyboardInterrupt`` at any
    moment sees a consistent record.
    """

    losses: list
    aux: list
    params: Any
    opt_state: Any

    @property
    def num_steps(self) -> int:
        return sum(c.shape[-1] for c in self.losses)


def _drive(run: _Run, num_steps, progress, chunk_size, num_diag) -> _Done:
    """Runs ``num_steps`` steps in chunks.

    Raises FitDivergedError at a non-finite step, and FitInterrupted (with the
    result of the finished chunks) on ``KeyboardInterrupt``.
    """
    cap = check_int("chunk_size", chunk_size, where="fit") if chunk_size is not None else _capacity(num_steps)
    rate_key = _rate_key(run, cap)
    chunker = _Chunker(cap, chunk_size, _PROGRESS_SECONDS if progress else _QUIET_SECONDS,
                       _RATES.get(rate_key))
    bar = _progress_bar(num_steps) if progress else None
    batched = run.batch is not None
    done = _Done([], [], run.params, run.opt_state)
    t0 = time.perf_counter()
    try:
        while done.num_steps < num_steps:
            start = run.step0 + done.num_steps
            m = chunker.take(num_steps - done.num_steps)
            tc = time.perf_counter()
            params, opt_state, lbuf, abuf, cbuf = _run_chunk(
                run.spec, cap, done.params, done.opt_state, run.q_dyn, run.target_dyn, run.key,
                np.int32(start), np.int32(m))
            chunk, codes = np.asarray(lbuf)[..., :m], np.asarray(cbuf)[..., :m]
            if not (np.all(np.isfinite(chunk)) and not np.any(codes)):
                history = ([run.previous.losses] if run.previous is not None else []) + done.losses
                _raise_diverged(history, chunk, codes, start, batched,
                                functools.partial(_replay, run, cap, done, start))
            aux = {k: np.asarray(a)[:, :m] if batched else np.asarray(a)[:m] for k, a in abuf.items()}
            done = _Done(done.losses + [chunk], done.aux + [aux], params, opt_state)
            chunker.update(m, time.perf_counter() - tc)
            if bar is not None:
                bar.update(m)
                last = chunk[..., -1]
                bar.set_postfix_str(f"loss={float(np.min(last)) if batched else float(last):.5g}",
                                    refresh=False)
        if chunker.rate and done.num_steps > 1:
            if len(_RATES) > 256:
                _RATES.clear()
            _RATES[rate_key] = chunker.rate
    except (KeyboardInterrupt, RuntimeError, ValueError) as err:
        # Ctrl-C while a host callback of the target runs reaches us wrapped by JAX (a
        # JaxRuntimeError or a ValueError whose message holds the callback's traceback).
        if not isinstance(err, KeyboardInterrupt) and "KeyboardInterrupt" not in str(err):
            raise
        raise FitInterrupted(_result(run, done, time.perf_counter() - t0, num_diag)) from err
    finally:
        if bar is not None:
            bar.close()
    return done


@dataclasses.dataclass
class _Converged:
    """The outcome of a run to a stopping rule (fields of FitResult)."""

    converged: bool
    converged_at: Optional[int]
    convergence: str
    averaged_over: int


def _window_capacity(window, chunk_size):
    """Steps per compiled chunk in converge mode: a power-of-2 number of windows.

    It does not depend on ``max_steps``, so runs with different limits share one program.
    """
    most = max(window, min(_MAX_CAPACITY, chunk_size or _MAX_CAPACITY))
    n = 1
    while 2 * n * window <= most:
        n *= 2
    return n * window


def _drive_converge(run: _Run, max_steps, conv, progress, chunk_size, num_diag):
    """Runs whole windows until ``conv``'s rule holds at a checkpoint or ``max_steps`` are done.

    Returns ``(done, converged)`` with ``done.params`` the Polyak average of the
    last two blocks of the last check (:meth:`vikl._convergence.Monitor.average`:
    at least two windows; the first check is after three). Chunks hold whole
    windows and end at the next checkpoint at the latest (the rule is checked only
    there), so no step past the stopping checkpoint is ever run and the result does
    not depend on where chunks end.
    """
    w = conv.window
    limit = max_steps // w * w
    cap = _window_capacity(w, chunk_size)
    rate_key = _rate_key(run, ("windows", w, cap))
    fixed = max(w, chunk_size // w * w) if chunk_size is not None else None
    chunker = _Chunker(cap, fixed, _PROGRESS_SECONDS if progress else _QUIET_SECONDS,
                       _RATES.get(rate_key))
    template = run.spec.q_static.rebuild(run.q_dyn)
    rule = conv.rule
    if rule == "auto":
        rule = "skl" if _convergence.has_self_kl(template) else "loss"
    monitor = _convergence.Monitor(conv, run.spec.q_static, run.q_dyn, rule, run.params, limit // w)
    bar = _progress_bar(limit) if progress else None
    done = _Done([], [], run.params, run.opt_state)
    converged = False
    t0 = time.perf_counter()
    try:
        while done.num_steps < limit:
            start = run.step0 + done.num_steps
            windows_done = done.num_steps // w
            to_check = _convergence.next_checkpoint(windows_done) - windows_done
            m = min(max(w, chunker.take(limit - done.num_steps) // w * w), to_check * w,
                    limit - done.num_steps)
            tc = time.perf_counter()
            params, opt_state, lbuf, abuf, cbuf, sums = _run_windows(
                run.spec, cap, w, done.params, done.opt_state, run.q_dyn, run.target_dyn, run.key,
                np.int32(start), np.int32(m))
            chunk, codes = np.asarray(lbuf)[:m], np.asarray(cbuf)[:m]
            if not (np.all(np.isfinite(chunk)) and not np.any(codes)):
                history = ([run.previous.losses] if run.previous is not None else []) + done.losses
                _raise_diverged(history, chunk, codes, start, False,
                                functools.partial(_replay, run, cap, done, start))
            losses = np.concatenate(done.losses + [chunk])
            sums = jax.tree_util.tree_map(np.asarray, sums)
            for j in range(m // w):
                monitor.push(jax.tree_util.tree_map(lambda x: x[j], sums))  # noqa: B023
            converged = monitor.check(losses)  # the chunk ends at a checkpoint (or at the limit)
            aux = {k: np.asarray(a)[:m] for k, a in abuf.items()}
            done = _Done(done.losses + [chunk], done.aux + [aux], params, opt_state)
            chunker.update(m, time.perf_counter() - tc)
            if bar is not None:
                bar.update(m)
                bar.set_postfix_str(f"loss={float(chunk[-1]):.5g}", refresh=False)
            if converged:
                break
        if chunker.rate and done.num_steps > w:
            if len(_RATES) > 256:
                _RATES.clear()
            _RATES[rate_key] = chunker.rate
    except (KeyboardInterrupt, RuntimeError, ValueError) as err:
        if not isinstance(err, KeyboardInterrupt) and "KeyboardInterrupt" not in str(err):
            raise
        raise FitInterrupted(_result(run, done, time.perf_counter() - t0, num_diag)) from err
    finally:
        if bar is not None:
            bar.close()
    # The two blocks of the last check (tail averaging; for a run that never converged, the
    # average over a quarter to half of the run is far less noisy than the last windows').
    params, steps = monitor.average()
    done = _Done(done.losses, done.aux, params, done.opt_state)
    end = run.step0 + done.num_steps
    text = (f"converged ({monitor.rule} rule) at step {end}: {monitor.last}" if converged
            else f"not converged ({monitor.rule} rule) after {done.num_steps} steps: {monitor.last}")
    return done, _Converged(converged, end if converged else None, text, steps)


def _result(run: _Run, done: _Done, elapsed, num_diag, stopped: Optional[_Converged] = None) -> FitResult:
    """The FitResult of ``run`` after the steps in ``done`` (diagnostics computed lazily)."""
    spec, batched = run.spec, run.batch is not None
    end = np.int32(run.step0 + done.num_steps)
    distribution, _ = _finish(spec, 0, done.params, run.q_dyn, run.target_dyn, run.key, end)
    diagnostics = functools.partial(
        _diagnostics, spec, num_diag if run.has_log_prob else 0, done.params, run.q_dyn,
        run.target_dyn, run.key, end, batched)
    axis = 1 if batched else 0
    losses = np.concatenate(done.losses, axis=-1) if done.losses else \
        np.zeros((run.batch, 0) if batched else (0,), np.float32)
    trace = {k: np.concatenate([a[k] for a in done.aux], axis=axis) for k in (done.aux or [{}])[0]}
    if run.previous is not None:
        losses = np.concatenate([run.previous.losses, losses], axis=-1)
        trace = {
            k: np.concatenate([run.previous.trace[k], v], axis=axis) if k in run.previous.trace else v
            for k, v in trace.items()
        }
    layout = _layout(run)
    constrained = _unconstrained.push_forward(layout, distribution, batched)
    return FitResult(
        distribution=distribution if constrained is None else constrained, params=done.params,
        losses=losses, opt_state=done.opt_state,
        key=run.key, num_steps=int(end), objective=spec.objective, optimizer=spec.optimizer,
        _diagnostics=diagnostics, trace=trace, batch_size=run.batch, wall_time=elapsed,
        layout=layout, _unconstrained=None if constrained is None else distribution,
        converged=None if stopped is None else stopped.converged,
        converged_at=None if stopped is None else stopped.converged_at,
        convergence=None if stopped is None else stopped.convergence,
        averaged_over=1 if stopped is None else stopped.averaged_over,
        init=run.init,
    )


def _layout(run: _Run):
    """The target's layout (``None`` for a target fitted directly); batched: one per member."""
    target = run.spec.target_static.rebuild(run.target_dyn)
    if not _unconstrained.has_layout(target):
        return None
    layout = target.layout
    if run.batch is not None and not run.spec.target_batched:
        layout = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (run.batch,) + jnp.shape(x)) if _is_array(x) else x,
            layout)
    return layout


# ----------------------------------------------------------------------------- fit
def fit(q0, target, *, objective=None, optimizer=None, num_steps: Optional[int] = None,
        max_steps: Optional[int] = None, num_samples: Optional[int] = None, key=None,
        progress: bool = True, chunk_size: Optional[int] = None,
        num_diagnostic_samples: int = DEFAULT_NUM_DIAGNOSTIC_SAMPLES, init="auto",
        convergence=None, check: Optional[bool] = None) -> FitResult:
    """Fits a variational distribution ``q`` to ``target`` by stochastic optimization.

    Minimizes ``objective(q, target, key)`` (by default the reverse KL up to a
    constant, i.e. the negative ELBO, ``E_q[log q(X) - log p(X)]`` in nats) over
    ``q``'s parameters in unconstrained space, with optax steps compiled into
    one ``jax.jit`` + ``lax.fori_loop`` program run in chunks.

    Two modes:

    * ``num_steps=n``: exactly ``n`` steps from ``q0`` as given (unless
      ``init`` names an initializer explicitly); the last iterate is
      returned. Bit-identical to a loop of :func:`vikl.fit_step` from
      :func:`vikl.fit_init`.
    * ``num_steps=None`` (the default): run until converged. ``q0`` is first
      set by the initializer (``init="auto"``), then whole windows of steps
      run until the stopping rule :class:`vikl.Convergence` holds at a
      window's end, at most ``max_steps`` steps (default 100,000). The rule
      is checked at fixed step counts (windows of 100 steps; after windows
      3-8, 10, 12, 14, 16, 20, ...), so the result does not depend on timing.
      It compares the last three blocks of windows (blocks grow with the
      run, an eighth to a quarter of it each): the symmetrized KLs between their
      parameter averages below 0.1 nats and no significant decrease of the
      loss (families with a closed-form KL, e.g. the Gaussians), or a loss
      decrease per block below 0.05 nats with confidence (any other family);
      details in :class:`vikl.Convergence`. The returned ``q`` is the
      Polyak-Ruppert average of the iterates of the last two blocks compared
      (also when the rule never held: a quarter to half of the run), taken
      in unconstrained parameter space (``result.averaged_over`` steps);
      ``losses`` and ``trace`` keep every step. ``result.converged``,
      ``converged_at`` and ``convergence`` say
      whether, when and by which statistics the rule held. With no
      ``objective`` given, this mode uses ``ReverseKL(draws="auto")``:
      randomized quasi-Monte Carlo draws for the families that have them
      (lower-variance gradients; see :mod:`vikl.objectives`), 4 per step for
      those families unless ``num_samples`` says otherwise (16 for the others). Single fits only
      (a batch raises ValueError: give ``num_steps`` for batched fits).
      Trust checks run afterwards (see ``check``).

    Args:
      q0: the initial :class:`vikl.Distribution` (any family, also a user's
        subclass); a list of distributions of one structure (restarts or
        problems fitted together with ``vmap``); or a :class:`FitResult` to
        continue (its distribution, optimizer state, step count, key,
        objective and optimizer are reused unless given again).
      target: a :class:`vikl.Distribution`; any object with
        ``log_prob``/``sample`` (a NumPyro distribution works as is); a
        log-density callable ``f(x) -> scalar`` for ONE point of shape
        ``q.batch_shape + q.event_shape`` (may be unnormalized); or
        :class:`vikl.Empirical` data (forward KL). A list of targets of one
        structure is fitted in parallel, one ``q`` each. A new function object
        (e.g. a new lambda) compiles anew; array parameters do not.
        A target with a constrained ``support`` (Gamma, Beta, a NumPyro
        HalfCauchy, ...) and a ``q0`` on R^d: fitted through the support's
        bijector ``b`` (see :func:`vikl.unconstrained`); ``result.distribution``
        is ``Transformed(q, b)``, ``result.draws(key, n)`` is on the target's scale.
      objective: a name (``"reverse_kl"`` (default), ``"forward_kl"``,
        ``"renyi"``, ``"iwae"``, ``"chi_square"``), a
        :mod:`vikl.objectives` object, or a plain function
        ``(q, target, key) -> loss`` or ``-> (loss, aux_dict)``.
      optimizer: an optax ``GradientTransformation``; a float (Adam with that
        learning rate) or an optax schedule (Adam with it); ``None``:
        ``optax.adam(1e-2)``. Reuse one optimizer object across calls:
        a new object compiles a new program.
      num_steps: optimization steps in this call (an int >= 1); ``None``:
        run until converged (see above).
      max_steps: the most steps of a run until converged (an int, at least
        three windows; default 100,000), rounded down to whole windows. Not
        allowed with ``num_steps``.
      num_samples: Monte-Carlo draws per step; overrides the objective's
        (default 16). Not allowed with a plain-function objective.
      key: PRNG key (typed or legacy). A batch of keys (leading axis) runs
        one fit per key with ``vmap``. Required unless continuing.
      progress: show a tqdm bar between chunks (results do not depend on it).
      chunk_size: fixed number of steps per chunk (default: chunks of about
        0.25 s with the bar on, 0.5 s off, from the measured step rate).
        Chunking never changes the results.
      num_diagnostic_samples: draws from the fitted ``q`` for the PSIS k-hat
        and importance-sampling ESS (0 turns them off; needs the target's
        log density). They are computed when ``result.diagnostics`` (or
        ``khat``/``ess``) is first read.
      init: how to set the starting ``q`` before the steps: ``"auto"``
        (default: the initializer's choice, run only when ``num_steps`` is
        ``None``; no effect with ``num_steps`` given), ``"laplace"`` or
        ``"pathfinder"`` (run in both modes), or ``None``/``"none"`` (start
        from ``q0`` as given). Initializers run for a single fresh fit of a
        Gaussian family against a target with a log density (see
        ``vikl._init``); other ``q0`` are used as given.
        ``result.init`` names the initializer that ran.
      convergence: the stopping rule of a run until converged: a
        :class:`vikl.Convergence`, a dict of its fields, or ``None`` (the
        defaults). Not allowed with ``num_steps``.
      check: whether to warn (:class:`vikl.FitWarning`) when the fit cannot
        be trusted: a PSIS k-hat above 0.7 (this computes the diagnostics:
        ``num_diagnostic_samples`` draws), a stopping rule that never held,
        a fitted scale that collapsed. ``None`` (default): check after a run
        until converged, not after a fixed ``num_steps``; ``True``/``False``:
        always/never. The texts are also kept in ``result.warnings``.

    Returns:
      A :class:`FitResult` (``distribution``, ``params``, ``losses`` of the
      whole chain of fits, ``diagnostics``, ``trace``; batched: ``best``).

    Raises:
      FitDivergedError: a loss, gradient or updated parameter was NaN or
        infinite; the run stops after that chunk, naming the first such step,
        what it was (``err.what``: ``"loss"``, ``"gradient"``, ``"parameters"``),
        the losses so far (``err.losses``; batched: ``err.member``) and the
        last finite state (``err.last_finite_distribution``, ``err.last_finite_params``).
      FitInterrupted: on Ctrl-C (a ``KeyboardInterrupt``); ``err.result`` is
        the :class:`FitResult` of the steps finished so far.
      ValueError: bad arguments (each message names the argument), a support
        with no known bijector, a ``q0`` that does not fit its space, or a
        batched fit with ``num_steps=None``.

    Warns:
      FitWarning: see ``check``.

    Example:
      >>> import jax, vikl
      >>> log_p = lambda x: -0.5 * ((x - 3.0) / 2.0) ** 2      # N(3, 2^2), unnormalized
      >>> res = vikl.fit(vikl.Normal(0.0, 1.0), log_p, optimizer=0.05, num_steps=1000,
      ...                objective=vikl.objectives.ReverseKL(gradient="stl"),
      ...                key=jax.random.key(0), progress=False)
      >>> round(float(res.distribution.loc), 3), round(float(res.distribution.scale), 3)
      (3.0, 2.0)
    """
    converge = num_steps is None
    if converge:
        conv = _convergence.resolve(convergence)
        max_steps = _convergence.DEFAULT_MAX_STEPS if max_steps is None else check_int(
            "max_steps", max_steps, 3 * conv.window,
            where="fit (the first check of the rule is after three windows)")
    else:
        num_steps = check_int("num_steps", num_steps, where="fit")
        for name, value in (("max_steps", max_steps), ("convergence", convergence)):
            if value is not None:
                raise ValueError(f"fit: {name} applies only when running until converged "
                                 f"(num_steps=None); got {name}={value!r} with num_steps={num_steps}")
    num_diag = check_int("num_diagnostic_samples", num_diagnostic_samples, 0, where="fit")
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, where="fit")
    if check is not None and not isinstance(check, (bool, np.bool_)):
        raise TypeError(f"fit: check must be None, True or False; got {check!r}")
    init = _resolve_init(init, q0, converge)
    run = _prepare(q0, target, objective, optimizer, key, num_samples, init=init, converge=converge)
    t0 = time.perf_counter()
    if not converge:
        done = _drive(run, num_steps, progress, chunk_size, num_diag)
        result = _result(run, done, time.perf_counter() - t0, num_diag)
    else:
        done, stopped = _drive_converge(run, max_steps, conv, progress, chunk_size, num_diag)
        result = _result(run, done, time.perf_counter() - t0, num_diag, stopped)
    if converge if check is None else check:
        result = _trust(run, result, max_steps if converge else None)
    return result


_INITS = ("auto", "laplace", "pathfinder", "none")


def _resolve_init(init, q0, converge):
    """What to pass to ``vikl._init.for_fit`` as ``init`` (checked), or ``_SKIP``.

    A fresh fit until converged always goes through ``for_fit`` (it also picks
    that mode's default optimizer, with ``init=None`` too); a fixed-step fit
    only for an initializer named explicitly, so that it stays bit-identical
    to a loop of ``fit_step``; a continued fit never.
    """
    if init == "none":
        init = None
    if init is not None and (not isinstance(init, str) or init not in _INITS):
        raise ValueError(f"fit: init must be one of {_INITS} or None; got {init!r}")
    if isinstance(q0, FitResult):
        if init not in (None, "auto"):
            raise ValueError(f"fit: init={init!r} cannot apply to a continued fit (q0 is a "
                             "FitResult); pass init=None")
        return _SKIP
    if not converge and init in (None, "auto"):
        return _SKIP  # with num_steps given, q0 is used as given unless an initializer is named
    return init


def _trust(run: _Run, result: FitResult, max_steps) -> FitResult:
    """Warns (FitWarning) for what makes ``result`` untrustworthy; keeps the texts in it."""
    problems = []
    if result.converged is False:
        problems.append(_convergence.not_converged_problem(
            max_steps, result.num_steps - run.step0, result.convergence))
    if run.has_log_prob:
        problem = _convergence.khat_problem(result.khat)
        if problem:
            problems.append(problem)
    if run.batch is None:
        problems += _convergence.collapsed_scales(run.spec.q_static.rebuild(run.q_dyn),
                                                  result.unconstrained_distribution)
    for text in problems:
        warnings.warn(text, FitWarning, stacklevel=3)
    return dataclasses.replace(result, warnings=tuple(problems)) if problems else result


def _progress_bar(total):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc="fit", unit="step", dynamic_ncols=True, leave=True,
                postfix="loss=?", mininterval=0.2)
