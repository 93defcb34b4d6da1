"""Time to accuracy of Gaussian VI on ten real posteriors (problem P1 of BENCH_PROBLEMS.md).

Fits the ten posteriordb posteriors of :mod:`benchmarks.posteriordb` with vikl's defaults
(converge mode: ``vikl.fit(families.mean_field(d) / families.full_rank(d), target, key=key)``
with no ``num_steps``), vikl with Adam as today (``num_steps`` given, everything else
default: Adam(1e-2), 16 draws), NumPyro SVI with ``AutoNormal`` and
``AutoMultivariateNormal`` (Adam(1e-2), ``Trace_ELBO(num_particles=16)``, the guides'
default ``init_scale=0.1`` and ``init_to_uniform``), BlackJAX ``meanfield_vi`` and
``fullrank_vi`` (Adam(1e-2), 16 draws, their default initial scales, the vikl ``q0``'s
location, steps in ``lax.fori_loop``) and BlackJAX ``pathfinder`` (defaults), all in one
process, in float64 and float32. vikl and BlackJAX fit ``Posterior.logdensity`` (R^d,
Jacobian included); NumPyro fits ``Posterior.model``.

Method (all ELBOs in float64, 10,000 draws, one fixed key, outside the timed region):

* Iterative methods run ``--steps`` B steps (default 1000) as segments between
  checkpoints (about x1.6 apart: 25, 50, 100, 175, ...), each timed with
  ``block_until_ready``; compilation is excluded (NumPyro and BlackJAX: one compiled
  ``lax.fori_loop`` with a traced trip count, compiled by an untimed call; vikl.fit, which
  compiles per chunk length: an untimed pass over the same segments first). vikl.fit is
  continued from its FitResult between checkpoints. Seconds = the summed segment times up
  to that checkpoint. Gradient evaluations = steps x 16 (one gradient of log p per draw
  per step, for vikl, NumPyro and BlackJAX alike).
* vikl's converge mode and Pathfinder run once to the end: their only checkpoint is the
  result. Seconds = a second (warm) call; the first call is the compile. Gradient
  evaluations are counted by a host callback in the log density's derivative rule in a
  separate untimed call (a Hessian counts as the gradients its program evaluates).
* "best" (per posterior and family, mean-field or full-rank Gaussian in the unconstrained
  space): the highest 10k-draw ELBO seen in a reference run 20x longer (``--ref-factor``)
  plus every checkpoint of every method in the table. The reference run: float64 vikl.fit,
  ReverseKL(16 draws, STL gradient), Adam with a cosine decay from 1e-2 over 20 B steps
  after ``vikl.clip_gradient_spikes()``,
  started at the moments of the unconstrained reference draws (mean; covariance, or for
  mean-field 1/sqrt(diag precision)), or where the package ships no draws at the Laplace
  approximation at the mode found from the reference mean (scale 0.1 I at the reference
  mean if its Hessian is not negative definite); ELBO checked at 10 checkpoints and at its start. Cached in
  ``benchmarks/results/posteriors_cache.json`` with every finished row (the run resumes).
* Pathfinder's family (low-rank plus diagonal Gaussian) is compared with the full-rank best.
  NumPyro's unconstrained space differs from ours only for the HMM's simplex and ordered
  parameters (its ELBO is reparameterization invariant); its log joint differs from the
  hand-written one by a constant, measured at five points and added back.
* Time to accuracy: the first checkpoint whose ELBO is within 0.1 nats of the best.
  Final metrics at the last checkpoint: ELBO - best, max |mean_q - mean_ref| / sd_ref
  (constrained space, the 10k draws pushed through ``constrain``), sd_q / sd_ref (min-max,
  full-rank families), PSIS k-hat of the 10k log weights, and whether the method said it
  converged (vikl converge mode: ``result.converged``; Pathfinder: L-BFGS stopped before
  ``maxiter``; others have no rule: "-").

Run:  python -m benchmarks.posteriors --help
      python -m benchmarks.posteriors --quick --posteriors kidiq-kidscore_momiq
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import benchmarks._common  # noqa: F401  (sets OPENBLAS_NUM_THREADS=1 for the process)
import vikl
from benchmarks import posteriordb as pdb
from benchmarks._common import fmt, machine_line, markdown_table
from vikl._diagnostics import psis_khat

LR = 1e-2
NUM_SAMPLES = 16
TOL = 0.1  # nats
METHODS = (
    "vikl default MF", "vikl default FR", "vikl Adam MF", "vikl Adam FR",
    "NumPyro AutoNormal", "NumPyro AutoMVN", "BlackJAX MFVI", "BlackJAX FRVI", "BlackJAX Pathfinder",
)  # fmt: skip
FAMILY = {
    "vikl default MF": "mf", "vikl default FR": "fr", "vikl Adam MF": "mf", "vikl Adam FR": "fr",
    "NumPyro AutoNormal": "mf", "NumPyro AutoMVN": "fr", "BlackJAX MFVI": "mf", "BlackJAX FRVI": "fr",
    "BlackJAX Pathfinder": "fr",
}  # fmt: skip
DEFAULT_CACHE = Path(__file__).resolve().parent / "results" / "posteriors_cache.json"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "posteriors.md"


# ----------------------------------------------------------------------------- small helpers
def _x64(dtype) -> contextlib.AbstractContextManager:
    return jax.enable_x64(np.dtype(dtype) == np.float64)


def checkpoint_grid(num_steps: int, first: int = 25, ratio: float = 1.6) -> list:
    """Checkpoint steps ``first, ~first*ratio, ...`` (multiples of ``first``) ending at ``num_steps``."""
    grid, s = [], min(first, num_steps)
    while s < num_steps:
        grid.append(s)
        s = max(s + first, int(math.ceil(s * ratio / first)) * first)
    return grid + [num_steps]


def time_to_accuracy(checkpoints, best: float, tol: float = TOL):
    """(gradient evaluations, seconds) of the first checkpoint with ``elbo >= best - tol``, or (None, None).

    Args:
      checkpoints: dicts with ``elbo``, ``grads`` and ``seconds``, in run order.
      best: the family's best ELBO.
      tol: nats.
    """
    for c in checkpoints:
        if c["elbo"] is not None and np.isfinite(c["elbo"]) and c["elbo"] >= best - tol:
            return c["grads"], c["seconds"]
    return None, None


class GradCounter:
    """Wraps a log density so that each gradient of it (per point, under ``vmap`` too) is counted.

    The count is kept on the host by a ``jax.debug.callback`` in a ``custom_jvp`` rule, so it
    slows the program down: use it in an untimed call.
    """

    def __init__(self, logdensity):
        self.count = 0
        self.dim = None

        def bump(x):
            self.count += int(np.prod(np.shape(x)[:-1], dtype=int))

        @jax.custom_jvp
        def f(x):
            return logdensity(x)

        @f.defjvp
        def f_jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            value, grad = jax.value_and_grad(logdensity)(x)
            jax.debug.callback(bump, x)
            return value, jnp.vdot(grad, t)

        self.logdensity = f


# ----------------------------------------------------------------------------- evaluation (float64)
class Evaluator:
    """Float64 ELBO, k-hat and constrained moments of a q from fixed 10k-draw keys."""

    def __init__(self, post, num_draws: int = 10_000, seed: int = 20_221):
        self.post, self.n = post, num_draws
        self.key = jax.random.key(seed)
        d = post.dim
        with jax.enable_x64(True):
            self.eps = jax.random.normal(self.key, (num_draws, d), jnp.float64)

            def logp_and_flat(z):
                lp = jax.lax.map(post.logdensity, z, batch_size=500)
                flat = jax.lax.map(lambda u: post.flatten(post.constrain(u)), z, batch_size=500)
                return lp, flat

            self._logp_flat = jax.jit(logp_and_flat)

            def gaussian_draws(loc, tril):
                z = loc + self.eps @ tril.T
                logq = (-0.5 * jnp.sum(self.eps**2, -1) - jnp.sum(jnp.log(jnp.abs(jnp.diag(tril))))
                        - 0.5 * d * math.log(2 * math.pi))  # fmt: skip
                return z, logq

            self._gaussian = jax.jit(gaussian_draws)
        self._numpyro_offset = None
        self._numpyro_fns = {}

    def summary(self, log_w, flat) -> dict:
        """ELBO, k-hat, max standardized mean error and sd ratios from log weights and flat draws."""
        log_w, flat = np.asarray(log_w, np.float64), np.asarray(flat, np.float64)
        finite = np.isfinite(log_w)
        elbo = float(np.mean(log_w)) if finite.all() else -math.inf
        ok = np.all(np.isfinite(flat), axis=1)
        if ok.sum() < 2:
            return {"elbo": elbo, "khat": math.inf, "mean_err": math.inf, "sd_lo": math.nan, "sd_hi": math.nan}
        flat = flat[ok]
        mean_err = float(np.max(np.abs(flat.mean(0) - self.post.ref_mean) / self.post.ref_sd))
        ratio = flat.std(0, ddof=1) / self.post.ref_sd
        khat = float(psis_khat(np.where(finite, log_w, -np.inf))) if finite.any() else math.inf
        return {"elbo": elbo, "khat": khat, "mean_err": mean_err,
                "sd_lo": float(np.min(ratio)), "sd_hi": float(np.max(ratio))}  # fmt: skip

    def gaussian(self, loc, tril) -> dict:
        """Metrics of N(loc, tril tril^T) in the posterior's unconstrained space."""
        with jax.enable_x64(True):
            loc = jnp.asarray(np.asarray(loc, np.float64))
            tril = jnp.asarray(np.asarray(tril, np.float64))
            if tril.ndim == 1:
                tril = jnp.diag(tril)
            z, logq = self._gaussian(loc, tril)
            lp, flat = self._logp_flat(z)
        return self.summary(np.asarray(lp) - np.asarray(logq), flat)

    def elbo_gaussian(self, loc, tril) -> float:
        return self.gaussian(loc, tril)["elbo"]

    def draws(self, z, logq) -> dict:
        """Metrics of a q given by its draws z (n, d) in unconstrained space and their log q."""
        with jax.enable_x64(True):
            lp, flat = self._logp_flat(jnp.asarray(np.asarray(z, np.float64)))
        return self.summary(np.asarray(lp) - np.asarray(logq, np.float64), flat)

    def numpyro_offset(self) -> float:
        """Hand-written log density minus NumPyro's log joint (constrained scale), mean of 5 points."""
        if self._numpyro_offset is None:
            from numpyro.infer.util import log_density

            with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
                data = self.post.data_as(np.float64)
                diffs = []
                for u in pdb.check_points(self.post, 5, 0):
                    params = self.post.constrain(jnp.asarray(u))
                    lj = log_density(self.post.model, (data,), {}, params)[0]
                    diffs.append(float(self.post.log_prob(params)) - float(lj))
            self._numpyro_offset = float(np.mean(diffs))
        return self._numpyro_offset

    def numpyro(self, guide, params) -> dict:
        """Metrics of a NumPyro autoguide: per-draw log weights from ``Trace_ELBO(1)``, flat draws."""
        from numpyro.infer import Trace_ELBO

        offset = self.numpyro_offset()
        with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
            data = self.post.data_as(np.float64)
            params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
            if id(guide) not in self._numpyro_fns:  # one compile per guide, not per checkpoint
                elbo1 = Trace_ELBO(num_particles=1)

                def log_w_fn(prm, ks):
                    return jax.lax.map(lambda k: -elbo1.loss(k, prm, self.post.model, guide, data), ks,
                                       batch_size=500)

                def draws_fn(prm, k):
                    sites = guide.sample_posterior(k, prm, sample_shape=(self.n,))
                    return jax.vmap(self.post.flatten)({b.name: sites[b.name] for b in self.post.blocks})

                self._numpyro_fns[id(guide)] = (guide, jax.jit(log_w_fn), jax.jit(draws_fn))
            _, log_w_fn, draws_fn = self._numpyro_fns[id(guide)]
            keys = jax.random.split(jax.random.fold_in(self.key, 1), self.n)
            log_w = log_w_fn(params, keys)
            flat = draws_fn(params, jax.random.fold_in(self.key, 2))
        return self.summary(np.asarray(log_w) + offset, flat)


