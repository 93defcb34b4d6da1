"""Minibatch VI on a posterior with data: vikl.Posterior against NumPyro SVI with plate subsampling.

Issue 23 §3. Bayesian logistic regression, N = 1,000,000 rows x d = 100
features (synthetic: x ~ N(0, I), w* ~ N(0, 4/d), y ~ Bernoulli(sigmoid(x w*)),
NumPy seed 0, float32), prior w ~ N(0, I), batch size 1000, one draw of q per
step, Adam with a cosine-decayed learning rate, the same steps and key for all.
All methods run in one process, in this order:

* ``vikl.fit`` on ``vikl.Posterior(prior, log_likelihood, data,
  batch_size=1000)`` with ``families.mean_field(d)`` and
  ``families.full_rank(d)`` (prior KL in closed form; the mean-field fit also
  with ``prior_kl="monte_carlo"``);
* NumPyro SVI with ``plate("data", N, subsample_size=1000)``, ``AutoNormal``
  with ``Trace_ELBO`` and ``TraceMeanField_ELBO`` (analytic KL) and
  ``AutoMultivariateNormal`` with ``Trace_ELBO``, run as ``svi.init`` +
  ``lax.scan(svi.update)`` inside one ``jax.jit`` with the data as arguments
  of the jitted function (NumPyro's fastest path; ``svi.run`` steps a jitted
  update from Python with the data closed over).

Reported per method: the first call (trace + compile + run) and steady steps/s
(median of repeated calls after it), the peak growth of the process RSS while
the call runs (sampled every 2 ms from /proc/self/statm) and the memory XLA
plans for the compiled loop (``memory_analysis``: the data must be an argument,
not a constant, and no temporary may hold a copy of it), the final error of
q's mean and scales against the Laplace approximation at the MAP (found by
Newton's method in float64 on the full-data, subsample-free log posterior),
the gradient variance with the analytic vs the Monte-Carlo prior KL at several
points along the mean-field fit, and whether a fit on data sharded over a
forced 4-device CPU mesh (a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``) matches the 1-device fit.

Equal accuracy (issue 23's target is a speed-up "at equal accuracy"): for each
q type, NumPyro's best errors at ``--steps`` steps (the smallest max mean error
and the smallest max |log sd ratio| over its methods for that q) are the
target; vikl is refitted with the same optimizer (Adam, the cosine schedule
stretched over the longer run) at ``--steps`` times each of ``--ladder``'s
multiples until both of its errors are at or below the target, and the wall
time of that fit is set against the fastest NumPyro method's for its
``--steps`` steps. One extra row, labelled as not the same optimizer, fits the
full-rank q with ``vikl.preconditioned_adam()`` (constant learning rate 0.01,
``fit``'s converge-mode default) for ``--steps`` steps.

Run:  python -m benchmarks.minibatch [--quick] [--steps 2000] [--repeats 3] [--ladder 1,2,4,8,16]
      [--reference-cache /tmp/minibatch_laplace.npz] [--out benchmarks/results/minibatch.md]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

import vikl
from benchmarks._common import block, fmt, machine_line, markdown_table, timed
from vikl import _loop, objectives

LR = 1e-2
LR_FINAL = 1e-4  # cosine decay from LR to LR_FINAL over the run
INIT_SCALE = 0.1  # NumPyro's autoguide default, used for every q
NUM_SAMPLES = 1  # draws of q per step (NumPyro's default num_particles)
LADDER = (1, 2, 4, 8, 16)  # multiples of --steps tried for the equal-accuracy comparison
NOT_SAME_OPT = "NOT the same optimizer"  # marks the preconditioned-Adam row
GRAD_KEYS = 256  # keys per gradient-variance estimate
SEED = 0


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- problem
def make_data(n, d, seed=SEED):
    """(X float32 (n, d), y float32 (n,), w_true float64 (d,)), seeded NumPy."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d) * (2.0 / math.sqrt(d))
    x = rng.standard_normal((n, d), dtype=np.float32)
    logits = x @ w.astype(np.float32)
    y = (rng.random(n, dtype=np.float32) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    return x, y, w


def log_likelihood(w, obs):
    """log p(y_i | x_i, w) of ONE observation ``obs = (x_i, y_i)``: Bernoulli with logit x_i . w."""
    x, y = obs
    logit = jnp.dot(x, w)
    return y * logit - jax.nn.softplus(logit)


def laplace_reference(x, y, chunk=100_000, tol=1e-10, max_iter=50, hessian_rows=100_000):
    """MAP and covariance H^{-1} of the full-data posterior by Newton's method in float64.

    ``-log p(w | X, y) = sum_i softplus(x_i w) - y_i x_i w + |w|^2 / 2``. Rows are
    cast to float64 in chunks (no float64 copy of X is formed). Every iteration
    uses the exact full-data gradient; until the steps are below 1e-6 the
    Hessian comes from the first ``hessian_rows`` rows (scaled by N over
    their number: a quasi-Newton step, converging linearly at a rate of about
    its relative error), then from all rows (Newton), until a step is below
    ``tol``. The covariance is the inverse of the last full-data Hessian, taken
    at a point that the last step moved by less than ``tol``.
    Returns ``(map, cov, iterations)``.
    """
    n, d = x.shape
    w = np.zeros(d)
    exact = n <= hessian_rows
    for it in range(1, max_iter + 1):
        grad, hess = w.copy(), np.zeros((d, d))
        rows = n if exact else hessian_rows
        for s in range(0, n, chunk):
            xc = x[s:s + chunk].astype(np.float64)
            p = 1.0 / (1.0 + np.exp(-(xc @ w)))
            grad += xc.T @ (p - y[s:s + chunk])
            if s < rows:
                xh = xc[: rows - s]
                hess += (xh * (p[: rows - s] * (1 - p[: rows - s]))[:, None]).T @ xh
        hess = hess * (n / rows) + np.eye(d)
        step = np.linalg.solve(hess, grad)
        w = w - step
        size = np.max(np.abs(step))
        if exact and size < tol:
            break
        exact = exact or size < 1e-6
    return w, np.linalg.inv(hess), it


def accuracy(loc, scale_tril, ref_map, ref_cov, full):
    """(max |loc - MAP| / sd, RMS |loc - MAP|, max |log(sd_q / sd_ref)|).

    sd = Laplace marginal sds. A mean-field q's sds are compared with the
    conditional sds 1/sqrt(H_jj), the optimum of a mean-field q for a Gaussian
    posterior; a full-rank q's with the marginal sds.
    """
    loc = np.asarray(loc, np.float64)
    sd = np.sqrt(np.diag(ref_cov))
    lq = np.asarray(scale_tril, np.float64)
    sd_q = np.sqrt(np.sum(lq * lq, axis=1))
    sd_ref = sd if full else 1.0 / np.sqrt(np.diag(np.linalg.inv(ref_cov)))
    return (float(np.max(np.abs(loc - ref_map) / sd)), float(np.sqrt(np.mean((loc - ref_map) ** 2))),
            float(np.max(np.abs(np.log(sd_q / sd_ref)))))


def data_fingerprint(x, y):
    """A float64 summary of the data (shape, sums of the first rows and of y) that a cached reference must match."""
    head = np.asarray(x[:1000], np.float64)
    return np.array([x.shape[0], x.shape[1], head.sum(), (head * head).sum(), np.asarray(y, np.float64).sum()])


def cached_laplace_reference(x, y, path=None):
    """:func:`laplace_reference` of ``(x, y)``, loaded from / saved to the ``.npz`` file ``path`` if given.

    A cached file is used only if its data fingerprint (:func:`data_fingerprint`) equals
    ``(x, y)``'s; otherwise the reference is recomputed and the file rewritten.
    Returns ``(map, cov, iterations, seconds it took to compute, whether it came from the cache)``.
    """
    fp = data_fingerprint(x, y)
    if path and os.path.exists(path):
        with np.load(path) as f:
            if f["fingerprint"].shape == fp.shape and np.array_equal(f["fingerprint"], fp):
                return f["map"], f["cov"], int(f["iterations"]), float(f["seconds"]), True
    t0 = time.perf_counter()
    w, cov, it = laplace_reference(x, y)
    seconds = time.perf_counter() - t0
    if path:
        tmp = path + ".tmp.npz"
        np.savez(tmp, fingerprint=fp, map=w, cov=cov, iterations=it, seconds=seconds)
        os.replace(tmp, path)
    return w, cov, it, seconds, False


# ----------------------------------------------------------------------------- vikl.Posterior
def posterior_class():
    """``vikl.Posterior`` (from its module until ``vikl/__init__.py`` exports it)."""
    cls = getattr(vikl, "Posterior", None)
    if cls is None:
        from vikl._posterior import Posterior as cls
    return cls


def make_posterior(x, y, batch_size, prior_kl="auto"):
    d = x.shape[1]
    prior = vikl.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d))
    cls = posterior_class()
    return cls(prior, log_likelihood, (x, y), batch_size=batch_size, prior_kl=prior_kl)


