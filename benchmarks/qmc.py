"""Randomized quasi-Monte Carlo draws and DReG gradients: error and gradient variance at equal draws.

Three tables (issue 22 §5), all in one process:

(a) Problem K2 of shared/BENCH_PROBLEMS.md (KL(p‖q) of two 10-d full-covariance Gaussians,
    float32): RMSE, bias and mean reported stderr of ``vikl.estimate_kl`` over ``--keys``
    keys (default 200) at n = 64, 256, 1024, 4096 draws, ``draws="mc"`` vs ``"rqmc"``, against
    the closed form in float64 NumPy; and the time of one jitted call at each n.
(b) Gradient variance of ``ReverseKL`` (default reparameterized gradient, analytic entropy)
    with respect to the fitted parameters ``(loc, raw)`` of a full-rank Gaussian
    ``q = N(loc, L L^T)``, ``L = tril(raw, -1) + diag(exp(diag raw))``, at points along a fit
    (Adam(1e-2), 16 MC draws, from loc = 0, L = 0.1 I; steps 0, 1000 and 10000): total
    variance (sum over coordinates) over ``--keys`` keys, MC vs RQMC, at num_samples
    8, 16, 64. Targets: the F1 Gaussian (d = 10) and posteriordb posteriors (float64;
    ``benchmarks.posteriordb.load``).
(c) DReG against the plain gradient: ``Renyi(alpha)`` (alpha = 0, 0.5) and the SNIS forward
    KL, K = 8 draws, total gradient variance at the same points (the posteriors' fits).

Run:  python -m benchmarks.qmc [--quick] [--keys N] [--out benchmarks/results/qmc.md]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vikl
from benchmarks._common import fmt, machine_line, markdown_table
from benchmarks.kl_throughput import k2_problem
from vikl import objectives as O

POSTERIORS = ("kidiq-kidscore_momiq", "arma-arma11", "mesquite-logmesquite_logvas")
STEPS = (0, 1000, 10000)


# --------------------------------------------------------------------------- (a) K2
def table_k2(num_keys, sizes):
    p, q, exact, _ = k2_problem()
    keys = jax.random.split(jax.random.PRNGKey(0), num_keys)
    rows, rmse = [], {}
    for n in sizes:
        for draws in ("mc", "rqmc"):
            def one(k, n=n, draws=draws):
                e = vikl.estimate_kl(p, q, k, n, draws=draws)
                return jnp.stack([e.value, e.stderr])

            out = np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)
            single = jax.jit(one)
            jax.block_until_ready(single(keys[0]))
            times = []
            for k in keys[:5]:
                t0 = time.perf_counter()
                jax.block_until_ready(single(k))
                times.append(time.perf_counter() - t0)
            err = out[:, 0] - exact
            rmse[n, draws] = math.sqrt(np.mean(err**2))
            ratio = "" if draws == "mc" else f"{rmse[n, 'mc'] / rmse[n, draws]:.1f}x"
            rows.append([n, draws, fmt(rmse[n, draws]), fmt(err.mean()), fmt(err.std(ddof=1) / math.sqrt(num_keys)),
                         fmt(out[:, 1].mean()), ratio, fmt(1e3 * float(np.median(times)))])
    header = ["n", "draws", "RMSE", "bias", "s.e. of bias", "mean reported stderr", "MC RMSE / RMSE",
              "time per call (ms)"]
    return (f"### (a) K2 — estimate_kl of two 10-d MVNs, {num_keys} keys per row (exact {exact:.5f})\n\n"
            + markdown_table(header, rows))


# --------------------------------------------------------------------------- (b), (c) along fits
def _q_of(params):
    loc, raw = params
    scale_tril = jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))
    return vikl.MultivariateNormal(loc, scale_tril=scale_tril)


def _trajectory(logp, d, dtype, steps):
    """Parameters of a full-rank fit (Adam 1e-2, 16 MC draws) at each of ``steps``."""
    params = (jnp.zeros(d, dtype), jnp.diag(jnp.full(d, math.log(0.1), dtype)))
    opt = optax.adam(1e-2)
    obj = O.ReverseKL(num_samples=16)

    @jax.jit
    def run(params, state, keys):
        def step(carry, k):
            params, state = carry
            g = jax.grad(lambda pr: obj(_q_of(pr), logp, k))(params)
            upd, state = opt.update(g, state, params)
            return (optax.apply_updates(params, upd), state), None

        return jax.lax.scan(step, (params, state), keys)[0]

    state, out, done = opt.init(params), [], 0
    key = jax.random.PRNGKey(1)
    for s in steps:
        if s > done:
            key, sub = jax.random.split(key)
            params, state = run(params, state, jax.random.split(sub, s - done))
            done = s
        out.append(params)
    return out


def _grad_variance(objs, params, logp, keys):
    """name -> total variance (sum over coordinates) of the gradient over ``keys``."""
    @jax.jit
    def run(params, keys):
        res = {}
        for name, obj in objs.items():
            g = jax.vmap(lambda k, obj=obj: jax.grad(lambda pr: obj(_q_of(pr), logp, k))(params))(keys)
            flat = jnp.concatenate([x.reshape(keys.shape[0], -1) for x in jax.tree_util.tree_leaves(g)], axis=1)
            res[name] = jnp.sum(jnp.var(flat, axis=0))
        return res

    return {k: float(v) for k, v in run(params, keys).items()}


def _targets(quick):
    from benchmarks import posteriordb

    d = 10
    m = np.random.default_rng(0).standard_normal(d)
    a = np.random.default_rng(1).standard_normal((d, d))
    cov = a @ a.T / d + 0.1 * np.eye(d)
    gauss = vikl.MultivariateNormal(jnp.asarray(m, jnp.float32), covariance_matrix=jnp.asarray(cov, jnp.float32))
    out = [("F1 Gaussian d=10 (float32)", gauss, d, jnp.float32)]
    for name in POSTERIORS[:1] if quick else POSTERIORS:
        post = posteriordb.load(name, with_draws=False)
        out.append((f"{name} d={post.dim} (float64)", post.logdensity, post.dim, jnp.float64))
    return out


def _ratio(a, b):
    return "inf" if b == 0 else f"{a / b:.3g}x"


def tables_along_fits(num_keys, sample_sizes, steps, quick):
    rows_b, rows_c = [], []
    keys = jax.random.split(jax.random.PRNGKey(2), num_keys)
    for label, logp, d, dtype in _targets(quick):
        with jax.enable_x64(dtype == jnp.float64):
            path = _trajectory(logp, d, dtype, steps)
            objs = {(n, draws): O.ReverseKL(num_samples=n, draws=draws) for n in sample_sizes for draws in ("mc", "rqmc")}
            dreg = {}
            for alpha in (0.0, 0.5):
                dreg[f"Renyi({alpha})", "plain"] = O.Renyi(alpha, num_samples=8)
                dreg[f"Renyi({alpha})", "dreg"] = O.Renyi(alpha, num_samples=8, gradient="dreg")
            # (with degenerate weights, one w_i = 1, the SNIS DReG gradient is exactly 0)
            dreg["SNIS forward KL", "plain"] = O.ForwardKL(8, method="snis")
            dreg["SNIS forward KL", "dreg"] = O.ForwardKL(8, method="snis", gradient="dreg")
            for step, params in zip(steps, path):
                v = _grad_variance(objs, params, logp, keys)
                rows_b.append([label, step] + [f"{fmt(v[n, 'mc'])} / {fmt(v[n, 'rqmc'])} ({_ratio(v[n, 'mc'], v[n, 'rqmc'])})"
                                               for n in sample_sizes])
                v = _grad_variance(dreg, params, logp, keys)
                names = ["Renyi(0.0)", "Renyi(0.5)", "SNIS forward KL"]
                rows_c.append([label, step] + [f"{fmt(v[k, 'plain'])} / {fmt(v[k, 'dreg'])} "
                                               f"({_ratio(v[k, 'plain'], v[k, 'dreg'])})" for k in names])
    header_b = ["target", "step"] + [f"n={n}: MC / RQMC (ratio)" for n in sample_sizes]
    header_c = ["target", "step", "Renyi(0) = IWAE: plain / DReG", "Renyi(0.5): plain / DReG",
                "SNIS forward KL: score / DReG"]
    b = (f"### (b) ReverseKL gradient variance along a full-rank fit, MC vs RQMC ({num_keys} keys)\n\n"
         "Total variance of the gradient w.r.t. (loc, raw scale_tril); ratio = MC / RQMC.\n\n"
         + markdown_table(header_b, rows_b))
    c = (f"### (c) DReG vs plain gradients, K = 8 draws, same points ({num_keys} keys)\n\n"
         "Total gradient variance; ratio = plain / DReG (above 1: DReG is better).\n\n"
         + markdown_table(header_c, rows_c))
    return b, c


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 20 keys, n = 64 and 256, num_samples 8, one posterior, steps 0 and 30")
    parser.add_argument("--keys", type=int, default=None, help="keys per cell (default 200; 20 with --quick)")
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    num_keys = args.keys or (20 if args.quick else 200)
    sizes = (64, 256) if args.quick else (64, 256, 1024, 4096)
    sample_sizes = (8,) if args.quick else (8, 16, 64)
    steps = (0, 30) if args.quick else STEPS
    t0 = time.perf_counter()
    parts = [f"# RQMC draws and DReG gradients (`python -m benchmarks.qmc{' --quick' if args.quick else ''}`)",
             machine_line(), table_k2(num_keys, sizes)]
    parts.extend(tables_along_fits(num_keys, sample_sizes, steps, args.quick))
    parts.append(f"total time {time.perf_counter() - t0:.0f} s")
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