# ----------------------------------------------------------------------------- methods
def _q0(post, family, dtype, seed):
    key = jax.random.key(seed)
    make = vikl.families.mean_field if family == "mf" else vikl.families.full_rank
    return make(post.dim, key, dtype=dtype)


def _gauss_of(q):
    """(loc, scale_tril or scale_diag) of a vikl Gaussian."""
    return np.asarray(q.loc), np.asarray(q.scale_tril if hasattr(q, "scale_tril") else q.scale_diag)


def run_segments(segment, state, grid, snapshot, warm_state=None, warm_pass=False):
    """Runs ``state = segment(state, n)`` between checkpoints; returns timed checkpoints.

    Compilation is kept out of the timings: ``segment`` is first called untimed on
    ``warm_state`` (default ``state``) with ``n = 1``, or, with ``warm_pass``, on every
    segment length of ``grid`` in turn (for a program that compiles per length).
    """
    warm = warm_state if warm_state is not None else state
    if warm_pass:
        done = 0
        for s in grid:
            warm = jax.block_until_ready(segment(warm, s - done))
            done = s
    else:
        jax.block_until_ready(segment(warm, 1))
    out, seconds, done = [], 0.0, 0
    for s in grid:
        t0 = time.perf_counter()
        state = jax.block_until_ready(segment(state, s - done))
        seconds += time.perf_counter() - t0
        done = s
        out.append({"steps": s, "grads": s * NUM_SAMPLES, "seconds": seconds, "q": snapshot(state)})
    return out, state