def make_optimizer(steps):
    return optax.adam(optax.cosine_decay_schedule(LR, steps, alpha=LR_FINAL / LR))


def make_q0(d, full):
    if full:
        return vikl.families.full_rank(d, None, scale=INIT_SCALE)
    return vikl.families.mean_field(d, None, scale=INIT_SCALE)


def _q_arrays(q, full):
    return q.loc, (q.scale_tril if full else jnp.diag(q.scale_diag))


def vikl_case(posterior, d, steps, full, opt, key):
    q0 = make_q0(d, full)
    obj = objectives.ReverseKL(num_samples=NUM_SAMPLES)

    def run():
        res = vikl.fit(q0, posterior, objective=obj, optimizer=opt, num_steps=steps, key=key,
                       progress=False, num_diagnostic_samples=0)
        return _q_arrays(res.distribution, full)

    return run


def steps_to_accuracy(posterior, d, full, key, step_counts, target, ref_map, ref_cov, known=None):
    """Fits vikl with each of ``step_counts`` in turn until both errors are at or below ``target``.

    Each fit uses :func:`make_optimizer` (Adam, cosine decay from LR to LR_FINAL over the
    fit's own steps). ``target = (max mean error / sd, max |log sd ratio|)``. ``known``
    maps a step count to an already measured ``(first s, steady s, (loc, scale_tril))``
    (the equal-steps table's fit), which is used instead of refitting. Returns one dict per
    fit tried: ``steps, first, steady (a known fit's, else None), err_mean, rms, err_sd,
    reached, run`` (the fit's zero-argument callable, None for a known one, to time it against
    NumPyro's calls afterwards).
    """
    known = known or {}
    rungs = []
    for steps in step_counts:
        if steps in known:
            first, steady, (loc, lq) = known[steps]
            run = None
        else:
            run = vikl_case(posterior, d, steps, full, make_optimizer(steps), key)
            t0 = time.perf_counter()
            loc, lq = block(run())
            first, steady = time.perf_counter() - t0, None
        err_mean, rms, err_sd = accuracy(loc, lq, ref_map, ref_cov, full)
        reached = err_mean <= target[0] and err_sd <= target[1]
        rungs.append({"steps": steps, "first": first, "steady": steady, "err_mean": err_mean, "rms": rms,
                      "err_sd": err_sd, "reached": reached, "run": run})
        _log(f"  {'full-rank' if full else 'mean-field'} {steps} steps: max mean err {err_mean:.3g} "
             f"(target {target[0]:.3g}), max |log sd ratio| {err_sd:.3g} (target {target[1]:.3g}), "
             f"first call {first:.2f} s" + (": reached" if reached else ""))
        if reached:
            break
    return rungs