def vikl_adam(post, family, dtype, steps, seed):
    """vikl.fit with num_steps (today's behaviour: Adam(1e-2), 16 draws), continued between checkpoints."""
    target = post.logdensity
    key = jax.random.key(seed + 1)
    kw = dict(progress=False, num_diagnostic_samples=0)

    def segment(state, n):
        if isinstance(state, vikl.FitResult):
            return vikl.fit(state, target, num_steps=int(n), **kw)
        return vikl.fit(state, target, num_steps=int(n), key=key, **kw)

    with _x64(dtype):
        q0 = _q0(post, family, dtype, seed)
        # fit compiles per chunk length: an untimed pass over the same segments first
        cps, _ = run_segments(segment, q0, checkpoint_grid(steps), lambda r: ("gauss",) + _gauss_of(r.distribution),
                              warm_pass=True)
    return {"checkpoints": cps, "converged": None, "note": ""}


def fit_accepts_no_num_steps() -> bool:
    """True once ``vikl.fit`` has a default for ``num_steps`` (converge mode)."""
    param = inspect.signature(vikl.fit).parameters.get("num_steps")
    return param is not None and param.default is not inspect.Parameter.empty


def vikl_default(post, family, dtype, steps, seed):
    """vikl.fit(q0, target, key=key): converge mode, everything default."""
    if not fit_accepts_no_num_steps():
        return {"skipped": "vikl.fit has no converge mode yet (num_steps is required)"}
    key = jax.random.key(seed + 1)
    with _x64(dtype), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q0 = _q0(post, family, dtype, seed)
        counter = GradCounter(post.logdensity)
        counted = vikl.fit(q0, counter.logdensity, key=key, progress=False)
        target = post.logdensity
        t0 = time.perf_counter()
        vikl.fit(q0, target, key=key, progress=False)  # compiles
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = vikl.fit(q0, target, key=key, progress=False)
        seconds = time.perf_counter() - t0
        converged = getattr(res, "converged", None)
        q = getattr(res, "unconstrained_distribution", None)
        q = res.distribution if q is None else q
        # the counted run's derivative rule rounds differently, so its stopping rule may
        # hold at another checkpoint: its initializer's count plus S per step of this run
        per_step = int(getattr(res.objective, "num_samples", None) or NUM_SAMPLES)
        init_grads = max(counter.count - per_step * int(counted.num_steps), 0)
        grads = init_grads + per_step * int(res.num_steps)
        cp = {"steps": int(res.num_steps), "grads": grads, "seconds": seconds, "q": ("gauss",) + _gauss_of(q)}
    return {"checkpoints": [cp], "converged": None if converged is None else bool(converged),
            "note": f"first call {first:.2f} s; {res.num_steps} steps x {per_step} draws; "
                    f"init {getattr(res, 'init', '?')} ({init_grads} grads)"}


def numpyro_svi(post, family, dtype, steps, seed):
    """NumPyro SVI, AutoNormal / AutoMultivariateNormal, Adam(1e-2), Trace_ELBO(16), guide defaults."""
    import numpyro  # noqa: F401
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    with _x64(dtype), jax.numpy_dtype_promotion("standard"):
        data = post.data_as(dtype)
        guide = (AutoNormal if family == "mf" else AutoMultivariateNormal)(post.model)
        svi = SVI(post.model, guide, optax.adam(LR), Trace_ELBO(num_particles=NUM_SAMPLES))
        state0 = svi.init(jax.random.key(seed), data)

        @jax.jit
        def seg(state, n):
            return jax.lax.fori_loop(0, n, lambda i, s: svi.update(s, data)[0], state)

        cps, _ = run_segments(seg, state0, checkpoint_grid(steps), lambda s: ("numpyro", guide, svi.get_params(s)))
    return {"checkpoints": cps, "converged": None, "note": "init_scale 0.1, init_to_uniform"}


def blackjax_vi(post, family, dtype, steps, seed):
    """BlackJAX meanfield_vi / fullrank_vi, Adam(1e-2), 16 draws (STL default), initial loc = vikl's q0 loc."""
    import blackjax

    with _x64(dtype):
        algo = (blackjax.meanfield_vi if family == "mf" else blackjax.fullrank_vi)(
            post.logdensity, optax.adam(LR), num_samples=NUM_SAMPLES)
        state0 = algo.init(jnp.asarray(_q0(post, family, dtype, seed).loc))
        key = jax.random.key(seed + 1)

        @jax.jit
        def seg(carry, n):
            def body(i, c):
                s, k = c
                k, sub = jax.random.split(k)
                return algo.step(sub, s)[0], k

            return jax.lax.fori_loop(0, n, body, carry)

        def snap(carry):
            s = carry[0]
            if family == "mf":
                return ("gauss", np.asarray(s.mu), np.exp(np.asarray(s.rho)))
            from blackjax.vi.fullrank_vi import _unflatten_cholesky

            return ("gauss", np.asarray(s.mu), np.asarray(_unflatten_cholesky(s.chol_params, post.dim)))

        cps, _ = run_segments(seg, (state0, key), checkpoint_grid(steps), snap)
    note = "init sd exp(-2)" if family == "mf" else "init L = I"
    return {"checkpoints": cps, "converged": None, "note": note}