# ----------------------------------------------------------------------------- NumPyro
def numpyro_case(x, y, steps, guide_name, elbo_name, key, batch_size):
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
    from numpyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
    from numpyro.infer.initialization import init_to_value

    n, d = x.shape

    def model(x, y):
        w = numpyro.sample("w", nd.Normal(jnp.zeros(d), 1.0).to_event(1))
        with numpyro.plate("data", n, subsample_size=batch_size) as idx:
            numpyro.sample("y", nd.Bernoulli(logits=x[idx] @ w), obs=y[idx])

    guide_cls = AutoMultivariateNormal if guide_name == "AutoMultivariateNormal" else AutoNormal
    guide = guide_cls(model, init_loc_fn=init_to_value(values={"w": jnp.zeros(d)}), init_scale=INIT_SCALE)
    elbo = (TraceMeanField_ELBO if elbo_name == "TraceMeanField_ELBO" else Trace_ELBO)(num_particles=NUM_SAMPLES)
    svi = SVI(model, guide, make_optimizer(steps), elbo)

    @jax.jit
    def run_scan(key, x, y):
        state = svi.init(key, x, y)

        def body(s, _):
            return svi.update(s, x, y)

        state, losses = jax.lax.scan(body, state, None, length=steps)
        return svi.get_params(state), losses

    def run():
        with jax.numpy_dtype_promotion("standard"):  # NumPyro mixes dtypes (strict mode in the tests)
            params, _ = run_scan(key, x, y)
        if guide_name == "AutoNormal":  # per-site parameters, constrained
            return params["w_auto_loc"], jnp.diag(params["w_auto_scale"])
        post = guide.get_posterior(params)  # a MultivariateNormal over the flattened latent (= w)
        return post.loc, post.scale_tril

    def lowered():
        with jax.numpy_dtype_promotion("standard"):
            return run_scan.lower(key, x, y)

    run.jitted = lowered
    return run


# ----------------------------------------------------------------------------- memory
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """Peak growth of the process RSS over its value at entry (sampled every 2 ms by a thread)."""

    def __enter__(self):
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.growth = self.peak - self.start


def compiled_memory(lowered):
    """(argument MB, temporary MB, generated code MB) that XLA plans for a lowered program (or None)."""
    if lowered is None:
        return None
    try:
        mem = lowered.compile().memory_analysis()
        mb = 1 / 2**20
        return (mem.argument_size_in_bytes * mb, mem.temp_size_in_bytes * mb,
                mem.generated_code_size_in_bytes * mb)
    except Exception:  # pragma: no cover - backends without memory_analysis
        return None


def vikl_lowered(run):
    """The lowered chunk program that ``vikl.fit`` compiles for ``run`` (captured from one call).

    Reads vikl's private ``_fit._run_chunk`` (benchmark-only introspection); ``None`` when it
    is not there.
    """
    from vikl import _fit

    seen = []
    inner = getattr(_fit, "_run_chunk", None)
    if inner is None or not hasattr(inner, "lower"):
        return None

    class Capture:
        def __call__(self, *args):
            seen.append(args)
            return inner(*args)

        def __getattr__(self, name):
            return getattr(inner, name)

    _fit._run_chunk = Capture()
    try:
        run()
    finally:
        _fit._run_chunk = inner
    if not seen:
        return None
    spec, cap, *rest = seen[-1]  # the last chunk's arguments
    return inner.lower(spec, cap, *rest)


# ----------------------------------------------------------------------------- where the time goes
def index_draw_cost(n, batch, key, calls=200):
    """Seconds per call of each library's minibatch-index draw alone, jitted, ``calls`` calls in one scan.

    vikl.Posterior: ``jax.random.randint`` (with replacement). NumPyro's plate: its private
    ``primitives._subsample_fn`` (without replacement; on CPU a Fisher-Yates scan of ``batch``
    swaps over ``arange(n)``, on other backends ``random.choice(replace=False)``).
    """
    from numpyro.primitives import _subsample_fn

    draws = {
        "vikl (randint)": lambda k: jax.random.randint(k, (batch,), 0, n),
        "NumPyro (plate subsample)": lambda k: _subsample_fn(n, batch, k),
    }
    out = {}
    for name, draw in draws.items():
        @jax.jit
        def many(key, draw=draw):
            body = lambda c, k: (c + jnp.sum(draw(k)), None)  # noqa: E731
            return jax.lax.scan(body, jnp.int32(0), jax.random.split(key, calls))[0]

        block(many(key))
        t0 = time.perf_counter()
        block(many(key))
        out[name] = (time.perf_counter() - t0) / calls
    return out