def blackjax_pathfinder(post, family, dtype, steps, seed):
    """BlackJAX pathfinder (defaults: maxiter 30, 200 ELBO draws per iterate), from vikl's q0 loc."""
    from blackjax.vi import pathfinder

    with _x64(dtype):
        x0 = jnp.asarray(_q0(post, "fr", dtype, seed).loc)
        key = jax.random.key(seed + 1)
        counter = GradCounter(post.logdensity)
        jax.block_until_ready(jax.jit(lambda k, x: pathfinder.approximate(k, counter.logdensity, x))(key, x0))
        run = jax.jit(lambda k, x: pathfinder.approximate(k, post.logdensity, x))
        t0 = time.perf_counter()
        jax.block_until_ready(run(key, x0))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        state, info = jax.block_until_ready(run(key, x0))
        seconds = time.perf_counter() - t0
        iters = int(np.sum(np.isfinite(np.asarray(info.path.elbo)))) - 1
    cp = {"steps": iters, "grads": counter.count, "seconds": seconds, "q": ("pathfinder", state, dtype)}
    return {"checkpoints": [cp], "converged": bool(iters < 30),
            "note": f"first call {first:.2f} s; {iters} L-BFGS iterations (+{(30 + 1) * 200} log p for its ELBOs)"}


RUNNERS = {
    "vikl default MF": vikl_default, "vikl default FR": vikl_default,
    "vikl Adam MF": vikl_adam, "vikl Adam FR": vikl_adam,
    "NumPyro AutoNormal": numpyro_svi, "NumPyro AutoMVN": numpyro_svi,
    "BlackJAX MFVI": blackjax_vi, "BlackJAX FRVI": blackjax_vi, "BlackJAX Pathfinder": blackjax_pathfinder,
}  # fmt: skip


def evaluate(ev: Evaluator, q) -> dict:
    kind = q[0]
    if kind == "gauss":
        return ev.gaussian(q[1], q[2])
    if kind == "numpyro":
        return ev.numpyro(q[1], q[2])
    from blackjax.vi import pathfinder

    with jax.enable_x64(True):
        state = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), q[1])
        z, logq = pathfinder.sample(jax.random.fold_in(ev.key, 3), state, ev.n)
    return ev.draws(z, logq)


def run_method(post, ev, method, dtype, steps, seed):
    """Runs one method and evaluates its checkpoints; returns a JSON-able record."""
    family = FAMILY[method]
    t0 = time.perf_counter()
    try:
        out = RUNNERS[method](post, family, np.dtype(dtype), steps, seed)
    except Exception as e:  # a peer failing is a result, not a crash of the benchmark
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    if "skipped" in out:
        return out
    cps = []
    for c in out["checkpoints"]:
        m = evaluate(ev, c.pop("q"))
        cps.append({**c, "elbo": m["elbo"]})
    final = dict(m)
    return {"checkpoints": cps, "final": final, "converged": out["converged"], "note": out["note"],
            "wall": time.perf_counter() - t0}  # fmt: skip


# ----------------------------------------------------------------------------- reference best ELBO
def reference_start(post, family):
    """(loc, scale) float64 start of the reference run, and how it was obtained."""
    with jax.enable_x64(True):
        if post.draws is not None:
            u = np.asarray(post.unconstrained_draws(np.float64))
            loc, cov = u.mean(0), np.cov(u, rowvar=False)
            how = "reference-draw moments"
        else:
            import scipy.optimize

            f = jax.jit(jax.value_and_grad(lambda x: -post.logdensity(x)))
            x0 = np.asarray(post.unconstrain(post.unflatten(jnp.asarray(post.ref_mean, jnp.float64))))
            opt = scipy.optimize.minimize(lambda x: tuple(np.asarray(v, np.float64) for v in f(jnp.asarray(x))),
                                          x0, jac=True, method="L-BFGS-B")
            hess = -np.asarray(jax.hessian(post.logdensity)(jnp.asarray(opt.x)))
            try:
                cov = np.linalg.inv(hess)
                np.linalg.cholesky(hess)
                loc, how = opt.x, "Laplace at the mode"
            except np.linalg.LinAlgError:
                loc, cov, how = x0, 0.01 * np.eye(post.dim), "reference mean, scale 0.1"
    if family == "mf":
        return loc, 1.0 / np.sqrt(np.diag(np.linalg.inv(cov))), how
    return loc, np.linalg.cholesky(cov), how


def reference_best(post, ev, family, num_steps, seed=0):
    """Best float64 10k-draw ELBO of a long, decayed-step-size STL run from a good start."""
    loc, scale, how = reference_start(post, family)
    best = ev.elbo_gaussian(loc, scale)
    with jax.enable_x64(True):
        q0 = (vikl.MultivariateNormalDiag(jnp.asarray(loc), jnp.asarray(scale)) if family == "mf"
              else vikl.MultivariateNormal(jnp.asarray(loc), scale_tril=jnp.asarray(scale)))  # fmt: skip
        # The spike clip: without it mcycle's full-rank reference run diverged in its first
        # 2000 steps (one heavy-tailed gradient); a run without spikes is unchanged by it.
        opt = optax.chain(vikl.clip_gradient_spikes(), optax.adam(optax.cosine_decay_schedule(LR, max(num_steps, 1))))
        obj = vikl.objectives.ReverseKL(num_samples=NUM_SAMPLES, gradient="stl")
        res, done, trace = None, 0, [best]
        for s in np.linspace(0, num_steps, 11)[1:].astype(int) if num_steps > 0 else []:
            kw = dict(num_steps=int(s - done), progress=False, num_diagnostic_samples=0)
            try:
                res = (vikl.fit(q0, post.logdensity, objective=obj, optimizer=opt, key=jax.random.key(seed), **kw)
                       if res is None else vikl.fit(res, post.logdensity, **kw))  # fmt: skip
            except vikl.FitDivergedError:
                break
            done = s
            trace.append(ev.elbo_gaussian(*_gauss_of(res.distribution)))
    finite = [t for t in trace if np.isfinite(t)]
    return {"best": max(finite) if finite else -math.inf, "start": how, "trace": trace, "steps": int(num_steps)}


# ----------------------------------------------------------------------------- driver
def _load_cache(path):
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {"ref": {}, "runs": {}}


def _save_cache(path, cache):
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        tmp.write_text(json.dumps(cache, indent=1, default=float))
        os.replace(tmp, path)


def _row(name, d, dtype, method, rec, best):
    if "skipped" in rec or "error" in rec:
        return [name, d, dtype, method] + ["-"] * 7 + [rec.get("skipped") or rec.get("error")]
    grads, secs = time_to_accuracy(rec["checkpoints"], best)
    f = rec["final"]
    sd = f"{f['sd_lo']:.2f}-{f['sd_hi']:.2f}" if FAMILY[method] == "fr" else "-"
    conv = "-" if rec["converged"] is None else ("yes" if rec["converged"] else "no")
    gap = f["elbo"] - best
    return [name, d, dtype, method, fmt(grads) if grads is not None else "not reached",
            fmt(secs) if secs is not None else "-", fmt(gap, 3) if np.isfinite(gap) else str(gap),
            fmt(f["mean_err"]), sd, fmt(f["khat"]), conv, rec["note"]]  # fmt: skip


PEERS = {"mf": ("NumPyro AutoNormal", "BlackJAX MFVI"),
         "fr": ("NumPyro AutoMVN", "BlackJAX FRVI", "BlackJAX Pathfinder")}