def cholesky_summary(scale_tril):
    """(median diagonal, RMS of the strictly lower triangle) of a Cholesky factor."""
    lq = np.asarray(scale_tril, np.float64)
    return float(np.median(np.diag(lq))), float(np.sqrt(np.mean(lq[np.tril_indices(len(lq), -1)] ** 2)))


# ----------------------------------------------------------------------------- gradient variance
def gradient_variance(posterior_an, posterior_mc, q, key, num_keys=GRAD_KEYS):
    """Total variance (trace of the covariance) of the gradient of the loss in q's unconstrained parameters.

    Both posteriors are evaluated with the same ``num_keys`` keys (common random numbers: the same
    minibatches and draws), so the two figures differ only by the prior-KL term. Returns
    ``(var analytic, var MC, var of the difference)``.
    """
    obj = objectives.ReverseKL(num_samples=NUM_SAMPLES)
    params, template = _loop.init_params(q)
    keys = jax.random.split(key, num_keys)
    return tuple(float(v) for v in _variances(obj, keys, params, template, posterior_an, posterior_mc))


@functools.partial(jax.jit, static_argnums=0)
def _variances(obj, keys, params, template, post_an, post_mc):
    def grad_flat(post, k):
        def loss(p):
            return _loop.objective_value(obj, _loop.current_q(template, p), post, k)[0]

        return jax.flatten_util.ravel_pytree(jax.grad(loss)(params))[0]

    ga = jax.lax.map(lambda k: grad_flat(post_an, k), keys)
    gm = jax.lax.map(lambda k: grad_flat(post_mc, k), keys)
    return jnp.sum(jnp.var(ga, axis=0)), jnp.sum(jnp.var(gm, axis=0)), jnp.sum(jnp.var(gm - ga, axis=0))


def variance_along_fit(x, y, batch_size, steps, checkpoints, key, opt):
    """Gradient variances at the mean-field q after each of ``checkpoints`` steps of the analytic-KL fit."""
    d = x.shape[1]
    post_an = make_posterior(x, y, batch_size, "analytic")
    post_mc = make_posterior(x, y, batch_size, "monte_carlo")
    obj = objectives.ReverseKL(num_samples=NUM_SAMPLES)
    rows, res, done = [], None, 0
    for t in checkpoints:
        if t > done:
            res = vikl.fit(res if res is not None else make_q0(d, False), post_an, objective=obj,
                           optimizer=opt, num_steps=t - done, key=key, progress=False,
                           num_diagnostic_samples=0)
            done = t
        q = res.distribution if res is not None else make_q0(d, False)
        va, vm, vd = gradient_variance(post_an, post_mc, q, jax.random.fold_in(key, 10_000 + t))
        rows.append((t, va, vm, vd))
        _log(f"  gradient variance at step {t}: analytic {va:.6g}, MC {vm:.6g}, MC/analytic {vm / va:.6f}")
    return rows