def summary(records, bests):
    """Per dtype and family: how vikl's default compares with the peers that reach the best ELBO.

    ``records``: ``(name, d, dtype, method, rec, ref)`` tuples; ``bests``: the same order's best
    ELBOs. For each posterior, ``ratio = (fewest gradients of a peer that reaches) / (vikl
    default's gradients)``: ``inf`` where vikl reaches and no peer does, ``0`` where vikl does
    not reach. Returns markdown lines.
    """
    got = {}
    for (name, _, dtype, method, rec, _), best in zip(records, bests):
        if "checkpoints" in rec:
            got[name, dtype, method] = time_to_accuracy(rec["checkpoints"], best)
        else:
            got[name, dtype, method] = (None, None)
    header = ["dtype", "family", "vikl default reaches", "posteriors where a peer reaches",
              "peer grads / vikl grads (per posterior)", "median", "peer s / vikl s (per posterior)", "median"]
    rows = []
    for dtype in sorted({k[1] for k in got}, reverse=True):
        for fam, label in (("mf", "MF"), ("fr", "FR")):
            mine = f"vikl default {label}"
            names = [n for (n, dt, m) in got if dt == dtype and m == mine]
            if not names:
                continue
            ratios = {"g": [], "s": []}
            peer_reach = 0
            for n in names:
                vg, vs = got[n, dtype, mine]
                peers = [got[n, dtype, m] for m in PEERS[fam] if (n, dtype, m) in got]
                reached = [p for p in peers if p[0] is not None]
                peer_reach += bool(reached)
                for i, k in enumerate("gs"):
                    v = (vg, vs)[i]
                    best_peer = min([p[i] for p in reached], default=math.inf)
                    ratios[k].append(0.0 if v is None else (math.inf if not reached else best_peer / v))
            reach = sum(got[n, dtype, mine][0] is not None for n in names)
            rows.append([dtype, label, f"{reach} of {len(names)}", f"{peer_reach} of {len(names)}",
                         ", ".join(fmt(r) for r in ratios["g"]), fmt(float(np.median(ratios["g"]))),
                         ", ".join(fmt(r) for r in ratios["s"]), fmt(float(np.median(ratios["s"])))])
    return [markdown_table(header, rows), "",
            "Per posterior in table order. inf: vikl's default reaches within 0.1 nat of the family's best "
            "ELBO and no peer of that family (MF: NumPyro AutoNormal, BlackJAX MFVI; FR: NumPyro AutoMVN, "
            "BlackJAX FRVI, BlackJAX Pathfinder) does; 0: vikl's default does not reach it."]


HEADER = ["posterior", "d", "dtype", "method", "grads to 0.1 nat", "s to 0.1 nat", "final ELBO - best",
          "max abs mean err / sd_ref", "sd ratio", "k-hat", "converged", "notes"]  # fmt: skip