# ----------------------------------------------------------------------------- 4-device mesh
def _sharded_child(args):
    """Runs in the subprocess with 4 forced host devices: the mean-field fit on sharded data."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    ref = np.load(args.sharded_child)
    n, d, steps, batch = int(ref["n"]), int(ref["d"]), int(ref["steps"]), int(ref["batch"])
    devices = jax.devices()
    x, y, _ = make_data(n, d)
    mesh = Mesh(np.array(devices), ("data",))
    xs = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data", None)))
    ys = jax.device_put(y, NamedSharding(mesh, PartitionSpec("data")))
    del x, y
    post = make_posterior(xs, ys, batch)
    run = vikl_case(post, d, steps, False, make_optimizer(steps), jax.random.PRNGKey(SEED))
    t0 = time.perf_counter()
    loc, lq = run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    loc, lq = jax.block_until_ready(run())
    steady = time.perf_counter() - t0
    out = {
        "devices": len(devices),
        "data_sharding": str(xs.sharding),
        "max_abs_diff_loc": float(np.max(np.abs(np.asarray(loc) - ref["loc"]))),
        "max_abs_diff_scale": float(np.max(np.abs(np.diag(np.asarray(lq)) - ref["scale"]))),
        "max_abs_loc": float(np.max(np.abs(ref["loc"]))),
        "first_s": first,
        "steady_s": steady,
    }
    print("RESULT " + json.dumps(out), flush=True)


def sharded_check(n, d, steps, batch, loc, scale, timeout=600):
    """Fits on a forced 4-device CPU mesh in a subprocess; returns its RESULT dict (or an error string)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ref.npz")
        np.savez(path, n=n, d=d, steps=steps, batch=batch, loc=np.asarray(loc), scale=np.asarray(scale))
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
        proc = subprocess.run([sys.executable, "-m", "benchmarks.minibatch", "--sharded-child", path],
                              env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return f"subprocess failed (rc {proc.returncode}): {proc.stderr[-2000:]}"


def _equal_accuracy_row(fam, optimizer, rungs, target, np_label, np_timing, steps):
    """One row of the equal-accuracy table (see :func:`steps_to_accuracy`)."""
    last = rungs[-1]
    head = [fam, optimizer, f"{fmt(target[0])}, {fmt(target[1])}", np_label[2], fmt(np_timing[1])]
    if not last["reached"]:
        return head + [f"not reached by {last['steps']}", fmt(last["err_mean"]), fmt(last["err_sd"]),
                       "-", "-", "-"]
    return head + [str(last["steps"]), fmt(last["err_mean"]), fmt(last["err_sd"]), fmt(last["steady"]),
                   fmt(np_timing[1] / last["steady"]), fmt(np_timing[0] / last["first"])]


# ----------------------------------------------------------------------------- driver
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: N=2000, d=5, batch 100, 200 steps, 1 repeat, 32 gradient keys")
    ap.add_argument("--n", type=int, default=None, help="rows (default 1,000,000)")
    ap.add_argument("--d", type=int, default=None, help="features (default 100)")
    ap.add_argument("--batch-size", type=int, default=None, help="minibatch size (default 1000)")
    ap.add_argument("--steps", type=int, default=None, help="optimization steps per fit (default 2000)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls after the first (default 3)")
    ap.add_argument("--ladder", default=",".join(map(str, LADDER)),
                    help="multiples of --steps tried for the equal-accuracy comparison (default 1,2,4,8,16)")
    ap.add_argument("--reference-cache", default=None,
                    help="an .npz file to load the Laplace reference from (or save it to): keep it outside the "
                         "repository, e.g. /tmp/minibatch_laplace.npz")
    ap.add_argument("--no-mesh", action="store_true", help="skip the 4-device subprocess")
    ap.add_argument("--out", default="benchmarks/results/minibatch.md", help="markdown report path")
    ap.add_argument("--sharded-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.sharded_child:
        return _sharded_child(args)

    n = args.n or (2000 if args.quick else 1_000_000)
    d = args.d or (5 if args.quick else 100)
    batch = args.batch_size or (100 if args.quick else 1000)
    steps = args.steps or (200 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    num_keys = 32 if args.quick else GRAD_KEYS
    for name, value, lo in (("--n", n, 1), ("--d", d, 1), ("--batch-size", batch, 1), ("--steps", steps, 4),
                            ("--repeats", repeats, 1)):
        if value < lo:
            ap.error(f"{name} must be >= {lo}; got {value}")
    if batch > n:
        ap.error(f"--batch-size must be <= --n ({n}); got {batch}")
    try:
        ladder = sorted({int(m) for m in args.ladder.split(",")})
    except ValueError:
        ladder = []
    if not ladder or ladder[0] < 1:
        ap.error(f"--ladder must be comma-separated integers >= 1 (multiples of --steps); got {args.ladder!r}")
    command = "python -m benchmarks.minibatch " + " ".join(argv if argv is not None else sys.argv[1:])
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    print(machine_line(), flush=True)
    posterior_impl = posterior_class()
    _log(f"Posterior: {posterior_impl.__module__}.{posterior_impl.__qualname__}")

    _log(f"generating data: N={n:,}, d={d} (float32, {n * d * 4 / 2**20:.0f} MB)")
    x_np, y_np, _ = make_data(n, d)
    _log("Laplace reference: Newton's method in float64 on the full data")
    ref_map, ref_cov, newton_iters, t_ref, ref_cached = cached_laplace_reference(x_np, y_np, args.reference_cache)
    ref_sd = np.sqrt(np.diag(ref_cov))
    _log(f"  {newton_iters} Newton iterations, {t_ref:.1f} s{' (loaded from the cache)' if ref_cached else ''}; "
         f"posterior sd median {np.median(ref_sd):.3g}")
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    del x_np, y_np
    rss_data = _rss_bytes()

    key = jax.random.PRNGKey(SEED)
    opt = make_optimizer(steps)  # one object: vikl's repeated calls reuse the compiled program
    post = make_posterior(x, y, batch)
    post_mc = make_posterior(x, y, batch, "monte_carlo")
    cases = [
        ("vikl", "mean-field", "Posterior, prior KL analytic", False,
         vikl_case(post, d, steps, False, opt, key)),
        ("vikl", "mean-field", "Posterior, prior KL MC", False, vikl_case(post_mc, d, steps, False, opt, key)),
        ("vikl", "full-rank", "Posterior, prior KL analytic", True, vikl_case(post, d, steps, True, opt, key)),
        ("vikl", "full-rank", f"Posterior, prior KL analytic, vikl.preconditioned_adam(0.01), constant lr: "
         f"{NOT_SAME_OPT}", True, vikl_case(post, d, steps, True, vikl.preconditioned_adam(), key)),
        ("NumPyro", "mean-field", "AutoNormal, Trace_ELBO", False,
         numpyro_case(x, y, steps, "AutoNormal", "Trace_ELBO", key, batch)),
        ("NumPyro", "mean-field", "AutoNormal, TraceMeanField_ELBO", False,
         numpyro_case(x, y, steps, "AutoNormal", "TraceMeanField_ELBO", key, batch)),
        ("NumPyro", "full-rank", "AutoMultivariateNormal, Trace_ELBO", True,
         numpyro_case(x, y, steps, "AutoMultivariateNormal", "Trace_ELBO", key, batch)),
    ]

    _log(f"timing {len(cases)} methods: a cold call each (trace + compile + run), then {repeats} passes "
         f"calling each method once in a shuffled order, {steps} steps per call")
    rss = {}

    def first_call_rss(label, run):
        def call():
            if label in rss:
                return run()
            with RssPeak() as peak:
                out = block(run())
            rss[label] = peak.growth
            _log(f"  first call of {' '.join(label)} done, RSS growth {peak.growth / 2**20:.0f} MB")
            return out

        return call

    timings = timed({(lib, fam, what): first_call_rss((lib, fam, what), run)
                     for lib, fam, what, _, run in cases}, repeats=repeats, warmup=0, seed=SEED)
    for lib, fam, what, _, _ in cases:
        t = timings[(lib, fam, what)]
        _log(f"  {lib} {fam} {what}: first {t[0]:.2f} s, steady {t[1]:.3f} s ({steps / t[1]:.0f} steps/s)")

    _log("memory XLA plans for each compiled loop")
    plans = {}
    for lib, fam, what, full, run in cases:
        lowered = vikl_lowered(run) if lib == "vikl" else run.jitted()
        plans[(lib, fam, what)] = compiled_memory(lowered)

    table = []
    numpyro_rate = {fam: max(steps / timings[(lib, f, w)][1] for lib, f, w, _, _ in cases
                             if lib == "NumPyro" and f == fam) for fam in ("mean-field", "full-rank")}
    for lib, fam, what, full, run in cases:
        label = (lib, fam, what)
        t = timings[label]
        loc, lq = t[2]
        err_mean, rms, err_sd = accuracy(loc, lq, ref_map, ref_cov, full)
        plan = plans[label]
        rate = steps / t[1]
        table.append([lib, fam, what, fmt(t[0]), fmt(rate), fmt(rate / numpyro_rate[fam]),
                      fmt(rss[label] / 2**20), "-" if plan is None else fmt(plan[0]),
                      "-" if plan is None else fmt(plan[1]), fmt(err_mean), fmt(rms), fmt(err_sd)])
    header = ["library", "q", "method", "first call s", "steps/s", "x fastest NumPyro (same q)",
              "RSS growth MB", "XLA args MB", "XLA temp MB", "max |mean err| / sd", "RMS mean err",
              "max |log sd ratio|"]
    print(markdown_table(header, table), flush=True)
    chol_rows = [["Laplace reference (Cholesky of H^-1)", *map(fmt, cholesky_summary(np.linalg.cholesky(ref_cov)))]]
    chol_rows += [[f"{lib} {what}", *map(fmt, cholesky_summary(timings[(lib, fam, what)][2][1]))]
                  for lib, fam, what, full, _ in cases if full]
    chol_header = ["full-rank q", "median diag of L", "RMS below-diagonal of L"]
    print(markdown_table(chol_header, chol_rows), flush=True)

    _log(f"equal accuracy: vikl (same optimizer) at {', '.join(str(m * steps) for m in ladder)} steps until its "
         f"errors are at or below NumPyro's best at {steps} steps")
    errors = {c[:3]: accuracy(*timings[c[:3]][2], ref_map, ref_cov, c[3]) for c in cases}
    eq_rows, eq_ladders, eq_ratio = [], {}, {}
    for fam, full in (("mean-field", False), ("full-rank", True)):
        np_labels = [c[:3] for c in cases if c[0] == "NumPyro" and c[1] == fam]
        target = (min(errors[lb][0] for lb in np_labels), min(errors[lb][2] for lb in np_labels))
        np_fast = min(np_labels, key=lambda lb: timings[lb][1])
        np_timing = timings[np_fast]
        vikl_label = ("vikl", fam, "Posterior, prior KL analytic")
        rungs = steps_to_accuracy(post, d, full, key, [m * steps for m in ladder], target, ref_map, ref_cov,
                                  known={steps: timings[vikl_label]})
        eq_ladders[fam] = rungs
        last = rungs[-1]
        if last["reached"] and last["run"] is not None:
            # time the fit that met the target against the fastest NumPyro method, interleaved
            np_run = next(c[4] for c in cases if c[:3] == np_fast)
            _log(f"  timing vikl {fam} {last['steps']} steps against {' '.join(np_fast)} ({repeats} calls each, "
                 f"shuffled)")
            pair = timed({"vikl": last["run"], "NumPyro": np_run}, repeats=repeats, warmup=0, seed=SEED)
            last["steady"] = pair["vikl"][1]
            np_timing = (np_timing[0], pair["NumPyro"][1])
            _log(f"    vikl {last['steady']:.3f} s, NumPyro {np_timing[1]:.3f} s")
        eq_ratio[fam] = (np_timing[1] / last["steady"], last["steps"]) if last["reached"] else (None, last["steps"])
        eq_rows.append(_equal_accuracy_row(fam, "Adam, cosine schedule over the fit's steps (same as NumPyro)",
                                           rungs, target, np_fast, np_timing, steps))
        if full:
            pre = next(c[:3] for c in cases if NOT_SAME_OPT in c[2])
            e = errors[pre]
            reached = e[0] <= target[0] and e[2] <= target[1]
            pre_rung = {"steps": steps, "first": timings[pre][0], "steady": timings[pre][1] if reached else None,
                        "err_mean": e[0], "rms": e[1], "err_sd": e[2], "reached": reached}
            eq_rows.append(_equal_accuracy_row(fam, f"vikl.preconditioned_adam(0.01), constant lr, {steps} steps "
                                                    f"only: {NOT_SAME_OPT}", [pre_rung], target, np_fast,
                                               timings[np_fast], steps))
    eq_header = ["q", "vikl optimizer", "NumPyro target: max |mean err| / sd, max |log sd ratio|",
                 f"fastest NumPyro ({steps} steps)", "NumPyro s (steady)", "vikl steps to reach",
                 "vikl max |mean err| / sd", "vikl max |log sd ratio|", "vikl s (steady)",
                 "NumPyro s / vikl s", "first calls: NumPyro s / vikl s"]
    print(markdown_table(eq_header, eq_rows), flush=True)
    ladder_rows = [[fam, r["steps"], fmt(r["first"]), fmt(r["err_mean"]), fmt(r["rms"]), fmt(r["err_sd"]),
                    "yes" if r["reached"] else "no"] for fam, rungs in eq_ladders.items() for r in rungs]
    ladder_header = ["q", "vikl steps", "first call s", "max |mean err| / sd", "RMS mean err",
                     "max |log sd ratio|", "at or below NumPyro's best"]
    print(markdown_table(ladder_header, ladder_rows), flush=True)

    _log("cost of the minibatch-index draw alone (jitted, 200 calls in a scan)")
    draw_cost = index_draw_cost(n, batch, key)
    for name, sec in draw_cost.items():
        _log(f"  {name}: {1e6 * sec:.1f} µs per draw")

    _log("gradient variance along the mean-field fit (analytic vs MC prior KL)")
    checkpoints = sorted({0, steps // 10, steps // 4, steps // 2, steps})
    var_rows = variance_along_fit(x, y, batch, steps, checkpoints, jax.random.fold_in(key, 1), opt)
    var_table = [[t, fmt(va, 7), fmt(vm, 7), fmt(vm / va - 1), fmt(vd), "yes" if va <= vm else "NO"]
                 for t, va, vm, vd in var_rows]
    var_header = ["step", "grad var, analytic KL", "grad var, MC KL", "MC / analytic - 1",
                  "var of (MC - analytic)", "analytic <= MC"]
    print(markdown_table(var_header, var_table), flush=True)

    mesh = None
    if not args.no_mesh:
        _log("4-device CPU mesh: the mean-field fit on data sharded over the observation axis (subprocess)")
        loc1, lq1 = timings[cases[0][:3]][2]
        mesh = sharded_check(n, d, steps, batch, loc1, np.diag(np.asarray(lq1)))
        _log(f"  {mesh}")

    load_end = os.getloadavg()
    total = time.perf_counter() - t_start
    best_vikl = {fam: max(steps / timings[(lib, f, w)][1] for lib, f, w, _, _ in cases
                          if lib == "vikl" and f == fam and NOT_SAME_OPT not in w)
                 for fam in ("mean-field", "full-rank")}
    lines = [
        "# Minibatch VI: vikl.Posterior vs NumPyro SVI with plate subsampling (issue 23 §3)",
        "",
        machine_line(),
        "",
        f"command: {command.rstrip()}",
        "",
        f"Load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, at end "
        f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} (a shared machine: other processes ran "
        f"beside this one); whole run {total:.0f} s.",
        "",
        f"Bayesian logistic regression, N = {n:,}, d = {d}, float32 data ({n * d * 4 / 2**20:.0f} MB), prior "
        f"N(0, I), batch {batch} (vikl: i.i.d. uniform with replacement; NumPyro: plate subsample, without "
        f"replacement), {NUM_SAMPLES} draw of q per step, {steps} steps of Adam with a cosine-decayed "
        f"learning rate {LR} -> {LR_FINAL}, initial q N(0, {INIT_SCALE}^2 I), key {SEED}. Posterior class: "
        f"`{posterior_impl.__module__}.{posterior_impl.__qualname__}`. NumPyro runs `svi.init` + "
        f"`lax.scan(svi.update)` in one `jax.jit` with X, y as arguments (its fastest honest path; `svi.run` "
        f"steps from Python). steps/s: median of {repeats} calls after the first, interleaved in a shuffled order "
        f"(first call: trace + compile + run). RSS growth: the peak of the process RSS during the first call "
        f"minus its value before it "
        f"(data already resident: {rss_data / 2**20:.0f} MB RSS). XLA args/temp: "
        f"`compile().memory_analysis()` of the compiled loop (data passed as an argument; a temp buffer the "
        f"size of X would mean a copy).",
        "",
        f"Reference: Laplace approximation at the MAP, Newton's method in float64 on the full-data log "
        f"posterior ({newton_iters} iterations, {t_ref:.1f} s"
        f"{'; loaded from a cache file of an earlier run on the same data' if ref_cached else ''}); posterior sd median {np.median(ref_sd):.3g} "
        f"(min {ref_sd.min():.3g}, max {ref_sd.max():.3g}). Errors: max over coordinates of |mean - MAP| in "
        f"posterior sds; RMS of |mean - MAP|; max |log(sd_q / sd_ref)| with sd_ref the Laplace marginal sd "
        f"(full-rank) or 1/sqrt(H_jj) (mean-field, the optimum of a mean-field Gaussian for a Gaussian posterior).",
        "",
        markdown_table(header, table),
        "",
        f"vikl / fastest NumPyro steps/s: mean-field {best_vikl['mean-field'] / numpyro_rate['mean-field']:.1f}x, "
        f"full-rank {best_vikl['full-rank'] / numpyro_rate['full-rank']:.1f}x (target >= 5x), at equal steps "
        f"(not at equal accuracy: see the next section). The row marked \"{NOT_SAME_OPT}\" is left out of "
        f"this ratio.",
        "",
        "## Equal accuracy: vikl's wall time to NumPyro's best errors",
        "",
        f"Target per q: the smallest max |mean err| / sd and the smallest max |log sd ratio| over NumPyro's "
        f"methods for that q at {steps} steps (both must be met; the errors as in the table above, one seed). "
        f"vikl (prior KL analytic) is fitted with the same optimizer, Adam with the cosine schedule from {LR} to "
        f"{LR_FINAL} stretched over the fit's own steps, at {', '.join(str(m * steps) for m in ladder)} steps in "
        f"turn, stopping at the first fit that meets both; its {steps}-step fit is the one in the table above. "
        f"Times (steady): the fit that met the target and the fastest NumPyro method for that q ({steps} steps), "
        f"each the median of {repeats} calls interleaved in a shuffled order, timed together after the "
        f"equal-steps table (a fit that met the target at {steps} steps: the table's figures). First calls "
        f"(trace + compile + run): from the table and from the ladder below. The preconditioned-Adam row is {NOT_SAME_OPT}: "
        f"`vikl.preconditioned_adam()` (`fit`'s converge-mode default, constant learning rate 0.01 in units of "
        f"q0's sd per coordinate, here 0.1), from the same q0, {steps} steps only.",
        "",
        markdown_table(eq_header, eq_rows),
        "",
        "At equal accuracy (same optimizer), NumPyro's wall time / vikl's: "
        + ", ".join(f"{fam} {r:.1f}x ({k} vikl steps)" if r is not None else f"{fam} not reached by {k} vikl steps"
                    for fam, (r, k) in eq_ratio.items()) + " (target >= 5x).",
        "",
        "Every vikl fit tried (same optimizer):",
        "",
        markdown_table(ladder_header, ladder_rows),
        "",
        "Where the time goes: the minibatch-index draw alone, jitted, per step: "
        + "; ".join(f"{name} {1e6 * sec:.1f} µs" for name, sec in draw_cost.items())
        + f" (steps: vikl mean-field {1e6 / best_vikl['mean-field']:.0f} µs, NumPyro "
        f"{1e6 / numpyro_rate['mean-field']:.0f} µs). On CPU NumPyro's plate draws its subsample without "
        f"replacement by a {batch}-step Fisher-Yates scan over arange(N).",
        "",
        "Full-rank q: the fitted Cholesky factor L against the reference's. Adam moves each unconstrained "
        "coordinate by about the learning rate per step whatever its gradient, so the factor's "
        "parameterization decides how far L can move: both vikl's MultivariateNormal (since format 4) and "
        "NumPyro's AutoMultivariateNormal train L as row scales times a unit lower-triangular factor "
        "(vikl: exp, NumPyro: softplus for the scales):",
        "",
        markdown_table(chol_header, chol_rows),
        "",
        "## Gradient variance, analytic vs Monte-Carlo prior KL (mean-field q along the analytic-KL fit)",
        "",
        f"Trace of the covariance of the gradient of the loss in q's unconstrained parameters over {num_keys} "
        f"keys; both with the same keys (the same minibatches and draws: common random numbers), so the "
        f"columns differ only by the prior-KL term; the last column is the variance that the MC prior KL adds "
        f"alone.",
        "",
        markdown_table(var_header, var_table),
        "",
        "## 4-device CPU mesh",
        "",
    ]
    if mesh is None:
        lines.append("Skipped (--no-mesh).")
    elif isinstance(mesh, str):
        lines.append(mesh)
    else:
        lines.append(
            f"Mean-field fit (prior KL analytic) in a subprocess with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=4: X and y placed with `{mesh['data_sharding']}` "
            f"over a 1-D mesh of {mesh['devices']} devices, same key and steps. Max abs difference from the "
            f"1-device fit above: loc {mesh['max_abs_diff_loc']:.3g} (max |loc| {mesh['max_abs_loc']:.3g}), "
            f"scale {mesh['max_abs_diff_scale']:.3g}. First call {mesh['first_s']:.2f} s, then "
            f"{steps / mesh['steady_s']:.0f} steps/s (4 virtual devices on this machine's cores: not a speed-up "
            f"test).")
    lines.append("")
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    _log(f"wrote {args.out} ({total:.0f} s)")
    return {"table": table, "variance": var_rows, "mesh": mesh, "equal_accuracy": eq_rows, "ladders": eq_ladders}


if __name__ == "__main__":
    main()