def _parse_list(text, allowed, what):
    if text is None:
        return list(allowed)
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad:
        raise SystemExit(f"{what}: unknown {bad}; expected some of {list(allowed)}")
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.posteriors", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="200 steps, reference x10, 2000 ELBO draws (a smoke test, not a result)")
    ap.add_argument("--posteriors", default=None, help="comma-separated names (default: all ten)")
    ap.add_argument("--methods", default=None, help=f"comma-separated (default: all): {', '.join(METHODS)}")
    ap.add_argument("--dtypes", default="float64,float32", help="comma-separated: float64,float32")
    ap.add_argument("--steps", type=int, default=None, help="steps B of the iterative methods (default 1000)")
    ap.add_argument("--ref-factor", type=int, default=None,
                    help="reference run length / B (default 20; 0: none, best = its start and the table's ELBOs)")
    ap.add_argument("--draws", type=int, default=None, help="draws per ELBO estimate (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="JSON of finished rows ('' for none)")
    ap.add_argument("--force", action="store_true", help="recompute rows found in the cache")
    ap.add_argument("--report", action="store_true", help="compute nothing: the table of the cached rows")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="markdown report ('' for none)")
    args = ap.parse_args(argv)
    names = _parse_list(args.posteriors, pdb.NAMES, "--posteriors")
    methods = _parse_list(args.methods, METHODS, "--methods")
    dtypes = _parse_list(args.dtypes, ("float64", "float32"), "--dtypes")
    steps = args.steps or (200 if args.quick else 1000)
    factor = args.ref_factor if args.ref_factor is not None else (10 if args.quick else 20)
    draws = args.draws or (2000 if args.quick else 10_000)
    if steps < 1 or factor < 0 or draws < 100:
        raise SystemExit(f"--steps must be >= 1 (got {steps}), --ref-factor >= 0 (got {factor}), "
                         f"--draws >= 100 (got {draws})")
    cache = _load_cache(args.cache)
    cache.setdefault("dims", {})
    done_now = set()
    tag = f"B={steps}|R={factor}|n={draws}|seed={args.seed}"
    print(machine_line(), flush=True)
    if not fit_accepts_no_num_steps():
        print("note: vikl.fit requires num_steps (no converge mode yet): 'vikl default' rows are skipped", flush=True)
    t_start = time.perf_counter()
    posts, evs, records = {}, {}, []
    for dtype in dtypes:  # every posterior in float64 first: a cut-short run still covers them all
        for name in names:
            keys = {m: f"{name}|{dtype}|{m}|{tag}" for m in methods}
            ref = cache["ref"].setdefault(f"{name}|{tag}", {})
            todo = args.force or any(k not in cache["runs"] for k in keys.values())
            todo = todo or any(FAMILY[m] not in ref for m in methods)
            if args.report:  # the cached rows only
                keys = {m: k for m, k in keys.items() if k in cache["runs"] and FAMILY[m] in ref}
            elif todo:
                if name not in posts:
                    posts[name] = pdb.load(name)
                    evs[name] = Evaluator(posts[name], draws, seed=args.seed + 20_221)
                post, ev = posts[name], evs[name]
                for fam in sorted({FAMILY[m] for m in methods}):
                    if fam not in ref:
                        t0 = time.perf_counter()
                        ref[fam] = reference_best(post, ev, fam, factor * steps, args.seed)
                        print(f"[{time.perf_counter() - t_start:7.1f} s] {name} reference {fam}: best ELBO "
                              f"{ref[fam]['best']:.3f} ({ref[fam]['start']}, {factor * steps} steps, "
                              f"{time.perf_counter() - t0:.1f} s)", flush=True)
                        _save_cache(args.cache, cache)
            for method, key in keys.items():
                if key not in cache["runs"] or (args.force and key not in done_now):
                    cache["runs"][key] = run_method(post, ev, method, dtype, steps, args.seed)
                    done_now.add(key)
                    _save_cache(args.cache, cache)
                    rec = cache["runs"][key]
                    msg = rec.get("error") or rec.get("skipped") or (
                        f"final ELBO {rec['final']['elbo']:.3f} ({rec['wall']:.1f} s)")
                    print(f"[{time.perf_counter() - t_start:7.1f} s] {name} {dtype} {method}: {msg}", flush=True)
                if name not in cache["dims"]:
                    cache["dims"][name] = pdb.load(name, with_draws=False).dim
                records.append((name, int(cache["dims"][name]), dtype, method, cache["runs"][key], ref))
            if name in posts:  # compiled programs pile up over a long run (LLVM ran out of memory once)
                del posts[name], evs[name]
                jax.clear_caches()
    rows, bests = [], []
    for name, d, dtype, method, rec, ref in records:
        fam = FAMILY[method]
        seen = [c["elbo"] for n2, _, _, m2, r2, _ in records if n2 == name and FAMILY[m2] == fam
                for c in r2.get("checkpoints", []) if c["elbo"] is not None and np.isfinite(c["elbo"])]  # fmt: skip
        best = max([ref[fam]["best"]] + seen)
        bests.append(best)
        rows.append(_row(name, d, dtype, method, rec, best))
    table = markdown_table(HEADER, rows)
    print(table)
    summary_lines = summary(records, bests)
    print("\n".join(summary_lines))
    print(f"total {time.perf_counter() - t_start:.1f} s", flush=True)
    if args.out:
        cmd = "python -m benchmarks.posteriors " + " ".join(argv if argv is not None else sys.argv[1:])
        refs = "\n".join(f"* {k.split('|')[0]}: " + ", ".join(f"{fam} best {v['best']:.3f} (start: {v['start']})"
                                                              for fam, v in sorted(r.items()))
                         for k, r in cache["ref"].items() if r and k.split("|")[0] in names and k.endswith(tag))  # fmt: skip
        missing = [f"{n} {dt}" for dt in dtypes for n in names
                   if not all(f"{n}|{dt}|{m}|{tag}" in cache["runs"] for m in methods)]  # fmt: skip
        if args.report:
            cmd = (f"{cmd.rstrip()}  (table of the cached rows; each row was computed by the same command "
                   "without --report, resumed from the cache)")
        text = "\n".join([
            f"# Time to accuracy on ten posteriordb posteriors (P1; B = {steps} steps, reference {factor} x B, "
            f"{draws} ELBO draws)", "", machine_line(), "", f"command: {cmd.rstrip()}", "",
            "How each number is obtained: see the docstring of benchmarks/posteriors.py (python -m "
            "benchmarks.posteriors --help). 'best' = the family's best 10k-draw ELBO over the reference run "
            "and every checkpoint in this table; seconds exclude compilation.", "",
            table, "", "## vikl's default against the peers", "", *summary_lines, "",
            "Missing (not run): " + (", ".join(missing) or "none"), "",
            "Reference best ELBO per posterior and family:", "", refs, "",
        ])  # fmt: skip
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
